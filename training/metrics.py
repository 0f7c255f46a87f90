"""Retrieval and classification metrics in numpy, as the FashionCLIP paper reports them.

Retrieval takes a similarity matrix (queries x gallery, higher = closer) and a boolean relevance matrix of the
same shape; every query must have at least one relevant item.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _order(sim: np.ndarray) -> np.ndarray:
    return np.argsort(-sim, axis=1, kind="stable")


def first_relevant_ranks(sim: np.ndarray, relevant: np.ndarray) -> np.ndarray:
    """1-based rank of the best-ranked relevant item for each query."""
    if not relevant.any(axis=1).all():
        raise ValueError("every query needs at least one relevant item")
    rel_sorted = np.take_along_axis(relevant, _order(sim), axis=1)
    return rel_sorted.argmax(axis=1) + 1


def recall_at_k(ranks: np.ndarray, k: int) -> float:
    """Share of queries with a relevant item in the top k (= Rank-k accuracy)."""
    return float((ranks <= k).mean())


def mrr(ranks: np.ndarray) -> float:
    return float((1.0 / ranks).mean())


def mean_rank(ranks: np.ndarray) -> float:
    return float(ranks.mean())


def ndcg_at_k(sim: np.ndarray, relevant: np.ndarray, k: int) -> float:
    """Binary-relevance NDCG@k averaged over queries."""
    rel_sorted = np.take_along_axis(relevant, _order(sim), axis=1)[:, :k].astype(float)
    discounts = 1.0 / np.log2(np.arange(2, rel_sorted.shape[1] + 2))
    dcg = (rel_sorted * discounts).sum(axis=1)
    n_rel = np.minimum(relevant.sum(axis=1), k)
    idcg = np.array([discounts[:n].sum() for n in n_rel])
    return float((dcg / idcg).mean())


def average_precision(sim: np.ndarray, relevant: np.ndarray) -> np.ndarray:
    """AP per query over the full ranking."""
    rel_sorted = np.take_along_axis(relevant, _order(sim), axis=1).astype(float)
    hits = np.cumsum(rel_sorted, axis=1)
    precision = hits / np.arange(1, rel_sorted.shape[1] + 1)
    return (precision * rel_sorted).sum(axis=1) / rel_sorted.sum(axis=1)


def mean_average_precision(sim: np.ndarray, relevant: np.ndarray) -> float:
    return float(average_precision(sim, relevant).mean())


def retrieval_metrics(sim: np.ndarray, relevant: np.ndarray, ks: Sequence[int] = (1, 5, 10, 50),
                      ndcg_k: int = 10) -> dict[str, float]:
    ranks = first_relevant_ranks(sim, relevant)
    out = {f"R@{k}": recall_at_k(ranks, k) for k in ks}
    out |= {"MRR": mrr(ranks), "MeanRank": mean_rank(ranks), f"NDCG@{ndcg_k}": ndcg_at_k(sim, relevant, ndcg_k)}
    return out


def same_label(labels_q: Sequence[object], labels_g: Sequence[object]) -> np.ndarray:
    a, b = np.asarray(labels_q, dtype=object), np.asarray(labels_g, dtype=object)
    return a[:, None] == b[None, :]


def image_to_image_metrics(vectors: np.ndarray, labels: Sequence[object], ks: Sequence[int] = (1, 5, 10)
                           ) -> dict[str, float]:
    """Leave-one-out: each image queries all the others; relevant = same label. Queries whose label occurs
    only once are skipped."""
    sim = vectors @ vectors.T
    np.fill_diagonal(sim, -np.inf)
    relevant = same_label(labels, labels)
    np.fill_diagonal(relevant, False)
    keep = relevant.any(axis=1)
    if not keep.any():
        return {}
    sim, relevant = sim[keep], relevant[keep]
    ranks = first_relevant_ranks(sim, relevant)
    return {"mAP": mean_average_precision(sim, relevant), **{f"Rank-{k}": recall_at_k(ranks, k) for k in ks}}


def classification_report(y_true: Sequence[str], y_pred: Sequence[str],
                          labels: Sequence[str] | None = None) -> dict[str, object]:
    """Accuracy, macro and weighted F1, and per-class precision/recall/F1/support (sklearn's definitions;
    a 0/0 ratio counts as 0)."""
    true, pred = np.asarray(y_true, dtype=object), np.asarray(y_pred, dtype=object)
    names = list(labels) if labels is not None else sorted(set(true.tolist()))
    per_class: dict[str, dict[str, float]] = {}
    for name in names:
        tp = float(((pred == name) & (true == name)).sum())
        predicted, support = float((pred == name).sum()), float((true == name).sum())
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[name] = {"precision": precision, "recall": recall, "f1": f1, "support": int(support)}
    present = [n for n in names if per_class[n]["support"] > 0]
    f1s = np.array([per_class[n]["f1"] for n in present])
    supports = np.array([per_class[n]["support"] for n in present], dtype=float)
    return {
        "accuracy": float((true == pred).mean()),
        "macro_f1": float(f1s.mean()) if len(f1s) else 0.0,
        "weighted_f1": float((f1s * supports).sum() / supports.sum()) if supports.sum() else 0.0,
        "per_class": per_class,
    }


def precision_at_k(vectors: np.ndarray, labels: Sequence[object], k: int = 10) -> np.ndarray:
    """Leave-one-out precision@k per query: the share of each item's k nearest other items (cosine, on
    L2-normalised ``vectors`` of shape (N, d)) with its label. Shape (N,), float64. Needs N > k."""
    if len(vectors) <= k:
        raise ValueError(f"precision@{k} needs more than {k} items, got {len(vectors)}")
    sim = vectors @ vectors.T
    np.fill_diagonal(sim, -np.inf)
    top = np.argpartition(-sim, k, axis=1)[:, :k]  # the k best, in any order: precision ignores it
    lab = np.asarray(labels, dtype=object)
    return (lab[top] == lab[:, None]).mean(axis=1)


def majority_prior(y_true: Sequence[str]) -> dict[str, object]:
    """The majority-class baseline of a classification (FashionCLIP Table 2 lists it beside zero-shot): its
    class, accuracy and weighted F1 (only that class is ever predicted: F1 = 2s/(1+s) on it, s its share)."""
    counts: dict[str, int] = {}
    for value in y_true:
        counts[value] = counts.get(value, 0) + 1
    label, count = max(counts.items(), key=lambda kv: (kv[1], kv[0]))
    share = count / len(y_true)
    return {"class": label, "accuracy": share, "weighted_f1": share * 2 * share / (1 + share)}
