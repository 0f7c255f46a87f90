"""An empty result says why: the index is empty, no product matches the query (no filters given), or the filters
(with or without the query's words) leave nothing. It used to say "no products match the filters" always."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

import fashion_cli.commands_core
import fashion_cli.commands_services
from fashion_cli.console import no_hits_message
from fashion_cli.main import main
from fashion_core.stores.filters import SearchFilter

MEN = SearchFilter.build(gender="Men")


@pytest.mark.parametrize(("flt", "mode", "size", "message"), [
    (None, "lexical", 140, "no products match the query"),
    (SearchFilter.build(), "lexical", None, "no products match the query"),
    (MEN, "lexical", 140, "no products match the query and the filters (gender=Men)"),
    (MEN, None, None, "no products match the query and the filters (gender=Men)"),
    (MEN, "dense", 140, "no products match the filters (gender=Men)"),
    (MEN, "image", None, "no products match the filters (gender=Men)"),
    (None, "dense", 0, "no results: the index is empty (run `fashion-search index` first)"),
    (MEN, "lexical", 0, "no results: the index is empty (run `fashion-search index` first)"),
])
def test_no_hits_message(flt, mode, size, message) -> None:
    assert no_hits_message(flt, mode, size) == message


class FakeEngine:
    def __init__(self, size: int) -> None:
        self.text = SimpleNamespace(default_mode="hybrid")
        self.index = SimpleNamespace(count=lambda: size, close=lambda: None)

    def resolve_filter(self, flt: SearchFilter | None) -> SearchFilter | None:
        return flt  # its values as the index spells them: these tests name them so

    def search_text(self, *_args: object) -> list:
        return []


@pytest.mark.parametrize(("argv", "size", "message"), [
    (["search", "zzzzqqq", "--mode", "lexical"], 140, "no products match the query"),
    (["search", "zzzzqqq", "--mode", "lexical", "--gender", "Men"], 140,
     "no products match the query and the filters (gender=Men)"),
    (["search", "red", "--gender", "Men"], 140, "no products match the filters (gender=Men)"),
    (["search", "red"], 0, "no results: the index is empty"),
])
def test_search_says_why_nothing_was_found(argv, size, message, monkeypatch, capsys) -> None:
    monkeypatch.setattr(fashion_cli.commands_core, "open_engine", lambda settings: FakeEngine(size))
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert message in out and "no products match the filters" not in out.replace(message, "")
    assert "┏" not in out and "name" not in out  # the title and the reason, no empty table


@pytest.mark.parametrize(("size", "message"), [(0, "no results: the index is empty"),
                                               (140, "no products match the query")])
def test_query_client_asks_the_index_size_when_nothing_was_found(size, message, monkeypatch, capsys) -> None:
    client = SimpleNamespace(
        search_text=lambda *args, **kwargs: [], close=lambda: None,
        list_indexes=lambda: [SimpleNamespace(name="other", size=9, is_default=False),
                              SimpleNamespace(name="products", size=size, is_default=True)])
    monkeypatch.setattr(fashion_cli.commands_services, "_client", lambda args: client)
    assert main(["query", "text", "zzzzqqq", "--mode", "lexical"]) == 0
    assert message in capsys.readouterr().out
