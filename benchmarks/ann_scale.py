"""ANN at scale: brute-force matmul vs FAISS (flat, HNSW, HNSW-SQ8, IVF, IVF-PQ) vs Qdrant, with filters.

Synthetic 512-d CLIP-like embeddings (clustered, unit norm) with skewed catalog metadata that follows the
clusters as a real catalog's does (a cluster is mostly one gender and one article type; Zipf colours,
scattered), or real embeddings (``--vectors``). For each method: build time, memory of the search structure,
QPS at k=10 with 1 and 8 concurrent clients, recall@10 against exact search (ties with the 10th score count),
with no filter and filters keeping ~50% (gender), ~5% and ~0.1% of the items.

    python benchmarks/ann_scale.py --size 100k            # every method: ~15 minutes on 2 cores
    python benchmarks/ann_scale.py --size 1m --methods brute,faiss-hnsw-sq8 --ef 96,192,320   # ~25 minutes
    # the real model's embeddings of the real catalog, from a FAISS index built by `fashion-search index`:
    python benchmarks/ann_scale.py --export-faiss .fashion-search/index/faiss/products --vectors /tmp/real.npz
    python benchmarks/ann_scale.py --vectors /tmp/real.npz --methods brute,faiss-flat,faiss-hnsw,qdrant-hnsw
    # the same grown to 100k / 1M items interpolated between real neighbours (their filters follow the embedding
    # as the real catalog's do):
    python benchmarks/ann_scale.py --vectors /tmp/real.npz --size 1m --methods brute,faiss-hnsw-sq8

Qdrant is measured two ways. ``qdrant-hnsw`` / ``qdrant-hnsw-sq8`` run Qdrant's own Rust engine in-process
through Qdrant Edge (``qdrant-edge-py``: the server's segment, HNSW, payload-index and query-planner code,
without the network hop) with the collection settings ``QdrantIndex`` gives a server collection (m,
ef_construct and ef by size, keyword/integer payload indexes on every filter field, optional int8 scalar
quantization with rescoring), each build searched plainly and with ACORN (``+acorn``, ``--no-acorn`` to skip).
``qdrant-hnsw-sq8-sharded`` is the same engine with Qdrant's custom sharding on gender: one shard per value, a
gender filter routed to its values' shards, any other query sent to every shard and the answers merged by score.
``qdrant-hnsw-sq8-companion`` keeps the whole collection for every query and adds the per-gender shards for gender
filters only (what ``QdrantIndex`` builds on a server with ``companion_field``: FAISS's per-gender partitions beside
its global graph, in Qdrant). ``--full-scan-threshold-kb`` overrides the collection's full-scan threshold.
``qdrant-local`` is qdrant-client's embedded local mode (the zero-server default until FAISS files replaced it:
exact brute force in Python) on a capped subset (``--qdrant-max``).
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
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402

import faiss  # noqa: E402
import numpy as np  # noqa: E402
import qdrant_edge as qe  # noqa: E402
from _common import table  # noqa: E402

from fashion_core.catalog import KEYWORD_FIELDS  # noqa: E402
from fashion_core.stores import IndexMeta, SearchFilter, ann_params  # noqa: E402
from fashion_core.stores.faiss import FaissIndex  # noqa: E402
from fashion_core.stores.faiss.tuning import BROAD_PARTITION_FIELDS  # noqa: E402
from fashion_core.stores.qdrant import index as qdrant_index  # noqa: E402
from fashion_core.stores.qdrant.index import QdrantIndex  # noqa: E402

log = logging.getLogger("ann_scale")
DIM, K = 512, 10
GENDERS, GENDER_P = ["Men", "Women", "Unisex", "Boys", "Girls"], [0.50, 0.38, 0.06, 0.035, 0.025]
GENDER_FOLLOWS_CLUSTER = 0.9  # share of items with their cluster's gender; the rest drawn at random
N_TYPES, N_COLOURS, N_CLUSTERS = 140, 46, 1000
SEASONS, USAGES = ["Summer", "Fall", "Winter", "Spring"], ["Casual", "Sports", "Ethnic", "Formal", "Party"]
ALL_METHODS = ("brute", "faiss-flat", "faiss-hnsw", "faiss-hnsw-sq8", "faiss-ivf", "faiss-ivf-pq", "qdrant-hnsw",
               "qdrant-hnsw-sq8", "qdrant-hnsw-sq8-sharded", "qdrant-hnsw-sq8-companion", "qdrant-local")
QDRANT_METHODS = ("qdrant-hnsw", "qdrant-hnsw-sq8", "qdrant-hnsw-sq8-sharded", "qdrant-hnsw-sq8-companion")
# Qdrant's custom sharding (a shard key per value: each value its own shards and HNSW graphs) on the broad
# field FAISS partitions by, modelled with one Qdrant Edge shard per value (``build_qdrant_edge_sharded``).
SHARD_FIELD = BROAD_PARTITION_FIELDS[0]
FAISS_VARIANTS = {"faiss-flat": ("flat", "none"), "faiss-hnsw": ("hnsw", "none"), "faiss-hnsw-sq8": ("hnsw", "sq8"),
                  "faiss-ivf": ("ivf", "none"), "faiss-ivf-pq": ("ivf", "pq")}


@dataclass
class Catalog:
    vectors: np.ndarray
    ids: np.ndarray
    payloads: list[dict]
    codes: dict[str, np.ndarray]  # each filter field as integer codes, for the brute-force mask and the filters
    queries: np.ndarray
    values: dict[str, list[str]] = field(default_factory=dict)  # codes -> the values the payloads hold
    grown: int = 0  # items interpolated between real neighbours (load_catalog's ``size``)

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def mask(self, **wanted: int) -> np.ndarray:
        """Rows whose field codes equal ``wanted`` (all of them)."""
        out = np.ones(len(self.ids), dtype=bool)
        for name, code in wanted.items():
            out &= self.codes[name] == code
        return out

    def subset(self, m: int) -> Catalog:
        return Catalog(self.vectors[:m], self.ids[:m], self.payloads[:m], {k: v[:m] for k, v in self.codes.items()},
                       self.queries, self.values)

    def select(self, rows: np.ndarray) -> Catalog:
        """The items at ``rows`` (int64 row numbers), same queries."""
        return Catalog(self.vectors[rows], self.ids[rows], [self.payloads[int(r)] for r in rows],
                       {k: v[rows] for k, v in self.codes.items()}, self.queries, self.values)


def _zipf(n: int, s: float = 1.1) -> np.ndarray:
    p = 1.0 / np.arange(1, n + 1) ** s
    return p / p.sum()


def make_catalog(n: int, n_queries: int, seed: int = 0) -> Catalog:
    """Clustered unit vectors whose metadata follows the clusters as a real catalog's does: a cluster is mostly
    one article type (85%) and one gender (90%: men's and women's products sit in different regions of the
    space), colours are scattered. Queries come from the same clusters."""
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
    cluster_type = rng.choice(N_TYPES, size=N_CLUSTERS, p=_zipf(N_TYPES))
    types = np.where(rng.random(n) < 0.85, cluster_type[labels[:n]], rng.choice(N_TYPES, size=n, p=_zipf(N_TYPES)))
    cluster_gender = rng.choice(len(GENDERS), size=N_CLUSTERS, p=GENDER_P)
    genders = np.where(rng.random(n) < GENDER_FOLLOWS_CLUSTER, cluster_gender[labels[:n]],
                       rng.choice(len(GENDERS), size=n, p=GENDER_P))
    codes = {"gender": genders, "articleType": types,
             "baseColour": rng.choice(N_COLOURS, size=n, p=_zipf(N_COLOURS, 1.2)),
             "season": rng.integers(0, 4, size=n), "usage": rng.choice(5, size=n, p=[0.7, 0.12, 0.1, 0.05, 0.03])}
    years = rng.integers(2008, 2019, size=n)
    payloads = [{"gender": GENDERS[g], "masterCategory": "Apparel", "subCategory": "Topwear",
                 "articleType": f"type{t}", "baseColour": f"colour{c}", "season": SEASONS[s], "usage": USAGES[u],
                 "year": int(y)}
                for g, t, c, s, u, y in zip(codes["gender"], types, codes["baseColour"], codes["season"],
                                            codes["usage"], years, strict=True)]
    values = {"gender": GENDERS, "articleType": [f"type{t}" for t in range(N_TYPES)],
              "baseColour": [f"colour{c}" for c in range(N_COLOURS)], "season": SEASONS, "usage": USAGES}
    return Catalog(vectors=vectors[:n], ids=np.arange(1, n + 1, dtype=np.int64), payloads=payloads, codes=codes,
                   queries=vectors[n:], values=values)


def export_faiss_index(index_dir: Path, out: Path) -> int:
    """Write a FAISS index directory (what ``fashion-search index`` builds with the FAISS backend) as the npz that
    ``--vectors`` reads: ``vectors`` (n x d float32, unit norm), ``ids`` (int64) and one string array per filter
    field (``year`` as int64, -1 = missing). Returns the number of items."""
    index = FaissIndex(index_dir)
    if index.meta is None:
        raise SystemExit(f"{index_dir}: no FAISS index there")
    fields = {name: np.array([str(p.get(name) or "") for p in index.payloads]) for name in KEYWORD_FIELDS}
    years = np.array([p.get("year") if p.get("year") is not None else -1 for p in index.payloads], dtype=np.int64)
    np.savez(out, vectors=index.vectors, ids=index.ids, year=years, **fields)
    return len(index.ids)


def load_catalog(path: Path, n_queries: int, seed: int = 0, size: int | None = None) -> Catalog:
    """Real embeddings from ``path`` (see :func:`export_faiss_index`): ``n_queries`` random items are held out as
    the queries (image->image, as "more like this"), the rest is the gallery. With ``size`` larger than the
    gallery, it is grown to ``size`` items by :func:`interpolate_neighbours` (real-derived items for 100k and 1M
    runs whose filters follow the embedding as the real catalog's do)."""
    with np.load(path) as data:
        vectors = np.ascontiguousarray(data["vectors"], dtype=np.float32)
        ids = data["ids"].astype(np.int64)
        raw = {name: data[name].astype(str) for name in KEYWORD_FIELDS if name in data}
        years = data["year"] if "year" in data else np.full(len(ids), -1, dtype=np.int64)
    held = np.zeros(len(ids), dtype=bool)
    held[np.random.default_rng(seed).choice(len(ids), size=n_queries, replace=False)] = True
    queries = vectors[held]
    keep = np.flatnonzero(~held)
    vectors, ids, years = vectors[keep], ids[keep], years[keep]
    raw = {name: column[keep] for name, column in raw.items()}
    if size is not None and size > len(ids):
        extra, parents = interpolate_neighbours(vectors, size - len(ids), seed)
        vectors = np.concatenate([vectors, extra])
        ids = np.concatenate([ids, ids.max() + 1 + np.arange(len(extra), dtype=np.int64)])
        years = np.concatenate([years, years[parents]])
        raw = {name: np.concatenate([column, column[parents]]) for name, column in raw.items()}
    codes, values = {}, {}
    for name, column in raw.items():
        uniques, inverse = np.unique(column, return_inverse=True)
        codes[name], values[name] = inverse.astype(np.int64), uniques.tolist()
    names = list(raw)
    columns = [raw[name].tolist() for name in names]
    payloads = [{**dict(zip(names, row, strict=True)), "year": int(y) if y >= 0 else None}
                for row, y in zip(zip(*columns, strict=True), years.tolist(), strict=True)]
    return Catalog(vectors=vectors, ids=ids, payloads=payloads, codes=codes, queries=queries, values=values,
                   grown=len(ids) - len(keep))


def interpolate_neighbours(vectors: np.ndarray, count: int, seed: int = 0, k: int = 10
                           ) -> tuple[np.ndarray, np.ndarray]:
    """``count`` new unit vectors (count x d float32), each between a random real item a and one of a's ``k``
    nearest real neighbours b: normalise((1 - t) a + t b), t ~ U(0, 0.5), so a is its nearest parent; returns them
    with each one's parent row (int64), whose attributes it takes. The new items lie on the real data's manifold
    (the SMOTE construction: Chawla et al. 2002), so a larger catalog keeps the real one's geometry: men's and
    women's products in their own regions, types in their neighbourhoods, no synthetic near-ties."""
    rng = np.random.default_rng(seed + 1)
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    _, neighbours = index.search(vectors, k + 1)  # the first is the item itself
    parents = rng.integers(0, len(vectors), size=count)
    partners = neighbours[parents, rng.integers(1, k + 1, size=count)]
    t = rng.uniform(0.0, 0.5, size=(count, 1)).astype(np.float32)
    out = np.empty((count, vectors.shape[1]), dtype=np.float32)
    for start in range(0, count, 100_000):
        end = min(count, start + 100_000)
        block = (1 - t[start:end]) * vectors[parents[start:end]] + t[start:end] * vectors[partners[start:end]]
        out[start:end] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out, parents.astype(np.int64)


def parse_size(text: str) -> int:
    """``100k``, ``1m`` or a number of items."""
    return {"100k": 100_000, "1m": 1_000_000}.get(text.lower()) or int(text)


def _closest(freq: np.ndarray, share: float) -> int:
    return int(np.argmin(np.abs(freq - share)))


def pick_filters(cat: Catalog) -> dict[str, tuple[SearchFilter | None, np.ndarray | None]]:
    """No filter, and filters keeping about 50%, 5% and 0.1% of the items (found on the data): the commonest
    gender (correlated with the embedding), a ~5% articleType (rows FAISS groups by, one contiguous block), a ~5%
    baseColour (scattered rows), and a rare gender + articleType + colour combination."""
    n = len(cat.ids)
    freq = {name: np.bincount(cat.codes[name], minlength=len(cat.values[name])) / n
            for name in ("gender", "articleType", "baseColour")}
    g50 = int(np.argmax(freq["gender"]))
    t5, c5 = _closest(freq["articleType"], 0.05), _closest(freq["baseColour"], 0.05)
    # the rarest gender with items, for the ~0.1% combination
    rare_gender = int(min(np.flatnonzero(freq["gender"] * n >= 100), key=lambda g: freq["gender"][g]))
    best: tuple[float, int, int] = (np.inf, 0, 0)
    for t in np.argsort(-freq["articleType"])[:30]:
        for c in np.argsort(-freq["baseColour"])[:12]:
            count = int(np.count_nonzero(cat.mask(gender=rare_gender, articleType=int(t), baseColour=int(c))))
            if count >= K and abs(count / n - 0.001) < best[0]:
                best = (abs(count / n - 0.001), int(t), int(c))
    _, t3, c3 = best
    gender, atype, colour = cat.values["gender"], cat.values["articleType"], cat.values["baseColour"]
    return {"none": (None, None),
            f"gender={gender[g50]}": (SearchFilter.build(gender=gender[g50]), cat.mask(gender=g50)),
            f"articleType={atype[t5]}": (SearchFilter.build(articleType=atype[t5]), cat.mask(articleType=t5)),
            f"baseColour={colour[c5]}": (SearchFilter.build(baseColour=colour[c5]), cat.mask(baseColour=c5)),
            f"{gender[rare_gender]}+{atype[t3]}+{colour[c3]}": (
                SearchFilter.build(gender=gender[rare_gender], articleType=atype[t3], baseColour=colour[c3]),
                cat.mask(gender=rare_gender, articleType=t3, baseColour=c3))}


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
    index.create(IndexMeta(name="bench", backend="faiss", dim=cat.dim))
    faiss.omp_set_num_threads(os.cpu_count() or 1)  # builds use every core, searches one each
    start = time.perf_counter()
    index.upsert(cat.ids.tolist(), cat.vectors, cat.payloads)
    built = index.structures()  # build now (flush would also write 2 GB of files; not what is measured)
    index.columns()  # and the filter columns
    build_s = time.perf_counter() - start
    faiss.omp_set_num_threads(1)
    if built is None or index.params().index_type == "flat":
        return index, build_s, 0
    structures = [built.ann, *(part.ann for part in [*built.partitions.values(), *built.values.values()]),
                  *([] if built.scan is None else [built.scan])]
    return index, build_s, sum(int(faiss.serialize_index(s).nbytes) for s in structures)


def edge_filter(flt: SearchFilter | None) -> qe.Filter | None:
    """QdrantIndex's filter (``qdrant_index.to_qdrant_filter``: the conditions a server gets) in Qdrant Edge's
    types."""
    server = qdrant_index.to_qdrant_filter(flt)
    if server is None:
        return None
    must: list[qe.FieldCondition] = []
    for cond in server.must or []:
        if not isinstance(cond, qdrant_index.models.FieldCondition):
            raise TypeError(f"no Qdrant Edge translation for {cond!r}")
        if isinstance(cond.match, qdrant_index.models.MatchValue):
            must.append(qe.FieldCondition(key=cond.key, match=qe.MatchValue(cond.match.value)))
        elif isinstance(cond.match, qdrant_index.models.MatchAny):
            must.append(qe.FieldCondition(key=cond.key, match=qe.MatchAny(list(cond.match.any))))
        elif cond.range is not None:
            must.append(qe.FieldCondition(key=cond.key, range=qe.RangeFloat(gte=cond.range.gte, lte=cond.range.lte)))
        else:
            raise TypeError(f"no Qdrant Edge translation for {cond!r}")
    return qe.Filter(must=must)


def build_qdrant_edge(cat: Catalog, directory: Path, quantize: bool, collection_size: int | None = None,
                      full_scan_threshold_kb: int | None = None) -> tuple[qe.EdgeShard, float, int]:
    """Qdrant's engine with the collection settings QdrantIndex gives a server collection (the same
    ``qdrant_index.hnsw_config`` / ``quantization_config`` / ``PAYLOAD_INDEXES`` objects, translated to Qdrant
    Edge's types), sized for ``collection_size`` items (default: the catalog's); built until every segment is
    indexed."""
    hnsw = qdrant_index.hnsw_config(ann_params.qdrant_params(collection_size or len(cat.ids),
                                                             full_scan_threshold_kb=full_scan_threshold_kb,
                                                             dim=cat.dim))
    scalar = qdrant_index.quantization_config("scalar" if quantize else "none")
    quantization = None if scalar is None else qe.ScalarQuantizationConfig(
        type=qe.ScalarType.Int8, quantile=scalar.scalar.quantile, always_ram=scalar.scalar.always_ram)
    config = qe.EdgeConfig(
        vectors=qe.EdgeVectorParams(size=cat.dim, distance=qe.Distance.Cosine),
        hnsw_config=qe.HnswIndexConfig(m=hnsw.m, ef_construct=hnsw.ef_construct,
                                       full_scan_threshold=hnsw.full_scan_threshold, payload_m=hnsw.payload_m,
                                       max_indexing_threads=os.cpu_count() or 1),
        quantization_config=quantization, wal_enabled=False,
        optimizers=qe.EdgeOptimizersConfig(default_segment_number=2, indexing_threshold=1_000))
    directory.mkdir(parents=True)
    shard = qe.EdgeShard.create(str(directory), config)
    start = time.perf_counter()
    edge_schema = {qdrant_index.models.PayloadSchemaType.KEYWORD: qe.PayloadSchemaType.Keyword,
                   qdrant_index.models.PayloadSchemaType.INTEGER: qe.PayloadSchemaType.Integer}
    for name, schema in qdrant_index.PAYLOAD_INDEXES.items():
        shard.update(qe.UpdateOperation.create_field_index(name, edge_schema[schema]))
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


def build_qdrant_edge_sharded(cat: Catalog, directory: Path, quantize: bool, full_scan_threshold_kb: int | None = None
                              ) -> tuple[dict[str, qe.EdgeShard], float, int]:
    """Qdrant's custom sharding with ``SHARD_FIELD`` as the shard key, as a server holds it: one shard per value
    (its own segments and HNSW graphs, the collection's settings for the whole catalog's size), every item in
    the shard of its value. Returns value -> shard, build seconds, bytes searched."""
    shards, build_s, ann_bytes = {}, 0.0, 0
    for code, value in enumerate(cat.values[SHARD_FIELD]):
        rows = np.flatnonzero(cat.codes[SHARD_FIELD] == code)
        if len(rows):
            shards[value], seconds, size = build_qdrant_edge(cat.select(rows), directory / value, quantize,
                                                             collection_size=len(cat.ids),
                                                             full_scan_threshold_kb=full_scan_threshold_kb)
            build_s, ann_bytes = build_s + seconds, ann_bytes + size
    return shards, build_s, ann_bytes


def _merged(hits: list[list[qe.ScoredPoint]]) -> list[int]:
    """The top K ids of several shards' answers, by score (what a server does with its shards' answers)."""
    return [int(p.id) for p in sorted((p for h in hits for p in h), key=lambda p: -p.score)[:K]]


def _measure_edge(measure: Callable[..., None], label: str, n: int, cat: Catalog,
                  shards: dict[str, qe.EdgeShard], params: qe.SearchParams, build_s: float, ann_bytes: int,
                  truth: dict[str, np.ndarray], budget: float, whole: qe.EdgeShard | None = None) -> None:
    """Measure Qdrant's engine over ``shards``: one unsharded shard (any key), or shards keyed by their
    ``SHARD_FIELD`` value, where a filter on that field is routed to its values' shards (a search with a
    shard-key selector) and any other query goes to ``whole`` (the whole collection beside its per-value
    companion) or, without it, to every shard."""
    sharded = len(shards) > 1

    def edge_search(flt: SearchFilter | None, mask: np.ndarray | None) -> Callable[[np.ndarray], list[int]]:
        keys = (flt.equals.get(SHARD_FIELD) if sharded and flt is not None else None)
        # a shard holds one value of its field: routed there, the filter drops that condition (as QdrantIndex
        # does on its companions), or the planner counts the whole shard as its matches and may scan it exactly
        condition = edge_filter(flt.without(SHARD_FIELD) if keys and flt is not None else flt)
        targets = [shards[k] for k in keys if k in shards] if keys else \
            [whole] if whole is not None else list(shards.values())

        def search(q: np.ndarray) -> list[int]:
            request = qe.QueryRequest(limit=K, query=qe.Query.Nearest(q.tolist()), filter=condition, params=params)
            return _merged([s.query(request) for s in targets])
        return search

    measure(label, n, build_s, (ann_bytes or cat.vectors.nbytes) / 2**20, edge_search, truth, budget)


def run(args: argparse.Namespace) -> list[list[object]]:
    """Measure every method; prints the table and returns its rows. Index files live in a temporary folder
    removed afterwards (FAISS and Qdrant write several GB at 1M items)."""
    tmp = Path(tempfile.mkdtemp(prefix="ann-scale-"))
    try:
        return _run(args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _run(args: argparse.Namespace, tmp: Path) -> list[list[object]]:
    methods = [m for m in args.methods.split(",") if m]
    unknown = set(methods) - set(ALL_METHODS)
    if unknown:
        raise SystemExit(f"unknown methods {sorted(unknown)}; known: {','.join(ALL_METHODS)}")
    t0 = time.perf_counter()
    if args.vectors:
        cat = load_catalog(Path(args.vectors), args.queries, size=parse_size(args.size) if args.size else None)
        source = f"real ({Path(args.vectors).name})" if not cat.grown else \
            f"real-derived ({Path(args.vectors).name}, {cat.grown:,} items interpolated)"
    else:
        cat, source = make_catalog(parse_size(args.size or "100k"), args.queries), "synthetic"
    n = len(cat.ids)
    filters = pick_filters(cat)
    log.info("catalog of %d built in %.1fs", n, time.perf_counter() - t0)
    truth = {name: ground_truth(cat, mask, cat.queries) for name, (_, mask) in filters.items()}
    vec_mb = cat.vectors.nbytes / 2**20
    row_of = {int(i): r for r, i in enumerate(cat.ids)}

    def _recall(q: np.ndarray, found: list[int], true: np.ndarray, mask: np.ndarray | None) -> float:
        """Share of the true top-k found; a matching hit tied with the k-th true score counts (a real catalog
        holds duplicate images, whose order among equal scores is arbitrary)."""
        if not len(true):
            return float(not found)
        kth = float(cat.vectors[row_of[int(true[-1])]] @ q) - 1e-6
        rows = [row_of[int(i)] for i in dict.fromkeys(found) if int(i) in row_of]
        good = sum(1 for r in rows if (mask is None or mask[r]) and float(cat.vectors[r] @ q) >= kth)
        return min(good, len(true)) / len(true)

    rows: list[list[object]] = []
    brute_qps: dict[str, float] = {}

    def measure(method: str, n_items: int, build_s: float, mem_mb: float,
                search_for: Callable[[SearchFilter | None, np.ndarray | None], Callable[[np.ndarray], list[int]]],
                truth_for: dict[str, np.ndarray], budget: float) -> None:
        for fname, (flt, mask) in filters.items():
            search = search_for(flt, mask)
            found = [list(search(q))[:K] for q in cat.queries]
            recall = float(np.mean([_recall(q, f, t, mask) for q, f, t in zip(cat.queries, found, truth_for[fname],
                                                                                strict=True)]))
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
    for method in QDRANT_METHODS:
        if method not in methods:
            continue
        quantized = "-sq8" in method
        threshold = args.full_scan_threshold_kb
        whole: qe.EdgeShard | None = None
        if method.endswith(("-sharded", "-companion")):
            shards, build_s, ann_bytes = build_qdrant_edge_sharded(cat, tmp / method, quantized, threshold)
            if method.endswith("-companion"):
                whole, whole_s, whole_bytes = build_qdrant_edge(cat, tmp / method / "_whole", quantized,
                                                                full_scan_threshold_kb=threshold)
                build_s, ann_bytes = build_s + whole_s, ann_bytes + whole_bytes
        else:
            shard, build_s, ann_bytes = build_qdrant_edge(cat, tmp / method, quantized,
                                                          full_scan_threshold_kb=threshold)
            shards = {"": shard}
        # QdrantIndex's query-time settings (the ef by size unless --ef), one build measured at each ef, plainly
        # and with ACORN (Qdrant's filtered search that also walks the neighbours' neighbours, for filters
        # correlated with the embedding) on for every filter.
        for ef_asked in args.ef or [None]:
            qp = ann_params.qdrant_params(n, hnsw_ef=ef_asked, full_scan_threshold_kb=threshold)
            rescoring = qe.QuantizationSearchParams(rescore=True, oversampling=qp.oversampling) \
                if quantized else None
            for acorn in (False, True) if args.acorn else (False,):
                params = qe.SearchParams(hnsw_ef=qp.hnsw_ef, quantization=rescoring, acorn=qe.AcornSearchParams(
                    enable=True, max_selectivity=1.0) if acorn else None)
                label = f"{method}{'+acorn' if acorn else ''} (m={qp.hnsw_m} ef={qp.hnsw_ef}" + (
                    f" scan<{threshold}KB)" if threshold else ")")
                _measure_edge(measure, label, n, cat, shards, params, build_s, ann_bytes, truth, args.budget,
                              whole)
        for shard in [*shards.values(), *([] if whole is None else [whole])]:
            shard.close()

    if "qdrant-local" in methods:
        m = min(n, args.qdrant_max)
        sub = cat.subset(m)
        sub_truth = {name: ground_truth(sub, None if mask is None else mask[:m], cat.queries)
                     for name, (_, mask) in filters.items()}
        qi = QdrantIndex("bench", path=tmp / "qdrant")
        qi.create(IndexMeta(name="bench", backend="qdrant", dim=cat.dim))
        start = time.perf_counter()
        for s in range(0, m, 2000):
            qi.upsert(sub.ids[s:s + 2000].tolist(), sub.vectors[s:s + 2000], sub.payloads[s:s + 2000])
        build_s = time.perf_counter() - start
        measure(f"qdrant-local (first {m})", m, build_s, m * cat.dim * 4 / 2**20,
                lambda flt, mask: (lambda q: [h.id for h in qi.search(q, K, flt)]), sub_truth, args.budget)
        qi.close()
    table(f"ANN at scale: {n:,} {source} items x {cat.dim}-d, k={K}, {len(cat.queries)} queries "
          f"(QPS x = 1-client QPS / brute-force 1-client QPS, same filter)",
          ["method", "items", "filter", "sel %", "build s", "index MB", "QPS 1", "QPS 8", "x brute", "recall@10"],
          rows)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", help="100k, 1m or a number of items (default 100k synthetic; with --vectors, the "
                        "real items as they are, or grown to this size by interpolating between real neighbours)")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--budget", type=float, default=2.0, help="seconds per QPS measurement")
    parser.add_argument("--methods", default=",".join(ALL_METHODS))
    parser.add_argument("--ef", type=lambda v: [int(x) for x in v.split(",")], default=None,
                        help="comma-separated HNSW ef values to measure each FAISS HNSW and Qdrant build at "
                        "(default: by size)")
    parser.add_argument("--full-scan-threshold-kb", type=int, default=None,
                        help="Qdrant's full-scan threshold per segment (KB of float32 vectors; default: "
                             "10k vectors of the data's dimension, n / 25 above 250k items: "
                             "ann_params.full_scan_kb_for)")
    parser.add_argument("--qdrant-max", type=int, default=5_000, help="items for Qdrant local mode")
    parser.add_argument("--vectors", metavar="FILE.npz", help="real embeddings instead of synthetic ones: vectors, ids "
                        "and the filter fields, as --export-faiss writes them")
    parser.add_argument("--export-faiss", metavar="INDEX_DIR", help="write the FAISS index in INDEX_DIR (e.g. "
                        ".fashion-search/index/faiss/products after `fashion-search index`) to --vectors, and exit")
    parser.add_argument("--no-acorn", dest="acorn", action="store_false",
                        help="measure the Qdrant builds without ACORN only")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.export_faiss:
        if not args.vectors:
            raise SystemExit("--export-faiss needs --vectors FILE.npz to write")
        log.info("wrote %d items to %s", export_faiss_index(Path(args.export_faiss), Path(args.vectors)), args.vectors)
        return
    run(args)


if __name__ == "__main__":
    main()
