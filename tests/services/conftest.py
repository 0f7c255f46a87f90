"""Real encoder and query servers on free loopback ports, over a tiny model and an indexed catalog."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from fashion_core.settings import Settings


@pytest.fixture(scope="module")
def service_settings(tmp_path_factory, tiny_model_dir: Path, synthetic_catalog: Path) -> Settings:
    from fashion_core.ingest import index_catalog
    from fashion_core.model.encoder import ClipEncoder
    from fashion_core.stores.backends import open_index

    settings = Settings(model=str(tiny_model_dir), index_backend="faiss",
                        index_dir=tmp_path_factory.mktemp("svc-index"), home=tmp_path_factory.mktemp("home"))
    index = open_index(settings)
    index_catalog(synthetic_catalog, ClipEncoder.from_pretrained(tiny_model_dir), index)
    index.close()
    return settings


@pytest.fixture(scope="module")
def encoder_server(service_settings: Settings, tiny_encoder):
    from services.encoder_service import start_encoder_server

    server, servicer = start_encoder_server(service_settings, encoder=tiny_encoder)
    yield server
    server.stop(0)
    servicer.close()


@pytest.fixture(scope="module")
def query_server(service_settings: Settings, encoder_server):
    from services.query_service import start_query_server

    settings = service_settings.model_copy(update={"encoder_address": encoder_server.address})
    server, servicer = start_query_server(settings)
    yield server
    server.stop(0)
    servicer.indexes.close()


@pytest.fixture()
def channel_to():
    channels: list[grpc.Channel] = []

    def make(address: str) -> grpc.Channel:
        channels.append(grpc.insecure_channel(address))
        return channels[-1]

    yield make
    for channel in channels:
        channel.close()
