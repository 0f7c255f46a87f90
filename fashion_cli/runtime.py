"""Building the encoder, index and engine a command needs from settings."""

from __future__ import annotations

from fashion_core.index.factory import open_index
from fashion_core.model.encoder import ClipEncoder, Encoder
from fashion_core.model.resolve import resolve_model
from fashion_core.search import SearchEngine, TextSearchConfig
from fashion_core.settings import Settings


def open_encoder(settings: Settings) -> Encoder:
    """The encoder service client when an address is configured, else the model in-process."""
    if settings.encoder_address:
        from services.encoder_client import EncoderClient

        return EncoderClient.from_settings(settings)
    return ClipEncoder.from_pretrained(resolve_model(settings), device=settings.device,
                                       batch_size=settings.encode_batch_size)


def open_engine(settings: Settings) -> SearchEngine:
    return SearchEngine(open_encoder(settings), open_index(settings), text=TextSearchConfig.from_settings(settings))
