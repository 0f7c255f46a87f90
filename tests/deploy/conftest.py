"""Fixtures for the deployment tests: Redis from the indexer tests, the CLI parser of the images' commands."""

from __future__ import annotations

import argparse

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
