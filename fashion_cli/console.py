"""Rich consoles for CLI output (wide tables when stdout is not a terminal: logs, CI, pipes) and the result
printers that the embedded commands and the service-client commands share."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence

from rich.console import Console
from rich.table import Table

from fashion_core.stores.base import SearchHit
from fashion_core.zeroshot import LabelScore

console = Console(width=None if sys.stdout.isatty() else 160)


def hits_table(hits: Sequence[SearchHit], title: str) -> Table:
    table = Table("#", "id", "score", "matched", "name", "gender", "article", "colour", "season", "usage", "year",
                  title=title)
    for rank, hit in enumerate(hits, start=1):
        p = hit.payload
        table.add_row(str(rank), str(hit.id), f"{hit.score:.4f}", hit.matched, str(p.get("productDisplayName", "")),
                      str(p.get("gender", "")), str(p.get("articleType", "")), str(p.get("baseColour", "")),
                      str(p.get("season", "")), str(p.get("usage", "")), str(p.get("year", "")))
    return table


def print_hits(hits: Sequence[SearchHit], title: str, as_json: bool) -> None:
    if as_json:
        print(json.dumps([{"id": h.id, "score": h.score, **({"matched": h.matched} if h.matched else {}), **h.payload}
                          for h in hits], ensure_ascii=False))
        return
    console.print(hits_table(hits, title))
    if not hits:
        console.print("no products match the filters")


def print_label_scores(scores: Sequence[LabelScore], title: str, as_json: bool) -> None:
    if as_json:
        print(json.dumps([{"label": s.label, "probability": s.probability} for s in scores]))
        return
    table = Table("label", "probability", "", title=title)
    for s in scores:
        table.add_row(s.label, f"{s.probability:.3f}", "█" * round(30 * s.probability))
    console.print(table)
