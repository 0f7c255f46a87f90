"""The encoder path respects gRPC message limits: photo-sized images index the same way in-process and through the
service (original bytes, requests split by size), and a message-size error is final, not "retry later"."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fashion_core.catalog import read_catalog
from fashion_core.errors import ResourceExhaustedError, TooLargeError
from fashion_core.ingest import index_catalog
from fashion_core.settings import Settings
from fashion_core.stores.faiss import FaissIndex
from indexer.pipeline import TRANSIENT_ERRORS
from services.encoder_client import EncoderClient
from services.encoder_service import start_encoder_server

LIMIT_MB = 1.0  # the service's message limit in these tests; the photos below are ~300 KB each


def photo_catalog(src: Path, dst: Path, n: int = 12, size: tuple[int, int] = (600, 800)) -> Path:
    """``n`` products of ``src`` with photo-like JPEGs: the product drawn at ``size`` with sensor noise."""
    (dst / "images").mkdir(parents=True, exist_ok=True)
    with (src / "styles.csv").open(encoding="utf-8", errors="replace") as fh:
        rows = list(csv.reader(fh))
    header, body = rows[0], [r for r in rows[1:] if r and r[0].isdigit()][:n]
    with (dst / "styles.csv").open("w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows([header, *body])
    rng = np.random.default_rng(0)
    for row in body:
        image = Image.open(src / "images" / f"{row[0]}.jpg").convert("RGB").resize(size)
        noise = rng.normal(0, 25, (size[1], size[0], 3)).astype(np.float32)
        noisy = np.clip(np.asarray(image).astype(np.float32) + noise, 0, 255).astype(np.uint8)
        Image.fromarray(noisy).save(dst / "images" / f"{row[0]}.jpg", quality=95)
    return dst


@pytest.fixture(scope="module")
def photos(tmp_path_factory, synthetic_catalog) -> Path:
    catalog = photo_catalog(synthetic_catalog, tmp_path_factory.mktemp("photos"))
    sizes = [p.stat().st_size for p in (catalog / "images").iterdir()]
    assert sum(sizes) > 3 * LIMIT_MB * 2**20 and max(sizes) < LIMIT_MB * 2**20 / 2
    return catalog


@pytest.fixture(scope="module")
def big_photos(tmp_path_factory, synthetic_catalog) -> Path:
    """Eleven 1500x2000 photos: ~22 MB of JPEG, ~75 MB as decoded pixels re-encoded to PNG (what the client
    used to send, over the default 64 MB message limit)."""
    return photo_catalog(synthetic_catalog, tmp_path_factory.mktemp("big-photos"), n=11, size=(1500, 2000))


def test_photos_go_as_their_own_bytes_under_the_default_limit(big_photos, encoder_server, tiny_encoder,
                                                              tmp_path) -> None:
    client = EncoderClient.from_settings(Settings(encoder_address=encoder_server.address))
    try:
        remote = FaissIndex(tmp_path / "remote")
        report = index_catalog(big_photos, client, remote, batch_size=64)
    finally:
        client.close()
    assert report.indexed == 11 and not report.skipped
    local = FaissIndex(tmp_path / "local")
    index_catalog(big_photos, tiny_encoder, local, batch_size=64)
    ids = sorted(local.all_ids())
    got, want = remote.retrieve(ids, with_vectors=True), local.retrieve(ids, with_vectors=True)
    np.testing.assert_allclose(np.stack([got[i][1] for i in ids]), np.stack([want[i][1] for i in ids]), atol=1e-5)


@pytest.fixture(scope="module")
def small_encoder_server(tmp_path_factory, tiny_encoder):
    settings = Settings(grpc_max_message_mb=LIMIT_MB, home=tmp_path_factory.mktemp("home"))
    server, servicer = start_encoder_server(settings, encoder=tiny_encoder)
    yield server
    server.stop(0)
    servicer.close()


def test_photos_index_the_same_in_process_and_through_the_service(photos, small_encoder_server, tiny_encoder,
                                                                   tmp_path) -> None:
    client = EncoderClient.from_settings(Settings(encoder_address=small_encoder_server.address,
                                                  grpc_max_message_mb=LIMIT_MB))
    try:
        remote = FaissIndex(tmp_path / "remote")
        report = index_catalog(photos, client, remote, batch_size=64)  # one batch: 3+ MB of JPEGs
    finally:
        client.close()
    local = FaissIndex(tmp_path / "local")
    index_catalog(photos, tiny_encoder, local, batch_size=64)
    assert report.indexed == len(read_catalog(photos).products) == 12 and not report.skipped
    assert remote.all_ids() == local.all_ids()
    ids = sorted(local.all_ids())
    got, want = remote.retrieve(ids, with_vectors=True), local.retrieve(ids, with_vectors=True)
    np.testing.assert_allclose(np.stack([got[i][1] for i in ids]), np.stack([want[i][1] for i in ids]), atol=1e-5)


def test_a_message_over_the_services_limit_is_final_not_transient(photos, small_encoder_server) -> None:
    files = sorted((photos / "images").iterdir())
    images = [p.read_bytes() for p in files]
    # a client that believes the limit is 64 MB sends everything in one request: the service refuses it
    client = EncoderClient(small_encoder_server.address, max_message_bytes=64 << 20)
    try:
        with pytest.raises(TooLargeError, match="larger than max") as err:
            client.encode_images(images)
        assert not isinstance(err.value, (ResourceExhaustedError, *TRANSIENT_ERRORS))
    finally:
        client.close()
    # one image larger than the client's own limit is refused before any call
    client = EncoderClient("127.0.0.1:1", max_message_bytes=100_000)
    with pytest.raises(TooLargeError, match="do not fit"):
        client.encode_images([images[0]])
    client.close()


def test_in_memory_images_are_sent_as_the_decoder_reads_them(small_encoder_server, tiny_encoder) -> None:
    """An image made in memory (no file bytes) is sent as PNG of what the one decoder makes of it: a 16-bit
    image scaled, not clamped to white."""
    grey = (np.arange(64 * 48).reshape(48, 64) % 256).astype(np.uint16)
    sixteen = Image.fromarray(grey * 257)
    client = EncoderClient(small_encoder_server.address, max_message_bytes=int(LIMIT_MB * 2**20))
    try:
        got = client.encode_images([sixteen])[0]
    finally:
        client.close()
    want = tiny_encoder.encode_images([Image.fromarray(grey.astype(np.uint8)).convert("RGB")])[0]
    np.testing.assert_allclose(got, want, atol=1e-5)
    buf = io.BytesIO()
    sixteen.save(buf, format="PNG")
    np.testing.assert_allclose(tiny_encoder.encode_images([buf.getvalue()])[0], want, atol=1e-6)
