"""Loading a saved CLIP checkpoint through the real from_pretrained path, and batch encoding."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fashion_core.catalog import read_catalog
from fashion_core.errors import InvalidInputError, NotFoundError
from fashion_core.model.encoder import ClipEncoder
from fashion_core.zeroshot import classify


def test_saved_checkpoint_loads_with_processor_and_card(tiny_model_dir: Path) -> None:
    assert (tiny_model_dir / "config.json").is_file() and (tiny_model_dir / "model.safetensors").is_file()
    assert (tiny_model_dir / "preprocessor_config.json").is_file() and (tiny_model_dir / "vocab.json").is_file()
    encoder = ClipEncoder.from_pretrained(str(tiny_model_dir), device="cpu")
    assert encoder.info.dim == 64 and encoder.info.device == "cpu"
    assert encoder.info.card["base"] == "random init"
    assert len(encoder.info.version) == 12
    # same weights, same version; the version is a content hash, not a path
    assert ClipEncoder.from_pretrained(tiny_model_dir).info.version == encoder.info.version


def test_encodings_are_unit_float32_and_batch_independent(tiny_encoder: ClipEncoder,
                                                          synthetic_catalog: Path) -> None:
    texts = ["a red dress for women", "men's blue running shoes", "t-shirt with a tiger", "black watch"]
    vectors = tiny_encoder.encode_texts(texts)
    assert vectors.dtype == np.float32 and vectors.shape == (4, 64)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # batching and padding must not change a text's vector
    np.testing.assert_allclose(tiny_encoder.encode_texts([texts[2]])[0], vectors[2], atol=1e-5)
    assert not np.allclose(vectors[0], vectors[1])

    paths = [p.image_path for p in read_catalog(synthetic_catalog).products[:5]]
    from_paths = tiny_encoder.encode_images([Path(p).read_bytes() for p in paths])
    from PIL import Image

    from_pil = tiny_encoder.encode_images([Image.open(p) for p in paths])
    np.testing.assert_allclose(from_paths, from_pil, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(from_paths, axis=1), 1.0, atol=1e-5)


def test_encoder_rejects_bad_input(tiny_encoder: ClipEncoder) -> None:
    with pytest.raises(InvalidInputError, match="empty"):
        tiny_encoder.encode_texts(["ok", "  "])
    with pytest.raises(InvalidInputError, match="characters"):
        tiny_encoder.encode_texts(["x" * 5000])
    with pytest.raises(InvalidInputError, match="not a readable image"):
        tiny_encoder.encode_images([b"definitely not an image"])


def test_missing_checkpoint_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        ClipEncoder.from_pretrained(tmp_path / "nope")


def test_zero_shot_returns_a_distribution(tiny_encoder: ClipEncoder, synthetic_catalog: Path) -> None:
    image = read_catalog(synthetic_catalog).products[0].image_path
    scores = classify(tiny_encoder, Path(image).read_bytes(), ["sandal", "flip flop", "heels"])
    assert sorted(s.label for s in scores) == ["flip flop", "heels", "sandal"]
    assert abs(sum(s.probability for s in scores) - 1.0) < 1e-5
    assert scores[0].probability >= scores[-1].probability
    with pytest.raises(InvalidInputError):
        classify(tiny_encoder, Path(image).read_bytes(), ["only one"])


def test_tokenizer_training_is_the_same_in_every_process() -> None:
    """The BPE trainer numbered word-end tokens in hash-map order, which differs per process: same corpus,
    different vocabularies, so the bootstrap trained a different model each time. Two processes must agree."""
    import subprocess
    import sys

    script = ("import json; from training.tokenizer import train_clip_tokenizer, fashion_corpus; "
              "t = train_clip_tokenizer(fashion_corpus() + ['tiger printed kurta', 'navy running shoes'], 1000); "
              "print(json.dumps(sorted(t.get_vocab().items(), key=lambda kv: kv[1])))")
    runs = {subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
            for _ in range(3)}
    assert len(runs) == 1
    vocab = dict(json.loads(runs.pop()))
    assert all(chr(c) + "</w>" in vocab for c in range(ord("a"), ord("z") + 1))  # every byte can end a word


def test_load_checkpoint_takes_both_kinds_of_clip_and_refuses_others(tiny_model_dir: Path, tmp_path: Path) -> None:
    """A `CLIPModel` (the kind of openai/clip-vit-base-patch32 and FashionCLIP) and a
    `VisionTextDualEncoderModel` (the real recipe's kind) load from a saved directory through the Auto classes and
    embed texts and images; a text-only checkpoint is refused with a clear error; a missing path is NOT_FOUND."""
    import numpy as np
    from PIL import Image
    from transformers import BertConfig, BertModel, CLIPModel, VisionTextDualEncoderModel

    from fashion_core.errors import InvalidInputError, NotFoundError
    from fashion_core.model.encoder import ClipEncoder, load_checkpoint
    from training.architectures import DualEncoderSpec, build_dual_encoder

    spec = DualEncoderSpec(image_size=32, resize_edge=24, dims=(8, 16, 24, 32), depths=(1, 1, 1, 1), text_width=32,
                           text_layers=1, heads=2, projection_dim=16, vocab_size=300)
    dual_dir = build_dual_encoder(tmp_path / "dual", spec, corpus=["red dress", "blue jeans"] * 20)
    for directory, kind in ((tiny_model_dir, CLIPModel), (dual_dir, VisionTextDualEncoderModel)):
        model, _ = load_checkpoint(directory)
        assert isinstance(model, kind)
        encoder = ClipEncoder.from_pretrained(directory, device="cpu")
        texts = encoder.encode_texts(["red dress", "blue jeans"])
        images = encoder.encode_images([Image.new("RGB", (60, 80), "red")])
        assert texts.dtype == images.dtype == np.float32 and texts.shape[1] == images.shape[1]
        assert np.allclose(np.linalg.norm(texts, axis=1), 1.0, atol=1e-4)
    bert_dir = tmp_path / "bert"
    BertModel(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=32)).save_pretrained(bert_dir)
    with pytest.raises(InvalidInputError, match="not a CLIP-style"):
        load_checkpoint(bert_dir)
    with pytest.raises(NotFoundError):
        load_checkpoint(tmp_path / "nowhere")
