"""Dense vs lexical vs hybrid text search on a split of the real catalog, side by side in one run.

    python benchmarks/hybrid_search.py --split val --gallery catalog  # select the fusion on validation
    python benchmarks/hybrid_search.py --split test                   # report the selected default once on test
    [--gallery split|catalog] [--catalog DIR] [--model DIR] [--work DIR] [--names 500] [--latency 300]
    [--sets NAME ...] [--json OUT]

The split is ``training.data.split_products(products)[split]`` (a hash of the product id), products whose
image loads; it is indexed once into a flat (exact) FAISS index with its BM25 lexicon under ``--work`` and
reused while the model is the same (building one, vectors another gallery there embedded with the same model are
copied). The model is ``--model`` or the real recipe's cached checkpoint.

Each query's dense and lexical rankings (``fusion_depth`` deep, k = 10 taken) are computed once through the
engine; every configuration (dense, lexical, RRF and blending at several lexical weights and coverage powers) is
scored on them, exactly as ``SearchEngine.search_text`` fuses them (``fashion_core.fusion.fuse``). A coverage
"by words" (each query word weighing 1 instead of its IDF) is computed here from the hits' text, to compare it
with the index's IDF coverage. Query sets:
- **brand + type** as shoppers type them, "{brand} {articleType}" ("puma sports shoe"), and **brand + colour +
  type** ("puma black sports shoe"): one query per combination present in the split, for brands with >= 5 test
  products. The brand is the name's leading words, up to the gender word ("United Colors of Benetton Men ..."),
  or the longest such brand a name without a gender word starts with; compared case-insensitively.
  precision@10 on brand and type together and on all named attributes, plain (hits / 10, as the evaluation
  does; its ceiling, mean min(n, 10) / 10, is printed) and capped (hits / min(n, 10): a combination with 3
  products can at best have 3 of 10).
- **attribute queries** of the evaluation (``training/evaluate.py``): ``shopper_query`` of each gender x
  articleType x baseColour combination with >= 5 test products ("red dress for women"); precision@10 on
  articleType and on all three.
- **name queries**: ``--names`` products' own productDisplayName; recall@1/10 of that product. Reported only: the
  name is indexed, so this is no test of hybrid search.
- **partial queries**, whose words the catalog text holds only in part (the weakness a lexical hit's coverage
  addresses), generated from the split, reproducibly, with no hand labels:
  - **misspelt brand + type**: the brand + type queries with the brand's longest word misspelt by one edit (a
    letter doubled, dropped or swapped with the next, the first kept; chosen by a CRC of the word) into a word
    the catalog's text never holds ("addidas sports shoe"); precision@10 on the intended brand (capped by the
    brand's products), on the type, and on both (capped).
  - **unknown words + type**: each articleType with >= 5 products in the split, typed after one or two shopper
    words the catalog's text never holds (``FILLER``, e.g. "cozy kurta", "quirky dressy jeans"); precision@10 on
    the type.
  - **shopper description**: each attribute query after one such word ("cozy red dress for women");
    precision@10 on all three attributes and on the type.
- **examples**: ``EXAMPLES`` (the queries a review found led by a weak lexical match), each configuration's top
  3 names, printed for reading, not scored.
- **selection** (``selection``, for validation): the mean of the ``SELECTION`` figures per hybrid configuration,
  its largest drop under ``BEFORE`` (blend 1:8 without coverage), and the one selected: the best mean among
  those dropping no figure by more than 0.01, means within 0.002 of it won by the lowest lexical weight.
- **latency**: ``--latency`` queries of the sets run (names excepted) timed end to end through
  ``SearchEngine.search_text``: dense, lexical, ``BEFORE`` and the settings' hybrid (encoding included,
  in-process, interleaved); p50, p99 and the p50 added over dense.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import re
import statistics
import sys
import time
import zlib
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import console, percentile, table

from fashion_core.captions import clean_text, shopper_query, singular
from fashion_core.catalog import read_catalog
from fashion_core.catalog.real import find_real_catalog
from fashion_core.catalog.schema import Product
from fashion_core.fusion import fuse
from fashion_core.ingest import index_meta, index_products
from fashion_core.model.base import Encoder
from fashion_core.search import SearchEngine, TextSearchConfig
from fashion_core.settings import Settings
from fashion_core.stores.base import SearchHit
from fashion_core.stores.faiss import FaissIndex
from fashion_core.stores.lexical import coverage_of, product_text, query_terms, tokenize
from services.wiring import local_encoder
from training.data import split_products
from training.evaluate import usable

log = logging.getLogger("hybrid_search")
K = 10
MIN_BRAND_PRODUCTS = 5
MIN_ATTRIBUTE_PRODUCTS = 5  # training/evaluate.py's attribute_min_products
GENDER_WORDS = {"men", "women", "man", "woman", "boys", "girls", "boy", "girl", "unisex", "kids", "kid"}
# Shopper words for the partial query sets; only those the catalog's text never holds are used.
FILLER = ("comfy", "cozy", "trendy", "stylish", "gorgeous", "elegant", "chic", "funky", "cute", "classy", "sleek",
          "lovely", "snazzy", "breezy", "flattering", "dressy", "edgy", "preppy", "boho", "quirky", "awesome",
          "pretty", "beautiful", "fabulous", "fashionable", "modern", "simple", "everyday", "weekend", "vacation")
EXAMPLES = ("something for a wedding", "cozy winter wear", "addidas shoes", "puma t-shirt")


@dataclass(frozen=True)
class Config:
    """One ranking compared: a mode, and for hybrid the fusion (``fashion_core.fusion.fuse``'s arguments) and
    how a lexical hit's coverage counts the query's words ("idf": the index's, "words": 1 each)."""

    mode: str
    method: str = "blend"
    dense_weight: float = 1.0
    lexical_weight: float = 1.0
    coverage_power: float = 0.0
    coverage_by: str = "idf"


def config_name(c: Config) -> str:
    if c.mode != "hybrid":
        return c.mode
    name = f"{c.method} {c.dense_weight:g}:{c.lexical_weight:g}"
    return name if not c.coverage_power else f"{name} {c.coverage_by}^{c.coverage_power:g}"


BEFORE = Config("hybrid", "blend", 1.0, 8.0)  # the default before coverage: every lexical hit at full weight
CONFIGS: dict[str, Config] = {config_name(c): c for c in (
    Config("dense"), Config("lexical"), Config("hybrid", "rrf", 1.0, 4.0), BEFORE,
    *(Config("hybrid", "blend", 1.0, 8.0, p, "words") for p in (1.0, 2.0)),
    *(Config("hybrid", "blend", 1.0, 8.0, p) for p in (0.5, 1.0, 1.5, 2.0, 3.0)),
    *(Config("hybrid", "blend", 1.0, w, p) for w, p in ((16.0, 1.0), (16.0, 1.5), (16.0, 2.0), (32.0, 1.0),
                                                         (32.0, 2.0), (64.0, 3.0))),
    Config("hybrid", "rrf", 1.0, 4.0, 1.0))}
# What the fusion is selected on (validation): the mean of these (set, metric), among the hybrid configurations
# none of whose figures here falls more than SELECTION_SLACK under BEFORE's (the cases that work stay as good).
# Means within SELECTION_TIE of the best are a tie, won by the lowest lexical weight: every figure here is counted
# on the catalog's own attribute words, which BM25 matches, so they favour the lexical side, and the more weight
# a partial lexical match gets, the less the picture can say on queries the text holds only in part.
SELECTION: tuple[tuple[str, str], ...] = (
    ("brand + type", "P@10 all named, capped"), ("brand + colour + type", "P@10 all named, capped"),
    ("brand + colour + type", "P@10 brand+type, capped"), ("attribute (evaluation)", "P@10 all named"),
    ("attribute (evaluation)", "P@10 type"), ("misspelt brand + type", "P@10 all named, capped"),
    ("misspelt brand + type", "P@10 brand, capped"), ("misspelt brand + type", "P@10 type"),
    ("unknown words + type", "P@10 type"), ("shopper description", "P@10 all named"),
    ("shopper description", "P@10 type"))
SELECTION_SLACK = 0.01
SELECTION_TIE = 0.002


@dataclass(frozen=True)
class Query:
    text: str
    relevant: Callable[[Product], bool]  # all named attributes
    pair: Callable[[Product], bool] | None = None  # brand and type (brand queries), type (attribute queries)
    n_relevant: int = 0
    target: int | None = None  # name queries: the one product
    pair_label: str = "brand+type"
    n_pair: int = 0  # products ``pair`` holds (caps its precision)
    more: tuple[tuple[str, Callable[[Product], bool], int], ...] = ()  # (label, relevant, products it holds)


def _gender_cut(name: str) -> str | None:
    words = name.split()
    for i, word in enumerate(words[:6]):
        if re.sub(r"'s$", "", word.lower()) in GENDER_WORDS:
            return " ".join(words[:i]).lower() if i else None
    return None


def brands_of(products: Sequence[Product]) -> dict[int, str]:
    """Product id -> brand (lower case): the name's words before its gender word, else the longest known brand
    the name starts with; products with neither are left out."""
    cut = {p.id: _gender_cut(p.productDisplayName) for p in products}
    known = sorted({b for b in cut.values() if b}, key=len, reverse=True)
    out = {}
    for p in products:
        brand = cut[p.id]
        if brand is None:
            lower = p.productDisplayName.lower()
            brand = next((b for b in known if lower == b or lower.startswith(b + " ")), None)
        if brand:
            out[p.id] = brand
    return out


def type_words(article_type: str) -> str:
    return singular(clean_text(article_type))


def brand_queries(test: Sequence[Product], with_colour: bool, gallery: Sequence[Product] | None = None
                  ) -> list[Query]:
    """One query per brand x type (x colour) combination of ``test``'s products, for brands with >= 5 products
    in ``test``; relevance and the caps are counted over ``gallery`` (default: ``test`` itself)."""
    gallery = test if gallery is None else gallery
    brand = brands_of(gallery)
    counts = Counter(brand.get(p.id) for p in test)
    wanted = {(brand[p.id], p.articleType, p.baseColour if with_colour else "") for p in test
              if counts.get(brand.get(p.id, ""), 0) >= MIN_BRAND_PRODUCTS and (p.baseColour or not with_colour)}
    combos = Counter((brand.get(p.id), p.articleType, p.baseColour if with_colour else "") for p in gallery)
    pairs = Counter((brand.get(p.id), p.articleType) for p in gallery)
    queries = []
    for (b, article, colour), n in sorted((key, combos[key]) for key in wanted):
        def both(p: Product, b: str = b, article: str = article) -> bool:
            return brand.get(p.id) == b and p.articleType == article

        def named(p: Product, both: Callable = both, colour: str = colour) -> bool:
            return both(p) and (not colour or p.baseColour == colour)

        text = " ".join(w for w in (b, clean_text(colour), type_words(article)) if w)
        queries.append(Query(text, named, both, n, n_pair=pairs[(b, article)]))
    return queries


def attribute_queries(test: Sequence[Product], gallery: Sequence[Product] | None = None) -> list[Query]:
    """The evaluation's shopper queries (combinations with >= 5 products in ``test``); relevance and caps
    counted over ``gallery`` (default: ``test``)."""
    gallery = test if gallery is None else gallery
    asked = Counter((p.gender, p.articleType, p.baseColour) for p in test if p.baseColour)
    combos = Counter((p.gender, p.articleType, p.baseColour) for p in gallery if p.baseColour)
    types = Counter(p.articleType for p in gallery)
    queries = []
    for key, n_asked in sorted(asked.items()):
        if n_asked < MIN_ATTRIBUTE_PRODUCTS:
            continue
        (gender, article, colour), n = key, combos[key]

        def all_three(p: Product, g: str = gender, a: str = article, c: str = colour) -> bool:
            return (p.gender, p.articleType, p.baseColour) == (g, a, c)

        def same_type(p: Product, a: str = article) -> bool:
            return p.articleType == a

        queries.append(Query(shopper_query(gender, article, colour), all_three, same_type, n, pair_label="type",
                             n_pair=types[article]))
    return queries


def gallery_words(gallery: Sequence[Product]) -> set[str]:
    """Every analysed word (``lexical.tokenize``) of the gallery's product texts: what BM25 can match."""
    return {w for words in tokenize([product_text(p.payload()) for p in gallery]) for w in words}


def _unknown(words: Sequence[str], vocab: set[str]) -> list[str]:
    """Those of ``words`` whose analysed words are all outside ``vocab`` (and that have some)."""
    return [w for w, toks in zip(words, tokenize(list(words)), strict=True) if toks and not set(toks) & vocab]


def _pick(options: Sequence[str], seed: str, n: int = 1) -> list[str]:
    """``n`` of ``options`` chosen by a CRC of ``seed`` (reproducible across runs, unlike ``hash``)."""
    return random.Random(zlib.crc32(seed.encode())).sample(list(options), min(n, len(options)))


def misspell(word: str, vocab: set[str]) -> str | None:
    """``word`` misspelt by one edit (a letter doubled, dropped, or swapped with the next; the first letter kept)
    into a word whose analysed form ``vocab`` lacks, chosen by a CRC of ``word``; None when there is none."""
    edits = set()
    for i in range(1, len(word)):
        edits.add(word[:i] + word[i - 1] + word[i:])  # adidas -> addidas
        edits.add(word[:i] + word[i + 1:])
        if i + 1 < len(word):
            edits.add(word[:i] + word[i + 1] + word[i] + word[i + 2:])
    edits.discard(word)
    unknown = _unknown(sorted(edits), vocab)
    return _pick(unknown, word)[0] if unknown else None


def misspelt_brand_queries(test: Sequence[Product], gallery: Sequence[Product], vocab: set[str]) -> list[Query]:
    """The brand + type queries (``brand_queries``) with the brand's longest word (>= 4 letters) misspelt
    (``misspell``): relevant = the intended brand and type; also measured on the type and on the brand alone."""
    brand = brands_of(gallery)
    n_brand = Counter(brand.values())
    types = Counter(p.articleType for p in gallery)
    queries = []
    for q in brand_queries(test, with_colour=False, gallery=gallery):
        b = next(b for b in (brand.get(p.id) for p in gallery if q.relevant(p)) if b)
        longest = max(b.split(), key=len)
        wrong = misspell(longest, vocab) if len(longest) >= 4 and longest.isalpha() else None
        if wrong is None:
            continue
        article = next(p.articleType for p in gallery if q.relevant(p))

        def of_brand(p: Product, b: str = b) -> bool:
            return brand.get(p.id) == b

        def of_type(p: Product, a: str = article) -> bool:
            return p.articleType == a

        text = q.text.replace(longest, wrong, 1)
        queries.append(Query(text, q.relevant, of_type, q.n_relevant, pair_label="type", n_pair=types[article],
                             more=(("brand", of_brand, n_brand[b]),)))
    return queries


def filler_type_queries(test: Sequence[Product], gallery: Sequence[Product], vocab: set[str]) -> list[Query]:
    """For each articleType with >= 5 products in ``test``: "{word} {type}" and "{word} {word} {type}", the words
    from ``FILLER`` whose analysed words ``vocab`` lacks; relevant = the type."""
    filler = _unknown(FILLER, vocab)
    asked = Counter(p.articleType for p in test)
    types = Counter(p.articleType for p in gallery)
    queries = []
    for article, n in sorted(asked.items()):
        if n < MIN_ATTRIBUTE_PRODUCTS:
            continue

        def of_type(p: Product, a: str = article) -> bool:
            return p.articleType == a

        for words in (_pick(filler, article), _pick(filler, article + " 2", 2)):
            queries.append(Query(" ".join([*words, type_words(article)]), of_type, of_type, types[article],
                                 pair_label="type", n_pair=types[article]))
    return queries


def described_queries(test: Sequence[Product], gallery: Sequence[Product], vocab: set[str]) -> list[Query]:
    """The attribute queries (``attribute_queries``) after one ``FILLER`` word whose analysed words ``vocab`` lacks
    ("cozy red dress for women"): relevant = all three attributes; also measured on the type."""
    filler = _unknown(FILLER, vocab)
    return [Query(f"{_pick(filler, q.text)[0]} {q.text}", q.relevant, q.pair, q.n_relevant, pair_label="type",
                  n_pair=q.n_pair) for q in attribute_queries(test, gallery)]


def name_queries(test: Sequence[Product], n: int) -> list[Query]:
    picked = random.Random(0).sample(list(test), min(n, len(test)))

    def the_one(q: Product, i: int) -> bool:
        return q.id == i

    return [Query(p.productDisplayName, partial(the_one, i=p.id), None, 1, p.id) for p in picked]


def open_gallery_index(work: Path, gallery: Sequence[Product], encoder: Encoder, name: str) -> FaissIndex:
    """A flat FAISS index (and BM25 lexicon) of ``gallery`` under ``work/name``, reused while its ids and model
    are the same. Building it, the vectors of products another gallery under ``work`` embedded with the same model
    are copied (the catalog galleries share the train split's 32k images), the rest embedded."""
    index = FaissIndex(work / name, index_type="flat")
    ids = {p.id for p in gallery}
    meta = index.meta
    if meta is not None and meta.model_version == encoder.info.version and index.all_ids() == ids:
        log.info("reusing the indexed gallery in %s", index.dir)
        return index
    import shutil

    shutil.rmtree(index.dir, ignore_errors=True)
    index = FaissIndex(work / name, index_type="flat")
    started = time.perf_counter()
    index.create(index_meta(encoder, index.name, index.backend))
    wanted = {p.id: p for p in gallery}
    for sibling in sorted(d for d in work.iterdir() if d.is_dir() and d != index.dir):
        other = FaissIndex(sibling)
        if other.meta is None or other.meta.model_version != encoder.info.version:
            continue
        found = other.retrieve(sorted(wanted.keys() & other.all_ids()), with_vectors=True)
        copied = sorted(found)
        if copied:
            vectors = np.stack([np.asarray(found[i][1]) for i in copied])
            index.upsert(copied, vectors, [wanted[i].payload() for i in copied])
            log.info("copied %d vectors from %s", len(copied), sibling)
            for i in copied:
                del wanted[i]
    report = index_products(list(wanted.values()), encoder, index, batch_size=128)
    log.info("indexed %d products (%d embedded) in %.0f s", index.count(), report.indexed,
             time.perf_counter() - started)
    return index


Lists = tuple[list[SearchHit], list[SearchHit], list[SearchHit]]  # dense, lexical, lexical with words coverage


def rankings(engine: SearchEngine, queries: Sequence[Query]) -> list[Lists]:
    """Each query's dense and lexical top-``depth`` (what a hybrid search fuses), in the engine's own calls, and
    the lexical list again with each hit's coverage counted by words (each query word 1, not its IDF)."""
    depth = engine.text.depth
    out = []
    for q in queries:
        lexical = engine.search_text(q.text, depth, None, "lexical")
        out.append((engine.search_text(q.text, depth, None, "dense"), lexical, by_words(q.text, lexical)))
    return out


def by_words(query: str, hits: Sequence[SearchHit]) -> list[SearchHit]:
    """``hits`` with each coverage the share of ``query``'s analysed words its text holds (each word 1)."""
    terms = query_terms(query)
    texts = tokenize([product_text(h.payload) for h in hits]) if hits else []
    present = np.array([[t in set(words) for t in terms] for words in texts], dtype=bool).reshape(len(hits), -1)
    shares = coverage_of(present, np.ones(len(terms)))
    return [replace(h, coverage=float(c)) for h, c in zip(hits, shares, strict=True)]


def ranked(config: Config, dense: list[SearchHit], lexical: list[SearchHit], lexical_words: list[SearchHit]
           ) -> list[SearchHit]:
    if config.mode == "dense":
        return dense[:K]
    if config.mode == "lexical":
        return lexical[:K]
    return fuse(dense, lexical_words if config.coverage_by == "words" else lexical, K, config.method,  # type: ignore[arg-type]
                config.dense_weight, config.lexical_weight, coverage_power=config.coverage_power)


def measure(lists: list[Lists], queries: Sequence[Query], products: dict[int, Product]) -> dict[str, dict[str, float]]:
    """Per configuration: mean metrics over ``queries``."""
    sums: dict[str, dict[str, float]] = {name: defaultdict(float) for name in CONFIGS}
    for query, (dense, lexical, lexical_words) in zip(queries, lists, strict=True):
        for name, config in CONFIGS.items():
            hits = ranked(config, dense, lexical, lexical_words)
            top = [products[h.id] for h in hits]
            s = sums[name]
            if query.target is not None:
                ids = [h.id for h in hits]
                s["recall@1"] += float(ids[:1] == [query.target])
                s["recall@10"] += float(query.target in ids)
                continue
            cap = min(K, query.n_relevant)
            named = sum(map(query.relevant, top))
            s["P@10 all named"] += named / K
            s["P@10 all named, capped"] += named / cap
            if query.pair is not None:
                pair = sum(map(query.pair, top))
                s[f"P@10 {query.pair_label}"] += pair / K
                s[f"P@10 {query.pair_label}, capped"] += pair / min(K, query.n_pair)
            for label, relevant, n in query.more:
                s[f"P@10 {label}, capped"] += sum(map(relevant, top)) / min(K, n)
            s["ceiling of plain P@10"] += cap / K
    n = max(1, len(queries))
    return {name: {key: value / n for key, value in s.items()} for name, s in sums.items()}


def examples(engine: SearchEngine, queries: Sequence[str], n: int = 3) -> dict[str, dict[str, list[str]]]:
    """Each query's top ``n`` names under each configuration (for reading, not scored)."""
    out: dict[str, dict[str, list[str]]] = {}
    for text, (dense, lexical, lexical_words) in zip(queries, rankings(engine, [Query(q, bool) for q in queries]),
                                                     strict=True):
        out[text] = {name: [h.payload["productDisplayName"] for h in ranked(c, dense, lexical, lexical_words)[:n]]
                     for name, c in CONFIGS.items()}
    return out


def selection(sets: dict[str, dict[str, dict[str, float]]]) -> dict[str, dict[str, float | bool]]:
    """Per hybrid configuration: the mean of the ``SELECTION`` figures (``sets``: set -> config -> metric ->
    value), its largest drop under ``BEFORE`` on any of them, whether that is within ``SELECTION_SLACK``, and
    whether it is the one selected (the best mean among those, ties within ``SELECTION_TIE`` to the lowest
    lexical weight). Meant for validation: a test run reports it, selects nothing."""
    before = config_name(BEFORE)
    picked = [(name, metric) for name, metric in SELECTION if name in sets]
    out: dict[str, dict[str, float | bool]] = {}
    for config, c in CONFIGS.items():
        if c.mode != "hybrid" or not picked:
            continue
        values = [sets[name][config][metric] for name, metric in picked]
        drop = max(sets[name][before][metric] - sets[name][config][metric] for name, metric in picked)
        out[config] = {"mean": statistics.fmean(values), "largest drop": drop, "eligible": drop <= SELECTION_SLACK,
                       "selected": False}
    eligible = {name: v for name, v in out.items() if v["eligible"]}
    if eligible:
        best = max(float(v["mean"]) for v in eligible.values())
        tied = [name for name, v in eligible.items() if float(v["mean"]) >= best - SELECTION_TIE]
        out[min(tied, key=lambda n: (CONFIGS[n].lexical_weight, -float(out[n]["mean"])))]["selected"] = True
    return out


def latency(engines: dict[str, SearchEngine], queries: Sequence[Query]) -> dict[str, list[float]]:
    """Seconds of each query through ``search_text`` per engine, engines interleaved per query."""
    seconds: dict[str, list[float]] = {name: [] for name in engines}
    for query in queries:
        for name, engine in engines.items():
            start = time.perf_counter()
            engine.search_text(query.text, K)
            seconds[name].append(time.perf_counter() - start)
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--catalog", help="the real catalog; default: FASHION_CATALOG or ../shared/datasets/...")
    parser.add_argument("--model", help="checkpoint directory; default: the real recipe's cached model")
    parser.add_argument("--work", default=".fashion-search/bench-hybrid", help="where the split's index is kept")
    parser.add_argument("--names", type=int, default=500, help="name queries (reported, not selected on)")
    parser.add_argument("--latency", type=int, default=300, help="queries timed per mode (default 300)")
    parser.add_argument("--split", choices=("val", "test"), default="test",
                        help="val to select the fusion, test to report it (default test)")
    parser.add_argument("--gallery", choices=("split", "catalog"), default="split",
                        help="search the split's products (default) or the whole catalog but the other held-out "
                        "split (val: train + val, test: train + test), as a shopper searches it: queries still "
                        "come from the split, relevance is counted over the gallery")
    parser.add_argument("--sets", nargs="*", help="only these query sets (by name; default all)")
    parser.add_argument("--json", help="write every figure to this JSON file")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("bm25s").setLevel(logging.WARNING)

    settings = Settings(catalog=args.catalog)
    catalog = find_real_catalog(settings)
    if catalog is None:
        log.error("no real catalog: give --catalog or set FASHION_CATALOG")
        return 2
    model = Path(args.model) if args.model else settings.models_dir / json.loads(
        (settings.models_dir / "real.json").read_text())["dir"]
    encoder = local_encoder(settings.model_copy(update={"model": str(model), "device": "cpu"}))
    every = read_catalog(catalog).products
    splits = split_products(every)
    test = usable(splits[args.split])
    gallery = test if args.gallery == "split" else usable([*splits["train"], *splits[args.split]])
    products = {p.id: p for p in gallery}
    index = open_gallery_index(Path(args.work), gallery, encoder,
                               f"{args.split}-split" if args.gallery == "split" else f"train+{args.split}")
    base = SearchEngine(encoder, index)
    base.search_text("warm up", K, None, "hybrid")  # warm: first encodes, lexicon, columns
    vocab = gallery_words(every)  # the whole catalog's words: the same partial queries for either gallery
    sets = {"brand + type": brand_queries(test, with_colour=False, gallery=gallery),
            "brand + colour + type": brand_queries(test, with_colour=True, gallery=gallery),
            "attribute (evaluation)": attribute_queries(test, gallery),
            "name (not selected on)": name_queries(test, args.names),
            "misspelt brand + type": misspelt_brand_queries(test, gallery, vocab),
            "unknown words + type": filler_type_queries(test, gallery, vocab),
            "shopper description": described_queries(test, gallery, vocab)}
    sets = {name: queries for name, queries in sets.items() if not args.sets or name in args.sets}
    results: dict[str, Any] = {"model": str(model), "model_version": encoder.info.version, "split": args.split,
                               "gallery": args.gallery, "products": len(gallery), "fusion_depth": base.text.depth,
                               "configs": {name: asdict(c) for name, c in CONFIGS.items()}, "sets": {}}
    for set_name, queries in sets.items():
        started = time.perf_counter()
        metrics = measure(rankings(base, queries), queries, products)
        log.info("%s: %d queries in %.0f s", set_name, len(queries), time.perf_counter() - started)
        results["sets"][set_name] = {"n_queries": len(queries), "metrics": metrics,
                                     "examples": [q.text for q in queries[:: max(1, len(queries) // 5)]][:5]}
        keys = list(next(iter(metrics.values())))
        table(f"{set_name}: {len(queries)} queries", ["metric", *CONFIGS],
              [[key, *(metrics[name][key] for name in CONFIGS)] for key in keys])
    chosen = selection({name: figures["metrics"] for name, figures in results["sets"].items()})
    results["selection"] = chosen
    table(f"selection: mean of {len(SELECTION)} figures, largest drop under {config_name(BEFORE)}",
          ["config", "mean", "largest drop", f"within {SELECTION_SLACK}", "selected"],
          [[name, f"{v['mean']:.4f}", f"{v['largest drop']:.4f}", v["eligible"], v["selected"]]
           for name, v in chosen.items()])
    results["examples"] = examples(base, EXAMPLES)
    for text, tops in results["examples"].items():
        table(f"top 3 for {text!r}", ["config", "names"], [[name, " | ".join(names)] for name, names in tops.items()])

    served = Config("hybrid", settings.fusion_method, settings.fusion_dense_weight, settings.fusion_lexical_weight,
                    settings.fusion_coverage_power)
    timed = [q for name, qs in sets.items() if not name.startswith("name") for q in qs]
    timed = random.Random(1).sample(timed, min(args.latency, len(timed)))
    if timed:
        engines = {config_name(c): SearchEngine(encoder, index, text=TextSearchConfig(
            default_mode=c.mode, method=c.method, dense_weight=c.dense_weight,  # type: ignore[arg-type]
            lexical_weight=c.lexical_weight, coverage_power=c.coverage_power))
            for c in (Config("dense"), Config("lexical"), BEFORE, served)}  # BEFORE: what coverage adds
        timing = latency(engines, timed)
        p50 = {name: 1000 * statistics.median(s) for name, s in timing.items()}
        p99 = {name: 1000 * percentile(s, 99) for name, s in timing.items()}
        added = {name: p50[name] / p50["dense"] - 1 for name in timing}
        results["latency_ms"] = {"n_queries": len(timed), "p50": p50, "p99": p99, "p50_added_over_dense": added}
        table(f"latency per query (ms, encoding included, {len(timed)} queries)", ["", *timing],
              [["p50", *p50.values()], ["p99", *p99.values()],
               ["p50 added over dense", *(f"{a:+.0%}" for a in added.values())]])
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
        console.print(f"figures written to {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
