"""User and catalog text with square brackets is printed as it is: never parsed as rich markup (a MarkupError
traceback for ``[/x]``, a silently eaten ``[red]`` or ``[bold]``)."""

from __future__ import annotations

import pytest

from fashion_cli.console import console, err_console, hits_table, print_error, print_hits, print_label_scores
from fashion_cli.main import main
from fashion_core.errors import InvalidInputError
from fashion_core.stores.base import SearchHit
from fashion_core.zeroshot import LabelScore

BRACKETED = ("shirt [/x]", "shirt [red]", "Kids[bold]", "[/b] tee", "[link=http://x]y")


@pytest.mark.parametrize("text", BRACKETED)
def test_hits_title_and_cells_are_printed_verbatim(text, capsys) -> None:
    hit = SearchHit(id=1, score=0.5, payload={"productDisplayName": text, "gender": text, "baseColour": "[red]"})
    print_hits([hit], f"{text!r} | hybrid | gender={text}", as_json=False)
    out = capsys.readouterr().out
    assert f"{text!r} | hybrid | gender={text}" in out
    assert out.count(text) >= 3 and "[red]" in out


def test_label_scores_print_verbatim(capsys) -> None:
    print_label_scores([LabelScore("a [/b]", 0.6), LabelScore("[red]", 0.4)], "zero-shot: x[/y].jpg", as_json=False)
    out = capsys.readouterr().out
    assert "a [/b]" in out and "[red]" in out and "zero-shot: x[/y].jpg" in out


def test_consoles_never_parse_markup(capsys) -> None:
    console.print("plain [/x] [bold]text[/bold]")
    console.rule("rule [/x]")
    console.print(hits_table([], "title [/x]"))
    err_console.print("err [/x]")
    captured = capsys.readouterr()
    assert "plain [/x] [bold]text[/bold]" in captured.out
    assert "rule [/x]" in captured.out and "title [/x]" in captured.out
    assert "err [/x]" in captured.err


def test_error_line_shows_brackets(capsys) -> None:
    print_error(InvalidInputError("unknown gender value 'Kids[bold]'"))
    assert capsys.readouterr().err == "error: unknown gender value 'Kids[bold]'\n"


@pytest.mark.parametrize("path", ["/nonexistent/no[/such]dir", "/nonexistent/a[red]b"])
def test_cli_error_with_brackets_is_one_line_exit_2(path, capsys) -> None:
    assert main(["index", path]) == 2
    assert capsys.readouterr().err == f"error: {path}: no such catalog directory\n"
