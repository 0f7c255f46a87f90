"""BIO token tagger for product names: BRAND, GENDER, COLOUR, ARTICLETYPE, ATTRIBUTE.

Labels come from the catalog's own columns (``bio_labels``): words matching gender, baseColour or articleType
get those tags, the words before the first of them are the brand (names start with it), and the rest are
attributes ("slim fit", "round neck"). An averaged perceptron learns them from word, affix, shape and context
features, so it also tags names and queries that have no metadata. Structured captions use it through the
``fashion_core.captions.Tagger`` callable.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

from fashion_core.captions import clean_text, tagged_spans
from fashion_core.catalog.schema import Product

TAG_TYPES = ("BRAND", "GENDER", "COLOUR", "ARTICLETYPE", "ATTRIBUTE")
TAGS = ("O", *(f"{p}-{t}" for t in TAG_TYPES for p in ("B", "I")))


def _variants(word: str) -> set[str]:
    w = word.replace("-", "")
    return {w, w.removesuffix("s"), w.removesuffix("es")}


def bio_labels(product: Product) -> tuple[list[str], list[str]]:
    """The name's words and their tags, derived from the metadata columns."""
    words = clean_text(product.productDisplayName).split()
    kinds: list[str | None] = [None] * len(words)
    gender = set(clean_text(product.gender).split())
    colour = clean_text(product.baseColour).split()
    article = set().union(*(_variants(w) for w in clean_text(product.articleType).split()))
    for i, word in enumerate(words):
        if word in gender or word.removesuffix("'s") in gender:
            kinds[i] = "GENDER"
        elif _variants(word) & article:
            kinds[i] = "ARTICLETYPE"
    for i in range(len(words) - len(colour) + 1):  # multi-word colours ("navy blue") as one span
        if colour and words[i:i + len(colour)] == colour:
            kinds[i:i + len(colour)] = ["COLOUR"] * len(colour)
    first = next((i for i, k in enumerate(kinds) if k), len(words))
    for i in range(len(words)):
        if kinds[i] is None:
            kinds[i] = "BRAND" if i < first else "ATTRIBUTE"
    tags = []
    for i, kind in enumerate(kinds):
        tags.append(("I-" if i and kinds[i - 1] == kind else "B-") + str(kind))
    return words, tags


def _shape(word: str) -> str:
    return "".join("d" if c.isdigit() else "a" if c.isalpha() else c for c in word)[:6]


def _features(words: Sequence[str], i: int, prev_tag: str) -> list[str]:
    w = words[i]
    prev_w = words[i - 1] if i else "<s>"
    next_w = words[i + 1] if i + 1 < len(words) else "</s>"
    return ["bias", f"w={w}", f"suf3={w[-3:]}", f"pre3={w[:3]}", f"shape={_shape(w)}", f"prev={prev_w}",
            f"next={next_w}", f"ptag={prev_tag}", f"ptag+w={prev_tag}+{w}", f"pos={min(i, 3)}",
            f"last={i == len(words) - 1}", f"prev+w={prev_w}+{w}"]


class PerceptronTagger:
    """Greedy left-to-right averaged perceptron; callable as ``tagger(words) -> tags``."""

    def __init__(self, weights: dict[str, dict[str, float]] | None = None) -> None:
        self.weights: dict[str, dict[str, float]] = weights or {}

    def _best(self, feats: Iterable[str]) -> str:
        scores: dict[str, float] = defaultdict(float)
        for f in feats:
            for tag, w in self.weights.get(f, {}).items():
                scores[tag] += w
        return max(TAGS, key=lambda t: (scores.get(t, 0.0), t == "O"))

    def __call__(self, words: Sequence[str]) -> list[str]:
        tags: list[str] = []
        for i in range(len(words)):
            tags.append(self._best(_features(words, i, tags[-1] if tags else "<s>")))
        return tags

    def tag_text(self, text: str) -> list[tuple[str, str]]:
        words = clean_text(text).split()
        return tagged_spans(words, self(words))

    def fit(self, data: Sequence[tuple[list[str], list[str]]], epochs: int = 8, seed: int = 0) -> PerceptronTagger:
        weights: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        totals: dict[tuple[str, str], float] = defaultdict(float)
        stamps: dict[tuple[str, str], int] = defaultdict(int)
        step = 0
        order = list(data)
        rng = random.Random(seed)
        self.weights = weights
        for _ in range(epochs):
            rng.shuffle(order)
            for words, gold in order:
                prev = "<s>"
                for i in range(len(words)):
                    step += 1
                    feats = _features(words, i, prev)
                    guess = self._best(feats)
                    if guess != gold[i]:
                        for f in feats:
                            for tag, delta in ((gold[i], 1.0), (guess, -1.0)):
                                key = (f, tag)
                                totals[key] += (step - stamps[key]) * weights[f][tag]
                                stamps[key] = step
                                weights[f][tag] += delta
                    prev = gold[i]  # teacher forcing on the previous tag
        averaged: dict[str, dict[str, float]] = {}
        for f, tags in weights.items():
            for tag, w in tags.items():
                key = (f, tag)
                total = totals[key] + (step - stamps[key]) * w
                if total:
                    averaged.setdefault(f, {})[tag] = round(total / step, 5)
        self.weights = averaged
        return self

    def save(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"tags": list(TAGS), "weights": self.weights}))
        return path

    @classmethod
    def load(cls, path: Path) -> PerceptronTagger:
        return cls(json.loads(Path(path).read_text())["weights"])


def span_scores(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> dict[str, dict[str, float]]:
    """Entity-level precision/recall/F1 per tag type (exact span match), as conlleval counts them."""
    def spans(tags: Sequence[str]) -> set[tuple[int, int, str]]:
        out, start, kind = set(), None, None
        for i, tag in enumerate([*tags, "O"]):
            if start is not None and not (tag.startswith("I-") and tag[2:] == kind):
                out.add((start, i, str(kind)))
                start = kind = None
            if tag.startswith("B-") or (tag.startswith("I-") and start is None):
                start, kind = i, tag[2:]
        return out

    counts = {t: [0, 0, 0] for t in TAG_TYPES}  # tp, predicted, gold
    for g, p in zip(gold, pred, strict=True):
        gs, ps = spans(g), spans(p)
        for s in ps:
            counts[s[2]][1] += 1
            counts[s[2]][0] += s in gs
        for s in gs:
            counts[s[2]][2] += 1
    out = {}
    for tag, (tp, n_pred, n_gold) in counts.items():
        precision = tp / n_pred if n_pred else 0.0
        recall = tp / n_gold if n_gold else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        out[tag] = {"precision": precision, "recall": recall, "f1": f1, "support": n_gold}
    return out


def train_tagger(products: Sequence[Product], epochs: int = 8, seed: int = 0,
                 split: tuple[float, float] = (0.8, 0.1)) -> tuple[PerceptronTagger, dict[str, dict[str, float]]]:
    """Fit on the train split's names, score on the test split's; returns the tagger and per-tag scores."""
    from training.data import split_products

    parts = split_products(products, split)
    train = [bio_labels(p) for p in parts["train"]]
    test = [bio_labels(p) for p in parts["test"] or parts["val"]]
    tagger = PerceptronTagger().fit(train, epochs, seed)
    scores = span_scores([t for _, t in test], [tagger(w) for w, _ in test])
    return tagger, scores
