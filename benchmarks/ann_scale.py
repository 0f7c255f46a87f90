"""ANN at scale: brute-force matmul vs FAISS (flat, HNSW, HNSW-SQ8, IVF, IVF-PQ) vs Qdrant, with filters.

Synthetic 512-d CLIP-like embeddings (clustered, unit norm) with skewed catalog metadata (gender mostly
Men/Women, Zipf-distributed article types tied to clusters, Zipf colours). For each method: build time,
memory of the search structure, QPS at k=10 with 1 and 8 concurrent clients, recall@10 against exact
search, with no filter and filters keeping ~50%, ~5% and ~0.1% of the items.

    python benchmarks/ann_scale.py --size 100k            # every method: ~15 minutes on 2 cores
    python benchmarks/ann_scale.py --size 1m --methods brute,faiss-hnsw-sq8 --ef 96,192,320   # ~25 minutes

Qdrant is measured two ways. ``qdrant-hnsw`` / ``qdrant-hnsw-sq8`` run Qdrant's own Rust engine in-process
through Qdrant Edge (``qdrant-edge-py``: the server's segment, HNSW, payload-index and query-planner code,
without the network hop) with the collection settings ``QdrantIndex`` gives a server collection (m,
ef_construct and ef by size, keyword/integer payload indexes on every filter field, optional int8 scalar
quantization with rescoring). ``qdrant-local`` is qdrant-client's embedded local mode (the project's
zero-server default: exact brute force in Python) on a capped subset (``--qdrant-max``).
"""

from __future__ import annotations

import os

# One BLAS/OpenMP thread per search (concurrency comes from the clients) and no spinning threads: on a
# shared 2-core machine spin-waiting OpenMP/BLAS pools make every figure noise.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import logging  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import faiss  # noqa: E402
import numpy as np  # noqa: E402
import qdrant_edge as qe  # noqa: E402
from _common import table  # noqa: E402

from fashion_core.catalog import KEYWORD_FIELDS  # noqa: E402
from fashion_core.index import IndexMeta, SearchFilter, ann_params  # noqa: E402
from fashion_core.index.faiss_index import FaissIndex  # noqa: E402
from fashion_core.index.qdrant_index import QdrantIndex  # noqa: E402

log = logging.getLogger("ann_scale")
DIM, K = 512, 10
GENDERS, GENDER_P = ["Men", "Women", "Unisex", "Boys", "Girls"], [0.50, 0.38, 0.06, 0.035, 0.025]
N_TYPES, N_COLOURS, N_CLUSTERS = 140, 46, 1000
SEASONS, USAGES = ["Summer", "Fall", "Winter", "Spring"], ["Casual", "Sports", "Ethnic", "Formal", "Party"]
ALL_METHODS = ("brute", "faiss-flat", "faiss-hnsw", "faiss-hnsw-sq8", "faiss-ivf", "faiss-ivf-pq", "qdrant-hnsw",
               "qdrant-hnsw-sq8", "qdrant-local")
FAISS_VARIANTS = {"faiss-flat": ("flat", "none"), "faiss-hnsw": ("hnsw", "none"), "faiss-hnsw-sq8": ("hnsw", "sq8"),
                  "faiss-ivf": ("ivf", "none"), "faiss-ivf-pq": ("ivf", "pq")}


@dataclass
class Catalog:
    vectors: np.ndarray
    ids: np.ndarray
    payloads: list[dict]
    codes: dict[str, np.ndarray]  # for the brute-force baseline's mask and for picking filters
    queries: np.ndarray


def _zipf(n: int, s: float = 1.1) -> np.ndarray:
    p = 1.0 / np.arange(1, n + 1) ** s
    return p / p.sum()


def make_catalog(n: int, n_queries: int, seed: int = 0) -> Catalog:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(N_CLUSTERS, DIM)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    cluster_p = _zipf(N_CLUSTERS, 0.8)
    labels = rng.choice(N_CLUSTERS, size=n + n_queries, p=cluster_p)
    vectors = np.empty((n + n_queries, DIM), dtype=np.float32)
    for start in range(0, len(vectors), 100_000):  # in chunks: 1M x 512 float32 is 2 GB already
        part = labels[start:start + 100_000]
        block = centres[part] + 0.045 * rng.standard_normal((len(part), DIM), dtype=np.float32)
        vectors[start:start + len(part)] = block / np.linalg.norm(block, axis=1, keepdims=True)
    # Article type follows the cluster (a cluster is mostly one kind of product), colours and gender skewed.
    cluster_type = rng.choice(N_TYPES, size=N_CLUSTERS, p=_zipf(N_TYPES))
    types = np.where(rng.random(n) < 0.85, cluster_type[labels[:n]], rng.choice(N_TYPES, size=n, p=_zipf(N_TYPES)))
    codes = {"gender": rng.choice(len(GENDERS), size=n, p=GENDER_P),
             "articleType": types, "baseColour": rng.choice(N_COLOURS, size=n, p=_zipf(N_COLOURS, 1.2)),
             "season": rng.integers(0, 4, size=n), "usage": rng.choice(5, size=n, p=[0.7, 0.12, 0.1, 0.05, 0.03])}
    years = rng.integers(2008, 2019, size=n)
    payloads = [{"gender": GENDERS[g], "masterCategory": "Apparel", "subCategory": "Topwear",
                 "articleType": f"type{t}", "baseColour": f"colour{c}", "season": SEASONS[s], "usage": USAGES[u],
                 "year": int(y)}
                for g, t, c, s, u, y in zip(codes["gender"], types, codes["baseColour"], codes["season"],
                                            codes["usage"], years, strict=True)]
    return Catalog(vectors=vectors[:n], ids=np.arange(1, n + 1, dtype=np.int64), payloads=payloads, codes=codes,
                   queries=vectors[n:])


def pick_filters(cat: Catalog) -> dict[str, tuple[SearchFilter | None, np.ndarray | None]]:
    """No filter, and filters keeping about 50%, 5% and 0.1% of the items (found on the data). The 5% one
    twice: on articleType (rows FAISS groups by, one contiguous block) and on baseColour (scattered rows)."""
    n = len(cat.ids)
    men = cat.codes["gender"] == 0
    type_freq = np.bincount(cat.codes["articleType"], minlength=N_TYPES) / n
    t5 = int(np.argmin(np.abs(type_freq - 0.05)))
    colour_freq = np.bincount(cat.codes["baseColour"], minlength=N_COLOURS) / n
    c5 = int(np.argmin(np.abs(colour_freq - 0.05)))
    best: tuple[float, int, int] = (np.inf, 0, 0)
    girls = cat.codes["gender"] == 4
    for t in np.argsort(-type_freq)[:30]:
        for c in range(12):
            count = int(np.count_nonzero(girls & (cat.codes["articleType"] == t) & (cat.codes["baseColour"] == c)))
            if count >= K and abs(count / n - 0.001) < best[0]:
                best = (abs(count / n - 0.001), int(t), c)
    _, t3, c3 = best
    rare = girls & (cat.codes["articleType"] == t3) & (cat.codes["baseColour"] == c3)
    return {"none": (None, None),
            "gender=Men": (SearchFilter.build(gender="Men"), men),
            f"articleType=type{t5}": (SearchFilter.build(articleType=f"type{t5}"), cat.codes["articleType"] == t5),
            f"baseColour=colour{c5}": (SearchFilter.build(baseColour=f"colour{c5}"), cat.codes["baseColour"] == c5),
            f"Girls+type{t3}+colour{c3}": (SearchFilter.build(gender="Girls", articleType=f"type{t3}",
                                                              baseColour=f"colour{c3}"), rare)}


def ground_truth(cat: Catalog, mask: np.ndarray | None, queries: np.ndarray) -> np.ndarray:
    scores = queries @ cat.vectors.T if mask is None else queries @ cat.vectors[mask].T
    rows = np.argsort(-scores, axis=1)[:, :K]
    ids = cat.ids if mask is None else cat.ids[mask]
    return ids[rows]


def qps(search: Callable[[np.ndarray], object], queries: np.ndarray, clients: int, budget_s: float) -> float:
    """Queries per second over at most ``budget_s`` (at least 2 queries per client)."""
    done = 0
    start = time.perf_counter()
    if clients == 1:
        for q in queries:
            search(q)
            done += 1
            if time.perf_counter() - start > budget_s and done >= 2:
                break
        return done / (time.perf_counter() - start)
    chunk = max(2 * clients, min(len(queries), 8 * clients))
    with ThreadPoolExecutor(clients) as pool:
        while True:
            list(pool.map(search, queries[:chunk]))
            done += chunk
            if time.perf_counter() - start > budget_s:
                break
    return done / (time.perf_counter() - start)


def brute_search(cat: Catalog, mask: np.ndarray | None) -> Callable[[np.ndarray], np.ndarray]:
    """The prototype: one matrix product over the whole gallery, non-matching items pushed to -inf."""
    def search(q: np.ndarray) -> np.ndarray:
        scores = cat.vectors @ q
        if mask is not None:
            scores = np.where(mask, scores, -np.inf)
        top = np.argpartition(-scores, K)[:K]
        return cat.ids[top[np.argsort(-scores[top])]]
    return search


def build_faiss(cat: Catalog, index_type: str, quantization: str, directory: Path) -> tuple[FaissIndex, float, int]:
    index = FaissIndex(directory, index_type=index_type, quantization=quantization)
    index.create(IndexMeta(name="bench", backend="faiss", dim=DIM))
    faiss.omp_set_num_threads(os.cpu_count() or 1)  # builds use every core, searches one each
    start = time.perf_counter()
    index.upsert(cat.ids.tolist(), cat.vectors, cat.payloads)
    ann = index._ensure_ann()  # build now (flush would also write 2 GB of files; not what is measured)
    index._mask(SearchFilter.build(gender="Men"))  # and the filter columns
    build_s = time.perf_counter() - start
    faiss.omp_set_num_threads(1)
    if index.params().index_type == "flat":
        return index, build_s, 0
    structures = [ann, *(part.ann for part in [*index._partitions.values(), *index._value_parts.values()])]
    return index, build_s, sum(int(faiss.serialize_index(s).nbytes) for s in structures)


def edge_filter(flt: SearchFilter | None) -> qe.Filter | None:
    if flt is None or flt.is_empty:
        return None
    must: list[qe.FieldCondition] = [qe.FieldCondition(key=name, match=qe.MatchAny(list(values)))
                                     for name, values in flt.equals.items()]
    if flt.year_min is not None or flt.year_max is not None:
        must.append(qe.FieldCondition(key="year", range=qe.RangeFloat(gte=flt.year_min, lte=flt.year_max)))
    return qe.Filter(must=must)


def build_qdrant_edge(cat: Catalog, directory: Path, quantize: bool) -> tuple[qe.EdgeShard, float, int]:
    """Qdrant's engine with QdrantIndex's collection settings; built until every segment is indexed."""
    m, ef_construct, _ = ann_params.hnsw_params(len(cat.ids))
    quantization = qe.ScalarQuantizationConfig(type=qe.ScalarType.Int8, quantile=0.99, always_ram=True) \
        if quantize else None
    config = qe.EdgeConfig(
        vectors=qe.EdgeVectorParams(size=DIM, distance=qe.Distance.Cosine),
        hnsw_config=qe.HnswIndexConfig(m=m, ef_construct=ef_construct, full_scan_threshold=10_000,
                                       max_indexing_threads=os.cpu_count() or 1),
        quantization_config=quantization, wal_enabled=False,
        optimizers=qe.EdgeOptimizersConfig(default_segment_number=2, indexing_threshold=1_000))
    directory.mkdir(parents=True)
    shard = qe.EdgeShard.create(str(directory), config)
    start = time.perf_counter()
    for name in KEYWORD_FIELDS:
        shard.update(qe.UpdateOperation.create_field_index(name, qe.PayloadSchemaType.Keyword))
    shard.update(qe.UpdateOperation.create_field_index("year", qe.PayloadSchemaType.Integer))
    for s in range(0, len(cat.ids), 5_000):
        shard.update(qe.UpdateOperation.upsert_points(
            [qe.Point(int(i), v.tolist(), p) for i, v, p in
             zip(cat.ids[s:s + 5_000], cat.vectors[s:s + 5_000], cat.payloads[s:s + 5_000], strict=True)]))
    shard.optimize()  # the HNSW graphs (and payload-aware links) are built here, as a server's optimizer would
    build_s = time.perf_counter() - start
    # Like FAISS's figure: the graph links plus the vectors the graph is searched on (int8 codes when quantized;
    # the float32 originals used for rescoring can then stay on disk).
    files = [f for f in directory.rglob("*") if f.is_file()]
    searched = "quantized.data" if quantize else "matrix.dat"
    ann_bytes = sum(f.stat().st_size for f in files if f.parent.name == "vector_index" or f.name == searched)
    return shard, build_s, ann_bytes


def run(args: argparse.Namespace) -> list[list[object]]:
    """Measure every method; prints the table and returns its rows. Index files live in a temporary folder
    removed afterwards (FAISS and Qdrant write several GB at 1M items)."""
    tmp = Path(tempfile.mkdtemp(prefix="ann-scale-"))
    try:
        return _run(args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _run(args: argparse.Namespace, tmp: Path) -> list[list[object]]:
    n = {"100k": 100_000, "1m": 1_000_000}.get(args.size.lower()) or int(args.size)
    methods = [m for m in args.methods.split(",") if m]
    unknown = set(methods) - set(ALL_METHODS)
    if unknown:
        raise SystemExit(f"unknown methods {sorted(unknown)}; known: {','.join(ALL_METHODS)}")
    t0 = time.perf_counter()
    cat = make_catalog(n, args.queries)
    filters = pick_filters(cat)
    log.info("catalog of %d built in %.1fs", n, time.perf_counter() - t0)
    truth = {name: ground_truth(cat, mask, cat.queries) for name, (_, mask) in filters.items()}
    vec_mb = cat.vectors.nbytes / 2**20
    rows: list[list[object]] = []
    brute_qps: dict[str, float] = {}

    def measure(method: str, n_items: int, build_s: float, mem_mb: float,
                search_for: Callable[[SearchFilter | None, np.ndarray | None], Callable[[np.ndarray], list[int]]],
                truth_for: dict[str, np.ndarray], budget: float) -> None:
        for fname, (flt, mask) in filters.items():
            search = search_for(flt, mask)
            found = [list(search(q))[:K] for q in cat.queries]
            recall = float(np.mean([len(set(f) & set(t)) / len(t) if len(t) else float(not f) for f, t in
                                    zip(found, truth_for[fname], strict=True)]))
            q1 = qps(search, cat.queries, 1, budget)
            q8 = qps(search, cat.queries, 8, budget)
            sel = 100.0 if mask is None else 100.0 * np.count_nonzero(mask) / n
            if method == "brute":
                brute_qps[fname] = q1
            ratio = q1 / brute_qps[fname] if fname in brute_qps and n_items == n else float("nan")
            rows.append([method, n_items, fname, f"{sel:.2f}", build_s, mem_mb, q1, q8, f"{ratio:.1f}x",
                         f"{recall:.3f}"])
            log.info("%s %s: %.0f qps, recall %.3f", method, fname, q1, recall)

    if "brute" in methods:
        measure("brute", n, 0.0, vec_mb, lambda flt, mask: brute_search(cat, mask), truth, args.budget)
    for method in methods:
        if method not in FAISS_VARIANTS:
            continue
        index_type, quantization = FAISS_VARIANTS[method]
        index, build_s, ann_bytes = build_faiss(cat, index_type, quantization, tmp / method)
        mem_mb = (ann_bytes or cat.vectors.nbytes) / 2**20
        # One build, measured at each query-time setting asked for (None = the size-based default).
        for setting in (args.ef or [None]) if index_type == "hnsw" else [None]:
            index.set_search_params(ef_search=setting)
            p = index.params()
            label = f"{method} ({p.index_type}: m={p.hnsw_m} ef={p.ef_search})" if p.index_type == "hnsw" else (
                f"{method} (nlist={p.nlist} nprobe={p.nprobe})" if p.index_type == "ivf" else method)

            def faiss_search(flt: SearchFilter | None, mask: np.ndarray | None,
                             index: FaissIndex = index) -> Callable[[np.ndarray], list[int]]:
                return lambda q: [h.id for h in index.search(q, K, flt)]

            measure(label, n, build_s, mem_mb, faiss_search, truth, args.budget)
        del index
    for method in ("qdrant-hnsw", "qdrant-hnsw-sq8"):
        if method not in methods:
            continue
        shard, build_s, ann_bytes = build_qdrant_edge(cat, tmp / method, quantize=method.endswith("sq8"))
        ef = max(128, ann_params.hnsw_params(n)[2])  # QdrantIndex's query-time ef
        params = qe.SearchParams(hnsw_ef=ef, quantization=qe.QuantizationSearchParams(rescore=True, oversampling=2.0)
                                 if method.endswith("sq8") else None)

        def edge_search(flt: SearchFilter | None, mask: np.ndarray | None, shard: qe.EdgeShard = shard,
                        params: qe.SearchParams = params) -> Callable[[np.ndarray], list[int]]:
            condition = edge_filter(flt)
            return lambda q: [int(p.id) for p in shard.query(qe.QueryRequest(
                limit=K, query=qe.Query.Nearest(q.tolist()), filter=condition, params=params))]

        mem_mb = (ann_bytes or cat.vectors.nbytes) / 2**20
        measure(f"{method} (m={ann_params.hnsw_params(n)[0]} ef={ef})", n, build_s, mem_mb, edge_search, truth,
                args.budget)
        shard.close()
    if "qdrant-local" in methods:
        m = min(n, args.qdrant_max)
        sub = Catalog(cat.vectors[:m], cat.ids[:m], cat.payloads[:m], {k: v[:m] for k, v in cat.codes.items()},
                      cat.queries)
        sub_truth = {name: ground_truth(sub, None if mask is None else mask[:m], cat.queries)
                     for name, (_, mask) in filters.items()}
        qi = QdrantIndex("bench", path=tmp / "qdrant")
        qi.create(IndexMeta(name="bench", backend="qdrant", dim=DIM))
        start = time.perf_counter()
        for s in range(0, m, 2000):
            qi.upsert(sub.ids[s:s + 2000].tolist(), sub.vectors[s:s + 2000], sub.payloads[s:s + 2000])
        build_s = time.perf_counter() - start
        measure(f"qdrant-local (first {m})", m, build_s, m * DIM * 4 / 2**20,
                lambda flt, mask: (lambda q: [h.id for h in qi.search(q, K, flt)]), sub_truth, args.budget)
        qi.close()
    table(f"ANN at scale: {n:,} items x {DIM}-d, k={K}, {len(cat.queries)} queries "
          f"(QPS x = 1-client QPS / brute-force 1-client QPS, same filter)",
          ["method", "items", "filter", "sel %", "build s", "index MB", "QPS 1", "QPS 8", "x brute", "recall@10"],
          rows)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="100k", help="100k, 1m or a number of items")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--budget", type=float, default=2.0, help="seconds per QPS measurement")
    parser.add_argument("--methods", default=",".join(ALL_METHODS))
    parser.add_argument("--ef", type=lambda v: [int(x) for x in v.split(",")], default=None,
                        help="comma-separated HNSW ef values to measure each FAISS HNSW build at (default: by size)")
    parser.add_argument("--qdrant-max", type=int, default=5_000, help="items for Qdrant local mode")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    run(args)


if __name__ == "__main__":
    main()
