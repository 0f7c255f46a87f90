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
- :func:`companion_name` and :func:`is_companion`: a structure a store keeps beside an index for the filters on one
  value of a broad field (``qdrant.index``: one collection per gender value on a server), named after the index
  (``<name>__by_<field>_<digest of the value>``), never served or listed as an index or a version itself.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from datetime import UTC, datetime

from fashion_core.errors import InvalidInputError

VERSION_SEP = "__v"
# Letters, digits, "_", "-" and "." (not first): no "/" or "\\", so never a path, "..", or a hidden file.
INDEX_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,254}")
_VERSION = re.compile(re.escape(VERSION_SEP) + r"\d{20}$")
COMPANION_SEP = "__by_"
_COMPANION = re.compile(re.escape(COMPANION_SEP) + r"[A-Za-z0-9]+_[0-9a-f]{12}$")


def check_index_name(name: str) -> str:
    """``name`` when it is an index name; raises InvalidInputError otherwise (paths, "..", empty, odd chars)."""
    if not isinstance(name, str) or not INDEX_NAME.fullmatch(name) or is_companion(name):
        raise InvalidInputError(f"{name!r} is not an index name: up to 255 letters, digits, '_', '-' or '.', "
                                f"starting with a letter or digit, not ending like a companion ({COMPANION_SEP}<field>_"
                                "<12 hex digits>)")
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
    """The serving names among ``names``, sorted: index names that are not versions or companions."""
    return sorted(n for n in set(names) if INDEX_NAME.fullmatch(n) and not is_version(n) and not is_companion(n))


def companion_name(name: str, field: str, value: str) -> str:
    """The companion of index ``name`` holding its items whose ``field`` (letters and digits) is ``value``: the
    value enters as the first 12 hex digits of its SHA-1, so any value makes a valid collection name."""
    return f"{name}{COMPANION_SEP}{field}_{hashlib.sha1(value.encode()).hexdigest()[:12]}"


def is_companion(name: str) -> bool:
    """Whether ``name`` names a companion (:func:`companion_name`) rather than an index or a version."""
    return _COMPANION.search(name) is not None


def companion_of(name: str, candidate: str, field: str | None = None) -> bool:
    """Whether ``candidate`` is a companion of index ``name`` itself (on ``field``, or on any field): never of
    another index whose name starts with ``name`` ("cat__by" beside "cat")."""
    rest = candidate[len(name):] if candidate.startswith(name) else ""
    match = _COMPANION.fullmatch(rest)
    return match is not None and (field is None or rest.startswith(f"{COMPANION_SEP}{field}_"))


def stale_versions(versions: list[str], serving: str, keep: int) -> list[str]:
    """Of ``versions`` (oldest first), all but the newest ``keep``, never ``serving``; nothing when keep <= 0."""
    return [v for v in versions[:-keep] if v != serving] if keep > 0 else []
