"""CLIP checkpoint loading, the batch encoder and the tiny offline checkpoint factory."""

from fashion_core.model.encoder import ClipEncoder, Encoder, ModelInfo
from fashion_core.model.factory import TinyClipSpec, build_tiny_clip

__all__ = ["ClipEncoder", "Encoder", "ModelInfo", "TinyClipSpec", "build_tiny_clip"]
