"""Fetch the public Fashion Product Images (small) dataset into the Kaggle layout the reader expects.

Two sources, for a machine with network:
- ``hf`` (default): the public Hugging Face copy ``ashraq/fashion-product-images-small`` (parquet files with the
  styles.csv columns and an ``image`` column of JPEG bytes), downloaded with ``huggingface_hub`` and converted
  by ``convert_parquet``: ``styles.csv`` + ``images/<id>.jpg``, the image bytes written as they are.
- ``kaggle``: the Kaggle CLI (``kaggle datasets download paramaggarwal/fashion-product-images-small``; needs
  ``pip install kaggle`` and an API token), unzipped and laid out the same way.

Without network, ``convert_local`` lays out a copy fetched elsewhere: a Hugging Face parquet file (or a folder of
them), the Kaggle zip archive, or the archive unzipped (``fashion-search fetch-dataset DEST --from-file PATH``).

Every source is checked the same way: an image that cannot be decoded is not written (a laid-out folder loses
the file), so the reader skips its row for a missing image, and the summary (``summarize``) counts that row as a
skip with the decoding error as its reason, never as a product. Every data row of styles.csv is one of the two:
``FetchSummary.rows`` = products + skipped.

Reading parquet needs ``pyarrow`` (``pip install 'fashion-search[fetch]'``).
"""

from __future__ import annotations

import csv
import logging
import shutil
import subprocess
import tempfile
import zipfile
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from fashion_core.catalog.reader import SkippedRow, read_catalog
from fashion_core.catalog.schema import CSV_COLUMNS
from fashion_core.errors import FashionSearchError, InvalidInputError, NotFoundError, UnavailableError
from fashion_core.images import decode_image

log = logging.getLogger(__name__)

HF_DATASET = "ashraq/fashion-product-images-small"
KAGGLE_DATASET = "paramaggarwal/fashion-product-images-small"
# The reason kind (the text before the colon, as CatalogReadResult.reasons counts) of a row whose image was
# left out because it cannot be decoded.
UNREADABLE_IMAGE = "unreadable image"


@dataclass
class Conversion:
    """What ``convert_parquet`` wrote: styles.csv's data rows, and the images it left out because they cannot
    be decoded (product id -> why)."""

    rows: int
    unreadable: dict[str, str] = field(default_factory=dict)


@dataclass
class FetchSummary:
    """A fetched catalog as the reader sees it: every data row of ``dest/styles.csv`` is a product (with an image
    that decodes) or a skip with its reason; ``rows`` is their sum."""

    dest: Path
    products: int
    skipped: list[SkippedRow] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return self.products + len(self.skipped)

    def reasons(self) -> Counter[str]:
        """Skip counts by reason kind (the text before the first colon)."""
        return Counter(s.reason.split(":", 1)[0] for s in self.skipped)

    def unreadable(self) -> list[SkippedRow]:
        """The rows skipped because their image could not be decoded."""
        return [s for s in self.skipped if s.reason.startswith(UNREADABLE_IMAGE + ":")]


def image_problem(data: bytes, name: str) -> str | None:
    """Why ``data`` cannot be used as a product image (as ``decode_image`` says it), None when it decodes."""
    try:
        decode_image(data, name=name)
    except InvalidInputError as exc:
        return str(exc)
    return None


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


def convert_parquet(files: Sequence[Path], dest: Path, on_row: Callable[[int], None] | None = None
                    ) -> Conversion:
    """Write ``dest/styles.csv`` and ``dest/images/<id>.jpg`` from parquet files holding the styles.csv columns
    and an ``image`` column (a struct with ``bytes``, as ``datasets`` stores images). Returns the row count and
    the images left out.

    Raises InvalidInputError when a file lacks a column; rows whose image is missing or cannot be decoded are
    written to styles.csv without an image (the reader reports them; ``Conversion.unreadable`` says why for the
    latter), never dropped. A later row of an id already written keeps its styles.csv line (the reader skips it,
    "duplicate id") but not its image: ``images/<id>.jpg`` is the first row's, the product the reader keeps.
    """
    pq = _pyarrow()
    dest.mkdir(parents=True, exist_ok=True)
    images = dest / "images"
    images.mkdir(exist_ok=True)
    rows = 0
    unreadable: dict[str, str] = {}
    seen: set[str] = set()  # ids written so far
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
                    pid = _cell(record["id"])
                    first = pid not in seen  # the reader keeps an id's first row: only its image is the product's
                    seen.add(pid)
                    if data and first:
                        name = f"{pid}.jpg"
                        problem = image_problem(data, f"images/{name}")
                        if problem is None:
                            (images / name).write_bytes(data)
                        else:
                            log.warning("%s: image not written: %s", path, problem)
                            unreadable[pid] = problem
                    rows += 1
                    if on_row:
                        on_row(rows)
    log.info("wrote %d rows to %s (%d images left out: cannot be decoded)", rows, dest, len(unreadable))
    return Conversion(rows, unreadable)


def fetch_from_hub(dest: Path, repo_id: str = HF_DATASET, revision: str | None = None,
                   on_row: Callable[[int], None] | None = None) -> FetchSummary:
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
    return summarize(dest, convert_parquet(files, dest, on_row).unreadable)


def fetch_from_kaggle(dest: Path, dataset: str = KAGGLE_DATASET) -> FetchSummary:
    """Download with the Kaggle CLI and lay the archive out as ``dest/styles.csv`` + ``dest/images``."""
    if shutil.which("kaggle") is None:
        raise FashionSearchError("the Kaggle CLI is not installed: pip install kaggle, and put an API token in "
                                 "~/.kaggle/kaggle.json (or use --source hf)")
    with tempfile.TemporaryDirectory(dir=dest.parent if dest.parent.exists() else None) as tmp:
        done = subprocess.run(["kaggle", "datasets", "download", dataset, "--unzip", "-p", tmp],
                              capture_output=True, text=True, check=False)
        if done.returncode:
            raise UnavailableError(f"kaggle datasets download failed: {done.stderr.strip() or done.stdout.strip()}")
        layout_download(Path(tmp), dest)
    return summarize(dest, drop_unreadable_images(dest))


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


def convert_local(source: Path, dest: Path, on_row: Callable[[int], None] | None = None) -> FetchSummary:
    """Lay out a local copy of the dataset in ``dest``, no network: a Hugging Face parquet file or a folder of
    them (``convert_parquet``), the Kaggle zip archive (unzipped beside ``dest``), or a folder holding styles.csv
    and images/ (copied: ``source`` is left as it is), then summarize it (images that cannot be decoded are left
    out and counted as skips). NotFoundError when ``source`` does not exist, InvalidInputError when it is none
    of these."""
    if not source.exists():
        raise NotFoundError(f"{source}: no such file or folder")
    if source.is_dir() and _first(source.rglob("styles.csv")) is not None:
        layout_download(source, dest, move=False)
        return summarize(dest, drop_unreadable_images(dest, on_row))
    if source.is_dir():
        files = sorted(source.rglob("*.parquet"))
        if not files:
            raise InvalidInputError(f"{source}: neither a styles.csv with images/ nor parquet files")
        return summarize(dest, convert_parquet(files, dest, on_row).unreadable)
    if source.suffix.lower() == ".parquet":
        return summarize(dest, convert_parquet([source], dest, on_row).unreadable)
    if zipfile.is_zipfile(source):
        dest.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=dest.parent) as tmp, zipfile.ZipFile(source) as archive:
            archive.extractall(tmp)
            layout_download(Path(tmp), dest)
        return summarize(dest, drop_unreadable_images(dest, on_row))
    raise InvalidInputError(f"{source}: not a parquet file, a zip archive or a folder of the dataset")


def drop_unreadable_images(dest: Path, on_row: Callable[[int], None] | None = None) -> dict[str, str]:
    """Delete from a laid-out ``dest`` (a copy this module made, never the user's source) the image of each
    product that cannot be decoded, so that the reader skips its row. Returns product id -> why."""
    unreadable: dict[str, str] = {}
    for done, product in enumerate(read_catalog(dest).products, start=1):
        if product.image_path is not None:
            problem = image_problem(product.image_path.read_bytes(), f"images/{product.image_path.name}")
            if problem is not None:
                log.warning("%s: image removed: %s", dest, problem)
                product.image_path.unlink()
                unreadable[str(product.id)] = problem
        if on_row:
            on_row(done)
    return unreadable


def summarize(dest: Path, unreadable: Mapping[str, str] | None = None) -> FetchSummary:
    """What the catalog reader makes of a fetched ``dest``: products with an image, and the rows it skips, with
    the reason ``unreadable`` gives (the image could not be decoded and was left out) in place of the reader's
    "missing image". The same count whatever the source (parquet rows include products without an image;
    Kaggle's images/ may hold files without a row)."""
    unreadable = unreadable or {}
    result = read_catalog(dest)
    skipped = [SkippedRow(s.line, s.product_id, f"{UNREADABLE_IMAGE}: {unreadable[s.product_id]}; not written")
               if s.product_id in unreadable and s.reason.startswith("missing image") else s
               for s in result.skipped]
    return FetchSummary(result.root, len(result.products), skipped)


def _first(paths: Iterable[Path]) -> Path | None:
    return next(iter(sorted(paths, key=lambda p: len(p.parts))), None)
