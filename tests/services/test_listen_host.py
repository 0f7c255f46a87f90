"""Every serve command listens on loopback unless told otherwise (fashion_cli.options.LISTEN_HOST): its gRPC or
HTTP port and its metrics port. Containers say --host 0.0.0.0 themselves (tests/deploy). The sockets a real
`serve-encoder` process listens on are read from the kernel's own table (/proc/net/tcp, tcp6)."""

from __future__ import annotations

import argparse
import ipaddress
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from fashion_core.settings import Settings
from services.channel import free_ports
from services.server import GrpcServer

# The least each serve command needs on its command line; the parser's own list must match it, so that a new
# serve command is checked here too.
MINIMAL_ARGS = {"serve-encoder": [], "serve-query": [], "serve-web": ["--catalog", "cat"], "serve-admin": [],
                "local-stack": []}


def listening(port: int) -> set[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """The local addresses of the TCP sockets in LISTEN state on ``port``."""
    found: set[ipaddress.IPv4Address | ipaddress.IPv6Address] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            hex_address, hex_port = local.split(":")
            if state != "0A" or int(hex_port, 16) != port:
                continue
            raw = bytes.fromhex(hex_address)  # 32-bit words in host (little-endian) order
            found.add(ipaddress.ip_address(b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))))
    return found


def loopback_only(addresses: set[ipaddress.IPv4Address | ipaddress.IPv6Address]) -> bool:
    def loopback(a: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        mapped = a.ipv4_mapped if isinstance(a, ipaddress.IPv6Address) else None
        return a.is_loopback or bool(mapped and mapped.is_loopback)

    return bool(addresses) and all(loopback(a) for a in addresses)


def test_every_serve_command_defaults_to_loopback() -> None:
    from fashion_cli.main import build_parser

    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    serving = {name for name in sub.choices if name.startswith("serve-") or name == "local-stack"}
    assert serving == set(MINIMAL_ARGS)
    for name, extra in MINIMAL_ARGS.items():
        args = parser.parse_args([name, *extra])
        host = args.host if hasattr(args, "host") else args.address.rsplit(":", 1)[0]
        assert host == "127.0.0.1", name


def test_the_kernel_table_tells_loopback_from_every_interface() -> None:
    """The check below is not vacuous: a server told 0.0.0.0 is seen listening beyond loopback."""
    for host, expected in (("127.0.0.1", True), ("0.0.0.0", False)):
        server = GrpcServer(lambda s: [], f"{host}:0")
        try:
            assert loopback_only(listening(server.port)) is expected, (host, listening(server.port))
        finally:
            server.stop(0)


def test_serve_encoder_without_host_listens_on_loopback_only(service_settings: Settings, tmp_path: Path) -> None:
    port, metrics_port = free_ports(2)
    env = {**os.environ, "FASHION_MODEL": str(service_settings.model), "FASHION_HOME": str(tmp_path)}
    server = subprocess.Popen([sys.executable, "-m", "fashion_cli.main", "serve-encoder", "--port", str(port),
                               "--metrics-port", str(metrics_port)],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub, deadline = health_pb2_grpc.HealthStub(channel), time.monotonic() + 120
            while True:
                assert server.poll() is None, server.communicate()[1]
                try:
                    if stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status == \
                            health_pb2.HealthCheckResponse.SERVING:
                        break
                except grpc.RpcError:
                    assert time.monotonic() < deadline, "serve-encoder did not start"
                    time.sleep(0.2)
        assert loopback_only(listening(port)), listening(port)
        assert loopback_only(listening(metrics_port)), listening(metrics_port)
    finally:
        server.send_signal(signal.SIGTERM)
        out, _ = server.communicate(timeout=30)
    assert f"listening on 127.0.0.1:{port}, metrics on 127.0.0.1:{metrics_port}/metrics" in " ".join(out.split())
