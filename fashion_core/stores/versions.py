"""Serving names -> physical index versions: what a full re-index switches atomically.

A re-index builds ``<name>__v<stamp>`` next to the serving index, then points ``<name>`` at it:

- Qdrant (server and embedded): a collection alias. Aliases resolve inside Qdrant, so a client that opens
  ``<name>`` follows the switch on its next request; the switch is one ``update_collection_aliases`` call.
- FAISS: a pointer file ``<name>.alias`` next to the version dirs, replaced with ``os.replace`` (atomic on
  POSIX). :func:`resolve_faiss` reads it, so a reader sees the new version when it (re)opens the index;
  :func:`faiss_stamp` is cheap enough to check on every request, which the query service does to re-open
  an index after a switch.

A name with neither an alias nor a pointer is a plain index (what ``fashion-search index`` writes).

An index name is a name, never a path: :func:`check_index_name` is applied wherever a name enters (opening an
index, planning a job), and :func:`serving_names` lists what a store serves (plain indexes and aliases, not
their versions), which is all the query service answers for.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from fashion_core.errors import InvalidInputError
from fashion_core.settings import Settings
from fashion_core.stores.backends import backend

if TYPE_CHECKING:
    from qdrant_client import QdrantClient

log = logging.getLogger(__name__)

VERSION_SEP = "__v"
POINTER_SUFFIX = ".alias"
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


def serving_names(settings: Settings, client: QdrantClient | None = None) -> list[str]:
    """The names a store serves, sorted: plain indexes and re-indexed names (aliases, FAISS pointers), never
    their versions. Qdrant needs ``client``."""
    if backend(settings) == "faiss":
        root = faiss_root(settings)
        if not root.is_dir():
            return []
        names = {p.name for p in root.iterdir() if p.is_dir() and (p / "meta.json").is_file()}
        names |= {p.name.removesuffix(POINTER_SUFFIX) for p in root.glob(f"*{POINTER_SUFFIX}") if p.is_file()}
    else:
        if client is None:
            raise ValueError("a Qdrant client is needed to list Qdrant collections")
        names = {c.name for c in client.get_collections().collections} | set(_qdrant_aliases(client))
    return sorted(n for n in names if INDEX_NAME.fullmatch(n) and not is_version(n))


def new_version_name(name: str) -> str:
    """``<name>__v<UTC stamp to the microsecond>``: unique per build and sorted by age."""
    return f"{name}{VERSION_SEP}{datetime.now(UTC).strftime('%Y%m%d%H%M%S%f')}"


def faiss_root(settings: Settings) -> Path:
    return settings.index_dir / "faiss"


def faiss_pointer(settings: Settings, name: str) -> Path:
    return faiss_root(settings) / f"{name}{POINTER_SUFFIX}"


def resolve_faiss(settings: Settings, name: str) -> str:
    """The FAISS dir name that serves ``name``: the pointer's target, else ``name`` itself."""
    pointer = faiss_pointer(settings, check_index_name(name))
    try:
        target = pointer.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return name
    return check_index_name(target) if target else name


def faiss_stamp(settings: Settings, name: str) -> tuple[str, int | None]:
    """What serves ``name`` now, as (version dir, ``meta.json`` mtime in ns; None when there is none).

    It changes when a re-index switches the pointer, and when a plain index is rewritten (``meta.json`` is
    written last, so a changed stamp means a complete index). One small read and one ``stat``: cheap enough
    to check before every request, which is how a reader notices a switch without reloading."""
    version = resolve_faiss(settings, name)
    try:
        mtime: int | None = (faiss_root(settings) / version / "meta.json").stat().st_mtime_ns
    except FileNotFoundError:
        mtime = None
    return version, mtime


def _qdrant_aliases(client: QdrantClient) -> dict[str, str]:
    return {a.alias_name: a.collection_name for a in client.get_aliases().aliases}


def serving_version(settings: Settings, name: str, client: QdrantClient | None = None) -> str:
    """The physical collection/dir ``name`` resolves to now (``name`` itself for a plain index)."""
    if backend(settings) == "faiss":
        return resolve_faiss(settings, name)
    if client is None:
        raise ValueError("a Qdrant client is needed to resolve a Qdrant alias")
    return _qdrant_aliases(client).get(name, name)


def list_versions(settings: Settings, name: str, client: QdrantClient | None = None) -> list[str]:
    """Every built version of ``name``, oldest first."""
    prefix = f"{name}{VERSION_SEP}"
    if backend(settings) == "faiss":
        root = faiss_root(settings)
        names = [p.name for p in root.iterdir() if p.is_dir() and p.name.startswith(prefix)] if root.is_dir() else []
    else:
        if client is None:
            raise ValueError("a Qdrant client is needed to list Qdrant collections")
        names = [c.name for c in client.get_collections().collections if c.name.startswith(prefix)]
    return sorted(names)


def switch(settings: Settings, name: str, version: str, client: QdrantClient | None = None) -> None:
    """Point ``name`` at ``version`` atomically; readers see either the old or the new version, never a mix."""
    if backend(settings) == "faiss":
        pointer = faiss_pointer(settings, name)
        pointer.parent.mkdir(parents=True, exist_ok=True)
        tmp = pointer.with_name(pointer.name + ".tmp")
        tmp.write_text(version, encoding="utf-8")
        os.replace(tmp, pointer)
        log.info("FAISS %s -> %s", name, version)
        return
    from qdrant_client import models

    if client is None:
        raise ValueError("a Qdrant client is needed to switch a Qdrant alias")
    aliases = _qdrant_aliases(client)
    if name not in aliases and client.collection_exists(name):
        # A plain collection holds the name (from `fashion-search index`): an alias cannot share it, so this
        # first switch drops it; every later switch is a single atomic alias update.
        log.warning("dropping plain collection %r so that the name can become an alias", name)
        client.delete_collection(name)
    ops: list[models.DeleteAliasOperation | models.CreateAliasOperation] = []
    if name in aliases:
        ops.append(models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=name)))
    ops.append(models.CreateAliasOperation(create_alias=models.CreateAlias(collection_name=version, alias_name=name)))
    client.update_collection_aliases(change_aliases_operations=ops)
    log.info("Qdrant alias %s -> %s", name, version)


def drop_version(settings: Settings, version: str, client: QdrantClient | None = None) -> None:
    if backend(settings) == "faiss":
        shutil.rmtree(faiss_root(settings) / version, ignore_errors=True)
    elif client is not None and client.collection_exists(version):
        client.delete_collection(version)


def prune_versions(settings: Settings, name: str, keep: int, client: QdrantClient | None = None) -> list[str]:
    """Drop all but the newest ``keep`` versions (the serving one is always kept); returns what was dropped."""
    serving = serving_version(settings, name, client)
    versions = list_versions(settings, name, client)
    old = [v for v in versions[:-keep] if v != serving] if keep > 0 else []
    for version in old:
        drop_version(settings, version, client)
    if old:
        log.info("dropped old versions of %s: %s", name, ", ".join(old))
    return old


def version_prefix(name: str) -> str:
    """What every version of ``name`` starts with."""
    return f"{name}{VERSION_SEP}"


def serving_only(names: Iterable[str]) -> list[str]:
    """The serving names among ``names``, sorted: index names that are not versions."""
    return sorted(n for n in set(names) if INDEX_NAME.fullmatch(n) and not is_version(n))


def stale_versions(versions: list[str], serving: str, keep: int) -> list[str]:
    """Of ``versions`` (oldest first), all but the newest ``keep``, never ``serving``; nothing when keep <= 0."""
    return [v for v in versions[:-keep] if v != serving] if keep > 0 else []
