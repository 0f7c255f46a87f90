"""Checks of the paths a command will write, made before the work starts: a run must not compute for minutes and
then fail on an output path it could have refused at once (a directory, a missing or read-only parent, an
extension nothing can write)."""

from __future__ import annotations

import os
from collections.abc import Collection
from pathlib import Path

from fashion_core.errors import InvalidInputError


def _writable_parent(out: Path, what: str) -> None:
    """The nearest existing ancestor of ``out`` is a writable directory (the missing ones will be made in it)."""
    ancestor = out.absolute().parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise InvalidInputError(f"{what} {out}: {ancestor} is not a directory")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise InvalidInputError(f"{what} {out}: {ancestor} is not writable")


def check_output_file(path: str | Path, what: str = "output file", suffixes: Collection[str] | None = None) -> Path:
    """``path`` as a Path when a file can be written there: not a directory, an extension of ``suffixes``
    (lower-case, with the dot; None = any), the file writable if it exists, else its parent creatable.

    ``what`` names the path in the message (e.g. the option, ``--grid``). Raises InvalidInputError."""
    out = Path(path)
    if out.is_dir():
        raise InvalidInputError(f"{what} {out}: is a directory; give a file name")
    if suffixes is not None and out.suffix.lower() not in suffixes:
        raise InvalidInputError(f"{what} {out}: unsupported extension {out.suffix or '(none)'!r}; use one of "
                                f"{', '.join(sorted(suffixes))}")
    if out.exists():
        if not os.access(out, os.W_OK):
            raise InvalidInputError(f"{what} {out}: not writable")
    else:
        _writable_parent(out, what)
    return out


def check_output_dir(path: str | Path, what: str = "output folder") -> Path:
    """``path`` as a Path when files can be written in it: a writable directory, or creatable. Raises
    InvalidInputError."""
    out = Path(path)
    if out.exists():
        if not out.is_dir():
            raise InvalidInputError(f"{what} {out}: not a directory")
        if not os.access(out, os.W_OK | os.X_OK):
            raise InvalidInputError(f"{what} {out}: not writable")
    else:
        _writable_parent(out, what)
    return out
