"""Fixtures for the deployment tests: Redis from the indexer tests, the CLI parser of the images' commands."""

from __future__ import annotations

import argparse
import itertools

import pytest

from tests.indexer.conftest import redis_url  # noqa: F401 - a clean Redis db, flushed around each test


@pytest.fixture(scope="session")
def cli_parser() -> argparse.ArgumentParser:
    """The `fashion-search` subcommands that the images and the chart run (the others are not needed to check
    their argument lists)."""
    from fashion_cli import commands_indexer, commands_services, commands_web

    parser = argparse.ArgumentParser(prog="fashion-search")
    sub = parser.add_subparsers(dest="command", required=True)
    for module in (commands_services, commands_indexer, commands_web):
        module.register(sub)
    return parser


def explicit_listen_host(argv: list[str]) -> str | None:
    """The host a serve command's arguments name explicitly (``--host H``, or serve-admin's ``--address H:PORT``),
    None when they leave it to the CLI's default (loopback: fashion_cli.options.LISTEN_HOST)."""
    for flag, value in itertools.pairwise(argv):
        if flag == "--host":
            return value
        if flag == "--address":
            return value.rsplit(":", 1)[0]
    return None
