"""Dense vs lexical vs hybrid text search on a split of the real catalog, side by side in one run.

    python benchmarks/hybrid_search.py --split val   # select the fusion (method, weights) on validation
    python benchmarks/hybrid_search.py --split test  # report the selected default once on test
    [--catalog DIR] [--model DIR] [--work DIR] [--names 500] [--json OUT]

The split is ``training.data.split_products(products)[split]`` (a hash of the product id), products whose
image loads; it is indexed once into a flat (exact) FAISS index with its BM25 lexicon under ``--work`` and
reused while the model is the same. The model is ``--model`` or the real recipe's cached checkpoint.

Each query's dense and lexical rankings (``fusion_depth`` deep, k = 10 taken) are computed once through the
engine; every configuration (dense, lexical, RRF and min-max blending at several lexical weights) is scored on
them, exactly as ``SearchEngine.search_text`` fuses them. Query sets:
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
- **latency**: ``--latency`` brand and attribute queries timed end to end through ``SearchEngine.search_text``
  in each mode (encoding included, in-process, interleaved); p50 and the p50 added over dense.
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
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _common import console, percentile, table

from fashion_core.captions import clean_text, shopper_query, singular
from fashion_core.catalog import read_catalog
from fashion_core.catalog.real import find_real_catalog
from fashion_core.catalog.schema import Product
from fashion_core.fusion import fuse
from fashion_core.ingest import index_products
from fashion_core.model.base import Encoder
from fashion_core.search import SearchEngine, TextSearchConfig
from fashion_core.settings import Settings
from fashion_core.stores.base import SearchHit
from fashion_core.stores.faiss import FaissIndex
from services.wiring import local_encoder
from training.data import split_products
from training.evaluate import usable

log = logging.getLogger("hybrid_search")
K = 10
MIN_BRAND_PRODUCTS = 5
MIN_ATTRIBUTE_PRODUCTS = 5  # training/evaluate.py's attribute_min_products
GENDER_WORDS = {"men", "women", "man", "woman", "boys", "girls", "boy", "girl", "unisex", "kids", "kid"}
# The configurations compared: name -> (mode, fusion method, dense weight, lexical weight).
CONFIGS: dict[str, tuple[str, str, float, float]] = {
    "dense": ("dense", "rrf", 1.0, 1.0),
    "lexical": ("lexical", "rrf", 1.0, 1.0),
    "rrf 1:1": ("hybrid", "rrf", 1.0, 1.0),
    "rrf 1:2": ("hybrid", "rrf", 1.0, 2.0),
    "rrf 1:4": ("hybrid", "rrf", 1.0, 4.0),
    "blend 1:1": ("hybrid", "blend", 1.0, 1.0),
    "blend 1:2": ("hybrid", "blend", 1.0, 2.0),
    "blend 1:4": ("hybrid", "blend", 1.0, 4.0),
    "blend 1:8": ("hybrid", "blend", 1.0, 8.0),
}


@dataclass(frozen=True)
class Query:
    text: str
    relevant: Callable[[Product], bool]  # all named attributes
    pair: Callable[[Product], bool] | None = None  # brand and type (brand queries), type (attribute queries)
    n_relevant: int = 0
    target: int | None = None  # name queries: the one product
    pair_label: str = "brand+type"
    n_pair: int = 0  # products ``pair`` holds (caps its precision)


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


def name_queries(test: Sequence[Product], n: int) -> list[Query]:
    picked = random.Random(0).sample(list(test), min(n, len(test)))
    return [Query(p.productDisplayName, lambda q, i=p.id: q.id == i, None, 1, p.id) for p in picked]


def open_gallery_index(work: Path, gallery: Sequence[Product], encoder: Encoder, name: str) -> FaissIndex:
    """A flat FAISS index (and BM25 lexicon) of ``gallery`` under ``work/name``, reused while its ids and model
    are the same."""
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
    report = index_products(gallery, encoder, index, batch_size=128)
    log.info("indexed %d products in %.0f s", report.indexed, time.perf_counter() - started)
    return index


def rankings(engine: SearchEngine, queries: Sequence[Query]) -> list[tuple[list[SearchHit], list[SearchHit]]]:
    """Each query's dense and lexical top-``depth`` (what a hybrid search fuses), in the engine's own calls."""
    depth = engine.text.depth
    return [(engine.search_text(q.text, depth, None, "dense"), engine.search_text(q.text, depth, None, "lexical"))
            for q in queries]


def ranked(config: tuple[str, str, float, float], dense: list[SearchHit], lexical: list[SearchHit]
           ) -> list[SearchHit]:
    mode, method, dw, lw = config
    if mode == "dense":
        return dense[:K]
    if mode == "lexical":
        return lexical[:K]
    return fuse(dense, lexical, K, method, dw, lw)  # type: ignore[arg-type]


def measure(lists: list[tuple[list[SearchHit], list[SearchHit]]], queries: Sequence[Query],
            products: dict[int, Product]) -> dict[str, dict[str, float]]:
    """Per configuration: mean metrics over ``queries``."""
    sums: dict[str, dict[str, float]] = {name: defaultdict(float) for name in CONFIGS}
    for query, (dense, lexical) in zip(queries, lists, strict=True):
        for name, config in CONFIGS.items():
            hits = ranked(config, dense, lexical)
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
            s["ceiling of plain P@10"] += cap / K
    n = max(1, len(queries))
    return {name: {key: value / n for key, value in s.items()} for name, s in sums.items()}


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
    splits = split_products(read_catalog(catalog).products)
    test = usable(splits[args.split])
    gallery = test if args.gallery == "split" else usable([*splits["train"], *splits[args.split]])
    products = {p.id: p for p in gallery}
    index = open_gallery_index(Path(args.work), gallery, encoder,
                               f"{args.split}-split" if args.gallery == "split" else f"train+{args.split}")
    engines = {name: SearchEngine(encoder, index, text=TextSearchConfig(default_mode=mode, method=method,
                                                                        dense_weight=dw, lexical_weight=lw))
               for name, (mode, method, dw, lw) in CONFIGS.items()}
    base = engines["dense"]
    for engine in engines.values():  # warm: first encodes, lexicon, columns
        engine.search_text("warm up", K)

    sets = {"brand + type": brand_queries(test, with_colour=False, gallery=gallery),
            "brand + colour + type": brand_queries(test, with_colour=True, gallery=gallery),
            "attribute (evaluation)": attribute_queries(test, gallery),
            "name (not selected on)": name_queries(test, args.names)}
    results: dict[str, Any] = {"model": str(model), "model_version": encoder.info.version, "split": args.split,
                               "gallery": args.gallery, "products": len(gallery), "fusion_depth": base.text.depth,
                               "configs": CONFIGS, "sets": {}}
    for set_name, queries in sets.items():
        started = time.perf_counter()
        metrics = measure(rankings(base, queries), queries, products)
        log.info("%s: %d queries in %.0f s", set_name, len(queries), time.perf_counter() - started)
        results["sets"][set_name] = {"n_queries": len(queries), "metrics": metrics,
                                     "examples": [q.text for q in queries[:: max(1, len(queries) // 5)]][:5]}
        keys = list(next(iter(metrics.values())))
        table(f"{set_name}: {len(queries)} queries", ["metric", *engines],
              [[key, *(metrics[name][key] for name in engines)] for key in keys])

    timed = [q for name, qs in sets.items() if not name.startswith("name") for q in qs]
    timed = random.Random(1).sample(timed, min(args.latency, len(timed)))
    default = f"{settings.fusion_method} 1:{settings.fusion_lexical_weight:g}"  # the served hybrid, if compared
    timing = latency({name: engines[name] for name in dict.fromkeys(("dense", "lexical", "rrf 1:1", default))
                      if name in engines}, timed)
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
