"""Captions built from catalog metadata, shared by training (as targets) and evaluation (as queries)."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Literal

from fashion_core.catalog.schema import Product
from fashion_core.errors import InvalidInputError

CaptionMode = Literal["raw", "enriched", "template", "structured"]
CAPTION_MODES: tuple[CaptionMode, ...] = ("raw", "enriched", "template", "structured")
# A BIO token tagger: words -> tags such as "B-COLOUR", "I-ARTICLETYPE", "O". Trained in training/tagger.py;
# passed in here so that services can build structured captions without importing training.
Tagger = Callable[[Sequence[str]], list[str]]
STRUCTURED_ORDER = ("GENDER", "COLOUR", "ATTRIBUTE", "ARTICLETYPE", "BRAND")
ENRICH_FIELDS = ("gender", "baseColour", "articleType", "usage", "season")
MAX_CAPTION_WORDS = 60  # comfortably under CLIP's 77 tokens; the tokenizer truncates whatever remains

_SPECIAL = re.compile(r"[^a-z0-9' -]+")
_GENDER_WORDS = {"Men": "men", "Women": "women", "Boys": "boys", "Girls": "girls", "Unisex": "unisex"}


def clean_text(text: str) -> str:
    """Lower-case, special characters removed, whitespace collapsed."""
    return " ".join(_SPECIAL.sub(" ", text.lower()).split())


# Nouns that are plural only ("a pair of jeans"): never singularised.
_PLURAL_ONLY = {"jeans", "shorts", "trousers", "pants", "sunglasses", "leggings", "tights", "capris", "briefs",
                "boxers", "jeggings", "pyjamas", "glasses"}


def singular(text: str) -> str:
    """The singular of a catalog article type as shoppers type it ("dresses" -> "dress", "sports shoes" ->
    "sports shoe", "jeans" stays): the catalog's values are plural, queries mostly are not."""
    words = text.split()
    if not words or words[-1] in _PLURAL_ONLY:
        return text
    last = words[-1]
    if last.endswith(("sses", "shes", "ches", "xes")):
        last = last[:-2]
    elif last.endswith("s") and not last.endswith("ss"):
        last = last[:-1]
    return " ".join([*words[:-1], last])


def shopper_query(gender: str, article_type: str, colour: str) -> str:
    """An attribute query in a shopper's words: ("Women", "Dresses", "Red") -> "red dress for women";
    unisex products are "unisex black backpack"."""
    what = f"{clean_text(colour)} {singular(clean_text(article_type))}".strip()
    word = _GENDER_WORDS.get(gender, clean_text(gender))
    return f"unisex {what}" if word == "unisex" else f"{what} for {word}"


def _limit(text: str) -> str:
    return " ".join(text.split()[:MAX_CAPTION_WORDS])


def raw_caption(product: Product) -> str:
    return _limit(clean_text(product.productDisplayName))


def enriched_caption(product: Product) -> str:
    """The name plus the metadata values it does not already mention."""
    name = clean_text(product.productDisplayName)
    words = set(name.split())
    extra = []
    for field in ENRICH_FIELDS:
        value = clean_text(str(getattr(product, field) or ""))
        if value and not set(value.split()) <= words:
            extra.append(value)
            words |= set(value.split())
    return _limit(" ".join([name, *extra]))


def template_caption(product: Product) -> str:
    gender = _GENDER_WORDS.get(product.gender, product.gender.lower())
    return _limit(f"a photo of a {clean_text(product.baseColour)} {clean_text(product.articleType)} for {gender}")


def tagged_spans(words: Sequence[str], tags: Sequence[str]) -> list[tuple[str, str]]:
    """(entity type, text) for each B-/I- span of a BIO tag sequence."""
    spans: list[tuple[str, list[str]]] = []
    for word, tag in zip(words, tags, strict=True):
        if tag.startswith("B-") or (tag.startswith("I-") and (not spans or spans[-1][0] != tag[2:])):
            spans.append((tag[2:], [word]))
        elif tag.startswith("I-"):
            spans[-1][1].append(word)
        else:
            spans.append(("O", [word]))
    return [(kind, " ".join(ws)) for kind, ws in spans if kind != "O"]


def structured_caption(product: Product, tagger: Tagger) -> str:
    """Attributes the tagger finds in the name, in one fixed order: "{gender} {colour} {attributes} {type} by
    {brand}"; metadata fills a missing gender, colour or article type."""
    words = clean_text(product.productDisplayName).split()
    found: dict[str, list[str]] = {}
    for kind, text in tagged_spans(words, tagger(words)):
        found.setdefault(kind, [])
        if text not in found[kind]:
            found[kind].append(text)
    fallback = {"GENDER": _GENDER_WORDS.get(product.gender, product.gender.lower()),
                "COLOUR": clean_text(product.baseColour), "ARTICLETYPE": clean_text(product.articleType)}
    parts = []
    for kind in STRUCTURED_ORDER:
        values = found.get(kind) or ([fallback[kind]] if fallback.get(kind) else [])
        if values:
            parts.append(("by " if kind == "BRAND" else "") + " ".join(values))
    return _limit(" ".join(parts))


def check_caption_mode(mode: str) -> CaptionMode:
    """``mode`` if it is one of CAPTION_MODES; InvalidInputError (a user's ``--captions``) otherwise."""
    for known in CAPTION_MODES:
        if known == mode:
            return known
    raise InvalidInputError(f"unknown caption mode {mode!r}; choose from {', '.join(CAPTION_MODES)}")


def caption(product: Product, mode: CaptionMode = "enriched", tagger: Tagger | None = None) -> str:
    """The caption of ``product`` in ``mode``. Raises InvalidInputError for an unknown mode, or for structured
    captions without a tagger."""
    mode = check_caption_mode(mode)
    if mode == "structured":
        if tagger is None:
            raise InvalidInputError("structured captions need a tagger "
                                    "(train one with `fashion-search train-tagger`)")
        return structured_caption(product, tagger)
    if mode == "raw":
        return raw_caption(product)
    if mode == "template":
        return template_caption(product)
    return enriched_caption(product)
