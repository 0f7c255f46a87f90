"""Both index backends: filter correctness, true filtered top-k, agreement on exact search, persistence."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from fashion_core.errors import InvalidInputError, NotFoundError
from fashion_core.stores import IndexMeta, SearchFilter
from fashion_core.stores.faiss import FaissIndex, tuning
from fashion_core.stores.faiss.structures import Builder, is_fast_scan
from fashion_core.stores.qdrant.index import QdrantIndex

N, DIM = 1500, 32
GENDERS = ["Men", "Women", "Boys", "Girls", "Unisex"]
COLOURS = ["Black", "White", "Blue", "Red", "Silver", "Green"]
TYPES = ["Tshirts", "Heels", "Watches", "Jeans"]


@pytest.fixture(scope="module")
def data() -> tuple[list[int], np.ndarray, list[dict]]:
    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(N, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ids = [int(i) for i in rng.choice(10**6, size=N, replace=False)]
    # skewed, like the real catalog: rare combinations exist (e.g. Girls + Heels + Silver)
    payloads = [{
        "id": pid,
        "gender": GENDERS[min(int(rng.exponential(1.2)), 4)],
        "masterCategory": "Apparel",
        "articleType": TYPES[int(rng.integers(0, 4))],
        "baseColour": COLOURS[min(int(rng.exponential(1.5)), 5)],
        "season": "Summer",
        "usage": "Casual",
        "year": int(rng.integers(2008, 2019)) if rng.random() > 0.05 else None,
    } for pid in ids]
    return ids, vectors, payloads


def _backends(tmp: Path, ids, vectors, payloads) -> dict[str, object]:
    out = {}
    for name, index in (("qdrant", QdrantIndex("t", path=tmp / "qdrant")),
                        ("faiss-flat", FaissIndex(tmp / "faiss-flat", "flat")),
                        ("faiss-hnsw", FaissIndex(tmp / "faiss-hnsw", "hnsw")),
                        ("faiss-ivf", FaissIndex(tmp / "faiss-ivf", "ivf"))):
        index.create(IndexMeta(name="t", backend=index.backend, dim=DIM))
        for start in range(0, N, 500):  # several batches, as the indexer writes them
            index.upsert(ids[start:start + 500], vectors[start:start + 500], payloads[start:start + 500])
        index.flush()
        out[name] = index
    return out


@pytest.fixture(scope="module")
def backends(tmp_path_factory, data):
    indexes = _backends(tmp_path_factory.mktemp("idx"), *data)
    yield indexes
    for index in indexes.values():
        index.close()


FILTERS = [
    SearchFilter.build(gender="Men"),
    SearchFilter.build(gender="Girls", articleType="Heels", baseColour="Silver"),  # very selective
    SearchFilter.build(baseColour="Red,Blue", year_min=2012, year_max=2015),
    SearchFilter.build(gender=["Women", "Unisex"], articleType="Watches"),
    SearchFilter.build(year_max=2009),
    SearchFilter.build(gender="Girls", baseColour="Green", articleType="Jeans", year_min=2018),
]


def _truth(data, query: np.ndarray, flt: SearchFilter, k: int) -> list[int]:
    ids, vectors, payloads = data
    rows = [i for i, p in enumerate(payloads) if flt.matches(p)]
    scores = vectors[rows] @ query
    order = np.argsort(-scores, kind="stable")[:k]
    return [ids[rows[i]] for i in order]


@pytest.mark.parametrize("backend", ["qdrant", "faiss-flat", "faiss-hnsw", "faiss-ivf"])
@pytest.mark.parametrize("flt_index", range(len(FILTERS)))
def test_filtered_search_is_the_true_top_k_among_matches(backends, data, backend, flt_index) -> None:
    flt = FILTERS[flt_index]
    index = backends[backend]
    rng = np.random.default_rng(flt_index)
    n_match = sum(flt.matches(p) for p in data[2])
    for k in (1, 10, 50):
        query = rng.normal(size=DIM).astype(np.float32)
        hits = index.search(query, k, flt, exact=True)
        assert all(flt.matches(h.payload) for h in hits), "a hit violates the filter"
        assert len(hits) == min(k, n_match), f"{len(hits)} hits but {n_match} items match"
        assert [h.id for h in hits] == _truth(data, query, flt, k)
        assert all(a.score >= b.score for a, b in itertools.pairwise(hits))


def test_selective_filter_really_is_rare(data) -> None:
    n = sum(FILTERS[1].matches(p) for p in data[2])
    assert 0 < n < 30  # the test above exercises the "few matches" path


@pytest.mark.parametrize("backend", ["faiss-hnsw", "faiss-ivf"])
def test_approximate_search_returns_k_filtered_hits(backends, data, backend) -> None:
    index = backends[backend]
    query = data[1][3]
    for flt in FILTERS:
        n_match = sum(flt.matches(p) for p in data[2])
        hits = index.search(query, 20, flt)  # not exact: the ANN path
        assert len(hits) == min(20, n_match) and all(flt.matches(h.payload) for h in hits)


def test_backends_agree_on_exact_search(backends, data) -> None:
    rng = np.random.default_rng(1)
    for _ in range(5):
        query = rng.normal(size=DIM).astype(np.float32)
        for flt in [None, *FILTERS[:3]]:
            results = {name: [(h.id, round(h.score, 4)) for h in index.search(query, 25, flt, exact=True)]
                       for name, index in backends.items()}
            assert results["qdrant"] == results["faiss-flat"] == results["faiss-hnsw"] == results["faiss-ivf"]


def test_upsert_is_idempotent_and_delete_removes(tmp_path: Path, data) -> None:
    ids, vectors, payloads = data
    for index in (QdrantIndex("t", path=tmp_path / "q"), FaissIndex(tmp_path / "f", "flat")):
        index.create(IndexMeta(name="t", backend=index.backend, dim=DIM))
        index.upsert(ids[:100], vectors[:100], payloads[:100])
        index.upsert(ids[50:150], vectors[50:150], payloads[50:150])  # overlapping re-delivery
        index.flush()
        assert index.count() == 150 and index.all_ids() == set(ids[:150])
        changed = dict(payloads[0], baseColour="Purple")
        index.upsert([ids[0]], vectors[:1], [changed])
        assert index.retrieve([ids[0]])[ids[0]][0]["baseColour"] == "Purple"
        assert "Purple" in index.facets()["baseColour"]
        index.delete(ids[:10])
        index.flush()
        assert index.count() == 140 and not index.retrieve(ids[:10])
        hits = index.search(vectors[0], 5, exact=True)
        assert ids[0] not in [h.id for h in hits]
        index.close()


def test_faiss_index_persists_and_reloads(tmp_path: Path, data) -> None:
    ids, vectors, payloads = data
    index = FaissIndex(tmp_path / "f", "hnsw")
    index.create(IndexMeta(name="f", backend="faiss", dim=DIM, model_id="m", model_version="v1"))
    index.upsert(ids, vectors, payloads)
    index.flush()
    before = [h.id for h in index.search(vectors[9], 10, FILTERS[0])]
    reloaded = FaissIndex(tmp_path / "f")
    assert reloaded.index_type == "hnsw" and reloaded.count() == N
    assert reloaded.meta is not None and reloaded.meta.model_version == "v1"
    assert (tmp_path / "f" / "index.faiss").is_file()
    assert [h.id for h in reloaded.search(vectors[9], 10, FILTERS[0])] == before


def test_faiss_files_keep_their_format_and_reopen_without_a_rebuild(tmp_path: Path, data, monkeypatch) -> None:
    """The directory's files and ``partitions.npz``'s keys stay those every saved index has (an index written
    before opens after); a fresh FaissIndex loads the global graph and every kind of partition (articleType code
    scans, colour code scans, gender graphs, the code scan of every row) without building any, and answers as the
    writer did."""
    for name, value in (("EXACT_SUBSET_MAX", 100), ("PARTITION_MIN_ROWS", 100), ("VALUE_PARTITION_MIN_ROWS", 100),
                        ("SCAN_PARTITION_MAX_SHARE", 0.5), ("VALUE_SCAN_MAX_SHARE", 0.5)):  # every kind, at test size
        monkeypatch.setattr(tuning, name, value)
    ids, vectors, payloads = data
    index = FaissIndex(tmp_path, "hnsw", quantization="sq8")
    index.create(IndexMeta(name="f", backend="faiss", dim=DIM, model_id="m", model_version="v1"))
    index.upsert(ids, vectors, payloads)
    index.flush()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ids.npy", "index.faiss", "lexical", "meta.json",
                                                           "partitions.npz", "payloads.jsonl", "vectors.npy"]
    meta = json.loads((tmp_path / "meta.json").read_text())
    assert (meta["name"], meta["backend"], meta["dim"], meta["model_version"]) == ("f", "faiss", DIM, "v1")
    assert meta["extra"] == {"index_type": "hnsw", "quantization": "sq8"}
    saved_ids, saved_vectors = np.load(tmp_path / "ids.npy"), np.load(tmp_path / "vectors.npy")
    assert saved_ids.dtype == np.int64 and sorted(saved_ids.tolist()) == sorted(ids)
    assert saved_vectors.dtype == np.float32 and saved_vectors.shape == (N, DIM)
    lines = (tmp_path / "payloads.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["id"] for line in lines] == saved_ids.tolist()  # one payload per row, row order
    with np.load(tmp_path / "partitions.npz") as saved:
        names, keys = saved["names"].tolist(), saved["value_keys"].tolist()
        assert sorted(names) == sorted(TYPES) and saved["bounds"].shape == (len(TYPES), 2)
        assert {"gender=Men", "gender=Women", "baseColour=Black"} <= set(keys)
        walks = dict(zip(keys, saved["value_walks"].tolist(), strict=True))
        assert walks["gender=Men"] > 0 and walks["gender=Women"] > 0  # calibrated (0: saved before calibration)
        assert set(saved.files) == {"names", "bounds", "value_keys", "value_walks", "scan",
                                    *(f"ann{i}" for i in range(len(names))),
                                    *(f"{kind}{i}" for kind in ("vrows", "vann") for i in range(len(keys)))}
    built = index._structures
    assert built is not None and all(is_fast_scan(part.ann) for part in built.partitions.values())  # code scans
    assert built.scan is not None and is_fast_scan(built.scan) and built.scan.ntotal == N  # every row's codes
    assert built.values[("gender", "Men")].kind == "hnsw" and is_fast_scan(built.values[("baseColour", "Black")].ann)

    for method in ("ann", "code_scan"):
        monkeypatch.setattr(Builder, method, lambda *_: pytest.fail("a saved structure was rebuilt on open"))
    reopened = FaissIndex(tmp_path)  # the saved settings win over the defaults
    assert (reopened.index_type, reopened.quantization, reopened.count()) == ("hnsw", "sq8", N)
    assert reopened._structures is not None
    assert set(reopened._structures.partitions) == set(built.partitions)
    assert set(reopened._structures.values) == set(built.values)
    assert reopened._structures.scan is not None and reopened._structures.scan.ntotal == N
    for flt in (None, SearchFilter.build(gender="Men"), SearchFilter.build(baseColour="Black"),
                SearchFilter.build(articleType="Heels"), *FILTERS):
        for row in (3, 9):
            assert [h.id for h in reopened.search(vectors[row], 10, flt)] == \
                [h.id for h in index.search(vectors[row], 10, flt)]
    assert [h.id for h in reopened.search_lexical("casual", 5)] == [h.id for h in index.search_lexical("casual", 5)]


def test_index_errors(tmp_path: Path) -> None:
    missing = FaissIndex(tmp_path / "none")
    with pytest.raises(NotFoundError, match="run `fashion-search index`"):
        missing.search(np.zeros(DIM, np.float32), 5)
    q = QdrantIndex("none", path=tmp_path / "q")
    with pytest.raises(NotFoundError):
        q.search(np.zeros(DIM, np.float32), 5)
    q.close()
    index = FaissIndex(tmp_path / "f")
    index.create(IndexMeta(name="f", backend="faiss", dim=DIM))
    with pytest.raises(InvalidInputError, match="k must be positive"):
        index.search(np.zeros(DIM, np.float32), 0)
    with pytest.raises(InvalidInputError, match="dim"):
        index.search(np.zeros(DIM + 1, np.float32), 3)
    with pytest.raises(InvalidInputError, match="dim"):
        index.create(IndexMeta(name="f", backend="faiss", dim=DIM * 2))


def test_filter_validation() -> None:
    with pytest.raises(InvalidInputError, match="unknown filter field"):
        SearchFilter.build(colour="Red")
    with pytest.raises(InvalidInputError, match="year range is empty"):
        SearchFilter.build(year_min=2015, year_max=2010)
    flt = SearchFilter.build(gender="men", baseColour="navy blue, RED")
    known = {"gender": ["Men", "Women"], "baseColour": ["Navy Blue", "Red"]}
    assert flt.canonical(known).equals == {"gender": ("Men",), "baseColour": ("Navy Blue", "Red")}
    with pytest.raises(InvalidInputError, match="unknown gender value 'Martian'"):
        SearchFilter.build(gender="Martian").canonical(known)
    # a companion or shard holds one value of a field: searched without that condition, the others kept
    assert SearchFilter.build(gender="Men", season="Summer", year_min=2012).without("gender") == \
        SearchFilter.build(season="Summer", year_min=2012)
    # the closest values first, then the rest up to 12, and how many are not shown (the list stopped at the
    # first 12 alphabetically: "Tshirt" never showed "Tshirts")
    types = {"articleType": [f"Type{i:02d}" for i in range(30)] + ["Tshirts", "Tops"]}
    with pytest.raises(InvalidInputError) as error:
        SearchFilter.build(articleType="Tshirt").canonical(types)
    message = str(error.value)
    assert message.startswith("unknown articleType value 'Tshirt'; did you mean 'Tshirts'? indexed values: Tshirts, ")
    assert message.endswith(" and 20 more") and message.count(", ") == 11
    with pytest.raises(InvalidInputError, match=r"value 'Zzz'; indexed values: Tops, Tshirts, Type00.* and 20 more$"):
        SearchFilter.build(articleType="Zzz").canonical(types)


def test_a_value_named_twice_is_one_value(tmp_path: Path, data, monkeypatch) -> None:
    """'Black,black' (the same value twice once matched case-insensitively) or 'Heels,Heels' keeps each value
    once: an ANN index searched each named value's partition (articleType block, colour code scan, gender graph)
    once per naming and returned every hit twice, half the k asked for."""
    known = {"gender": GENDERS, "baseColour": COLOURS, "articleType": TYPES}
    flt = SearchFilter.build(baseColour="Black, black,BLACK", articleType="Heels,Heels").canonical(known)
    assert flt.equals == {"articleType": ("Heels",), "baseColour": ("Black",)}
    for name, value in (("EXACT_SUBSET_MAX", 100), ("PARTITION_MIN_ROWS", 100), ("VALUE_PARTITION_MIN_ROWS", 100),
                        ("SCAN_PARTITION_MAX_SHARE", 0.5)):  # every kind of partition at test size
        monkeypatch.setattr(tuning, name, value)
    ids, vectors, payloads = data
    indexes = {}
    for kind, quantization in (("flat", "none"), ("hnsw", "sq8")):
        index = indexes[kind] = FaissIndex(tmp_path / kind, kind, quantization=quantization)
        index.create(IndexMeta(name="f", backend="faiss", dim=DIM))
        index.upsert(ids, vectors, payloads)
        index.flush()
    for values in ({"baseColour": "Black,black"}, {"articleType": "Heels,heels"}, {"gender": "Men,MEN"},
                   {"gender": "Men,men", "baseColour": "Black,White,black"}):
        flt = SearchFilter.build(**values).canonical(known)
        for row in (3, 9):
            got = [h.id for h in indexes["hnsw"].search(vectors[row], 10, flt)]
            truth = [h.id for h in indexes["flat"].search(vectors[row], 10, flt)]
            assert len(set(got)) == len(got) == 10, values
            assert len(set(got) & set(truth)) >= 8, values


def test_open_index_passes_the_ann_and_distributed_settings(tmp_path: Path) -> None:
    from fashion_core.settings import Settings
    from fashion_core.stores.backends import open_index

    index = open_index(Settings(index_dir=tmp_path, index_backend="qdrant", qdrant_shards=3, qdrant_replicas=2,
                                qdrant_quantization="scalar", index_search_ef=77))
    try:
        assert isinstance(index, QdrantIndex)
        assert (index.shards, index.replicas, index.quantization, index.hnsw_ef) == (3, 2, "scalar", 77)
    finally:
        index.close()
    faiss = open_index(Settings(index_dir=tmp_path, index_backend="faiss", faiss_index_type="hnsw",
                                faiss_quantization="sq8", index_search_ef=77))
    assert isinstance(faiss, FaissIndex)
    assert (faiss.index_type, faiss.quantization, faiss.ef_search) == ("hnsw", "sq8", 77)


def test_qdrant_server_searches_send_acorn_for_filters_when_set(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """FASHION_QDRANT_ACORN_MAX_SELECTIVITY (default 1) reaches Qdrant as AcornSearchParams on searches filtered
    on a field that follows the embedding (gender, season, usage, a year range) only."""
    from qdrant_client import QdrantClient

    from fashion_core.settings import Settings
    from fashion_core.stores.backends import open_index

    opened = open_index(Settings(index_backend="qdrant", index_dir=tmp_path, qdrant_acorn_max_selectivity=0.6))
    assert opened.acorn_max_selectivity == 0.6
    opened.close()
    by_default = open_index(Settings(index_backend="qdrant", index_dir=tmp_path / "default"))
    assert by_default.acorn_max_selectivity == 1.0  # on: a broad filter that follows the embedding stays top-k
    by_default.close()
    # sent like a server; without the gender companions (their test is below), which answer gender filters
    index = QdrantIndex("t", client=QdrantClient(":memory:"), acorn_max_selectivity=0.6, companions=False)
    index.create(IndexMeta(name="t", backend="qdrant", dim=4))
    index.upsert([1, 2], np.eye(4, dtype=np.float32)[:2], [{"gender": "Men"}, {"gender": "Women"}])
    sent: list[object] = []
    query_points = index.client.query_points
    monkeypatch.setattr(index.client, "query_points",
                        lambda *a, **kw: sent.append(kw["search_params"]) or query_points(*a, **kw))
    assert [h.id for h in index.search(np.eye(4, dtype=np.float32)[1], 1, SearchFilter.build(gender="Men"))] == [1]
    index.search(np.eye(4, dtype=np.float32)[1], 1)
    index.search(np.eye(4, dtype=np.float32)[1], 1, SearchFilter.build(articleType="Tshirts"))
    index.search(np.eye(4, dtype=np.float32)[1], 1, SearchFilter.build(baseColour="Red"))
    for flt in (SearchFilter.build(season="Summer"), SearchFilter.build(usage="Casual"), SearchFilter.build(
            year_min=2012), SearchFilter.build(articleType="Tshirts", season="Fall,Winter")):
        index.search(np.eye(4, dtype=np.float32)[1], 1, flt)
    assert sent[0].acorn.enable and sent[0].acorn.max_selectivity == 0.6
    assert sent[1].acorn is None  # nothing to filter
    # not a field that follows the embedding: the plain walk or a payload index scan, ACORN would cost QPS
    assert sent[2].acorn is None and sent[3].acorn is None
    # a season, a usage, a year range follow the embedding too (season=Summer at 100k: plain 0.80, ACORN 1.00)
    assert all(params.acorn is not None and params.acorn.enable for params in sent[4:8])
    index.close()
    # With the companions a gender filter searches a collection of that gender alone: no ACORN, unless another
    # field that follows the embedding is filtered on too.
    companions = QdrantIndex("c", client=QdrantClient(":memory:"), acorn_max_selectivity=0.6)
    companions.create(IndexMeta(name="c", backend="qdrant", dim=4))
    companions.upsert([1, 2], np.eye(4, dtype=np.float32)[:2], [{"gender": "Men"}, {"gender": "Women"}])
    sent.clear()
    filters: list[object] = []
    query_points = companions.client.query_points
    monkeypatch.setattr(companions.client, "query_points", lambda *a, **kw: sent.append(kw["search_params"]) or
                        filters.append(kw["query_filter"]) or query_points(*a, **kw))
    companions.search(np.eye(4, dtype=np.float32)[1], 1, SearchFilter.build(gender="Men"))
    companions.search(np.eye(4, dtype=np.float32)[1], 1, SearchFilter.build(gender="Men", season="Summer"))
    assert sent[0].acorn is None and sent[1].acorn is not None and sent[1].acorn.enable
    # and no gender condition, which every item of the companion meets: a gender filter alone is a plain search
    # of its graph (with it the planner scanned companions' small segments exactly, slower than brute force)
    assert filters[0] is None and [c.key for c in filters[1].must] == ["season"]
    companions.close()


def test_a_qdrant_collection_gets_the_settings_the_benchmark_measures(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """What a server receives when QdrantIndex creates a collection and searches it: HNSW m / ef_construct by the
    expected size, the full-scan threshold and oversampling from ann_params.qdrant_params (the settings
    benchmarks/ann_scale.py builds Qdrant's engine with) unless set, a payload index on every filter field, int8
    codes in RAM. The embedded client stores none of these (no payload indexes, no quantization), so the calls
    are read on their way to it."""
    from qdrant_client import QdrantClient, models

    from fashion_core.catalog import FILTER_FIELDS
    from fashion_core.settings import Settings
    from fashion_core.stores import ann_params
    from fashion_core.stores.backends import open_store

    def created(settings: Settings) -> tuple[dict, dict, object]:
        store = open_store(settings)
        store._client = QdrantClient(":memory:")  # searched like a server: the store's index is not local
        store.local = False
        index = store.open("shop")
        client, calls, indexes, sent = index.client, {}, {}, []
        monkeypatch.setattr(client, "create_collection", lambda name, **kw: calls.update(kw) or
                            QdrantClient.create_collection(client, name, **kw))
        monkeypatch.setattr(client, "create_payload_index", lambda name, field, schema: indexes.update({field: schema}))
        query_points = client.query_points
        monkeypatch.setattr(client, "query_points",
                            lambda *a, **kw: sent.append(kw["search_params"]) or query_points(*a, **kw))
        index.create(IndexMeta(name="shop", backend="qdrant", dim=4))
        index.upsert([1, 2], np.eye(4, dtype=np.float32)[:2], [{"gender": "Men"}, {"gender": "Women"}])
        assert [h.id for h in index.search(np.eye(4, dtype=np.float32)[1], 1, SearchFilter.build(gender="Men"))] == [1]
        index.close()
        return calls, indexes, sent[0]

    calls, indexes, params = created(Settings(index_backend="qdrant", index_dir=tmp_path / "a",
                                              qdrant_quantization="scalar", index_expected_size=1_000_000))
    tuned = ann_params.qdrant_params(1_000_000)
    hnsw = calls["hnsw_config"]
    assert (hnsw.m, hnsw.ef_construct) == (tuned.hnsw_m, tuned.ef_construct)
    # the threshold counts KB: 10k vectors of the collection's dimension (4 here), as at 512-d (20,000 KB); a fixed
    # 20,000 KB made every segment of the real catalog's 128-d index (2 x 20k) a full scan
    # and, above 250k expected items, 1/25 of them: 40k vectors for the 1M expected here
    assert hnsw.full_scan_threshold == ann_params.full_scan_kb_for(4, 1_000_000) == 625
    assert (ann_params.full_scan_kb_for(512), ann_params.full_scan_kb_for(128)) == (20_000, 5_000)
    assert ann_params.full_scan_kb_for(128, 100_000) == ann_params.full_scan_kb_for(128, 250_000) == 5_000
    assert ann_params.full_scan_kb_for(128, 1_000_000) == 20_000  # where a 3-field filter walked at recall 0.869
    assert tuned.full_scan_threshold_kb == ann_params.full_scan_kb_for(512, 1_000_000) == 80_000
    assert hnsw.m > ann_params.qdrant_params(40_000).hnsw_m  # a bigger catalog gets a denser graph
    scalar = calls["quantization_config"].scalar
    assert scalar.type == models.ScalarType.INT8 and scalar.always_ram
    assert calls["vectors_config"].on_disk  # the float32 originals, read only to rescore
    assert set(FILTER_FIELDS) <= set(indexes)  # and the lexical text index
    assert indexes["year"] == models.PayloadSchemaType.INTEGER
    assert params.hnsw_ef == tuned.hnsw_ef and params.quantization.rescore
    assert params.quantization.oversampling == tuned.oversampling
    # a user's settings win
    calls, _, params = created(Settings(index_backend="qdrant", index_dir=tmp_path / "b", qdrant_quantization="scalar",
                                        qdrant_full_scan_threshold_kb=1234, qdrant_oversampling=3.0,
                                        index_search_ef=99))
    assert calls["hnsw_config"].full_scan_threshold == 1234
    assert (params.hnsw_ef, params.quantization.oversampling) == (99, 3.0)


def _exact(vectors: np.ndarray, payloads: list[dict], ids: list[int], q: np.ndarray, k: int,
           keep: dict[str, set[str]]) -> list[int]:
    """The true top-k ids among the items whose every field in ``keep`` holds one of its values."""
    rows = [r for r, p in enumerate(payloads) if all(p.get(f) in values for f, values in keep.items())]
    scores = vectors[rows] @ q
    return [ids[rows[r]] for r in np.argsort(-scores, kind="stable")[:k]]


def test_qdrant_gender_filters_search_the_companion_collection_of_each_value(data) -> None:
    """On a server QdrantIndex keeps a companion collection per gender value (each its own HNSW graph, the way
    FAISS keeps per-gender partitions): a gender filter is answered from its values' companions, merged by score,
    every other query from the index; upserts move an item between companions when its gender changes, deletes
    and drop reach them. Embedded, or with companions off, there are none."""
    from qdrant_client import QdrantClient

    from fashion_core.stores.versions import companion_name

    ids, vectors, payloads = data
    index = QdrantIndex("t", client=QdrantClient(":memory:"))  # a client given: treated as a server's
    assert index.companion_field == "gender"
    index.create(IndexMeta(name="t", backend="qdrant", dim=DIM))
    half = N // 2
    index.upsert(ids[:half], vectors[:half], payloads[:half])
    index.upsert(ids[half:], vectors[half:], payloads[half:])
    genders = sorted({p["gender"] for p in payloads})
    assert index.companions() == sorted(companion_name("t", "gender", g) for g in genders)
    for gender in genders:
        name = companion_name("t", "gender", gender)
        assert index.client.count(name, exact=True).count == sum(p["gender"] == gender for p in payloads)
    searched: list[str] = []
    query_points = index.client.query_points
    index.client.query_points = lambda name, **kw: searched.append(name) or query_points(name, **kw)
    for row, keep in ((3, {"gender": {"Men"}}), (9, {"gender": {"Women", "Girls"}}),
                      (11, {"gender": {"Boys"}, "articleType": {"Heels"}}), (14, {})):
        flt = SearchFilter.build(**{f: ",".join(sorted(v)) for f, v in keep.items()}) if keep else None
        searched.clear()
        hits = index.search(vectors[row], 10, flt)
        assert [h.id for h in hits] == _exact(vectors, payloads, ids, vectors[row], 10, keep)
        assert all(h.payload["gender"] in keep.get("gender", GENDERS) for h in hits)
        assert sorted(searched) == (sorted(companion_name("t", "gender", g) for g in keep["gender"])
                                    if "gender" in keep else ["t"])
    assert index.search(vectors[0], 5, SearchFilter.build(gender="Martian")) == []  # no item, no companion

    # a gender changed: the item leaves its old companion; a delete leaves every companion
    moved = next(r for r, p in enumerate(payloads) if p["gender"] == "Men")
    index.upsert([ids[moved]], vectors[moved:moved + 1], [{**payloads[moved], "gender": "Women"}])
    assert ids[moved] not in [h.id for h in index.search(vectors[moved], 5, SearchFilter.build(gender="Men"))]
    assert index.search(vectors[moved], 1, SearchFilter.build(gender="Women"))[0].id == ids[moved]
    index.delete([ids[moved]])
    assert ids[moved] not in [h.id for h in index.search(vectors[moved], 5, SearchFilter.build(gender="Women"))]
    assert sum(index.client.count(name, exact=True).count for name in index.companions()) == N - 1
    index.drop()
    assert index.client.get_collections().collections == []

    # an id named twice in one batch counts once, as its last row (as the collection keeps it)
    twice = QdrantIndex("d", client=QdrantClient(":memory:"))
    twice.create(IndexMeta(name="d", backend="qdrant", dim=DIM))
    twice.upsert([7, 7], vectors[:2], [{"gender": "Men"}, {"gender": "Women"}])
    assert [h.id for h in twice.search(vectors[1], 3, SearchFilter.build(gender="Women"))] == [7]
    assert twice.search(vectors[1], 3, SearchFilter.build(gender="Men")) == []
    twice.close()

    # Whether an index keeps companions is recorded when it is created, and every reader and writer follows that,
    # whatever its own setting: a collection made without them (or before they existed) is searched as itself,
    # never as empty companions; a writer with the setting off still keeps an index's companions in step.
    client = QdrantClient(":memory:")
    old = QdrantIndex("old", client=client, companions=False)
    old.create(IndexMeta(name="old", backend="qdrant", dim=DIM))
    old.upsert(ids[:200], vectors[:200], payloads[:200])
    reader = QdrantIndex("old", client=client)  # companions on by its setting
    men = {"gender": {"Men"}}
    assert reader.companion_field is None
    assert [h.id for h in reader.search(vectors[3], 10, SearchFilter.build(gender="Men"))] == \
        _exact(vectors[:200], payloads[:200], ids[:200], vectors[3], 10, men)
    reader.upsert(ids[200:210], vectors[200:210], payloads[200:210])
    assert reader.companions() == [] and len(client.get_collections().collections) == 1
    kept = QdrantIndex("kept", client=client)
    kept.create(IndexMeta(name="kept", backend="qdrant", dim=DIM))
    kept.upsert(ids[:200], vectors[:200], payloads[:200])
    off = QdrantIndex("kept", client=client, companions=False)
    assert off.companion_field == "gender"
    moved = next(r for r in range(200) if payloads[r]["gender"] == "Men")
    off.upsert([ids[moved]], vectors[moved:moved + 1], [{**payloads[moved], "gender": "Women"}])
    off.delete([ids[0]])
    changed = [{**p, "gender": "Women"} if r == moved else p for r, p in enumerate(payloads[:200])]
    for gender in ("Men", "Women"):
        keep = {"gender": {gender}}
        truth = [i for i in _exact(vectors[:200], changed, ids[:200], vectors[5], 11, keep) if i != ids[0]][:10]
        assert [h.id for h in kept.search(vectors[5], 10, SearchFilter.build(gender=gender))] == truth

    embedded = QdrantIndex("e", client=QdrantClient(":memory:"), local=True)
    off = QdrantIndex("o", client=QdrantClient(":memory:"), companions=False)
    for plain in (embedded, off):
        assert plain.companion_field is None
        plain.create(IndexMeta(name=plain.collection, backend="qdrant", dim=DIM))
        plain.upsert(ids[:50], vectors[:50], payloads[:50])
        assert plain.companions() == [] and len(plain.client.get_collections().collections) == 1
        plain.close()
    index.close()
