"""Lexical (BM25) search on the FAISS backend, fusion, and the three text-search modes of the engine."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fashion_core.catalog import read_catalog
from fashion_core.errors import InvalidInputError
from fashion_core.fusion import fuse
from fashion_core.ingest import index_catalog
from fashion_core.search import SearchEngine, TextSearchConfig
from fashion_core.settings import Settings
from fashion_core.stores.base import SearchHit
from fashion_core.stores.faiss import FaissIndex
from fashion_core.stores.filters import SearchFilter
from fashion_core.stores.lexical import LEXICAL_DIR, Bm25Lexicon, product_text, tokenize
from tests.conftest import benchmark_module


@pytest.fixture(scope="module")
def indexed(tmp_path_factory, synthetic_catalog: Path, tiny_encoder) -> Path:
    directory = tmp_path_factory.mktemp("hybrid") / "products"
    index_catalog(synthetic_catalog, tiny_encoder, FaissIndex(directory))
    return directory


@pytest.fixture(scope="module")
def products(synthetic_catalog: Path):
    return {p.id: p for p in read_catalog(synthetic_catalog).products}


def _brute_bm25(index: FaissIndex, query: str, flt: SearchFilter | None, k: int) -> list[int]:
    """The true top-k by BM25 among matching items, from a lexicon built afresh over every payload."""
    fresh = Bm25Lexicon.build(index.ids, index.payloads)
    scores = fresh.scores(query)
    keep = [r for r in range(len(index.ids)) if scores[r] > 0 and (flt is None or flt.matches(index.payloads[r]))]
    keep.sort(key=lambda r: (-scores[r], int(index.ids[r])))
    return [int(index.ids[r]) for r in keep[:k]]


def test_lexical_finds_the_brand_and_type_in_the_text(indexed: Path, products) -> None:
    index = FaissIndex(indexed)
    assert (indexed / LEXICAL_DIR).is_dir()  # saved with the vectors by the indexing run
    hits = index.search_lexical("puma shoes", 10)
    assert hits and all(h.matched == "" for h in hits)
    top = hits[0].payload
    assert "Puma" in top["productDisplayName"] and "Shoe" in product_text(top)
    puma = {pid for pid, p in products.items() if p.productDisplayName.startswith("Puma")}
    assert {h.id for h in hits[:3]} <= puma
    assert index.search_lexical("zzzz qqqq", 5) == []  # no shared word, no hit


def test_filtered_lexical_is_the_true_top_k_among_matches(indexed: Path) -> None:
    index = FaissIndex(indexed)
    for query, flt in [("nike black", SearchFilter.build(gender="Women")),
                       ("watch", SearchFilter.build(baseColour="Black,Blue", year_min=2012)),
                       ("casual shoes for men", None)]:
        hits = index.search_lexical(query, 7, flt)
        assert [h.id for h in hits] == _brute_bm25(index, query, flt, 7)
        assert flt is None or all(flt.matches(h.payload) for h in hits)


def test_saved_lexicon_is_reused_and_updates_reach_it(indexed: Path, tmp_path: Path, tiny_encoder) -> None:
    import shutil

    copy = tmp_path / "products"
    shutil.copytree(indexed, copy)
    index = FaissIndex(copy)
    assert index._lexicon is not None  # loaded, not rebuilt
    row = index.payloads[0] | {"productDisplayName": "Zorblax Unique Sneaker"}
    vector = index.vectors[:1]
    index.upsert([999_001], vector, [row])
    assert [h.id for h in index.search_lexical("zorblax", 5)] == [999_001]  # before any flush
    index.flush()
    reopened = FaissIndex(copy)
    assert reopened._lexicon is not None
    assert [h.id for h in reopened.search_lexical("zorblax", 5)] == [999_001]
    reopened.delete([999_001])
    assert reopened.search_lexical("zorblax", 5) == []
    reopened.flush()
    # a lexicon saved over other rows is stale: rebuilt from the payloads, never trusted
    stale = Bm25Lexicon.load(indexed / LEXICAL_DIR, np.array([1, 2, 3]))
    assert stale is None


def test_rrf_and_blend_fusion() -> None:
    def hits(*pairs):
        return [SearchHit(i, s, {"id": i}) for i, s in pairs]

    dense, lexical = hits((1, 0.9), (2, 0.8), (3, 0.7)), hits((3, 12.0), (4, 5.0))
    fused = fuse(dense, lexical, 3, "rrf")
    assert [h.id for h in fused] == [3, 1, 2]  # 1/63 + 1/61 beats 1/61
    assert [h.matched for h in fused] == ["dense+lexical", "dense", "dense"]
    assert fused[0].score == pytest.approx(1 / 63 + 1 / 61)
    blended = fuse(dense, lexical, 4, "blend")
    # dense min-max, lexical over its best: 1 -> 1 + 0, 3 -> 0 + 1 (a tie, broken by id), 2 -> 0.5, 4 -> 5 / 12
    assert [h.id for h in blended] == [1, 3, 2, 4]
    assert blended[1].score == pytest.approx(1.0) and blended[-1].matched == "lexical"
    assert blended[-1].score == pytest.approx(5 / 12)
    assert [h.id for h in fuse(dense, lexical, 2, "rrf", lexical_weight=0.0)] == [1, 2]
    with pytest.raises(InvalidInputError):
        fuse(dense, lexical, 3, "sum")  # type: ignore[arg-type]


def test_blend_keeps_a_deep_list_of_lexical_matches_above_dense_only_hits() -> None:
    """"puma t-shirt" over the real catalog: hundreds of Puma T-shirts whose BM25 scores differ only by their
    names' lengths, and other brands' T-shirts the picture ranks high. Lexical scores scaled by their best (BM25's
    floor is 0) keep every Puma T-shirt of the lexical list above the other brands, even at a 1:2 blend (the
    default weighs lexical 8); min-max put the list's last ones at 0, under them (found by a user: 4 Puma
    T-shirts, then other brands)."""
    lexical = [SearchHit(1000 + i, 12.0 - 0.01 * i, {}) for i in range(100)]  # 12.0 down to 11.01
    dense = [SearchHit(i, 0.36 - 0.0005 * i, {}) for i in range(1, 101)]  # other brands, none named Puma
    fused = fuse(dense, lexical, 10, "blend", dense_weight=1.0, lexical_weight=2.0)
    assert all(h.matched == "lexical" for h in fused)
    assert [h.id for h in fused] == list(range(1000, 1010))
    lowest = fuse(dense, lexical, 200, "blend", 1.0, 2.0)
    worst_lexical = min(h.score for h in lowest if h.matched == "lexical")
    assert worst_lexical > max(h.score for h in lowest if h.matched == "dense")  # 2 x 11.01 / 12 > 1


def _brute_coverage(index: FaissIndex, query: str) -> dict[int, float]:
    """Each item's share of the query's IDF mass (Lucene's IDF over every payload, a word no item holds at df 0),
    counted afresh from the payloads' analysed words."""
    docs = [set(words) for words in tokenize([product_text(p) for p in index.payloads])]
    terms = list(dict.fromkeys(tokenize([query])[0]))
    n = len(docs)
    idf = {t: np.log(1 + (n - df + 0.5) / (df + 0.5)) for t in terms for df in [sum(t in d for d in docs)]}
    total = sum(idf.values())
    return {int(i): sum(idf[t] for t in terms if t in d) / total for i, d in zip(index.ids, docs, strict=True)}


def test_lexical_hits_carry_the_share_of_the_query_they_match(indexed: Path, products) -> None:
    """A misspelt brand ("addidas") is in no product's text: every hit matches "shoes" alone, a small share of
    the query's IDF mass (the unknown word counts at df 0), though BM25 ranks them as it would full matches."""
    index = FaissIndex(indexed)
    for query in ("addidas shoes", "puma shoes", "puma black shoes for men", "zzzz qqqq shoes"):
        hits = index.search_lexical(query, 50)
        want = _brute_coverage(index, query)
        assert hits and all(h.coverage == pytest.approx(want[h.id], rel=1e-5) for h in hits)
    partial = index.search_lexical("addidas shoes", 50)
    assert len({round(h.coverage or 0, 6) for h in partial}) == 1 and 0 < (partial[0].coverage or 0) < 0.3
    full = index.search_lexical("puma shoes", 50)
    assert full[0].coverage == pytest.approx(1.0) and "Puma" in full[0].payload["productDisplayName"]
    assert min(h.coverage or 0 for h in full) < 1  # other brands' shoes, Puma's other products
    assert index.search_lexical("the and of", 5) == []


def test_blend_weighs_a_partial_lexical_match_by_its_coverage() -> None:
    """"puma black sports shoe" over the catalog: past the few full matches, BM25 ranks other brands' black sports
    shoes (colour + type: a small share of the query's IDF mass, "black" and "shoe" being common) about as high as
    Puma's sports shoes of other colours (brand + type), shorter names scoring higher. Scaled by its list's best
    alone every lexical hit weighed like a full match; weighed by its coverage (the default) a hit matching more of
    the query comes first, full matches still above every hit the picture alone found."""
    power, weight = TextSearchConfig().coverage_power, TextSearchConfig().lexical_weight
    assert power > 0
    full = [SearchHit(1, 9.0, {}, coverage=1.0), SearchHit(2, 8.8, {}, coverage=1.0)]
    colour_type = [SearchHit(10 + i, 6.2 - 0.01 * i, {}, coverage=0.35) for i in range(5)]  # other brands
    brand_type = [SearchHit(20 + i, 5.9 - 0.01 * i, {}, coverage=0.8) for i in range(5)]  # Puma, other colours
    lexical = [*full, *colour_type, *brand_type]
    dense = [SearchHit(100 + i, 0.4 - 0.001 * i, {}) for i in range(100)]  # neither list's: other shoes
    before = [h.id for h in fuse(dense, lexical, 7, "blend", 1.0, 8.0)]
    assert before == [1, 2, 10, 11, 12, 13, 14]  # the weakness: the colour matches lead the brand matches
    after = [h.id for h in fuse(dense, lexical, 7, "blend", 1.0, weight, coverage_power=power)]
    assert after == [1, 2, 20, 21, 22, 23, 24]
    # full matches (coverage 1) weigh as before: the Puma T-shirts stay above other brands' dense hits
    shirts = [SearchHit(1000 + i, 12.0 - 0.01 * i, {}, coverage=1.0) for i in range(100)]
    assert [h.id for h in fuse(dense, shirts, 10, "blend", 1.0, weight, coverage_power=power)] == \
        [h.id for h in fuse(dense, shirts, 10, "blend", 1.0, 8.0)] == list(range(1000, 1010))
    # a lexical list matching a sliver of the query ("cozy top", the top a fuzzy match on a rare word's one
    # product) no longer outranks the picture's best
    sliver = [SearchHit(500, 3.0, {}, coverage=0.04)]
    assert fuse(dense, sliver, 1, "blend", 1.0, 8.0)[0].id == 500
    assert fuse(dense, sliver, 1, "blend", 1.0, weight, coverage_power=power)[0].id == 100
    assert [h.id for h in fuse([], lexical, 3, "rrf", coverage_power=power)] == [1, 2, 20]
    with pytest.raises(InvalidInputError):
        fuse(dense, lexical, 3, "blend", coverage_power=-1.0)


def test_engine_hybrid_weighs_lexical_hits_by_their_coverage(indexed: Path, tiny_encoder) -> None:
    index = FaissIndex(indexed)
    engine = SearchEngine(tiny_encoder, index, text=TextSearchConfig(depth=30))  # the defaults otherwise
    assert engine.text.coverage_power == TextSearchConfig.from_settings(Settings()).coverage_power > 0
    for query in ("addidas shoes", "puma black shoes for men", "comfy black jeans"):
        dense = engine.search_text(query, 30, None, "dense")
        lexical = engine.search_text(query, 30, None, "lexical")
        assert [h.coverage for h in lexical] == [h.coverage for h in index.search_lexical(query, 30)]
        want = fuse(dense, lexical, 10, engine.text.method, engine.text.dense_weight, engine.text.lexical_weight,
                    coverage_power=engine.text.coverage_power)
        assert [(h.id, h.matched) for h in engine.search_text(query, 10)] == [(h.id, h.matched) for h in want]
    # the one product holding every word of "nike black shoes" leads; BM25 ranks a shoe of another brand holding
    # 3/4 of the query's IDF mass 8th, under two holding 0.6 of it, and the fusion lifts it above them
    lexical = engine.search_text("nike black shoes", 30, None, "lexical")
    assert [h.coverage == pytest.approx(1.0) for h in lexical].count(True) == 1 and lexical[0].coverage == 1.0
    assert engine.search_text("nike black shoes", 1)[0].id == lexical[0].id
    assert fuse([], lexical, 3, "blend", coverage_power=engine.text.coverage_power)[1].coverage == \
        pytest.approx(0.75, abs=0.01)


def test_engine_modes_and_filtered_hybrid(indexed: Path, tiny_encoder) -> None:
    index = FaissIndex(indexed)
    engine = SearchEngine(tiny_encoder, index, text=TextSearchConfig(depth=20, method="blend", lexical_weight=2.0))
    flt = SearchFilter.build(gender="Men")
    dense = engine.search_text("puma shoes", 5, flt, "dense")
    assert [h.id for h in dense] == [h.id for h in index.search(tiny_encoder.encode_texts(["puma shoes"])[0], 5,
                                                                  flt)]
    assert {h.matched for h in dense} == {"dense"}
    lexical = engine.search_text("puma shoes", 5, flt, "lexical")
    assert {h.matched for h in lexical} == {"lexical"}
    hybrid = engine.search_text("puma shoes", 5, flt)  # the default mode
    want = fuse(engine.search_text("puma shoes", 20, flt, "dense"), engine.search_text("puma shoes", 20, flt,
                                                                                        "lexical"), 5,
                "blend", 1.0, 2.0, coverage_power=engine.text.coverage_power)
    assert [(h.id, h.matched) for h in hybrid] == [(h.id, h.matched) for h in want]
    assert all(h.payload["gender"] == "Men" for h in hybrid)
    with pytest.raises(InvalidInputError, match="unknown search mode"):
        engine.search_text("puma shoes", 5, None, "sparse")


def test_index_without_text_answers_dense_by_default(tmp_path: Path, tiny_encoder, synthetic_catalog) -> None:
    class DenseOnly:  # a backend with no search_lexical (the protocol's minimum)
        def __init__(self, inner: FaissIndex) -> None:
            self.inner, self.name, self.backend, self.meta = inner, inner.name, "dense-only", inner.meta

        def search(self, *args, **kwargs):
            return self.inner.search(*args, **kwargs)

    index = FaissIndex(tmp_path / "i")
    index_catalog(synthetic_catalog, tiny_encoder, index)
    engine = SearchEngine(tiny_encoder, DenseOnly(index))  # type: ignore[arg-type]
    assert {h.matched for h in engine.search_text("dress", 3)} == {"dense"}
    with pytest.raises(InvalidInputError, match="no lexical index"):
        engine.search_text("dress", 3, None, "hybrid")


@pytest.fixture(scope="module")
def qdrant_indexed(tmp_path_factory, synthetic_catalog: Path, tiny_encoder):
    from fashion_core.stores.qdrant.index import QdrantIndex

    index = QdrantIndex("products", path=tmp_path_factory.mktemp("hybrid-qdrant"))
    index_catalog(synthetic_catalog, tiny_encoder, index)
    yield index
    index.close()


def test_qdrant_lexical_is_qdrants_bm25_with_exact_filters(qdrant_indexed) -> None:
    from fashion_core.stores.qdrant.lexical import LEXICAL_FIELD

    index = qdrant_indexed
    hits = index.search_lexical("puma shoes", 5)
    assert hits and "Puma" in hits[0].payload["productDisplayName"]
    assert all(LEXICAL_FIELD not in h.payload for h in hits)  # the analysed words stay inside Qdrant
    assert LEXICAL_FIELD not in index.retrieve([hits[0].id])[hits[0].id][0]
    for query, flt in [("nike black", SearchFilter.build(gender="Women")),
                       ("watch", SearchFilter.build(baseColour="Black,Blue", year_min=2012))]:
        everything = index.search_lexical(query, 1000)
        want = [h.id for h in everything if flt.matches(h.payload)][:7]
        assert [h.id for h in index.search_lexical(query, 7, flt)] == want  # the true top-7 among matches
    assert index.search_lexical("the and of", 5) == []  # stop words only: nothing to match


def test_qdrant_lexical_hits_carry_the_same_coverage_as_faiss(qdrant_indexed, indexed: Path) -> None:
    faiss = FaissIndex(indexed)
    for query in ("addidas shoes", "puma black shoes for men"):
        want = {h.id: h.coverage for h in faiss.search_lexical(query, 200)}
        hits = qdrant_indexed.search_lexical(query, 200)
        assert {h.id for h in hits} == set(want)
        assert all(h.coverage == pytest.approx(want[h.id], rel=1e-5) for h in hits)


def test_qdrant_hybrid_is_qdrants_rrf_and_equals_the_engines(qdrant_indexed, tiny_encoder) -> None:
    index = qdrant_indexed
    engine = SearchEngine(tiny_encoder, index, text=TextSearchConfig(depth=20, method="rrf", lexical_weight=1.0,
                                                                     coverage_power=0.0))
    flt = SearchFilter.build(gender="Men")
    got = engine.search_text("puma black shoes", 8, flt)  # hybrid through Qdrant's Prefetch + RrfQuery
    want = fuse(engine.search_text("puma black shoes", 20, flt, "dense"),
                engine.search_text("puma black shoes", 20, flt, "lexical"), 8)
    np.testing.assert_allclose([h.score for h in got], [h.score for h in want], rtol=1e-6)
    cut = want[-1].score  # hits tied with the last may be cut differently
    assert {(h.id, h.matched) for h in got if h.score > cut * (1 + 1e-6)} == \
        {(h.id, h.matched) for h in want if h.score > cut * (1 + 1e-6)}
    assert all(h.payload["gender"] == "Men" for h in got)
    assert {h.matched for h in got} <= {"dense", "lexical", "dense+lexical"}
    # a weighted, coverage-weighed or blended fusion is the engine's own on every backend (Qdrant weighs RRF
    # another way, and knows no coverage)
    covered = SearchEngine(tiny_encoder, index, text=TextSearchConfig(depth=20, method="rrf", lexical_weight=1.0,
                                                                      coverage_power=2.0))
    want = fuse(engine.search_text("puma black shoes", 20, flt, "dense"),
                engine.search_text("puma black shoes", 20, flt, "lexical"), 8, coverage_power=2.0)
    assert [h.id for h in covered.search_text("puma black shoes", 8, flt)] == [h.id for h in want]
    blend = SearchEngine(tiny_encoder, index, text=TextSearchConfig(depth=20, method="blend", lexical_weight=2.0))
    want = fuse(engine.search_text("puma black shoes", 20, flt, "dense"),
                engine.search_text("puma black shoes", 20, flt, "lexical"), 8, "blend", 1.0, 2.0,
                coverage_power=blend.text.coverage_power)
    assert [h.id for h in blend.search_text("puma black shoes", 8, flt)] == [h.id for h in want]


def test_qdrant_collection_without_text_index_says_reindex(tmp_path: Path, tiny_encoder) -> None:
    from qdrant_client import models

    from fashion_core.stores.qdrant.index import QdrantIndex

    index = QdrantIndex("old", path=tmp_path / "q")
    index.client.create_collection("old", vectors_config=models.VectorParams(size=tiny_encoder.info.dim,
                                                                              distance=models.Distance.DOT))
    try:
        with pytest.raises(InvalidInputError, match="without a lexical index: re-index"):
            index.search_lexical("dress", 3)
        engine = SearchEngine(tiny_encoder, index)
        with pytest.raises(InvalidInputError, match="re-index"):
            engine.search_text("dress", 3, None, "hybrid")
    finally:
        index.close()


@pytest.fixture(scope="module")
def bench():
    """benchmarks/hybrid_search.py, whose query sets and selection rule the README's figures come from."""
    with benchmark_module("hybrid_search") as module:
        yield module


def test_benchmark_partial_queries_hold_words_the_catalog_lacks(bench, synthetic_catalog: Path) -> None:
    products = read_catalog(synthetic_catalog).products
    vocab = bench.gallery_words(products)
    wrong = bench.misspell("adidas", vocab)
    assert wrong and wrong[0] == "a" and abs(len(wrong) - 6) <= 1 and not set(tokenize([wrong])[0]) & vocab
    assert wrong == bench.misspell("adidas", vocab)  # reproducible (a CRC, not the salted hash)
    misspelt = bench.misspelt_brand_queries(products, products, vocab)
    assert misspelt
    for q in misspelt:
        words = tokenize([q.text])[0]
        assert any(w not in vocab for w in words) and any(w in vocab for w in words), q.text
        assert any(q.relevant(p) for p in products) and q.pair_label == "type" and q.more[0][0] == "brand"
    for q in [*bench.filler_type_queries(products, products, vocab), *bench.described_queries(products, products,
                                                                                              vocab)]:
        unknown = [w for w in tokenize([q.text])[0] if w not in vocab]
        assert unknown and unknown[0] == tokenize([q.text.split()[0]])[0][0], q.text  # the shopper's word first


def test_benchmark_selection_keeps_what_works_and_breaks_ties_to_less_lexical_weight(bench, monkeypatch) -> None:
    blend = bench.Config
    configs = {"blend 1:8": bench.BEFORE, "a": blend("hybrid", "blend", 1.0, 32.0, 1.0),
               "b": blend("hybrid", "blend", 1.0, 16.0, 1.0), "c": blend("hybrid", "blend", 1.0, 4.0, 2.0),
               "dense": blend("dense")}
    monkeypatch.setattr(bench, "CONFIGS", configs)
    monkeypatch.setattr(bench, "SELECTION", (("s", "m1"), ("s", "m2")))
    figures = {"blend 1:8": {"m1": 0.80, "m2": 0.80}, "a": {"m1": 0.852, "m2": 0.80},  # best mean
               "b": {"m1": 0.85, "m2": 0.80},  # within the tie of a's, less lexical weight: selected
               "c": {"m1": 0.99, "m2": 0.78},  # best mean of all, but drops 0.02 under blend 1:8
               "dense": {"m1": 0.1, "m2": 0.1}}
    chosen = bench.selection({"s": figures})
    assert "dense" not in chosen and not chosen["c"]["eligible"]
    assert [name for name, v in chosen.items() if v["selected"]] == ["b"]


def test_a_hybrid_gender_filter_on_qdrant_companions_fuses_their_dense_ranking(synthetic_catalog: Path,
                                                                               tiny_encoder) -> None:
    """On a server whose index keeps gender companions, Qdrant's own fusion would rank a gender filter's dense part
    on the collection (its plain walk: the recall the companions exist to fix); the engine fuses the companions'
    dense ranking with the collection's BM25 ranking instead. Other filters stay fused inside Qdrant."""
    from qdrant_client import QdrantClient

    from fashion_core.stores.qdrant.index import QdrantIndex

    index = QdrantIndex("products", client=QdrantClient(":memory:"))  # treated as a server's: companions on
    index_catalog(synthetic_catalog, tiny_encoder, index)
    assert index.companions()
    engine = SearchEngine(tiny_encoder, index, text=TextSearchConfig(depth=20, method="rrf", lexical_weight=1.0,
                                                                     coverage_power=0.0))
    native, searched = index.search_hybrid, []
    index.search_hybrid = lambda *a, **kw: searched.append(a[3]) or native(*a, **kw)  # type: ignore[method-assign]
    men = SearchFilter.build(gender="Men")
    got = engine.search_text("puma black shoes", 8, men)
    want = fuse(engine.search_text("puma black shoes", 20, men, "dense"),
                engine.search_text("puma black shoes", 20, men, "lexical"), 8)
    assert [(h.id, h.matched) for h in got] == [(h.id, h.matched) for h in want] and searched == []
    assert all(h.payload["gender"] == "Men" for h in got)
    black = SearchFilter.build(baseColour="Black")
    engine.search_text("puma black shoes", 8, black)
    assert searched == [black]  # no gender: Qdrant fuses it
    index.close()
