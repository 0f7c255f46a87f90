"""Index names and version names: the pure rules every store (``store.IndexStore``) applies.

A re-index builds ``<name>__v<stamp>`` next to the serving index, then points ``<name>`` at it; how a store
points a name at a version (a Qdrant alias, a FAISS pointer file) is the store's business (``faiss.store``,
``qdrant.store``). What is common lives here:

- :func:`check_index_name`: an index name is a name, never a path; applied wherever a name enters (opening an
  index, planning a job, any store call taking a name).
- :func:`new_version_name` and :func:`is_version`: a version's name, unique per build and sorted by age.
- :func:`serving_only`: of the names a store holds, those it serves (plain indexes and re-indexed names, not
  their versions), which is all the query service answers for.
- :func:`stale_versions`: what pruning drops (all but the newest ``keep``, never the serving one).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime

from fashion_core.errors import InvalidInputError

VERSION_SEP = "__v"
# Letters, digits, "_", "-" and "." (not first): no "/" or "\\", so never a path, "..", or a hidden file.
INDEX_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,254}")
_VERSION = re.compile(re.escape(VERSION_SEP) + r"\d{20}$")


def check_index_name(name: str) -> str:
    """``name`` when it is an index name; raises InvalidInputError otherwise (paths, "..", empty, odd chars)."""
    if not isinstance(name, str) or not INDEX_NAME.fullmatch(name):
        raise InvalidInputError(f"{name!r} is not an index name: up to 255 letters, digits, '_', '-' or '.', "
                                "starting with a letter or digit")
    return name


def is_version(name: str) -> bool:
    """Whether ``name`` is a built version (``<name>__v<stamp>``) rather than a serving name."""
    return _VERSION.search(name) is not None


def new_version_name(name: str) -> str:
    """``<name>__v<UTC stamp to the microsecond>``: unique per build and sorted by age."""
    return f"{name}{VERSION_SEP}{datetime.now(UTC).strftime('%Y%m%d%H%M%S%f')}"


def version_prefix(name: str) -> str:
    """What every version of ``name`` starts with."""
    return f"{name}{VERSION_SEP}"


def serving_only(names: Iterable[str]) -> list[str]:
    """The serving names among ``names``, sorted: index names that are not versions."""
    return sorted(n for n in set(names) if INDEX_NAME.fullmatch(n) and not is_version(n))


def stale_versions(versions: list[str], serving: str, keep: int) -> list[str]:
    """Of ``versions`` (oldest first), all but the newest ``keep``, never ``serving``; nothing when keep <= 0."""
    return [v for v in versions[:-keep] if v != serving] if keep > 0 else []
