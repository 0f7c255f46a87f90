"""FAISS store: one directory per index or version under ``<index_dir>/faiss``, pointer files for switched names.

A re-indexed name ``<name>`` is a pointer file ``<name>.alias`` next to the version dirs, holding the version's
name and replaced with ``os.replace`` (atomic on POSIX). Opening a name reads the pointer, so a reader sees the
new version when it (re)opens the index; the stamp (the version dir and its ``meta.json`` mtime) is cheap
enough to check before every request, which is how the query service notices a switch or a rewritten plain
index without reloading. A name with neither a pointer nor a dir of its own is a plain index not built yet.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from fashion_core.stores.faiss.index import FaissIndex
from fashion_core.stores.store import prune_stale
from fashion_core.stores.versions import (
    check_index_name,
    new_version_name,
    serving_only,
    version_prefix,
)

log = logging.getLogger(__name__)

POINTER_SUFFIX = ".alias"


class FaissStore:
    backend = "faiss"
    in_place_updates = False  # an update builds a new version (copy-on-write) and switches to it
    concurrent = False  # a FaissIndex is not built for concurrent callers
    multi_process = True  # files: any number of readers, one writer per version

    def __init__(self, root: Path | str, index_type: str = "flat", quantization: str = "none",
                 ef_search: int | None = None) -> None:
        self.root = Path(root)
        self.index_type, self.quantization, self.ef_search = index_type, quantization, ef_search

    def _pointer(self, name: str) -> Path:
        return self.root / f"{check_index_name(name)}{POINTER_SUFFIX}"

    def open(self, name: str, *, closes_store: bool = False) -> FaissIndex:
        # A re-indexed name is a pointer to its serving version; a version or a plain index is its own dir.
        return FaissIndex(self.root / self.serving_version(name), index_type=self.index_type,
                          quantization=self.quantization, ef_search=self.ef_search)

    def new_version(self, name: str) -> str:
        return check_index_name(new_version_name(check_index_name(name)))

    def serving_version(self, name: str) -> str:
        """The pointer's target, else ``name`` itself."""
        try:
            target = self._pointer(name).read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return name
        return check_index_name(target) if target else name

    def stamp(self, name: str) -> tuple[str, int | None]:
        """(version dir serving ``name``, its ``meta.json`` mtime in ns; None when there is none).

        It changes when a re-index switches the pointer, and when a plain index is rewritten (``meta.json`` is
        written last, so a changed stamp means a complete index). One small read and one ``stat``."""
        version = self.serving_version(name)
        try:
            mtime: int | None = (self.root / version / "meta.json").stat().st_mtime_ns
        except FileNotFoundError:
            mtime = None
        return version, mtime

    def serving_names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        names = {p.name for p in self.root.iterdir() if p.is_dir() and (p / "meta.json").is_file()}
        names |= {p.name.removesuffix(POINTER_SUFFIX) for p in self.root.glob(f"*{POINTER_SUFFIX}") if p.is_file()}
        return serving_only(names)

    def list_versions(self, name: str) -> list[str]:
        prefix = version_prefix(check_index_name(name))
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and p.name.startswith(prefix))

    def switch(self, name: str, version: str) -> None:
        pointer = self._pointer(name)
        pointer.parent.mkdir(parents=True, exist_ok=True)
        tmp = pointer.with_name(pointer.name + ".tmp")
        tmp.write_text(check_index_name(version), encoding="utf-8")
        os.replace(tmp, pointer)
        log.info("FAISS %s -> %s", name, version)

    def drop(self, version: str) -> None:
        shutil.rmtree(self.root / check_index_name(version), ignore_errors=True)

    def prune(self, name: str, keep: int) -> list[str]:
        return prune_stale(self, name, keep)

    def close(self) -> None:
        pass  # files: nothing held open
