"""Settings -> the encoder and the search engine an entry point runs: the one home of that wiring.

Every entry point calls it: the CLI, the query service (``open_encoder``), the encoder service
(``local_encoder``: it *is* the remote encoder), the indexer's Celery tasks and in-process distributor, and the
benchmarks. Which index backend serves is decided once, in :mod:`fashion_core.stores.backends`; this module
only asks it. Heavy imports (torch, transformers) happen when an encoder is built, never at import time, so a
client that only talks gRPC (the web gateway) pays nothing for them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fashion_core.settings import Settings

if TYPE_CHECKING:
    from fashion_core.model.encoder import ClipEncoder, Encoder
    from fashion_core.search import SearchEngine


def local_encoder(settings: Settings, batch_size: int | None = None) -> ClipEncoder:
    """The CLIP model in this process: ``settings.model`` (a checkpoint folder or a hub id), else the newest
    trained recipe (:func:`fashion_core.model.resolve.resolve_model`), on ``settings.device``, encoding
    ``batch_size`` items per forward pass (default ``settings.encode_batch_size``).

    Raises NotFoundError when no model is configured or trained, InvalidInputError for an unloadable one."""
    from fashion_core.model.encoder import ClipEncoder
    from fashion_core.model.resolve import resolve_model

    return ClipEncoder.from_pretrained(resolve_model(settings), device=settings.device,
                                       batch_size=batch_size or settings.encode_batch_size)


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
