"""The ONNX runtime: an export of either model family encodes as torch does (max |difference| < 1e-4), the
wiring picks it only for a current export, and a CLI search on it imports neither torch nor transformers."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fashion_core.errors import InvalidInputError, NotFoundError
from fashion_core.model.encoder import ClipEncoder
from fashion_core.model.onnx_encoder import META_FILE, OnnxEncoder, OnnxExport, find_export
from fashion_core.model.onnx_export import export_onnx
from fashion_core.settings import Settings
from services.wiring import local_encoder

ROOT = Path(__file__).resolve().parents[2]
TOLERANCE = 1e-4

TEXTS = [
    "red dress for women",
    "men's blue running shoes with white soles and a reflective heel",
    "x",
    "ünïcødé café — 👗 红色连衣裙 فستان أحمر Kleid für Damen",
    "floral summer maxi dress " * 36,  # ~900 characters: far over max_text_len tokens, truncated
    "  padded with spaces  ",
]


def _portrait(colour: tuple[int, int, int] | None = None, seed: int = 0) -> Image.Image:
    """A 60x80 photo as the real catalog has them (random pixels, or a flat studio background)."""
    if colour is not None:
        return Image.new("RGB", (60, 80), colour)
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (80, 60, 3), dtype=np.uint8))


def _images() -> list[object]:
    rng = np.random.default_rng(1)
    landscape = Image.fromarray(rng.integers(0, 256, (90, 200, 3), dtype=np.uint8))
    big = Image.fromarray(rng.integers(0, 256, (400, 300, 3), dtype=np.uint8))
    jpeg = io.BytesIO()
    _portrait(seed=3).save(jpeg, format="JPEG")
    return [_portrait(seed=0), _portrait(seed=1), _portrait((255, 255, 255)), landscape, big,
            Image.new("RGB", (1, 1), (200, 10, 10)), jpeg.getvalue(), Image.new("L", (60, 80), 128)]


def _build(family: str, out: Path) -> Path:
    """Both families in the real catalog's layout: shortest edge 60, 80x80 crop (the 60x80 photos padded)."""
    from training.architectures import DualEncoderSpec, TinyClipSpec, build_dual_encoder, build_tiny_clip

    if family == "clip":
        return build_tiny_clip(out, TinyClipSpec(image_size=80, resize_edge=60, patch_size=16, max_text_len=32))
    return build_dual_encoder(out, DualEncoderSpec(image_size=80, resize_edge=60, dims=(8, 16, 24, 32),
                                                   depths=(1, 1, 1, 1), text_width=32, text_layers=1, heads=2,
                                                   projection_dim=32, max_text_len=40, vocab_size=500))


@pytest.fixture(scope="module", params=["clip", "dual"])
def exported(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoint of each family with its ONNX export in <checkpoint>/onnx."""
    model = _build(request.param, tmp_path_factory.mktemp(request.param) / "model")
    assert export_onnx(model) == model / "onnx"
    return model


@pytest.fixture(scope="module")
def both(exported: Path) -> tuple[ClipEncoder, OnnxEncoder]:
    torch_encoder = ClipEncoder.from_pretrained(exported, device="cpu")
    return torch_encoder, OnnxEncoder.from_checkpoint(exported, exported.parent / "home")


def test_the_export_has_its_files_and_the_checkpoints_version(exported: Path) -> None:
    export = OnnxExport.read(exported / "onnx")
    assert export is not None
    assert {p.name for p in export.path.iterdir()} == {"text.onnx", "image.onnx", "tokenizer.json",
                                                       "preprocessor_config.json", "export.json"}
    meta = export.meta
    torch_info = ClipEncoder.from_pretrained(exported, device="cpu").info
    assert meta["version"] == torch_info.version and meta["dim"] == torch_info.dim
    assert meta["family"] in {"CLIPModel", "VisionTextDualEncoderModel"} and meta["card"] == torch_info.card
    assert json.loads((export.path / "preprocessor_config.json").read_text())["crop_size"] == {"height": 80,
                                                                                                "width": 80}


def test_info_is_the_torch_encoders(both: tuple[ClipEncoder, OnnxEncoder]) -> None:
    torch_encoder, onnx_encoder = both
    assert onnx_encoder.info == torch_encoder.info  # same version: indexes built by one are searched by the other
    assert onnx_encoder.max_text_len == torch_encoder.max_text_len


def test_text_vectors_match_torch(both: tuple[ClipEncoder, OnnxEncoder]) -> None:
    torch_encoder, onnx_encoder = both
    long_ids = torch_encoder.processor.tokenizer(TEXTS[4], truncation=True, max_length=torch_encoder.max_text_len)
    assert len(long_ids["input_ids"]) == torch_encoder.max_text_len  # the long text is truncated
    want = torch_encoder.encode_texts(TEXTS)
    got = onnx_encoder.encode_texts(TEXTS)
    assert got.dtype == np.float32 and got.shape == want.shape == (len(TEXTS), onnx_encoder.info.dim)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    assert np.abs(got - want).max() < TOLERANCE
    for text, row in zip(TEXTS, want, strict=True):  # alone: no padding in the batch
        assert np.abs(onnx_encoder.encode_texts([text])[0] - row).max() < TOLERANCE


def test_image_vectors_match_torch(both: tuple[ClipEncoder, OnnxEncoder]) -> None:
    torch_encoder, onnx_encoder = both
    images = _images()
    want = torch_encoder.encode_images(images)
    got = onnx_encoder.encode_images(images)
    assert got.dtype == np.float32 and got.shape == want.shape == (len(images), onnx_encoder.info.dim)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    assert np.abs(got - want).max() < TOLERANCE


def test_batches_empty_inputs_and_bad_inputs(both: tuple[ClipEncoder, OnnxEncoder], exported: Path) -> None:
    _, onnx_encoder = both
    small = OnnxEncoder.from_checkpoint(exported, exported.parent / "home", batch_size=2, threads=1)
    assert np.abs(small.encode_texts(TEXTS) - onnx_encoder.encode_texts(TEXTS)).max() < 1e-5
    assert np.abs(small.encode_images(_images()) - onnx_encoder.encode_images(_images())).max() < 1e-5
    dim = onnx_encoder.info.dim
    assert onnx_encoder.encode_texts([]).shape == (0, dim) and onnx_encoder.encode_images([]).shape == (0, dim)
    with pytest.raises(InvalidInputError, match="empty"):
        onnx_encoder.encode_texts(["ok", "\u200b "])
    with pytest.raises(InvalidInputError, match="characters"):
        onnx_encoder.encode_texts(["x" * 5000])
    with pytest.raises(InvalidInputError, match="not a readable image"):
        onnx_encoder.encode_images([b"definitely not an image"])


# -- the choice ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def plain_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny CLIP without an export (each test copies it: exports are written next to the checkpoint)."""
    from training.architectures import build_tiny_clip

    return build_tiny_clip(tmp_path_factory.mktemp("plain") / "model")


def _copy(model: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(model, tmp_path / "model"))


def test_auto_serves_onnx_only_for_a_current_export(plain_model: Path, tmp_path: Path) -> None:
    model = _copy(plain_model, tmp_path)
    settings = Settings(model=str(model), home=tmp_path / "home", device="cpu")
    assert isinstance(local_encoder(settings), ClipEncoder)  # no export yet
    export_onnx(model)
    onnx = local_encoder(settings)
    assert isinstance(onnx, OnnxEncoder) and onnx.info.model_id == str(model)
    assert isinstance(local_encoder(settings.model_copy(update={"encoder_runtime": "torch"})), ClipEncoder)
    # an export made for other weights is stale: never served
    meta = json.loads((model / "onnx" / META_FILE).read_text())
    (model / "onnx" / META_FILE).write_text(json.dumps({**meta, "version": "000000000000"}))
    assert find_export(model, settings.home) is None
    assert isinstance(local_encoder(settings), ClipEncoder)


def test_onnx_exports_on_first_use_and_refuses_what_it_cannot_serve(plain_model: Path, tmp_path: Path) -> None:
    model = _copy(plain_model, tmp_path)
    settings = Settings(model=str(model), home=tmp_path / "home", encoder_runtime="onnx")
    encoder = local_encoder(settings)
    assert isinstance(encoder, OnnxEncoder) and find_export(model, settings.home) is not None
    want = ClipEncoder.from_pretrained(model, device="cpu").encode_texts(["red dress for women"])
    assert np.abs(encoder.encode_texts(["red dress for women"]) - want).max() < TOLERANCE
    with pytest.raises(InvalidInputError, match="CPU"):
        local_encoder(settings.model_copy(update={"device": "cuda"}))
    with pytest.raises(InvalidInputError, match="local checkpoint folder"):
        local_encoder(settings.model_copy(update={"model": "some-org/some-clip"}))
    with pytest.raises(NotFoundError):
        local_encoder(settings.model_copy(update={"model": str(tmp_path / "nope")}))


def test_a_checkpoint_that_is_not_writable_exports_to_the_cache(plain_model: Path, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    import tempfile

    import fashion_core.model.onnx_export as onnx_export

    model = _copy(plain_model, tmp_path)
    home = tmp_path / "home"
    real_mkdtemp = tempfile.mkdtemp

    def read_only_checkpoint(*args: object, **kwargs: object) -> str:
        if Path(str(kwargs.get("dir"))) == model:
            raise PermissionError(f"{model}: read-only")
        return real_mkdtemp(*args, **kwargs)

    monkeypatch.setattr(onnx_export.tempfile, "mkdtemp", read_only_checkpoint)
    out = export_onnx(model, home=home)
    version = ClipEncoder.from_pretrained(model, device="cpu").info.version
    assert out == home / "onnx" / version and not (model / "onnx").exists()
    export = find_export(model, home)
    assert export is not None and export.path == out
    assert isinstance(local_encoder(Settings(model=str(model), home=home, device="cpu")), OnnxEncoder)


# -- the CLI ---------------------------------------------------------------------------------------
PROBE = """
import json, sys
from fashion_cli.main import main
rc = main(sys.argv[1:])
print(json.dumps({"rc": rc, "heavy": sorted(m for m in ("torch", "transformers") if m in sys.modules)}))
"""


def _cli_search(runtime: str, env: dict[str, str]) -> tuple[list[int], list[str]]:
    proc = subprocess.run([sys.executable, "-c", PROBE, "search", "red dress for women", "-k", "5", "--json"],
                          env={**env, "FASHION_ENCODER_RUNTIME": runtime}, cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    hits_line, probe_line = proc.stdout.strip().splitlines()[-2:]
    probe = json.loads(probe_line)
    assert probe["rc"] == 0, proc.stderr
    return [hit["id"] for hit in json.loads(hits_line)], probe["heavy"]


@pytest.mark.slow
def test_a_cli_search_on_an_export_imports_neither_torch_nor_transformers(
        plain_model: Path, synthetic_catalog: Path, tmp_path: Path) -> None:
    from fashion_core.ingest import index_catalog
    from fashion_core.stores.backends import open_index

    model = _copy(plain_model, tmp_path)
    settings = Settings(model=str(model), home=tmp_path / "home", index_dir=tmp_path / "index", device="cpu",
                        encoder_runtime="torch")
    index = open_index(settings)
    try:  # built by torch, searched by ONNX: the same model version
        index_catalog(synthetic_catalog, ClipEncoder.from_pretrained(model, device="cpu"), index)
    finally:
        index.close()
    export_onnx(model)
    env = {key: value for key, value in os.environ.items() if not key.startswith("FASHION_")}
    env.update(FASHION_MODEL=str(model), FASHION_HOME=str(tmp_path / "home"),
               FASHION_INDEX_DIR=str(tmp_path / "index"), FASHION_DEVICE="cpu",
               PYTHONPATH=os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]))
    onnx_ids, onnx_heavy = _cli_search("auto", env)
    assert onnx_heavy == [] and len(onnx_ids) == 5
    torch_ids, torch_heavy = _cli_search("torch", env)
    assert torch_heavy == ["torch", "transformers"]
    assert onnx_ids == torch_ids
