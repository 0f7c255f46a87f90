"""Every metric against values worked out by hand on small cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from training.metrics import (
    average_precision,
    classification_report,
    first_relevant_ranks,
    image_to_image_metrics,
    mean_average_precision,
    mean_rank,
    mrr,
    ndcg_at_k,
    recall_at_k,
    retrieval_metrics,
)

SIM = np.array([[0.9, 0.1, 0.5], [0.2, 0.8, 0.3], [0.1, 0.7, 0.6]])
EYE = np.eye(3, dtype=bool)


def test_ranks_recall_mrr_mean_rank() -> None:
    # q0 ranks its match 1st, q1 1st, q2 2nd (item 1 scores 0.7 > 0.6).
    ranks = first_relevant_ranks(SIM, EYE)
    assert ranks.tolist() == [1, 1, 2]
    assert recall_at_k(ranks, 1) == pytest.approx(2 / 3)
    assert recall_at_k(ranks, 2) == 1.0
    assert mrr(ranks) == pytest.approx((1 + 1 + 0.5) / 3)
    assert mean_rank(ranks) == pytest.approx(4 / 3)


def test_ndcg_single_and_multiple_relevant() -> None:
    assert ndcg_at_k(SIM, EYE, 2) == pytest.approx((1 + 1 + 1 / math.log2(3)) / 3)
    sim = np.array([[0.9, 0.8, 0.7, 0.1]])
    rel = np.array([[True, False, True, False]])
    # DCG = 1 + 1/log2(4); ideal = 1 + 1/log2(3)
    assert ndcg_at_k(sim, rel, 3) == pytest.approx((1 + 0.5) / (1 + 1 / math.log2(3)))
    assert ndcg_at_k(sim, rel, 1) == 1.0


def test_average_precision() -> None:
    sim = np.array([[0.9, 0.8, 0.7, 0.1], [0.1, 0.2, 0.3, 0.4]])
    rel = np.array([[True, False, True, False], [True, False, False, False]])
    # row 0: hits at ranks 1 and 3 -> (1/1 + 2/3) / 2; row 1: the only hit is ranked last -> 1/4
    assert average_precision(sim, rel).tolist() == pytest.approx([(1 + 2 / 3) / 2, 0.25])
    assert mean_average_precision(sim, rel) == pytest.approx(((1 + 2 / 3) / 2 + 0.25) / 2)


def test_retrieval_metrics_bundle_and_missing_relevant() -> None:
    out = retrieval_metrics(SIM, EYE, ks=(1, 2), ndcg_k=2)
    assert out == pytest.approx({"R@1": 2 / 3, "R@2": 1.0, "MRR": 2.5 / 3, "MeanRank": 4 / 3,
                                 "NDCG@2": (2 + 1 / math.log2(3)) / 3})
    with pytest.raises(ValueError):
        first_relevant_ranks(SIM, np.zeros((3, 3), dtype=bool))


def test_image_to_image_leave_one_out() -> None:
    vectors = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.2, 0.9]])
    # classes x,y,x,y: each item's only same-class partner is ranked 3rd, 2nd, 3rd, 2nd.
    out = image_to_image_metrics(vectors, ["x", "y", "x", "y"], ks=(1, 2, 3))
    assert out["mAP"] == pytest.approx((1 / 3 + 1 / 2 + 1 / 3 + 1 / 2) / 4)
    assert out["Rank-1"] == 0.0
    assert out["Rank-2"] == 0.5
    assert out["Rank-3"] == 1.0
    # a class seen once has no partner: that query is skipped
    assert image_to_image_metrics(vectors[:3], ["x", "x", "z"], ks=(1,))["Rank-1"] == 1.0


def test_classification_report() -> None:
    report = classification_report(["a", "a", "b", "b", "c"], ["a", "b", "b", "b", "a"])
    per = report["per_class"]
    assert per["a"] == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2})
    assert per["b"] == pytest.approx({"precision": 2 / 3, "recall": 1.0, "f1": 0.8, "support": 2})
    assert per["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert report["accuracy"] == pytest.approx(0.6)
    assert report["macro_f1"] == pytest.approx((0.5 + 0.8 + 0) / 3)
    assert report["weighted_f1"] == pytest.approx((0.5 * 2 + 0.8 * 2) / 5)


def test_precision_at_k_leave_one_out() -> None:
    from training.metrics import precision_at_k

    vectors = np.array([[1.0, 0.0], [0.99, 0.14], [0.0, 1.0], [0.14, 0.99], [0.7, 0.71]])
    labels = ["a", "a", "b", "b", "a"]
    # item 0's two nearest others are 1 (a) and 4 (a); item 2's are 3 (b) and 4 (a)
    assert precision_at_k(vectors, labels, 2).tolist() == pytest.approx([1.0, 1.0, 0.5, 0.5, 0.5])
    with pytest.raises(ValueError):
        precision_at_k(vectors, labels, 5)


def test_majority_prior_weighted_f1() -> None:
    from training.metrics import majority_prior

    prior = majority_prior(["a", "a", "a", "b"])
    # predicting "a" everywhere: F1(a) = 2 * 0.75 * 1 / 1.75, F1(b) = 0; weighted by support
    assert prior == pytest.approx({"class": "a", "accuracy": 0.75, "weighted_f1": 0.75 * (1.5 / 1.75)})
    assert prior["weighted_f1"] == pytest.approx(classification_report(["a", "a", "a", "b"], ["a"] * 4)["weighted_f1"])


def test_linear_probe_picks_its_penalty_on_training_data_only() -> None:
    from training.probe import L2_GRID, linear_probe

    rng = np.random.default_rng(0)
    centres = np.eye(3)
    y = rng.integers(0, 3, 300)
    x = centres[y] + 0.3 * rng.standard_normal((300, 3))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    labels = [str(v) for v in y]
    result = linear_probe(x[:200], labels[:200], x[200:], labels[200:])
    assert result["l2"] in L2_GRID and result["accuracy"] > 0.9
    assert linear_probe(x[:200], labels[:200], x[200:], labels[200:], l2=1e-3)["l2"] == 1e-3
