"""The gRPC message-size options, built once for every server and client channel of the services, and free ports
for the servers a parent process starts."""

from __future__ import annotations

import contextlib
import socket

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


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """``count`` distinct TCP ports free on ``host`` (all bound at once, then released), for servers whose port a
    parent must know before it starts them. Ports taken one at a time can repeat (a released port is free again),
    and another process can still take one before the server binds it: a caller checks that the server it
    started is the one answering there (``deploy.local.stack.grpc_serving`` asks for its service by name)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET))
                   for _ in range(count)]
        for sock in sockets:
            sock.bind((host, 0))
        return [sock.getsockname()[1] for sock in sockets]
