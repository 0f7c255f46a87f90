"""Rich consoles for CLI output; wide tables when stdout is not a terminal (logs, CI, pipes)."""

from __future__ import annotations

import sys

from rich.console import Console

console = Console(width=None if sys.stdout.isatty() else 160)
