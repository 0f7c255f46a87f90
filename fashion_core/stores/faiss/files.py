"""The files of a FAISS index directory, read and written.

``meta.json`` (IndexMeta as JSON), ``ids.npy`` (int64, (n,)), ``vectors.npy`` (float32, (n, dim)),
``payloads.jsonl`` (one JSON object per row), ``lexical/`` (the BM25 lexicon, ``lexical.Bm25Lexicon``),
``index.faiss`` (the global structure) and ``partitions.npz`` (the partitions: ``names`` and ``bounds`` (lo, hi) of
the articleType blocks with ``ann{i}``, ``value_keys`` "field=value" with ``vrows{i}``, ``vann{i}`` and their
``value_walks`` (``ValuePartition.walk``), and ``scan``, the code scan of every row; the structures
serialized by FAISS). Each file is written to a temporary name and moved into place, and ``meta.json`` last:
readers treat it as the commit marker of a complete index.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from fashion_core.stores.base import IndexMeta
from fashion_core.stores.faiss.rows import Rows
from fashion_core.stores.faiss.structures import Partition, Structures, ValuePartition
from fashion_core.stores.lexical import LEXICAL_DIR, Bm25Lexicon

META_FILE, IDS_FILE, VECTORS_FILE, PAYLOADS_FILE, ANN_FILE, PARTITIONS_FILE = (
    "meta.json", "ids.npy", "vectors.npy", "payloads.jsonl", "index.faiss", "partitions.npz")


def _atomic_write(path: Path, write: Callable[[Path], Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


class IndexFiles:
    """The files of the index in ``directory`` (created by the first :meth:`write`)."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory

    def exists(self) -> bool:
        """Whether a complete index was written here (its ``meta.json`` is)."""
        return (self.dir / META_FILE).is_file()

    def read_meta(self) -> IndexMeta:
        return IndexMeta(**json.loads((self.dir / META_FILE).read_text()))

    def read_rows(self) -> tuple[np.ndarray, np.ndarray, list[dict[str, Any]]]:
        """ids (int64, (n,)), vectors (float32, (n, dim)) and payloads (n dicts), in the saved row order."""
        with (self.dir / PAYLOADS_FILE).open(encoding="utf-8") as fh:
            payloads = [json.loads(line) for line in fh]
        return np.load(self.dir / IDS_FILE), np.load(self.dir / VECTORS_FILE), payloads

    def read_lexicon(self, ids: np.ndarray) -> Bm25Lexicon | None:
        """The saved lexicon, None when missing or not over ``ids`` (int64, row order): rebuild it then."""
        return Bm25Lexicon.load(self.dir / LEXICAL_DIR, ids)

    def read_ann(self) -> faiss.Index | None:
        """The saved global structure, None when there is none."""
        path = self.dir / ANN_FILE
        return faiss.read_index(str(path)) if path.is_file() else None

    def has_partitions(self) -> bool:
        return (self.dir / PARTITIONS_FILE).is_file()

    def read_partitions(self, blocks: dict[str, tuple[int, int]], value_rows: Callable[[str, str], np.ndarray],
                        n: int) -> tuple[dict[str, Partition], dict[tuple[str, str], ValuePartition],
                                         faiss.Index | None]:
        """The saved partitions that still cover their rows: an articleType partition whose bounds are the
        block's in ``blocks`` (name -> (lo, hi)), a value partition whose rows are ``value_rows(field, value)``
        (int64, ascending), and the code scan of every row when it holds ``n`` rows (None when it does not, or
        the index was saved before scans). Only those kept are deserialized."""
        partitions, values = {}, {}
        scan = None
        with np.load(self.dir / PARTITIONS_FILE) as saved:
            if "scan" in saved:
                scan = faiss.deserialize_index(saved["scan"])
                scan = scan if scan.ntotal == n else None
            for i, (name, (lo, hi)) in enumerate(zip(saved["names"].tolist(), saved["bounds"].tolist(),
                                                    strict=True)):
                if blocks.get(name) == (lo, hi):
                    partitions[name] = Partition(lo, hi, faiss.deserialize_index(saved[f"ann{i}"]))
            for i, key in enumerate(saved["value_keys"].tolist() if "value_keys" in saved else []):
                field, value = key.split("=", 1)
                rows = saved[f"vrows{i}"]
                if np.array_equal(rows, value_rows(field, value)):  # still the rows holding it
                    walk = int(saved["value_walks"][i]) if "value_walks" in saved else 0  # 0: saved before
                    values[(field, value)] = ValuePartition(rows, faiss.deserialize_index(saved[f"vann{i}"]), walk)
        return partitions, values, scan

    def write(self, meta: IndexMeta, rows: Rows, lexicon: Bm25Lexicon | None, structures: Structures | None) -> None:
        """Write every file (the lexicon and structures when given; a stale ``partitions.npz`` is removed when
        there are no partitions), ``meta.json`` last."""
        self.dir.mkdir(parents=True, exist_ok=True)
        _atomic_write(self.dir / IDS_FILE, lambda p: np.save(p.open("wb"), rows.ids))
        _atomic_write(self.dir / VECTORS_FILE, lambda p: np.save(p.open("wb"), rows.vectors))
        _atomic_write(self.dir / PAYLOADS_FILE, lambda p: p.write_text(
            "".join(json.dumps(pl, ensure_ascii=False) + "\n" for pl in rows.payloads), encoding="utf-8"))
        if lexicon is not None:
            lexicon.save(self.dir / LEXICAL_DIR)
        if structures is not None:
            _atomic_write(self.dir / ANN_FILE, lambda p: faiss.write_index(structures.ann, str(p)))
        if structures is not None and (structures.partitions or structures.values or structures.scan is not None):
            parts, values = list(structures.partitions.items()), list(structures.values.items())
            _atomic_write(self.dir / PARTITIONS_FILE, lambda p: np.savez(
                p.open("wb"), allow_pickle=True,  # the default, named: so the ** arrays cannot stand for it
                names=np.array([name for name, _ in parts], dtype=str),
                bounds=np.array([(part.lo, part.hi) for _, part in parts], dtype=np.int64).reshape(-1, 2),
                **{f"ann{i}": faiss.serialize_index(part.ann) for i, (_, part) in enumerate(parts)},
                value_keys=np.array([f"{field}={value}" for (field, value), _ in values], dtype=str),
                value_walks=np.array([part.walk for _, part in values], dtype=np.int64),
                **{f"vrows{i}": part.rows for i, (_, part) in enumerate(values)},
                **{f"vann{i}": faiss.serialize_index(part.ann) for i, (_, part) in enumerate(values)},
                **({} if structures.scan is None else {"scan": faiss.serialize_index(structures.scan)})))
        else:
            (self.dir / PARTITIONS_FILE).unlink(missing_ok=True)
        # meta.json last: readers treat it as the commit marker of a complete index.
        _atomic_write(self.dir / META_FILE, lambda p: p.write_text(json.dumps(asdict(meta), indent=2)))
