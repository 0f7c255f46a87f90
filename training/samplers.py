"""Batch samplers: shuffled batches for InfoNCE, P classes x K items per batch for SupCon."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterator, Sequence


def random_batches(n: int, batch_size: int, rng: random.Random, drop_last: bool = True) -> Iterator[list[int]]:
    order = list(range(n))
    rng.shuffle(order)
    stop = n - n % batch_size if drop_last and n >= batch_size else n
    for start in range(0, stop, batch_size):
        yield order[start:start + batch_size]


class PKSampler:
    """Batches of P classes x K items each, so every anchor has K-1 positives for SupCon.

    Classes with fewer than K items are sampled with replacement; one epoch yields about n / (P*K) batches.
    """

    def __init__(self, labels: Sequence[int], p: int, k: int, seed: int = 0) -> None:
        if p < 1 or k < 2:
            raise ValueError("PK sampling needs P >= 1 and K >= 2")
        self.by_class: dict[int, list[int]] = defaultdict(list)
        for i, label in enumerate(labels):
            self.by_class[int(label)].append(i)
        if len(self.by_class) < p:
            raise ValueError(f"P={p} classes per batch but the data has only {len(self.by_class)}")
        self.p, self.k, self.n = p, k, len(labels)
        self.rng = random.Random(seed)

    def __len__(self) -> int:
        return max(1, self.n // (self.p * self.k))

    def __iter__(self) -> Iterator[list[int]]:
        classes = list(self.by_class)
        for _ in range(len(self)):
            batch: list[int] = []
            for c in self.rng.sample(classes, self.p):
                items = self.by_class[c]
                picked = self.rng.sample(items, self.k) if len(items) >= self.k else self.rng.choices(items, k=self.k)
                batch.extend(picked)
            yield batch
