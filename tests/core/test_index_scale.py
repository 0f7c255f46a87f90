"""FAISS at (small) scale: size-based parameters, quantization with re-rank, selective filters never short."""

from __future__ import annotations

from dataclasses import replace

import faiss
import numpy as np
import pytest

from fashion_core.stores import IndexMeta, SearchFilter, ann_params
from fashion_core.stores.faiss import FaissIndex, structures, tuning
from fashion_core.stores.faiss.columns import Columns, FilterRows
from fashion_core.stores.faiss.planner import Planner
from fashion_core.stores.faiss.structures import Builder, calibrate_broad, is_fast_scan

N, DIM, CLUSTERS = 30_000, 64, 60
GENDERS = ["Men", "Women", "Unisex", "Boys", "Girls"]
GENDER_P = [0.5, 0.38, 0.06, 0.04, 0.02]
TYPES = [f"type{i}" for i in range(40)]
COLOURS = ["Black", "White", "Blue", "Red", "Grey", "Silver", "Green"]


def _clustered(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(labels, vectors): N unit vectors of DIM dims around CLUSTERS random centres (noise 0.6), each item's
    cluster in ``labels``, drawn from ``rng`` in that order."""
    centres = rng.normal(size=(CLUSTERS, DIM)).astype(np.float32)
    labels = rng.integers(0, CLUSTERS, size=N)
    vectors = centres[labels] + 0.6 * rng.normal(size=(N, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return labels, vectors


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray, list[dict]]:
    rng = np.random.default_rng(3)
    _, vectors = _clustered(rng)
    zipf = 1.0 / np.arange(1, len(TYPES) + 1)
    types = rng.choice(len(TYPES), size=N, p=zipf / zipf.sum())
    genders = rng.choice(len(GENDERS), size=N, p=GENDER_P)
    colours = np.minimum(rng.exponential(1.3, size=N).astype(int), len(COLOURS) - 1)
    payloads = [{"gender": GENDERS[g], "articleType": TYPES[t], "baseColour": COLOURS[c],
                 "year": None if i % 50 == 0 else 2008 + i % 11}
                for i, (g, t, c) in enumerate(zip(genders, types, colours, strict=True))]
    ids = np.arange(10, 10 + N, dtype=np.int64) * 7
    return ids, vectors, payloads


def _build(tmp_path, data, **kwargs) -> FaissIndex:
    ids, vectors, payloads = data
    index = FaissIndex(tmp_path, **kwargs)
    index.create(IndexMeta(name="s", backend="faiss", dim=DIM))
    index.upsert(ids.tolist(), vectors, payloads)
    index.flush()
    return index


def _truth(data, q: np.ndarray, flt: SearchFilter | None, k: int) -> list[int]:
    ids, vectors, payloads = data
    rows = np.array([i for i, p in enumerate(payloads) if flt is None or flt.matches(p)], dtype=np.int64)
    scores = vectors[rows] @ q
    return [int(ids[rows[i]]) for i in np.argsort(-scores, kind="stable")[:k]]


def _recall(index: FaissIndex, data, flt: SearchFilter | None, queries: np.ndarray, k: int = 10) -> float:
    found = total = 0
    for q in queries:
        truth = _truth(data, q, flt, k)
        hits = [h.id for h in index.search(q, k, flt)]
        assert len(hits) == len(truth), "a search came back short"
        found += len(set(hits) & set(truth))
        total += len(truth)
    assert total, f"no item matches {flt.describe() if flt else 'no filter'}"
    return found / total


def test_size_based_choice():
    assert ann_params.choose(5_000).index_type == "flat"
    assert ann_params.choose(100_000).index_type == "hnsw"
    assert ann_params.choose(5_000_000).index_type == "ivf"
    small, large = ann_params.choose(100_000), ann_params.choose(1_000_000)
    assert large.hnsw_m >= small.hnsw_m and large.ef_search >= small.ef_search
    assert ann_params.boost_for_selectivity(64, 0.001) > ann_params.boost_for_selectivity(64, 0.5) >= 64


@pytest.mark.slow
@pytest.mark.parametrize(("index_type", "quantization", "min_recall"), [
    ("auto", "none", 0.95), ("hnsw", "sq8", 0.95), ("ivf", "none", 0.9), ("ivf", "pq", 0.9)])
def test_recall_with_and_without_filters(tmp_path, data, index_type, quantization, min_recall):
    index = _build(tmp_path, data, index_type=index_type, quantization=quantization)
    assert index.params().index_type in {"hnsw", "ivf"}  # 30k items: auto builds a graph
    queries = data[1][np.random.default_rng(1).choice(N, 20, replace=False)]
    wide = SearchFilter.build(gender="Men,Women")  # ~88%: goes through the ANN index with a selector
    rare = SearchFilter.build(gender="Girls", articleType="type0", baseColour="Red")  # a handful
    assert _recall(index, data, None, queries) >= min_recall
    assert _recall(index, data, wide, queries) >= min_recall
    assert _recall(index, data, rare, queries) == 1.0  # ranked exactly
    # persisted with its quantization, and answers the same after a reload
    reloaded = FaissIndex(tmp_path)
    assert reloaded.quantization == quantization
    assert [h.id for h in reloaded.search(queries[0], 10, wide)] == [h.id for h in index.search(queries[0], 10, wide)]


def test_masks_match_filter_semantics(tmp_path, data):
    index = _build(tmp_path, data, index_type="flat")
    index.search(data[1][0], 1)  # rows are regrouped by articleType before the first search
    by_id = dict(zip(data[0].tolist(), data[2], strict=True))
    payloads = [by_id[int(i)] for i in index.ids]  # the caller's payloads, in the index's row order
    for flt in (SearchFilter.build(gender="Girls", articleType="type3", baseColour="Silver"),
                SearchFilter.build(baseColour="Red,Blue,Nope", year_min=2012, year_max=2015),
                SearchFilter.build(gender="Nope"),
                SearchFilter.build(year_max=2009)):
        expected = np.array([flt.matches(p) for p in payloads])
        assert np.array_equal(index.columns().mask(flt), expected), flt.describe()


def test_selector_search_never_short(tmp_path, data):
    """A filter kept just above the exact-scan threshold still returns k hits from the ANN pass or fallback."""
    index = _build(tmp_path, data, index_type="hnsw", ef_search=16)
    q = data[1][0]
    flt = SearchFilter.build(gender="Men")
    hits = index.search(q, 50, flt)
    assert len(hits) == 50 and all(h.payload["gender"] == "Men" for h in hits)


def test_ann_structure_is_built_once_over_the_regrouped_rows(tmp_path, data):
    ids, vectors, payloads = data
    index = FaissIndex(tmp_path, index_type="ivf")
    index.create(IndexMeta(name="s", backend="faiss", dim=DIM))
    index.upsert(ids.tolist(), vectors, payloads)  # not flushed: rows still in insertion order
    built = index.structures()
    index.search(data[1][0], 10, SearchFilter.build(gender="Men,Women"))  # first search regroups rows if needed
    assert index._structures is built  # the structures built before the search are the ones serving it


@pytest.mark.slow
@pytest.mark.parametrize("quantization,scan_share,kind", [("sq8", 0.10, "ivf"), ("sq8", 0.0, "hnsw"),
                                                         ("pq", 0.10, "ivf")])  # a code scan is a 1-list fast-scan IVF
def test_article_type_filters_search_their_own_partition(tmp_path, monkeypatch, quantization: str,
                                                         scan_share: float, kind: str):
    """articleType follows the region of the space (as in real catalogs), so a type's matches sit far from most
    queries; each large type block gets its own structure, persisted with the index: with sq8, blocks up to
    SCAN_PARTITION_MAX_SHARE of the index are fast-scan code scans, larger ones graphs (both tried here)."""
    monkeypatch.setattr(tuning, "EXACT_SUBSET_MAX", 1_000)  # the ANN path and partitions at test size
    monkeypatch.setattr(tuning, "PARTITION_MIN_ROWS", 1_000)
    monkeypatch.setattr(tuning, "SCAN_PARTITION_MAX_SHARE", scan_share)
    # no gender graphs: articleType filters search their blocks whatever the gender; their builds (and calibration)
    # cost the three cases 26 -> 21 s, 7.1 -> 4.2 s and 4.7 -> 2.6 s on a busy machine
    monkeypatch.setattr(tuning, "BROAD_PARTITION_FIELDS", ())
    rng = np.random.default_rng(5)
    labels, vectors = _clustered(rng)
    types = np.where(rng.random(N) < 0.9, labels % 12, rng.integers(0, 12, size=N))
    payloads = [{"gender": GENDERS[i % 2], "articleType": f"t{t}", "year": 2010} for i, t in enumerate(types)]
    data = (np.arange(1, N + 1, dtype=np.int64), vectors, payloads)
    index = _build(tmp_path, data, index_type="hnsw", quantization=quantization)
    counts = np.bincount(types)
    assert set(index._structures.partitions) == {f"t{t}" for t in range(12) if counts[t] > 1_000}
    assert counts.max() <= 0.10 * N and {part.kind for part in index._structures.partitions.values()} == {kind}
    queries = vectors[rng.choice(N, 20, replace=False)]  # mostly from other types' regions
    for flt in (SearchFilter.build(articleType="t3"), SearchFilter.build(articleType="t3", gender="Men")):
        assert _recall(index, data, flt, queries) >= 0.95, flt.describe()
    assert _recall(index, data, SearchFilter.build(articleType="t3,t4"), queries) >= 0.95  # two partitions, merged

    reloaded = FaissIndex(tmp_path)
    for build in ("ann", "code_scan"):
        monkeypatch.setattr(Builder, build, lambda *_: pytest.fail("partitions rebuilt instead of loaded"))
    flt = SearchFilter.build(articleType="t5")
    assert [h.id for h in reloaded.search(queries[0], 10, flt)] == [h.id for h in index.search(queries[0], 10, flt)]
    assert {name: (p.lo, p.hi) for name, p in reloaded._structures.partitions.items()} == \
        {name: (p.lo, p.hi) for name, p in index._structures.partitions.items()}


def test_scattered_colour_filters_scan_their_own_codes(tmp_path, monkeypatch):
    """A colour is spread over every articleType block, so no contiguous slice holds it: with sq8 or pq, each colour
    has a scan of its own codes. It answers colour filters (alone, with another condition, several colours)
    at recall >= 0.95, is saved and loaded with the index, and is rebuilt after the rows change. The scans are the
    same fast-scan partitions under sq8 and pq (``Builder.code_scan``), so sq8 alone is built here: pq's global
    graph and its re-rank are tried by the articleType and recall tests."""
    monkeypatch.setattr(tuning, "VALUE_PARTITION_MIN_ROWS", 200)
    rng = np.random.default_rng(7)
    labels, vectors = _clustered(rng)
    colours = rng.integers(0, 14, size=N)  # ~7% each, independent of the region
    payloads = [{"gender": GENDERS[i % 2], "articleType": f"t{label % 12}", "baseColour": f"c{c}", "year": 2010}
                for i, (label, c) in enumerate(zip(labels, colours, strict=True))]
    data = (np.arange(1, N + 1, dtype=np.int64), vectors, payloads)
    index = _build(tmp_path, data, index_type="hnsw", quantization="sq8")
    colours = {("baseColour", f"c{c}") for c in range(14)}
    assert {key for key in index._structures.values if key[0] == "baseColour"} == colours  # (gender has graphs too)
    answered = []
    original = Planner._search_values
    monkeypatch.setattr(Planner, "_search_values",
                        lambda self, *a: answered.append(original(self, *a)) or answered[-1])
    queries = vectors[rng.choice(N, 20, replace=False)]
    for flt in (SearchFilter.build(baseColour="c3"), SearchFilter.build(baseColour="c3", gender="Men"),
                SearchFilter.build(baseColour="c3,c4")):
        assert _recall(index, data, flt, queries) >= 0.95, flt.describe()
    assert answered and all(rows is not None for rows in answered)  # the code scans answered, not a fallback

    reloaded = FaissIndex(tmp_path)
    assert set(reloaded._structures.values) == set(index._structures.values)
    monkeypatch.setattr(Builder, "code_scan", lambda *_: pytest.fail("value partitions rebuilt on load"))
    flt = SearchFilter.build(baseColour="c5")
    assert [h.id for h in reloaded.search(queries[0], 10, flt)] == [h.id for h in index.search(queries[0], 10, flt)]
    monkeypatch.undo()

    reloaded.delete([int(data[0][0])])  # rows change: the scans are dropped, then rebuilt for the next query
    assert reloaded._structures is None
    reloaded.search(queries[0], 10, flt)
    assert colours <= set(reloaded._structures.values)


def _partitioned(tmp_path, monkeypatch, data) -> FaissIndex:
    """An HNSW + SQ8 index of ``data`` with every kind of partition at test size: gender graphs, colour code
    scans (Red 5%), articleType code scans (type2 8%)."""
    for name, value in (("EXACT_SUBSET_MAX", 1_000), ("PARTITION_MIN_ROWS", 1_000), ("VALUE_PARTITION_MIN_ROWS", 200)):
        monkeypatch.setattr(tuning, name, value)
    return _build(tmp_path, data, index_type="hnsw", quantization="sq8")


def test_one_field_filters_need_no_row_mask(tmp_path, monkeypatch, data):
    """A filter on one field alone is answered from that field's partitions (gender graph, colour and articleType
    code scans), counted from per-value counts, without a mask over every row (at 1M rows a mask costs about a
    millisecond, more than the search), and still finds the true top-k; so does one with a second condition,
    searched with it as a selector."""
    index = _partitioned(tmp_path, monkeypatch, data)
    assert {("gender", "Men"), ("baseColour", "Red")} <= set(index._structures.values)
    assert "type2" in index._structures.partitions
    masks = []
    original = Columns.mask
    monkeypatch.setattr(Columns, "mask", lambda self, flt: masks.append(flt) or original(self, flt))
    queries = data[1][np.random.default_rng(2).choice(N, 20, replace=False)]
    for flt in (SearchFilter.build(gender="Men"), SearchFilter.build(baseColour="Red"),
                SearchFilter.build(articleType="type2"), SearchFilter.build(baseColour="Red,Grey")):
        assert _recall(index, data, flt, queries) >= 0.95, flt.describe()
        assert masks == [], f"{flt.describe()}: a row mask was built"
    flt = SearchFilter.build(baseColour="Red", gender="Men")  # Red's scan with Men as a selector
    assert _recall(index, data, flt, queries) >= 0.95


def test_filter_rows_from_posting_lists_are_the_masks_rows(data):
    """Every way FilterRows finds a filter's rows (per-value counts, posting lists of the narrowest field with the
    rest checked on those rows, a mask over all rows) keeps exactly the rows the filter matches."""
    columns = Columns(data[2])
    truth = lambda flt: np.array([i for i, p in enumerate(data[2]) if flt.matches(p)], dtype=np.int64)  # noqa: E731
    for flt in (SearchFilter.build(gender="Girls"), SearchFilter.build(gender="Girls", baseColour="Red"),
                SearchFilter.build(gender="Girls,Boys", articleType="type3,type7", year_min=2012),
                SearchFilter.build(gender="Men", baseColour="Black"), SearchFilter.build(year_min=2010, year_max=2012),
                SearchFilter.build(gender="Girls", baseColour="NoSuchColour"),
                SearchFilter.build(baseColour="Red", year_max=2009)):
        rows = FilterRows(columns, flt)
        expected = truth(flt)
        assert rows.matches == len(expected), flt.describe()
        assert np.array_equal(rows.rows(), expected) and np.array_equal(np.flatnonzero(rows.mask()), expected)


def test_selective_filters_of_several_fields_need_no_row_mask(tmp_path, monkeypatch, data):
    """A filter of several conditions whose narrowest field is selective (Girls: 2%) is found from that field's
    posting lists, no mask over every row built, and ranked exactly: the true top-k."""
    index = _partitioned(tmp_path, monkeypatch, data)
    masks = []
    original = Columns.mask
    monkeypatch.setattr(Columns, "mask", lambda self, flt: masks.append(flt) or original(self, flt))
    queries = data[1][np.random.default_rng(6).choice(N, 20, replace=False)]
    for flt in (SearchFilter.build(gender="Girls", baseColour="Black"),
                SearchFilter.build(gender="Girls", articleType="type0,type1", year_min=2010)):
        assert _recall(index, data, flt, queries) == 1.0, flt.describe()
    assert masks == []


def test_coarse_category_and_large_colour_filters_search_blocks_and_scans(tmp_path, monkeypatch):
    """masterCategory follows the embedding through articleType (each type lies in one category): its filter
    searches its types' blocks, not the global graph, where the walk stays in the query's region. A colour holding
    20% of the index (over SCAN_PARTITION_MAX_SHARE) still gets a code scan. Both find the true top-k."""
    monkeypatch.setattr(tuning, "EXACT_SUBSET_MAX", 1_000)
    monkeypatch.setattr(tuning, "PARTITION_MIN_ROWS", 1_000)
    rng = np.random.default_rng(8)
    labels, vectors = _clustered(rng)
    types = labels % 12
    colours = np.where(rng.random(N) < 0.2, 0, rng.integers(1, 12, size=N))  # c0: 20%, scattered
    payloads = [{"gender": GENDERS[i % 2], "articleType": f"t{t}", "masterCategory": "AB"[int(t) // 6] + "cat",
                 "baseColour": f"c{c}", "year": 2010} for i, (t, c) in enumerate(zip(types, colours, strict=True))]
    data = (np.arange(1, N + 1, dtype=np.int64), vectors, payloads)
    index = _build(tmp_path, data, index_type="hnsw", quantization="sq8")
    assert is_fast_scan(index._structures.values[("baseColour", "c0")].ann)
    searched = []
    original = Planner._search_blocks
    monkeypatch.setattr(Planner, "_search_blocks", lambda self, q, k, rule, types: searched.append(sorted(types))
                        or original(self, q, k, rule, types))
    queries = vectors[rng.choice(N, 20, replace=False)]  # half from the other category's regions
    assert _recall(index, data, SearchFilter.build(masterCategory="Acat"), queries) >= 0.95
    assert searched and searched[0] == [f"t{t}" for t in sorted(range(6), key=str)]
    assert _recall(index, data, SearchFilter.build(masterCategory="Bcat", gender="Men"), queries) >= 0.95
    assert _recall(index, data, SearchFilter.build(baseColour="c0"), queries) >= 0.95


def test_code_scans_saved_before_fast_scans_still_answer(tmp_path, monkeypatch, data):
    """An index saved when code scans were SQ8 codes opens without a rebuild and answers colour and articleType
    filters from those scans at recall >= 0.95 (they fetch the quantized re-rank's candidates, not a fast scan's)."""
    def sq8_scan(self: Builder, vectors: np.ndarray) -> faiss.Index:
        ann = faiss.IndexScalarQuantizer(self.dim, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT)
        ann.train(vectors)
        ann.add(vectors)
        return ann

    monkeypatch.setattr(Builder, "code_scan", sq8_scan)
    _partitioned(tmp_path, monkeypatch, data)
    monkeypatch.setattr(Builder, "code_scan", lambda *_: pytest.fail("a saved code scan was rebuilt on open"))
    reopened = FaissIndex(tmp_path)
    assert reopened._structures is not None
    assert not is_fast_scan(reopened._structures.values[("baseColour", "Red")].ann)
    queries = data[1][np.random.default_rng(4).choice(N, 20, replace=False)]
    for flt in (SearchFilter.build(baseColour="Red"), SearchFilter.build(articleType="type2")):
        assert _recall(reopened, data, flt, queries) >= 0.95, flt.describe()


@pytest.mark.slow
@pytest.mark.parametrize(("index_type", "quantization"), [("hnsw", "none"), ("hnsw", "sq8"), ("ivf", "sq8")])
def test_gender_follows_the_embedding_and_filters_stay_true_top_k(tmp_path, monkeypatch, index_type: str,
                                                                  quantization: str):
    """Men's and women's products sit in different regions (as in real catalogs): a gender filter on a query from
    the other region must still find the true top-k, at the hybrid search's depth (k=100) too; a query off the
    rows' manifold (a blend of rows, hard for any walk) finds as much of it as an unfiltered search does. Each
    broad gender gets its own graph, persisted with the index, and answers both genders, or a gender with one too
    small for a graph (Boys, ranked exactly); gender with another condition is answered by the scan of every row
    (a walk with a selector stays in the query's region: a year range that follows the embedding found 0.86)."""
    rng = np.random.default_rng(11)
    labels, vectors = _clustered(rng)
    cluster_gender = rng.choice(2, size=CLUSTERS)
    genders = np.where(rng.random(N) < 0.9, cluster_gender[labels], rng.choice(2, size=N))
    payloads = [{"gender": "Boys" if i % 25 == 0 else GENDERS[g], "articleType": f"t{label % 12}",
                 "year": 2010 + int(label) % 8, "usage": "Sports" if i % 5 == 0 else "Casual"}
                for i, (label, g) in enumerate(zip(labels, genders, strict=True))]
    data = (np.arange(1, N + 1, dtype=np.int64), vectors, payloads)
    index = _build(tmp_path, data, index_type=index_type, quantization=quantization)
    assert {key for key in index._structures.values if key[0] == "gender"} == {("gender", "Men"), ("gender", "Women")}
    answered, scanned = [], []
    original, scan = Planner._search_broad, Planner._search_scan
    monkeypatch.setattr(Planner, "_search_broad", lambda self, *a: answered.append(original(self, *a)) or
                        answered[-1])
    monkeypatch.setattr(Planner, "_search_scan", lambda self, *a: scanned.append(scan(self, *a)) or scanned[-1])
    queries = vectors[rng.choice(N, 30, replace=False)]  # from both regions
    women = vectors[rng.choice(np.flatnonzero(genders == 1), 40, replace=False)]
    blends = vectors[rng.integers(0, N, size=(20, 3))].sum(axis=1)
    blends /= np.linalg.norm(blends, axis=1, keepdims=True)
    men = SearchFilter.build(gender="Men")
    for flt, asked, k in ((men, queries, 10), (men, women, 40), (men, women, 100),
                          (SearchFilter.build(gender="Men,Women"), queries, 10),
                          (SearchFilter.build(gender="Men,Boys"), women, 10),
                          (SearchFilter.build(gender="Men,Boys"), women[:2], 3_000)):  # deeper than IVF's probes
        assert _recall(index, data, flt, asked, k) >= 0.95, (flt.describe(), k)
    assert _recall(index, data, men, blends) >= _recall(index, data, None, blends) - 0.02
    assert answered and all(rows is not None for rows in answered)
    # the gender graphs answered, or the scan where a graph's calibration found its far queries' top-k missed
    assert bool(scanned) == any(part.walk < 0 for key, part in index._structures.values.items() if key[0] == "gender")
    for flt in (SearchFilter.build(gender="Men", year_min=2015), SearchFilter.build(gender="Women", usage="Casual"),
                SearchFilter.build(gender="Men,Women", year_min=2012, year_max=2016)):
        scanned.clear()
        assert _recall(index, data, flt, queries) >= 0.95, flt.describe()
        assert len(scanned) == len(queries), flt.describe()  # the scan answered
    monkeypatch.setattr(tuning, "EXACT_SUBSET_MAX", 1_000)  # Boys (1,200 rows): no graph, too large to rank exactly
    scanned.clear()
    assert _recall(index, data, SearchFilter.build(gender="Men,Boys"), women) >= 0.95
    assert len(scanned) == len(women)  # the scan answered, not the global walk with a selector
    monkeypatch.undo()

    reloaded = FaissIndex(tmp_path)
    monkeypatch.setattr(Builder, "ann", lambda *_: pytest.fail("gender graphs rebuilt on load"))
    flt = SearchFilter.build(gender="Women")
    assert {key for key in reloaded._structures.values if key[0] == "gender"} == {("gender", "Men"),
                                                                                   ("gender", "Women")}
    for key in (("gender", "Men"), ("gender", "Women")):  # the calibrated walks are saved, not re-measured
        assert reloaded._structures.values[key].walk == index._structures.values[key].walk != 0
    assert [h.id for h in reloaded.search(queries[0], 10, flt)] == [h.id for h in index.search(queries[0], 10, flt)]


def test_filters_no_partition_covers_scan_every_rows_codes(tmp_path, monkeypatch):
    """A season or a year range follows the embedding too (on the real catalog a walk of the global graph with a
    selector measured recall@10 0.89-0.91, worst query 0.1-0.2, at 100k), and no partition covers it: a filter
    keeping less than GLOBAL_WALK_SELECTIVITY of the index is answered by the code scan of every row with the
    filter as a selector, re-ranked exactly, at recall >= 0.95 on queries from every region; persisted."""
    rng = np.random.default_rng(13)
    labels, vectors = _clustered(rng)
    seasons = ["Summer", "Winter", "Fall", "Spring"]
    cluster_season, cluster_year = rng.choice(4, size=CLUSTERS), rng.choice(8, size=CLUSTERS)
    follows = rng.random(N) < 0.9
    season = np.where(follows, cluster_season[labels], rng.choice(4, size=N))
    year = 2010 + np.where(follows, cluster_year[labels], rng.choice(8, size=N))
    payloads = [{"gender": GENDERS[i % 2], "articleType": f"t{label % 12}", "season": seasons[s], "year": int(y)}
                for i, (label, s, y) in enumerate(zip(labels, season, year, strict=True))]
    data = (np.arange(1, N + 1, dtype=np.int64), vectors, payloads)
    index = _build(tmp_path, data, index_type="hnsw", quantization="none")
    answered = []
    original = Planner._search_scan
    monkeypatch.setattr(Planner, "_search_scan", lambda self, *a: answered.append(original(self, *a)) or answered[-1])
    queries = vectors[rng.choice(N, 30, replace=False)]  # from every region
    filters = (SearchFilter.build(season="Winter"), SearchFilter.build(year_min=2015),
               SearchFilter.build(season="Summer,Fall", year_max=2014))
    for flt in filters:
        assert 0.05 < sum(flt.matches(p) for p in payloads) / N < tuning.GLOBAL_WALK_SELECTIVITY, flt.describe()
        assert _recall(index, data, flt, queries) >= 0.95, flt.describe()
    assert len(answered) == len(filters) * len(queries)  # the scan answered every one of them

    reloaded = FaissIndex(tmp_path)
    monkeypatch.setattr(Builder, "code_scan", lambda *_: pytest.fail("the scan of every row was rebuilt on load"))
    assert [h.id for h in reloaded.search(queries[0], 10, filters[0])] == \
        [h.id for h in index.search(queries[0], 10, filters[0])]


@pytest.mark.parametrize("index_type", ["hnsw", "ivf"])
def test_tiny_and_shrunk_ann_indexes_search_and_save(tmp_path, index_type: str):
    """The scan of every row trains a 4-bit codebook (16 centroids), so an index too small for it has none: a
    5-row HNSW/IVF index, and one shrunk from 1,000 rows to 10 by deletes, search and save (both raised "Number of
    training points (10) should be at least as large as number of clusters (16)")."""
    rng = np.random.default_rng(17)
    vectors = rng.normal(size=(1_000, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    payloads = [{"gender": GENDERS[i % 2], "season": "Summer" if i % 3 else "Winter", "year": 2010}
                for i in range(1_000)]
    tiny = FaissIndex(tmp_path / "tiny", index_type=index_type, quantization="sq8")
    tiny.create(IndexMeta(name="tiny", backend="faiss", dim=DIM))
    tiny.upsert(list(range(1, 6)), vectors[:5], payloads[:5])
    tiny.flush()
    assert tiny.search(vectors[2], 3)[0].id == 3 and tiny._structures.scan is None
    shrunk = FaissIndex(tmp_path / "shrunk", index_type=index_type, quantization="sq8")
    shrunk.create(IndexMeta(name="shrunk", backend="faiss", dim=DIM))
    shrunk.upsert(list(range(1, 1_001)), vectors, payloads)
    shrunk.flush()
    shrunk.delete(list(range(11, 1_001)))
    assert shrunk.search(vectors[4], 2, SearchFilter.build(season="Summer"))[0].id == 5
    shrunk.flush()
    assert FaissIndex(tmp_path / "shrunk").count() == 10


def test_an_index_saved_without_the_scan_gets_it_when_opened(tmp_path, monkeypatch, data):
    """An index saved before the scan of every row existed (its partitions.npz has no "scan") builds it when opened
    and saves it with its next write, so its filters no partition covers stop walking the global graph."""
    monkeypatch.setattr(tuning, "EXACT_SUBSET_MAX", 1_000)
    index = _build(tmp_path, data, index_type="hnsw", quantization="sq8")
    with np.load(tmp_path / "partitions.npz") as saved:
        assert "scan" in saved
        older = {key: saved[key] for key in saved.files if key != "scan"}
    np.savez(tmp_path / "partitions.npz", **older)
    answered = []
    original = Planner._search_scan
    monkeypatch.setattr(Planner, "_search_scan", lambda self, *a: answered.append(original(self, *a)) or answered[-1])
    reopened = FaissIndex(tmp_path)
    assert reopened._structures is not None and reopened._structures.scan is not None
    assert set(reopened._structures.values) == set(index._structures.values)  # the rest loaded, not rebuilt
    flt = SearchFilter.build(year_min=2013, year_max=2015)  # ~27%: no partition covers a year range
    queries = data[1][np.random.default_rng(5).choice(N, 10, replace=False)]
    assert _recall(reopened, data, flt, queries) >= 0.95 and len(answered) == len(queries)
    reopened.flush()
    with np.load(tmp_path / "partitions.npz") as saved:
        assert "scan" in saved


def _gender_regions(noise: float, clusters: int, seed: int) -> tuple[tuple[np.ndarray, np.ndarray, list[dict]],
                                                                    np.ndarray]:
    """(data, genders): N items around ``clusters`` random centres (``noise`` around each), 90% of a cluster's
    items of its gender (0 = Men, 1 = Women)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, DIM)).astype(np.float32)
    labels = rng.integers(0, clusters, size=N)
    vectors = centres[labels] + noise * rng.normal(size=(N, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    genders = np.where(rng.random(N) < 0.9, rng.choice(2, size=clusters)[labels], rng.choice(2, size=N))
    payloads = [{"gender": GENDERS[g], "articleType": f"t{label % 12}"}
                for label, g in zip(labels, genders, strict=True)]
    return (np.arange(1, N + 1, dtype=np.int64), vectors, payloads), genders


@pytest.mark.slow
def test_broad_partitions_walk_at_the_ef_their_far_queries_need(tmp_path):
    """Each gender graph is calibrated when built: its walks search at the smallest ef that finds the true top-k
    for queries from the other region and off the rows. On 1,000 tight clusters with nothing between them (the
    synthetic benchmark's kind of data) a women's query in the men's graph meets near-ties, so the ef is widened
    and finds more of its true top-10 than the ef in force; an index saved before calibration walks at
    BROAD_EF_FACTOR x the ef in force, and a calibrated one never under the ef it was calibrated to, whatever the
    ef in force when it is searched."""
    data, genders = _gender_regions(noise=0.05, clusters=1_000, seed=11)
    index = _build(tmp_path, data, index_type="hnsw", quantization="sq8")
    men = index._structures.values[("gender", "Men")]
    base = index.tuning.broad_walk_base(len(men.rows), N, "hnsw")
    assert men.walk > base or men.walk == -1  # widened, or handed to the scan of every row
    far = data[1][np.random.default_rng(1).choice(np.flatnonzero(genders == 1), 60, replace=False)]
    flt = SearchFilter.build(gender="Men")
    calibrated = _recall(index, data, flt, far)
    index._structures.values[("gender", "Men")] = replace(men, walk=base)
    assert calibrated >= 0.95 and calibrated >= _recall(index, data, flt, far) + 0.03
    index._structures.values[("gender", "Men")] = men

    reopened = FaissIndex(tmp_path, ef_search=16)  # a server searching at a lower ef than the indexer's
    assert reopened._structures.values[("gender", "Men")].walk == men.walk
    assert reopened.tuning.broad_walk(len(men.rows), N, "hnsw", 10, 1.0, 256)[0] >= 256

    with np.load(tmp_path / "partitions.npz") as saved:
        older = {key: saved[key] for key in saved.files if key != "value_walks"}
    np.savez(tmp_path / "partitions.npz", **older)
    before = FaissIndex(tmp_path)
    assert {part.walk for key, part in before._structures.values.items() if key[0] == "gender"} == {0}
    assert before.tuning.broad_walk(len(men.rows), N, "hnsw", 10, 1.0, 0)[0] == base * tuning.BROAD_EF_FACTOR


def test_broad_partition_calibration_takes_the_smallest_factor_that_finds_the_top_k(monkeypatch, data):
    """On items with no region per gender every factor finds the true top-k, so the walk stays at the ef in
    force; when no factor reaches the recall asked, the partition is not walked (-1: the scan answers)."""
    ids, vectors, payloads = data
    rows = np.array([i for i, p in enumerate(payloads) if p["gender"] == "Men"], dtype=np.int64)
    settings = tuning.Tuning("hnsw", "sq8")
    make = Builder(DIM, "sq8", vectors)
    ann = make.ann(vectors[rows], settings.params_for(len(rows), len(ids)))
    whole = make.ann(vectors, settings.params(len(ids)))
    base = settings.broad_walk_base(len(rows), len(ids), "hnsw")
    assert calibrate_broad(ann, vectors, rows, settings, whole) == base * tuning.BROAD_EF_FACTORS[0]
    measured = structures._walk_recalls  # the partition's walks now find nothing; the global structure's as they do
    monkeypatch.setattr(structures, "_walk_recalls", lambda index, *a: measured(index, *a) * (index is whole))
    assert calibrate_broad(ann, vectors, rows, settings, whole) == -1


def test_a_short_partition_walk_is_not_hidden_by_other_blocks(tmp_path, monkeypatch):
    """A filter on two articleTypes, one with an IVF partition and one small block ranked exactly: at a deep k the
    partition's probes hold fewer rows than asked, and the small block's rows must not fill the answer in their
    place: the true top-k comes back."""
    monkeypatch.setattr(tuning, "EXACT_SUBSET_MAX", 1_000)
    monkeypatch.setattr(tuning, "PARTITION_MIN_ROWS", 1_000)
    monkeypatch.setattr(tuning, "BROAD_PARTITION_FIELDS", ())
    rng = np.random.default_rng(7)
    labels, vectors = _clustered(rng)
    types = np.where(rng.random(N) < 0.9, labels % 12, rng.integers(0, 12, size=N))
    types[rng.choice(N, 600, replace=False)] = 12  # a small type, scattered: no partition of its own
    payloads = [{"gender": GENDERS[i % 2], "articleType": f"t{t}", "year": 2010} for i, t in enumerate(types)]
    data = (np.arange(1, N + 1, dtype=np.int64), vectors, payloads)
    index = _build(tmp_path, data, index_type="ivf")
    assert index._structures.partitions["t3"].kind == "ivf" and "t12" not in index._structures.partitions
    flt = SearchFilter.build(articleType="t3,t12")
    k = 800  # t3 has ~2,400 rows; its probes (21 of 62 lists) hold ~650 of them, t12's 600 rows the rest
    q = vectors[np.flatnonzero(types == 5)[0]]
    part = index._structures.partitions["t3"]
    walked = len(index._planner._ann_search(q, k, None, part.hi - part.lo, part))
    assert walked < k <= walked + 600  # the walk alone comes back short, the small block would fill the gap
    assert [h.id for h in index.search(q, k, flt)] == _truth(data, q, flt, k)
