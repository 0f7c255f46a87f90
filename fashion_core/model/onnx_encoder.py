"""The ONNX Runtime encoder: a checkpoint's ONNX export, encoded without torch or transformers.

An export (written by :func:`fashion_core.model.onnx_export.export_onnx`) is a folder of:

- ``text.onnx``: ``input_ids``, ``attention_mask`` (int64, (batch, sequence)) -> ``features`` (float32,
  (batch, dim), not normalised); both axes dynamic;
- ``image.onnx``: ``pixel_values`` (float32, (batch, 3, height, width)) -> ``features`` (float32, (batch, dim));
- ``tokenizer.json``: the checkpoint's fast tokenizer, read with the ``tokenizers`` library;
- ``preprocessor_config.json``: the image layout (:class:`fashion_core.model.pixels.PixelLayout`);
- ``export.json``: model_id, version (the checkpoint's :func:`weights_version`), dim, logit_scale,
  max_text_len, the tokenizer's padding, the card.

It lives next to the checkpoint as ``<checkpoint>/onnx/`` where that folder is writable, else under
``<home>/onnx/<version>/``; :func:`find_export` serves one only when its recorded version is the checkpoint's
weights version, so a stale export is never used. ``OnnxEncoder`` gives the torch ``ClipEncoder``'s ``info``
(the same version: indexes built by either runtime are searched by the other) and its vectors to within float
rounding (tests hold both model families to max |difference| < 1e-4).
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fashion_core.errors import InvalidInputError, NotFoundError
from fashion_core.model.base import ImageInput, ModelInfo, as_images, check_texts, l2_normalise, weights_version
from fashion_core.model.card import CARD_FILE
from fashion_core.model.pixels import PixelLayout

log = logging.getLogger(__name__)

EXPORT_DIR = "onnx"  # <checkpoint>/onnx, or <home>/onnx/<version>
TEXT_FILE = "text.onnx"
IMAGE_FILE = "image.onnx"
TOKENIZER_FILE = "tokenizer.json"
PREPROCESSOR_FILE = "preprocessor_config.json"
META_FILE = "export.json"  # written last: a folder without it is not an export
EXPORT_FORMAT = 1  # bumped when the files or their inputs change; an older export is then made anew
EXPORT_FILES = (TEXT_FILE, IMAGE_FILE, TOKENIZER_FILE, PREPROCESSOR_FILE, META_FILE)


@dataclass(frozen=True)
class OnnxExport:
    """A complete export folder and its ``export.json``."""

    path: Path
    meta: dict[str, Any]

    @property
    def version(self) -> str:
        return str(self.meta["version"])

    @classmethod
    def read(cls, path: Path) -> OnnxExport | None:
        """The export in ``path``; None when a file is missing, the JSON is unreadable or of another format."""
        try:
            meta = json.loads((path / META_FILE).read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(meta, dict) or meta.get("format") != EXPORT_FORMAT or not meta.get("version"):
            return None
        if not all((path / name).is_file() for name in EXPORT_FILES):
            return None
        return cls(path, meta)


def export_locations(checkpoint: Path, home: Path, version: str) -> tuple[Path, Path]:
    """Where the export of ``checkpoint`` (weights ``version``) may live, in the order they are looked at and
    written to: next to the checkpoint, then the cache ``<home>/onnx/<version>``."""
    return checkpoint / EXPORT_DIR, home / EXPORT_DIR / version


def find_export(checkpoint: Path | str, home: Path, version: str | None = None) -> OnnxExport | None:
    """The export of the checkpoint folder for its current weights, or None (none written, or only a stale one).

    ``version`` is the checkpoint's :func:`weights_version` when the caller has it (else it is computed: reads
    the weight files, loads nothing)."""
    checkpoint = Path(checkpoint)
    version = version or weights_version(checkpoint)
    for place in export_locations(checkpoint, home, version):
        export = OnnxExport.read(place)
        if export is not None and export.version == version:
            return export
        if export is not None:
            log.info("ignoring the ONNX export in %s: made for weights %s, not %s", place, export.version, version)
    return None


def default_threads() -> int:
    """ONNX Runtime's intra-op threads: the CPUs this process may run on, at most 8."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, 8))


class OnnxEncoder:
    """A checkpoint's ONNX export run by ONNX Runtime on the CPU; returns L2-normalised float32 vectors.

    The text and image sessions are made on first use (a text search never loads the image model). Thread-safe:
    ONNX Runtime sessions take concurrent ``run`` calls."""

    def __init__(self, export: OnnxExport, model_id: str | None = None, batch_size: int = 32,
                 threads: int | None = None, card: dict[str, Any] | None = None) -> None:
        meta = export.meta
        self.export = export
        self.batch_size = batch_size
        self.threads = threads or default_threads()
        self.max_text_len = int(meta["max_text_len"])
        layout = PixelLayout.from_config(json.loads((export.path / PREPROCESSOR_FILE).read_text()))
        if layout is None:
            raise InvalidInputError(f"{export.path / PREPROCESSOR_FILE}: not an image layout the ONNX runtime has")
        self.pixels = layout
        self._info = ModelInfo(model_id=model_id or str(meta.get("model_id", export.path)), version=export.version,
                               dim=int(meta["dim"]), device="cpu", logit_scale=float(meta["logit_scale"]),
                               card=card if card is not None else dict(meta.get("card") or {}))
        self._lock = threading.Lock()
        self._sessions: dict[str, Any] = {}
        self._tokenizer: Any = None

    @classmethod
    def from_checkpoint(cls, checkpoint: Path | str, home: Path, batch_size: int = 32,
                        threads: int | None = None, version: str | None = None) -> OnnxEncoder:
        """The encoder of the checkpoint folder's current export (:func:`find_export`; ``version`` = its weights
        version when the caller has it), with the checkpoint's path as ``model_id`` and its card, as
        ``ClipEncoder.from_pretrained`` gives them.

        Raises NotFoundError when the folder is missing or has no export for its current weights."""
        path = Path(checkpoint)
        if not path.is_dir():
            raise NotFoundError(f"{checkpoint}: no such checkpoint directory")
        export = find_export(path, home, version)
        if export is None:
            raise NotFoundError(f"{checkpoint}: no ONNX export for its current weights; make one with "
                                "`fashion-search export-onnx`")
        card_file = path / CARD_FILE
        card = json.loads(card_file.read_text()) if card_file.is_file() else None
        return cls(export, model_id=str(checkpoint), batch_size=batch_size, threads=threads, card=card)

    @property
    def info(self) -> ModelInfo:
        return self._info

    def _session(self, name: str) -> Any:
        with self._lock:
            if name not in self._sessions:
                import onnxruntime as ort

                options = ort.SessionOptions()
                options.intra_op_num_threads = self.threads
                options.inter_op_num_threads = 1
                options.log_severity_level = 3  # errors only
                # no busy-waiting between calls: a query encoder idles most of the time, often beside others
                options.add_session_config_entry("session.intra_op.allow_spinning", "0")
                self._sessions[name] = ort.InferenceSession(str(self.export.path / name), sess_options=options,
                                                            providers=["CPUExecutionProvider"])
            return self._sessions[name]

    def _tokenize(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        with self._lock:
            if self._tokenizer is None:
                from tokenizers import Tokenizer

                meta = self.export.meta["tokenizer"]
                tokenizer = Tokenizer.from_file(str(self.export.path / TOKENIZER_FILE))
                # what transformers' fast tokenizer sets for padding=True, truncation=True, max_length
                tokenizer.enable_truncation(self.max_text_len, strategy="longest_first",
                                            direction=meta["truncation_side"])
                tokenizer.enable_padding(direction=meta["padding_side"], pad_id=int(meta["pad_id"]),
                                         pad_type_id=int(meta["pad_type_id"]), pad_token=meta["pad_token"])
                self._tokenizer = tokenizer
        encodings = self._tokenizer.encode_batch(texts)
        ids = np.asarray([e.ids for e in encodings], dtype=np.int64)
        mask = np.asarray([e.attention_mask for e in encodings], dtype=np.int64)
        return ids, mask

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Texts -> float32 (N, dim), unit rows. Each is truncated to ``max_text_len`` tokens, as in torch.

        Raises InvalidInputError for a text that is empty (or invisible) or over MAX_TEXT_CHARS characters."""
        cleaned = check_texts(texts)
        out: list[np.ndarray] = []
        if cleaned:  # no session opened for nothing to encode
            session = self._session(TEXT_FILE)
            for start in range(0, len(cleaned), self.batch_size):
                ids, mask = self._tokenize(cleaned[start:start + self.batch_size])
                out.append(session.run(None, {"input_ids": ids, "attention_mask": mask})[0])
        return self._normalise(out, len(cleaned))

    def encode_images(self, images: Sequence[ImageInput]) -> np.ndarray:
        """Images (PIL, encoded bytes or SourceImage) -> float32 (N, dim), unit rows.

        Raises InvalidInputError for an image that cannot be decoded."""
        decoded = as_images(images)
        out: list[np.ndarray] = []
        if decoded:  # no session opened for nothing to encode
            session = self._session(IMAGE_FILE)
            for start in range(0, len(decoded), self.batch_size):
                batch = self.pixels(decoded[start:start + self.batch_size])
                out.append(session.run(None, {"pixel_values": batch})[0])
        return self._normalise(out, len(decoded))

    def _normalise(self, chunks: list[np.ndarray], n: int) -> np.ndarray:
        if not chunks:
            return np.zeros((n, self.info.dim), dtype=np.float32)
        return l2_normalise(np.concatenate(chunks))
