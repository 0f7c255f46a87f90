"""Settings precedence (flags > env > file > defaults) and safe image decoding limits."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from PIL import Image

from fashion_core.errors import InvalidInputError
from fashion_core.images import decode_image
from fashion_core.model.resolve import recipe_pointer, resolve_model
from fashion_core.settings import load_settings
from fashion_core.stores.backends import backend


def test_defaults_need_no_server() -> None:
    s = load_settings()
    assert s.index_backend == "auto" and s.qdrant_url is None
    assert backend(s) == "faiss"  # FAISS files: no server, and fast at the real catalog's size
    assert backend(load_settings(qdrant_url="http://qdrant:6333")) == "qdrant"
    assert backend(load_settings(index_backend="qdrant")) == "qdrant"  # embedded Qdrant stays one setting away
    assert s.redis_url is None and s.encoder_address is None and s.model is None


def test_precedence_flags_over_env_over_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    toml = tmp_path / "fashion.toml"
    toml.write_text('index_backend = "faiss"\nindex_name = "from-file"\nencode_batch_size = 7\n')
    monkeypatch.setenv("FASHION_CONFIG", str(toml))
    s = load_settings()
    assert (s.index_backend, s.index_name, s.encode_batch_size) == ("faiss", "from-file", 7)
    monkeypatch.setenv("FASHION_INDEX_NAME", "from-env")
    assert load_settings().index_name == "from-env"
    assert load_settings(index_name="from-flag", model=None).index_name == "from-flag"

    yaml = tmp_path / "fashion.yaml"
    yaml.write_text("redis_url: redis://127.0.0.1:6379/0\n")
    monkeypatch.setenv("FASHION_CONFIG", str(yaml))
    assert load_settings().redis_url == "redis://127.0.0.1:6379/0"
    monkeypatch.setenv("FASHION_CONFIG", str(tmp_path / "missing.toml"))
    with pytest.raises(InvalidInputError, match="no such file"):
        load_settings()


def _cached(s, name: str) -> Path:
    folder = s.models_dir / f"{name}-0123456789ab"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    recipe_pointer(s, name).write_text(json.dumps({"dir": folder.name, "fingerprint": "0123456789ab"}))
    return folder


def test_model_resolution_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = load_settings()
    with pytest.raises(Exception, match="prepare-models"):
        resolve_model(s)
    synthetic = _cached(s, "synthetic")
    assert resolve_model(s) == str(synthetic)  # the cached bootstrap
    real = _cached(s, "real")
    assert resolve_model(s) == str(real)  # a model trained on the real catalog is preferred
    (real / "config.json").unlink()
    assert resolve_model(s) == str(synthetic)  # a pointer to a half-deleted folder is not served
    monkeypatch.setenv("FASHION_MODEL", "openai/clip-vit-base-patch32")
    assert resolve_model(load_settings()) == "openai/clip-vit-base-patch32"  # explicit wins


def _png(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (200, 10, 10)).save(buf, format="PNG")
    return buf.getvalue()


def test_decode_image_limits_and_formats() -> None:
    for fmt in ("JPEG", "PNG", "WEBP"):
        buf = io.BytesIO()
        Image.new("RGBA" if fmt == "PNG" else "RGB", (20, 10)).save(buf, format=fmt)
        image = decode_image(buf.getvalue())
        assert image.mode == "RGB" and image.size == (20, 10)
    with pytest.raises(InvalidInputError, match="empty"):
        decode_image(b"")
    with pytest.raises(InvalidInputError, match="over the limit of 100 bytes"):
        decode_image(_png(50, 50), max_bytes=100)
    # a decompression bomb: tiny file, huge pixel count; rejected from the header, before decoding
    bomb = _png(9000, 9000)
    assert len(bomb) < 1_000_000
    with pytest.raises(InvalidInputError, match="pixels is over the limit"):
        decode_image(bomb, max_pixels=10_000_000)
    with pytest.raises(InvalidInputError, match="not a readable image"):
        decode_image(b"GIF89a but not really")
    with pytest.raises(InvalidInputError, match="corrupt image"):
        decode_image(_png(64, 64)[:80])
