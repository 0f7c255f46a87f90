"""benchmarks/ann_scale.py at a toy size: every method runs, and its recall is measured against exact search.

The figures themselves are the benchmark's job; this guards the harness (filters translated for each engine,
ground truth, ratios) so a README table never comes from a script that quietly measures the wrong thing.
"""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from tests.conftest import benchmark_module


@pytest.fixture(scope="module")
def ann_scale():
    with benchmark_module("ann_scale") as module:
        yield module


@pytest.mark.slow
def test_every_method_runs_with_every_filter(ann_scale, tmp_path) -> None:
    # sharded and companion (the same shards): their own test below
    unsharded = [m for m in ann_scale.ALL_METHODS if not m.endswith(("-sharded", "-companion"))]
    args = argparse.Namespace(size="6000", queries=20, budget=0.02, methods=",".join(unsharded), ef=None,
                              qdrant_max=1_500, vectors=None, acorn=True, full_scan_threshold_kb=None)
    rows = ann_scale.run(args)
    by_method: dict[str, dict[str, float]] = {}
    for method, _items, fname, _sel, _build, _mb, q1, q8, _ratio, recall in rows:
        by_method.setdefault(method.split(" ")[0], {})[fname] = float(recall)
        assert q1 > 0 and q8 > 0
    # every method, and each Qdrant build searched with ACORN too
    assert set(by_method) == {*unsharded, "qdrant-hnsw+acorn", "qdrant-hnsw-sq8+acorn"}
    filters = set(by_method["brute"])
    assert len(filters) == 5 and "none" in filters
    for method, recalls in by_method.items():
        assert set(recalls) == filters, method  # every filter measured for every method
        if method in ("brute", "faiss-flat", "qdrant-local"):
            assert all(r == 1.0 for r in recalls.values()), (method, recalls)  # exact methods are exact
        else:
            assert min(recalls.values()) >= 0.8, (method, recalls)
    # The selective filter has few matches: every engine must return exactly the true top-k, never short.
    rare = next(f for f in filters if f.startswith("Girls"))
    assert all(recalls[rare] == 1.0 for recalls in by_method.values())


def test_qdrant_sharded_by_gender_routes_a_gender_filter_to_its_shard(ann_scale, tmp_path) -> None:
    """Custom sharding as the benchmark models it: each gender's items in their own shard, a gender filter
    answered by that shard alone, any other query by every shard merged by score; exact on a toy size."""
    import qdrant_edge as qe

    cat = ann_scale.make_catalog(3_000, 10)
    shards, build_s, ann_bytes = ann_scale.build_qdrant_edge_sharded(cat, tmp_path, quantize=True)
    try:
        genders = cat.values["gender"]
        assert set(shards) == {genders[c] for c in set(cat.codes["gender"].tolist())} and build_s > 0 and ann_bytes > 0
        for value, shard in shards.items():  # every item in its value's shard, and only there
            assert shard.count(qe.CountRequest(exact=True)) == int(np.count_nonzero(
                cat.codes["gender"] == genders.index(value)))
        rows = []
        ann_scale._measure_edge(lambda *a: rows.append(a), "sharded", len(cat.ids), cat, shards,
                                qe.SearchParams(hnsw_ef=64), build_s, ann_bytes, {}, 0.01)
        (_, _, _, _, search_for, _, _), = rows
        men_filter, men_mask = ann_scale.pick_filters(cat)["gender=Men"]
        row_of = {int(i): r for r, i in enumerate(cat.ids)}
        for flt, mask in ((None, None), (men_filter, men_mask)):
            truth = ann_scale.ground_truth(cat, mask, cat.queries)
            found = [search_for(flt, mask)(q) for q in cat.queries]
            assert all(len(f) == ann_scale.K for f in found)
            recall = np.mean([len(set(f) & set(t.tolist())) / ann_scale.K for f, t in zip(found, truth, strict=True)])
            assert recall >= 0.95, (flt, recall)
            genders = {cat.payloads[row_of[i]]["gender"] for f in found for i in f}
            # the gender filter answered from the Men shard alone; the unfiltered answer merged from several
            assert genders == {"Men"} if flt is not None else len(genders) > 1

        class OtherGender:  # any other shard refuses: the gender filter must be routed to Men's shard only
            def query(self, request: object) -> list:
                raise AssertionError("a gender=Men query reached another gender's shard")

        routed = {value: shard if value == "Men" else OtherGender() for value, shard in shards.items()}
        rows.clear()
        ann_scale._measure_edge(lambda *a: rows.append(a), "routed", len(cat.ids), cat, routed,
                                qe.SearchParams(hnsw_ef=64), build_s, ann_bytes, {}, 0.01)
        assert len(rows[0][4](men_filter, men_mask)(cat.queries[0])) == ann_scale.K

        # companion: the whole collection beside the shards answers every query without a gender filter
        whole, _, _ = ann_scale.build_qdrant_edge(cat, tmp_path / "_whole", quantize=True)
        shards["_whole"] = whole  # closed with the others
        refusing = {value: OtherGender() for value in shards if value != "_whole"}
        rows.clear()
        ann_scale._measure_edge(lambda *a: rows.append(a), "companion", len(cat.ids), cat, refusing,
                                qe.SearchParams(hnsw_ef=64), build_s, ann_bytes, {}, 0.01, whole)
        assert len(rows[0][4](None, None)(cat.queries[0])) == ann_scale.K
        colour_filter, colour_mask = next((flt, mask) for flt, mask in ann_scale.pick_filters(cat).values()
                                          if flt is not None and "gender" not in flt.equals)
        assert len(rows[0][4](colour_filter, colour_mask)(cat.queries[0])) > 0
        with pytest.raises(AssertionError, match="another gender's shard"):
            rows[0][4](men_filter, men_mask)(cat.queries[0])
    finally:
        for shard in shards.values():
            shard.close()


def test_qdrant_filter_translation_matches_the_catalog_filter(ann_scale) -> None:
    from fashion_core.stores import SearchFilter

    assert ann_scale.edge_filter(None) is None
    flt = ann_scale.edge_filter(SearchFilter.build(gender="Men,Boys", articleType="Heels", year_min=2010))
    text = repr(flt)
    assert "gender" in text and "Boys" in text and "Heels" in text and "2010" in text
    # the server's conditions, translated: one value is a MatchValue (twice the speed of a one-value MatchAny)
    kinds = [type(c.match).__name__ for c in flt.must if c.match is not None]
    assert kinds == ["MatchAny", "MatchValue"]


def test_qdrant_engine_answers_match_value_and_match_any_alike(ann_scale, tmp_path) -> None:
    """A one-value filter (MatchValue) and the same value among values no item has (MatchAny) find the same
    top-10 on Qdrant's engine, and it is the exact filtered top-10."""
    from fashion_core.stores import SearchFilter

    cat = ann_scale.make_catalog(1_500, 5)
    shard, _, _ = ann_scale.build_qdrant_edge(cat, tmp_path / "edge", quantize=False)
    try:
        value = cat.values["articleType"][int(np.bincount(cat.codes["articleType"]).argmax())]
        one, several = SearchFilter.build(articleType=value), SearchFilter.build(articleType=f"{value},NoSuchType")
        mask = np.array([p["articleType"] == value for p in cat.payloads])
        truth = ann_scale.ground_truth(cat, mask, cat.queries)
        for flt in (one, several):
            for q, want in zip(cat.queries, truth, strict=True):
                hits = shard.query(ann_scale.qe.QueryRequest(
                    limit=ann_scale.K, query=ann_scale.qe.Query.Nearest(q.tolist()), filter=ann_scale.edge_filter(flt),
                    params=ann_scale.qe.SearchParams(exact=True)))
                assert [int(h.id) for h in hits] == want.tolist()
    finally:
        shard.close()


def test_qdrant_engine_is_built_with_the_server_collection_settings(ann_scale, tmp_path) -> None:
    """The benchmark's Qdrant engine gets the payload indexes QdrantIndex gives a server collection (read back
    from the engine) and int8 codes, from the same objects."""
    from fashion_core.stores.qdrant import index as qdrant_index

    cat = ann_scale.make_catalog(1_500, 5)
    shard, _, ann_bytes = ann_scale.build_qdrant_edge(cat, tmp_path / "edge", quantize=True)
    try:
        schema = shard.info().payload_schema
        assert set(schema) == set(qdrant_index.PAYLOAD_INDEXES)
        assert {name: str(info.data_type).lower().rsplit(".", 1)[-1] for name, info in schema.items()} == {
            name: kind.value for name, kind in qdrant_index.PAYLOAD_INDEXES.items()}
        assert shard.info().points_count == 1_500 and ann_bytes > 0
    finally:
        shard.close()


def test_gender_follows_the_clusters(ann_scale) -> None:
    """Real catalogs put men's and women's products in different regions: most of a cluster has one gender."""
    cat = ann_scale.make_catalog(6000, 10)
    nearest = np.argsort(-(cat.vectors[:200] @ cat.vectors.T), axis=1)[:, 1:6]
    same = np.mean(cat.codes["gender"][nearest] == cat.codes["gender"][:200, None])
    share = np.bincount(cat.codes["gender"]) / len(cat.ids)
    assert same > 0.75 and same > 1.5 * float(share @ share)  # far above what independent draws would give


def test_real_vectors_are_read_from_an_exported_faiss_index(ann_scale, tmp_path) -> None:
    """--export-faiss writes an index's vectors and payloads; --vectors measures on them (queries held out)."""
    from fashion_core.stores import IndexMeta
    from fashion_core.stores.faiss import FaissIndex

    rng = np.random.default_rng(0)
    n, dim = 600, 16
    vectors = rng.normal(size=(n, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    payloads = [{"gender": ["Men", "Women", "Girls"][i % 3], "articleType": f"t{i % 7}", "baseColour": f"c{i % 5}",
                 "year": 2010} for i in range(n)]
    index = FaissIndex(tmp_path / "idx")
    index.create(IndexMeta(name="idx", backend="faiss", dim=dim))
    index.upsert(list(range(1, n + 1)), vectors, payloads)
    index.flush()
    out = tmp_path / "real.npz"
    assert ann_scale.export_faiss_index(tmp_path / "idx", out) == n
    cat = ann_scale.load_catalog(out, n_queries=20)
    assert len(cat.ids) == n - 20 and cat.queries.shape == (20, dim) and cat.dim == dim
    held_out = np.isin(np.arange(1, n + 1), cat.ids, invert=True)  # the queries are not in the gallery
    np.testing.assert_allclose((cat.queries @ vectors[held_out].T).max(axis=1), 1.0, atol=1e-5)
    assert [p["gender"] for p in cat.payloads[:3]] == [payloads[i - 1]["gender"] for i in cat.ids[:3]]
    args = argparse.Namespace(size="0", queries=20, budget=0.02, methods="brute,faiss-flat", ef=None,
                              qdrant_max=100, vectors=str(out), acorn=False)
    rows = ann_scale.run(args)
    assert {row[0] for row in rows} == {"brute", "faiss-flat"}
    assert all(row[1] == n - 20 and float(row[-1]) == 1.0 for row in rows)  # exact methods, real data


def test_real_vectors_grow_by_interpolating_between_real_neighbours(ann_scale, tmp_path) -> None:
    """--vectors with a larger --size: new items lie between a real item and one of its neighbours, nearer the
    item, and take its attributes, so filters keep following the embedding at 100k and 1M."""
    rng = np.random.default_rng(1)
    n, dim, size = 300, 8, 1_000
    centres = np.eye(dim, dtype=np.float32)[:2]  # men's and women's products in two regions of the space
    gender = np.array(["Men", "Women"])[np.arange(n) % 2]
    vectors = centres[np.arange(n) % 2] + 0.2 * rng.normal(size=(n, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    out = tmp_path / "real.npz"
    np.savez(out, vectors=vectors, ids=np.arange(1, n + 1, dtype=np.int64), gender=gender,
             articleType=np.array([f"t{i % 7}" for i in range(n)]), baseColour=np.array(["Red"] * n),
             year=np.full(n, 2012, dtype=np.int64))
    cat = ann_scale.load_catalog(out, n_queries=20, size=size)
    assert len(cat.ids) == size and len(set(cat.ids.tolist())) == size and cat.grown == size - (n - 20)
    np.testing.assert_allclose(np.linalg.norm(cat.vectors, axis=1), 1.0, atol=1e-5)
    new = slice(n - 20, size)
    # every new item's nearest real item is a real item of its own gender, as its attributes say
    real = cat.vectors[:n - 20]
    nearest = (cat.vectors[new] @ real.T).argmax(axis=1)
    genders = np.array([p["gender"] for p in cat.payloads])
    assert (genders[new] == genders[nearest]).mean() > 0.95
    assert genders[new].tolist().count("Men") > 0.4 * (size - n + 20)
    assert [cat.values["gender"][c] for c in cat.codes["gender"][new]] == genders[new].tolist()
    assert all(p["year"] == 2012 for p in cat.payloads)  # payloads copied whole
    queries_in_gallery = (cat.queries @ cat.vectors.T).max(axis=1) > 1 - 1e-6
    assert not queries_in_gallery.any()
