"""The gRPC message-size options, built once for every server and client channel of the services."""

from __future__ import annotations

import grpc

from fashion_core.settings import Settings

# FASHION_GRPC_MAX_MESSAGE_MB's default (64 MB), in bytes: what a server or client gets unless told otherwise.
MAX_MESSAGE_BYTES = int(Settings.model_fields["grpc_max_message_mb"].default * 1024 * 1024)


def message_options(max_message_bytes: int = MAX_MESSAGE_BYTES) -> list[tuple[str, int]]:
    """The largest message sent and received, as gRPC channel/server options."""
    return [("grpc.max_send_message_length", max_message_bytes),
            ("grpc.max_receive_message_length", max_message_bytes)]


def insecure_channel(address: str, max_message_bytes: int = MAX_MESSAGE_BYTES) -> grpc.Channel:
    """A client channel to ``address`` with the services' message limit."""
    return grpc.insecure_channel(address, options=message_options(max_message_bytes))
