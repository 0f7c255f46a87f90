"""Behaviour only a working model shows, checked on the bootstrapped CLIP over a catalog it never saw.

The model is built once into the bootstrap cache (see ``bootstrap_model_dir`` in tests/conftest.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fashion_core.catalog.reader import read_catalog
from fashion_core.ingest import index_catalog
from fashion_core.model.card import CARD_FILE
from fashion_core.model.encoder import ClipEncoder
from fashion_core.search import SearchEngine
from fashion_core.settings import Settings
from fashion_core.stores.backends import open_index
from fashion_core.stores.filters import SearchFilter
from fashion_core.zeroshot import classify
from training.bootstrap import TARGETS
from training.synthetic_catalog import COLOURS, draw_product

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def encoder(bootstrap_model_dir: Path) -> ClipEncoder:
    return ClipEncoder.from_pretrained(bootstrap_model_dir, device="cpu")


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from training.synthetic_catalog import generate_catalog

    # seed and ids unlike the bootstrap's training catalog: none of these images was seen in training
    return generate_catalog(tmp_path_factory.mktemp("unseen"), n=1000, seed=77, start_id=500_000)


@pytest.fixture(scope="module")
def settings(catalog: Path, encoder: ClipEncoder, bootstrap_model_dir: Path,
             tmp_path_factory: pytest.TempPathFactory) -> Settings:
    settings = Settings(model=str(bootstrap_model_dir), index_backend="faiss",
                        index_dir=tmp_path_factory.mktemp("boot-index"), home=tmp_path_factory.mktemp("home"))
    index = open_index(settings)
    index_catalog(catalog, encoder, index)
    index.close()
    return settings


@pytest.fixture(scope="module")
def engine(settings: Settings, encoder: ClipEncoder):
    index = open_index(settings)
    yield SearchEngine(encoder, index)
    index.close()


@pytest.fixture(scope="module")
def query_client(settings: Settings, encoder: ClipEncoder):
    from services.query_client import QueryClient
    from services.query_service import start_query_server

    server, servicer = start_query_server(settings, encoder=encoder)
    client = QueryClient(server.address)
    yield client
    client.close()
    server.stop(0)
    servicer.indexes.close()


def test_card_records_the_quality_bar_met(encoder: ClipEncoder, bootstrap_model_dir: Path) -> None:
    card = encoder.info.card
    assert card == json.loads((bootstrap_model_dir / CARD_FILE).read_text())
    metrics = card["quality"]["metrics"]
    for key, target in TARGETS.items():
        assert metrics[key] >= target, (key, metrics[key])
    assert card["quality"]["met"] is True
    assert card["caption_modes"] and card["losses"]["clip_infonce"] > 0


def test_red_dress_returns_red_dresses_through_the_query_service(query_client, catalog: Path) -> None:
    products = read_catalog(catalog).products
    red_dresses = sum(p.articleType == "Dresses" and p.baseColour == "Red" for p in products)
    assert red_dresses >= 3
    k = min(red_dresses, 5)
    hits = query_client.search_text("red dress", k=k, mode="dense")
    assert [(h.payload["articleType"], h.payload["baseColour"]) for h in hits] == [("Dresses", "Red")] * k
    # the service reports which model is serving, card included
    (model,) = query_client.list_models()
    assert model.card.get("quality", {}).get("met") is True


def test_image_queries_return_their_article_type_and_colour(engine: SearchEngine) -> None:
    """Fresh drawings (not catalog images) of every article type, two each in drawn colours, as image queries.

    Measured over all types rather than on one query: bootstraps that differed only in floating-point detail
    (before the tokenizer was made deterministic) moved one query's top 5 a lot (a blue sandal's held 2 to 5
    sandals) while the aggregate held: top-1 articleType 0.82-0.96, top-1 colour 0.89-0.96 over three such
    models; chance is 1/14 and 1/11. The current recipe gives 0.93, 0.89 and articleType precision@5 0.92.
    """
    import random

    from training.synthetic_catalog import ARTICLES

    rng = random.Random(0)
    top1_type = top1_colour = precision5 = 0.0
    queries = [(article, rng.choice(list(COLOURS)), seed) for article in ARTICLES for seed in range(2)]
    for article, colour, seed in queries:
        hits = engine.search_image(draw_product(article, colour, random.Random(f"q-{article}-{seed}")), k=5)
        top1_type += hits[0].payload["articleType"] == article
        top1_colour += hits[0].payload["baseColour"] == colour
        precision5 += sum(h.payload["articleType"] == article for h in hits) / 5
    n = len(queries)
    assert top1_type / n >= 0.75 and top1_colour / n >= 0.8, (top1_type / n, top1_colour / n)
    assert precision5 / n >= 0.7, precision5 / n
    for seed in range(3):  # and the case people try first: a blue sandal's top hit is a blue sandal
        hit = engine.search_image(draw_product("Sandals", "Blue", random.Random(f"query-{seed}")), k=1)[0]
        assert (hit.payload["articleType"], hit.payload["baseColour"]) == ("Sandals", "Blue")


@pytest.mark.parametrize("query", ["red dress", "black watch", "men's blue sports shoes", "a green backpack"])
def test_gender_filter_never_leaks(engine: SearchEngine, query: str) -> None:
    for gender in ("Men", "Women", "Girls"):
        hits = engine.search_text(query, k=50, flt=SearchFilter.build(gender=gender))
        assert hits, (query, gender)
        assert {h.payload["gender"] for h in hits} == {gender}


def test_zero_shot_picks_the_right_colour(encoder: ClipEncoder) -> None:
    import random

    labels = [c.lower() for c in COLOURS]
    right = total = 0
    for colour in COLOURS:
        for article in ("Tshirts", "Handbags", "Sports Shoes"):
            image = draw_product(article, colour, random.Random(f"{colour}-{article}"))
            scores = classify(encoder, image, labels)
            right += scores[0].label == colour.lower()
            total += 1
    assert right / total >= 0.9, f"{right}/{total}"


def test_zero_shot_picks_the_article_type(encoder: ClipEncoder) -> None:
    import random

    from training.evaluate import label_prompt
    from training.synthetic_catalog import ARTICLES

    labels = [label_prompt(a) for a in ARTICLES]
    right = sum(classify(encoder, draw_product(a, "Blue", random.Random(a)), labels)[0].label == label_prompt(a)
                for a in ARTICLES)
    assert right / len(ARTICLES) >= 0.75, f"{right}/{len(ARTICLES)}"
