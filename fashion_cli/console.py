"""Rich consoles for CLI output (wide tables when stdout is not a terminal: logs, CI, pipes) and the result
printers that the embedded commands and the service-client commands share.

Both consoles have rich markup OFF: every string they print (table titles and cells, rules, messages) is shown
as it is, so that user and catalog text with square brackets (``shirt [red]``, ``Kids[bold]``, ``[/x]``) is
neither eaten as a style nor a ``MarkupError``. Colour is asked for with ``style=`` or ``rich.text.Text``, never
with markup tags in a string. Rich renderables that parse markup whatever the console says (``TextColumn``,
``console.status``) get only constant text or ``markup=False``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence

from rich.console import Console
from rich.table import Table
from rich.text import Text

from fashion_core.stores.base import SearchHit
from fashion_core.stores.filters import SearchFilter
from fashion_core.zeroshot import LabelScore

console = Console(width=None if sys.stdout.isatty() else 160, markup=False)
err_console = Console(stderr=True, markup=False)


def print_error(message: object) -> None:
    """The CLI's one-line ``error: ...`` on stderr; ``message`` is shown verbatim."""
    err_console.print(Text.assemble(("error:", "red"), " ", str(message)), highlight=False, soft_wrap=True)


def hits_table(hits: Sequence[SearchHit], title: str) -> Table:
    table = Table("#", "id", "score", "matched", "name", "gender", "article", "colour", "season", "usage", "year",
                  title=title)
    for rank, hit in enumerate(hits, start=1):
        p = hit.payload
        table.add_row(str(rank), str(hit.id), f"{hit.score:.4f}", hit.matched, str(p.get("productDisplayName", "")),
                      str(p.get("gender", "")), str(p.get("articleType", "")), str(p.get("baseColour", "")),
                      str(p.get("season", "")), str(p.get("usage", "")), str(p.get("year", "")))
    return table


def no_hits_message(flt: SearchFilter | None = None, mode: str | None = None, index_size: int | None = None) -> str:
    """Why a search found nothing, as far as the caller knows.

    ``mode``: "dense", "hybrid", "image" or "similar" (every product is a candidate: only the filters can leave
    nothing), "lexical" (the query's words must match too), None (not known, e.g. a service's default);
    ``index_size``: the searched index's size when known."""
    if index_size == 0:
        return "no results: the index is empty (run `fashion-search index` first)"
    if flt is None or flt.is_empty:
        return "no products match the query"
    if mode in {"dense", "hybrid", "image", "similar"}:
        return f"no products match the filters ({flt.describe()})"
    return f"no products match the query and the filters ({flt.describe()})"


def print_hits(hits: Sequence[SearchHit], title: str, as_json: bool, *, flt: SearchFilter | None = None,
               mode: str | None = None, index_size: int | None = None) -> None:
    """The hits as a table (or JSON); an empty result says why (:func:`no_hits_message`)."""
    if as_json:
        print(json.dumps([{"id": h.id, "score": h.score, **({"matched": h.matched} if h.matched else {}), **h.payload}
                          for h in hits], ensure_ascii=False))
        return
    if not hits:  # the title and why, no empty table
        console.print(title)
        console.print(no_hits_message(flt, mode, index_size))
        return
    console.print(hits_table(hits, title))


def print_label_scores(scores: Sequence[LabelScore], title: str, as_json: bool) -> None:
    if as_json:
        print(json.dumps([{"label": s.label, "probability": s.probability} for s in scores]))
        return
    table = Table("label", "probability", "", title=title)
    for s in scores:
        table.add_row(s.label, f"{s.probability:.3f}", "█" * round(30 * s.probability))
    console.print(table)
