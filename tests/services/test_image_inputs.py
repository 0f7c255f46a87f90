"""The encoder and query services read images through the one decoder: as a viewer shows them, shape-checked."""

from __future__ import annotations

import io

import grpc
import numpy as np
import pytest
from fashionsearch.v1 import encoder_pb2, encoder_pb2_grpc
from PIL import Image

from fashion_core.errors import InvalidInputError
from fashion_core.images import load_image
from services.query_client import QueryClient


def _stored_sideways_png(upright: Image.Image, sixteen_bit: bool = False) -> bytes:
    """``upright`` stored rotated, with EXIF orientation 6 ("rotate 90 clockwise to display"), as phones do."""
    stored = upright.transpose(Image.Transpose.ROTATE_90)
    if sixteen_bit:
        stored = Image.fromarray(np.asarray(stored.convert("L")).astype(np.uint16) * 257)
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    stored.save(buf, format="PNG", exif=exif.tobytes())
    return buf.getvalue()


def test_encoder_service_reads_orientation_and_16_bit_like_the_in_process_encoder(encoder_server, channel_to,
                                                                                   tiny_encoder,
                                                                                   synthetic_catalog) -> None:
    upright = load_image(synthetic_catalog / "images" / "10003.jpg")
    stub = encoder_pb2_grpc.EncoderServiceStub(channel_to(encoder_server.address))
    reply = stub.EncodeImages(encoder_pb2.EncodeImagesRequest(images=[
        _stored_sideways_png(upright), _stored_sideways_png(upright, sixteen_bit=True)]), timeout=30)
    got = np.frombuffer(reply.vectors, dtype="<f4").reshape(reply.count, reply.dim)
    want = tiny_encoder.encode_images([upright, upright.convert("L").convert("RGB")])
    np.testing.assert_allclose(got, want, atol=1e-5)

    strip = io.BytesIO()
    Image.new("L", (2_000_000, 1)).save(strip, format="PNG")
    with pytest.raises(grpc.RpcError) as err:
        stub.EncodeImages(encoder_pb2.EncodeImagesRequest(images=[strip.getvalue()]), timeout=30)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "aspect ratio" in err.value.details()


def test_photo_stored_sideways_finds_its_own_product_first(query_server, synthetic_catalog) -> None:
    client = QueryClient(query_server.address)
    try:
        upright = load_image(synthetic_catalog / "images" / "10007.jpg")
        hits = client.search_image(_stored_sideways_png(upright), 3)
        assert hits[0].id == 10007 and hits[0].score == pytest.approx(1.0, abs=1e-4)
        strip = io.BytesIO()
        Image.new("RGB", (1, 100_000)).save(strip, format="PNG")
        with pytest.raises(InvalidInputError, match="aspect ratio"):
            client.search_image(strip.getvalue(), 3)
    finally:
        client.close()
