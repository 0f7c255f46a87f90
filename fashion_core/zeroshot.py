"""Zero-shot classification of images against caller-given labels, with prompt-template ensembling."""

from __future__ import annotations

import string
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fashion_core.errors import InvalidInputError
from fashion_core.model.base import Encoder, ImageInput, is_blank

DEFAULT_TEMPLATES: tuple[str, ...] = ("a photo of a {}", "a product photo of a {}", "{}")
# How each catalog field's values are prompted, shared by evaluation (zero-shot reports average the templates'
# embeddings) and training (the label-prompt loss uses the first): "a photo of a casual shoes", "for women".
FIELD_TEMPLATES: dict[str, tuple[str, ...]] = {
    "articleType": ("a photo of a {}", "{}"),
    "subCategory": ("a photo of a {} product", "{}"),
    "baseColour": ("a photo of a {} product", "{}"),
    "gender": ("a photo of a product for {}", "for {}"),
    "masterCategory": ("a photo of a {} product", "{}"),
}
MAX_LABELS = 1000


def check_template(template: str) -> str:
    """``template`` when it is a prompt template: well-formed, with exactly one bare ``{}`` where the label goes
    (``{{``/``}}`` are literal braces); otherwise InvalidInputError naming it. Named, numbered, converted or
    formatted fields ({x}, {0}, {!r}, {:>9}) are refused, not passed to str.format to fail there."""
    try:
        fields = [(name, spec, conversion) for _, name, spec, conversion in string.Formatter().parse(template)
                  if name is not None]
    except ValueError as exc:  # a single '{' or '}'
        raise InvalidInputError(f"prompt template {template!r}: {exc} (write {{{{ or }}}} for a literal brace)"
                                ) from None
    if fields != [("", "", None)]:
        raise InvalidInputError(f"prompt template {template!r}: it needs exactly one '{{}}' where the label goes "
                                "and no other {...} field (write {{ or }} for a literal brace)")
    return template


@dataclass(frozen=True)
class LabelScore:
    label: str
    probability: float


def label_embeddings(encoder: Encoder, labels: Sequence[str],
                     templates: Sequence[str] = DEFAULT_TEMPLATES) -> np.ndarray:
    """One unit vector per label: the normalised mean of its prompts' embeddings."""
    labels = [label.strip() for label in labels]
    if len(labels) < 2:
        raise InvalidInputError("zero-shot classification needs at least two labels")
    if len(labels) > MAX_LABELS:
        raise InvalidInputError(f"{len(labels)} labels; the limit is {MAX_LABELS}")
    if any(is_blank(label) for label in labels) or len(set(labels)) != len(labels):
        raise InvalidInputError("labels must be non-empty and distinct")
    templates = [check_template(t) for t in templates] or ["{}"]
    prompts = [t.format(label) for label in labels for t in templates]
    vectors = encoder.encode_texts(prompts).reshape(len(labels), len(templates), -1).mean(axis=1)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def probabilities(image_vectors: np.ndarray, label_vectors: np.ndarray, logit_scale: float) -> np.ndarray:
    logits = logit_scale * image_vectors @ label_vectors.T
    logits -= logits.max(axis=1, keepdims=True)
    exp = np.exp(logits)
    return exp / exp.sum(axis=1, keepdims=True)


def classify(encoder: Encoder, image: ImageInput, labels: Sequence[str],
             templates: Sequence[str] = DEFAULT_TEMPLATES) -> list[LabelScore]:
    """Labels with probabilities, most likely first."""
    label_vecs = label_embeddings(encoder, labels, templates)
    probs = probabilities(encoder.encode_images([image]), label_vecs, encoder.info.logit_scale)[0]
    order = np.argsort(-probs)
    return [LabelScore(label=labels[i].strip(), probability=float(probs[i])) for i in order]
