"""The BIO tagger learns the metadata-derived tags of product names; structured captions use it."""

from __future__ import annotations

import pytest

from fashion_core.captions import caption, tagged_spans
from fashion_core.catalog.reader import read_catalog
from fashion_core.catalog.schema import Product
from fashion_core.errors import InvalidInputError
from training.tagger import PerceptronTagger, bio_labels, span_scores, train_tagger


def product(name: str, gender: str = "Men", colour: str = "Navy Blue", article: str = "Shirts") -> Product:
    return Product(id=1, gender=gender, masterCategory="Apparel", subCategory="Topwear", articleType=article,
                   baseColour=colour, season="Summer", year=2012, usage="Casual", productDisplayName=name)


def test_labels_from_metadata() -> None:
    words, tags = bio_labels(product("Peter England Men Navy Blue Slim Fit Shirt"))
    assert words == ["peter", "england", "men", "navy", "blue", "slim", "fit", "shirt"]
    assert tags == ["B-BRAND", "I-BRAND", "B-GENDER", "B-COLOUR", "I-COLOUR", "B-ATTRIBUTE", "I-ATTRIBUTE",
                    "B-ARTICLETYPE"]
    words, tags = bio_labels(product("Nike Women's Turtleneck T-shirt", gender="Women", colour="Red",
                                     article="Tshirts"))
    assert tags == ["B-BRAND", "B-GENDER", "B-ATTRIBUTE", "B-ARTICLETYPE"]


def test_span_scores_by_hand() -> None:
    gold = [["B-BRAND", "I-BRAND", "B-COLOUR", "O"]]
    pred = [["B-BRAND", "B-COLOUR", "B-COLOUR", "O"]]  # brand span cut short; an extra colour span
    scores = span_scores(gold, pred)
    assert scores["BRAND"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert scores["COLOUR"] == pytest.approx({"precision": 0.5, "recall": 1.0, "f1": 2 / 3, "support": 1})


def test_tagger_per_tag_f1_on_synthetic_names(train_catalog, tmp_path) -> None:
    products = read_catalog(train_catalog).products
    tagger, scores = train_tagger(products, epochs=5)
    for tag, s in scores.items():
        assert s["support"] > 10, tag
        assert s["f1"] >= 0.9, (tag, s)
    # it generalises to a name built from words in an unseen order and an unseen brand
    spans = dict(tagger.tag_text("Acme Women Red Pleated Skirt"))
    assert spans.get("GENDER") == "women" and spans.get("COLOUR") == "red" and spans.get("ARTICLETYPE") == "skirt"
    loaded = PerceptronTagger.load(tagger.save(tmp_path / "tagger.json"))
    assert loaded(["puma", "men", "black", "running", "shorts"]) == tagger(["puma", "men", "black", "running",
                                                                             "shorts"])
    structured = caption(products[0], "structured", tagger=tagger)
    assert structured.startswith(f"{products[0].gender.lower()} ") and len(structured.split()) <= 60


def test_structured_caption_needs_a_tagger_and_fills_gaps() -> None:
    p = product("Roadster Blue Skinny Fit Jeans", gender="Women", colour="Blue", article="Jeans")
    with pytest.raises(InvalidInputError, match="need a tagger"):  # a user's --captions: a one-line error
        caption(p, "structured")
    with pytest.raises(InvalidInputError, match="unknown caption mode 'fancy'; choose from raw, enriched"):
        caption(p, "fancy")  # type: ignore[arg-type]
    words, gold = bio_labels(p)
    assert tagged_spans(words, gold)[0] == ("BRAND", "roadster")
    text = caption(p, "structured", tagger=lambda ws: bio_labels(p)[1])
    assert text == "women blue skinny fit jeans by roadster"  # gender missing from the name: metadata fills it


@pytest.mark.parametrize(("plural", "single"), [
    ("dresses", "dress"), ("watches", "watch"), ("sports shoes", "sports shoe"), ("backpacks", "backpack"),
    ("jeans", "jeans"), ("shorts", "shorts"), ("dress", "dress")])
def test_article_types_are_singularised_as_shoppers_type_them(plural: str, single: str) -> None:
    from fashion_core.captions import singular

    assert singular(plural) == single
