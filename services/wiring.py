"""Settings -> the encoder and the search engine an entry point runs: the one home of that wiring.

Every entry point calls it: the CLI, the query service (``open_encoder``), the encoder service
(``local_encoder``: it *is* the remote encoder), the indexer's Celery tasks and in-process distributor, and the
benchmarks. Which index backend serves is decided once, in :mod:`fashion_core.stores.backends`; this module
only asks it. Heavy imports (torch, transformers) happen when a torch encoder is built, never at import time, so a
client that only talks gRPC (the web gateway) pays nothing for them, and a search on the CPU with a model that
has an ONNX export (``local_encoder``) never imports them.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from fashion_core.errors import InvalidInputError, NotFoundError
from fashion_core.settings import Settings

if TYPE_CHECKING:
    from fashion_core.model.base import Encoder
    from fashion_core.search import SearchEngine


def local_encoder(settings: Settings, batch_size: int | None = None) -> Encoder:
    """The CLIP model in this process: ``settings.model`` (a checkpoint folder or a hub id), else the newest
    trained recipe (:func:`fashion_core.model.resolve.resolve_model`), encoding ``batch_size`` items per forward
    pass (default ``settings.encode_batch_size``), in the runtime ``settings.encoder_runtime`` picks:

    - ``auto``: ONNX Runtime (:class:`~fashion_core.model.onnx_encoder.OnnxEncoder`, no torch imported) when the
      checkpoint folder has an ONNX export for its current weights and the device is the CPU (``cpu``, or
      ``auto`` on a machine without CUDA), else torch (:class:`~fashion_core.model.encoder.ClipEncoder`);
    - ``onnx``: ONNX Runtime on the CPU, exporting the checkpoint first when it has no current export (which
      loads torch, once);
    - ``torch``: torch on ``settings.device``.

    Raises NotFoundError when no model is configured or trained, InvalidInputError for an unloadable one, and
    for ``onnx`` with a hub id (export a local folder) or with ``device=cuda``."""
    from fashion_core.model.resolve import resolve_model

    name = resolve_model(settings)
    batch = batch_size or settings.encode_batch_size
    if settings.encoder_runtime != "torch":
        onnx = _onnx_encoder(settings, name, batch)
        if onnx is not None:
            return onnx
    from fashion_core.model.encoder import ClipEncoder

    return ClipEncoder.from_pretrained(name, device=settings.device, batch_size=batch)


def _onnx_encoder(settings: Settings, name: str, batch_size: int) -> Encoder | None:
    """The ONNX runtime ``settings.encoder_runtime`` (auto or onnx) asks for, or None for torch."""
    required = settings.encoder_runtime == "onnx"
    path = Path(name)
    if not path.is_dir():
        if required and (path.is_absolute() or name.startswith(".") or path.exists()):
            raise NotFoundError(f"{name}: no such checkpoint directory")
        if required:
            raise InvalidInputError(f"encoder_runtime=onnx serves a local checkpoint folder, not the hub id {name!r}: "
                                    "save it to a folder and run `fashion-search export-onnx --model DIR`")
        return None
    if settings.device == "cuda":
        if required:
            raise InvalidInputError("encoder_runtime=onnx runs on the CPU; device=cuda needs encoder_runtime=torch")
        return None
    if not required and (importlib.util.find_spec("onnxruntime") is None
                         or (settings.device == "auto" and _has_cuda())):
        return None
    from fashion_core.model.base import weights_version
    from fashion_core.model.onnx_encoder import OnnxEncoder, find_export

    version = weights_version(path)
    if find_export(path, settings.home, version) is None:
        if not required:
            return None
        from fashion_core.model.onnx_export import export_onnx

        export_onnx(path, home=settings.home)
    return OnnxEncoder.from_checkpoint(path, settings.home, batch_size=batch_size, version=version)


def _has_cuda() -> bool:
    """Whether torch sees a CUDA device; without an NVIDIA driver (Linux) that is known without importing torch."""
    if sys.platform.startswith("linux") and not Path("/proc/driver/nvidia/version").exists():
        return False
    import torch

    return bool(torch.cuda.is_available())


def open_encoder(settings: Settings) -> Encoder:
    """The encoder service's client when ``settings.encoder_address`` is set, else :func:`local_encoder`."""
    if settings.encoder_address:
        from services.encoder_client import EncoderClient

        return EncoderClient.from_settings(settings)
    return local_encoder(settings)


def open_engine(settings: Settings, encoder: Encoder | None = None) -> SearchEngine:
    """A search engine over the serving index ``settings.index_name`` of the configured backend, encoding queries
    with ``encoder`` (default :func:`open_encoder`) and searching text the configured way (dense, lexical or
    hybrid: :class:`fashion_core.search.TextSearchConfig`)."""
    from fashion_core.search import SearchEngine, TextSearchConfig
    from fashion_core.stores.backends import open_index

    return SearchEngine(encoder or open_encoder(settings), open_index(settings),
                        text=TextSearchConfig.from_settings(settings))
