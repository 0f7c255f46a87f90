"""Fetch the public Fashion Product Images (small) dataset into the Kaggle layout the reader expects.

Two sources, for a machine with network:
- ``hf`` (default): the public Hugging Face copy ``ashraq/fashion-product-images-small`` (parquet files with the
  styles.csv columns and an ``image`` column of JPEG bytes), downloaded with ``huggingface_hub`` and converted
  by ``convert_parquet``: ``styles.csv`` + ``images/<id>.jpg``, the image bytes written as they are.
- ``kaggle``: the Kaggle CLI (``kaggle datasets download paramaggarwal/fashion-product-images-small``; needs
  ``pip install kaggle`` and an API token), unzipped and laid out the same way.

Without network, ``convert_local`` lays out a copy fetched elsewhere: a Hugging Face parquet file (or a folder of
them), the Kaggle zip archive, or the archive unzipped (``fashion-search fetch-dataset DEST --from-file PATH``).

Reading parquet needs ``pyarrow`` (``pip install 'fashion-search[fetch]'``).
"""

from __future__ import annotations

import csv
import logging
import shutil
import subprocess
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from types import ModuleType

from fashion_core.catalog.reader import read_catalog
from fashion_core.catalog.schema import CSV_COLUMNS
from fashion_core.errors import FashionSearchError, InvalidInputError, NotFoundError, UnavailableError

log = logging.getLogger(__name__)

HF_DATASET = "ashraq/fashion-product-images-small"
KAGGLE_DATASET = "paramaggarwal/fashion-product-images-small"


def _pyarrow() -> ModuleType:
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise FashionSearchError("reading the Hugging Face copy needs pyarrow: "
                                 "pip install 'fashion-search[fetch]'") from exc
    return pq


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():  # parquet stores the year as a float
        return str(int(value))
    return str(value)


def convert_parquet(files: Sequence[Path], dest: Path, on_row: Callable[[int], None] | None = None) -> int:
    """Write ``dest/styles.csv`` and ``dest/images/<id>.jpg`` from parquet files holding the styles.csv columns
    and an ``image`` column (a struct with ``bytes``, as ``datasets`` stores images). Returns the row count.

    Raises InvalidInputError when a file lacks a column; rows whose image is missing are written to styles.csv
    without an image (the reader reports them), never dropped.
    """
    pq = _pyarrow()
    dest.mkdir(parents=True, exist_ok=True)
    images = dest / "images"
    images.mkdir(exist_ok=True)
    rows = 0
    with (dest / "styles.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        for path in files:
            table = pq.read_table(path)
            missing = [c for c in (*CSV_COLUMNS, "image") if c not in table.column_names]
            if missing:
                raise InvalidInputError(f"{path}: missing columns {', '.join(missing)}")
            for batch in table.to_batches(max_chunksize=1024):
                for record in batch.to_pylist():
                    writer.writerow([_cell(record[c]) for c in CSV_COLUMNS])
                    image = record["image"]
                    data = image.get("bytes") if isinstance(image, dict) else image
                    if data:
                        (images / f"{_cell(record['id'])}.jpg").write_bytes(data)
                    rows += 1
                    if on_row:
                        on_row(rows)
    log.info("wrote %d rows to %s", rows, dest)
    return rows


def fetch_from_hub(dest: Path, repo_id: str = HF_DATASET, revision: str | None = None,
                   on_row: Callable[[int], None] | None = None) -> int:
    """Download the parquet files of ``repo_id`` and convert them into ``dest``; UnavailableError offline."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        folder = Path(snapshot_download(repo_id, repo_type="dataset", revision=revision,
                                        allow_patterns=["*.parquet"]))
    except (HfHubHTTPError, LocalEntryNotFoundError, OSError) as exc:
        raise UnavailableError(f"cannot download {repo_id} from the Hugging Face hub: {exc}") from exc
    files = sorted(folder.rglob("*.parquet"))
    if not files:
        raise UnavailableError(f"{repo_id}: no parquet files found")
    return convert_parquet(files, dest, on_row)


def fetch_from_kaggle(dest: Path, dataset: str = KAGGLE_DATASET) -> int:
    """Download with the Kaggle CLI and lay the archive out as ``dest/styles.csv`` + ``dest/images``."""
    if shutil.which("kaggle") is None:
        raise FashionSearchError("the Kaggle CLI is not installed: pip install kaggle, and put an API token in "
                                 "~/.kaggle/kaggle.json (or use --source hf)")
    with tempfile.TemporaryDirectory(dir=dest.parent if dest.parent.exists() else None) as tmp:
        done = subprocess.run(["kaggle", "datasets", "download", dataset, "--unzip", "-p", tmp],
                              capture_output=True, text=True, check=False)
        if done.returncode:
            raise UnavailableError(f"kaggle datasets download failed: {done.stderr.strip() or done.stdout.strip()}")
        return layout_download(Path(tmp), dest)


def layout_download(extracted: Path, dest: Path, move: bool = True) -> int:
    """Move (or, ``move`` False, copy) the styles.csv found anywhere under ``extracted`` and the images/ beside
    it into ``dest``. Returns the number of image files."""
    styles = _first(extracted.rglob("styles.csv"))
    if styles is None or not (styles.parent / "images").is_dir():
        raise InvalidInputError(f"{extracted}: no styles.csv with an images/ folder beside it")
    dest.mkdir(parents=True, exist_ok=True)
    if move:
        shutil.move(str(styles), dest / "styles.csv")
        shutil.move(str(styles.parent / "images"), dest / "images")
    else:
        shutil.copyfile(styles, dest / "styles.csv")
        shutil.copytree(styles.parent / "images", dest / "images")
    return sum(1 for _ in (dest / "images").iterdir())


def convert_local(source: Path, dest: Path, on_row: Callable[[int], None] | None = None) -> None:
    """Lay out a local copy of the dataset in ``dest``, no network: a Hugging Face parquet file or a folder of
    them (``convert_parquet``), the Kaggle zip archive (unzipped beside ``dest``), or a folder holding styles.csv
    and images/ (copied: ``source`` is left as it is). NotFoundError when ``source`` does not exist,
    InvalidInputError when it is none of these."""
    if not source.exists():
        raise NotFoundError(f"{source}: no such file or folder")
    if source.is_dir():
        if _first(source.rglob("styles.csv")) is not None:
            layout_download(source, dest, move=False)
            return
        files = sorted(source.rglob("*.parquet"))
        if not files:
            raise InvalidInputError(f"{source}: neither a styles.csv with images/ nor parquet files")
        convert_parquet(files, dest, on_row)
    elif source.suffix.lower() == ".parquet":
        convert_parquet([source], dest, on_row)
    elif zipfile.is_zipfile(source):
        dest.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=dest.parent) as tmp, zipfile.ZipFile(source) as archive:
            archive.extractall(tmp)
            layout_download(Path(tmp), dest)
    else:
        raise InvalidInputError(f"{source}: not a parquet file, a zip archive or a folder of the dataset")


def catalog_size(dest: Path) -> tuple[int, int]:
    """What the catalog reader makes of a fetched ``dest``: products with an image, and rows it skipped. The
    same count whatever the source (parquet rows include products without an image; Kaggle's images/ may hold
    files without a row)."""
    result = read_catalog(dest)
    return len(result.products), len(result.skipped)


def _first(paths: Iterable[Path]) -> Path | None:
    return next(iter(sorted(paths, key=lambda p: len(p.parts))), None)
