"""Exports a CLIP-style checkpoint to ONNX for :class:`fashion_core.model.onnx_encoder.OnnxEncoder`.

Both model families the project serves export: ``CLIPModel`` (ViT + CLIP text transformer) and
``VisionTextDualEncoderModel`` (the real-catalog recipe's ConvNeXt + BERT-style text tower). The export uses
torch's TorchScript exporter (``torch.onnx.export(..., dynamo=False)``, which needs the ``onnx`` package and
no other), opset 17, dynamic batch (and sequence) axes. Before an export is moved into place its vectors are
checked against the torch encoder's on texts and images of several shapes; one that does not reproduce them is
not written.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from fashion_core.errors import InvalidInputError, NotFoundError
from fashion_core.model.encoder import ClipEncoder
from fashion_core.model.onnx_encoder import (
    EXPORT_FORMAT,
    IMAGE_FILE,
    META_FILE,
    PREPROCESSOR_FILE,
    TEXT_FILE,
    TOKENIZER_FILE,
    OnnxEncoder,
    OnnxExport,
    export_locations,
)
from fashion_core.model.pixels import PixelLayout

log = logging.getLogger(__name__)

OPSET = 17
# An export whose vectors differ more than this from the torch encoder's (on unit vectors) is refused.
MAX_EXPORT_DIFFERENCE = 1e-4
_CHECK_TEXTS = ["a red dress for women", "men's blue running shoes with white soles",
                "ünïcødé 👗 робe " + "very long text " * 60, "x"]


class _TextFeatures(torch.nn.Module):
    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model.get_text_features(input_ids=input_ids, attention_mask=attention_mask)


class _ImageFeatures(torch.nn.Module):
    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.model.get_image_features(pixel_values=pixel_values)


def _check_images(layout: PixelLayout) -> list[Image.Image]:
    """Random images of several shapes: square, landscape, and the real catalog's 60x80 portraits."""
    rng = np.random.default_rng(0)
    shapes = [(60, 80), (60, 80), (layout.crop[1] * 2, layout.crop[0]), (33, 47)]
    return [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for w, h in shapes]


def _export(module: torch.nn.Module, args: tuple[torch.Tensor, ...], path: Path, inputs: list[str],
            dynamic_axes: dict[str, dict[int, str]]) -> None:
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript tracer's and exporter's notes on traced Python ifs
        torch.onnx.export(module.eval(), args, str(path), dynamo=False, input_names=inputs,
                          output_names=["features"], opset_version=OPSET, dynamic_axes=dynamic_axes,
                          do_constant_folding=True)


def _write(encoder: ClipEncoder, layout: PixelLayout, folder: Path) -> dict[str, Any]:
    tokenizer = encoder.processor.tokenizer
    if not getattr(tokenizer, "is_fast", False):
        raise InvalidInputError(f"{encoder.info.model_id}: the ONNX runtime needs a fast tokenizer "
                                f"(tokenizer.json); this checkpoint has a {type(tokenizer).__name__}")
    if tokenizer.pad_token is None:
        raise InvalidInputError(f"{encoder.info.model_id}: its tokenizer has no padding token")
    from tokenizers import Tokenizer

    backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    backend.no_truncation()  # the encoder sets them, from export.json
    backend.no_padding()
    backend.save(str(folder / TOKENIZER_FILE))
    (folder / PREPROCESSOR_FILE).write_text(json.dumps(layout.config(), indent=2))

    model = encoder.model
    sample = tokenizer(["a red dress", "blue running shoes for men and women"], padding=True, return_tensors="pt")
    _export(_TextFeatures(model), (sample["input_ids"], sample["attention_mask"]), folder / TEXT_FILE,
            ["input_ids", "attention_mask"],
            {"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"},
             "features": {0: "batch"}})
    pixels = torch.zeros((2, 3, *layout.crop), dtype=torch.float32)
    _export(_ImageFeatures(model), (pixels,), folder / IMAGE_FILE, ["pixel_values"],
            {"pixel_values": {0: "batch"}, "features": {0: "batch"}})
    info = encoder.info
    meta = {
        "format": EXPORT_FORMAT, "model_id": info.model_id, "version": info.version, "dim": info.dim,
        "logit_scale": info.logit_scale, "max_text_len": encoder.max_text_len, "family": type(model).__name__,
        "tokenizer": {"pad_id": int(tokenizer.pad_token_id), "pad_token": str(tokenizer.pad_token),
                      "pad_type_id": int(tokenizer.pad_token_type_id), "padding_side": tokenizer.padding_side,
                      "truncation_side": tokenizer.truncation_side},
        "card": info.card, "opset": OPSET, "torch": torch.__version__,
    }
    (folder / META_FILE).write_text(json.dumps(meta, indent=2))
    return meta


def _verify(encoder: ClipEncoder, export: OnnxExport, layout: PixelLayout) -> float:
    """The largest |difference| between the torch and ONNX vectors of the check texts and images."""
    onnx = OnnxEncoder(export, batch_size=encoder.batch_size)
    images = _check_images(layout)
    diffs = [np.abs(encoder.encode_texts(_CHECK_TEXTS) - onnx.encode_texts(_CHECK_TEXTS)).max(),
             np.abs(encoder.encode_texts(_CHECK_TEXTS[:1]) - onnx.encode_texts(_CHECK_TEXTS[:1])).max(),
             np.abs(encoder.encode_images(images) - onnx.encode_images(images)).max()]
    return float(max(diffs))


def export_onnx(checkpoint: Path | str, out_dir: Path | str | None = None, home: Path | None = None) -> Path:
    """Export the checkpoint folder to ONNX and return the export folder (see :mod:`fashion_core.model.onnx_encoder`
    for its files).

    ``out_dir`` None: ``<checkpoint>/onnx`` when the checkpoint folder is writable, else
    ``<home>/onnx/<version>``. An export already there is replaced. The files are written to a temporary folder
    beside the target and moved into place only once checked against the torch encoder.

    Raises NotFoundError for a missing folder, InvalidInputError for a checkpoint the ONNX runtime cannot serve
    (not CLIP-style, a slow tokenizer or one without padding, an image layout other than a shortest-edge resize
    and centre crop, or an export whose vectors differ from torch's by more than 1e-4), OSError when no target
    is writable."""
    path = Path(checkpoint)
    if not path.is_dir():
        raise NotFoundError(f"{checkpoint}: no such checkpoint directory")
    encoder = ClipEncoder.from_pretrained(path, device="cpu")
    layout = PixelLayout.from_config(encoder.processor.image_processor)
    if layout is None:
        raise InvalidInputError(f"{checkpoint}: the ONNX runtime covers a shortest-edge resize and centre crop; "
                                "this checkpoint's image processor does something else")
    if out_dir is not None:
        targets = [Path(out_dir)]
    else:
        beside, cached = export_locations(path, home or path, encoder.info.version)
        targets = [beside] + ([cached] if home is not None else [])
    for i, target in enumerate(targets):
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            work = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
            work.chmod(0o755)  # mkdtemp's 0700 would hide the export from other users of a shared cache
        except OSError:
            if i == len(targets) - 1:
                raise
            log.info("%s is not writable: exporting to %s", target.parent, targets[i + 1])
            continue
        try:
            _write(encoder, layout, work)
            export = OnnxExport.read(work)
            assert export is not None
            difference = _verify(encoder, export, layout)
            if difference > MAX_EXPORT_DIFFERENCE:
                raise InvalidInputError(f"{checkpoint}: the ONNX export's vectors differ from torch's by "
                                        f"{difference:.2g} (more than {MAX_EXPORT_DIFFERENCE}); not written")
            _move_into_place(work, target)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        log.info("exported %s to ONNX in %s (max |difference| from torch %.2g)", checkpoint, target, difference)
        return target
    raise AssertionError("unreachable")


def _move_into_place(work: Path, target: Path) -> None:
    old = None
    if target.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}-old-", dir=target.parent))
        target.replace(old / target.name)
    try:
        work.replace(target)
    except OSError:
        if OnnxExport.read(target) is None:  # not another process's export, written meanwhile
            raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
