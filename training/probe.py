"""Linear probe: multinomial logistic regression on frozen image embeddings (full-batch L-BFGS in torch)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from training.metrics import classification_report


def fit_logistic(x: np.ndarray, y: np.ndarray, n_classes: int, l2: float = 1e-3, steps: int = 100) -> torch.nn.Linear:
    torch.manual_seed(0)
    features, targets = torch.from_numpy(x).float(), torch.from_numpy(y).long()
    linear = torch.nn.Linear(features.shape[1], n_classes)
    opt = torch.optim.LBFGS(linear.parameters(), lr=1.0, max_iter=steps, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(linear(features), targets) + l2 * linear.weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return linear


def linear_probe(train_x: np.ndarray, train_y: Sequence[str], test_x: np.ndarray, test_y: Sequence[str],
                 l2: float = 1e-3) -> dict[str, object]:
    """Fit on train embeddings, report on test embeddings (labels unseen in training count as errors)."""
    names = sorted(set(train_y))
    index = {n: i for i, n in enumerate(names)}
    linear = fit_logistic(train_x, np.array([index[v] for v in train_y]), len(names), l2)
    with torch.no_grad():
        pred = linear(torch.from_numpy(test_x).float()).argmax(dim=1).numpy()
    return classification_report(list(test_y), [names[i] for i in pred])
