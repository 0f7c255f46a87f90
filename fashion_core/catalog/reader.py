"""Reader for the "Fashion Product Images" layout: ``styles.csv`` + ``images/<id>.jpg``.

The real file is dirty: productDisplayName holds stray commas (so a row has more than 10 fields), fields are
empty or hold the literal ``NA``, years are not numbers, some ids have no image, a load-test row sits among the
products, and the encoding is not always UTF-8. Rows that cannot become a product are reported with their line
and a reason, never dropped silently and never fatal: every data row of the file is either a product or a skip.

A record is one physical line. A quoted field may run onto the next lines (CSV allows it; the real file has none)
only when the record it makes is a valid product and none of those lines is a row of its own; otherwise a quote
left open is its line's skip ("unbalanced quote"), and it never swallows the rows after it.
"""

from __future__ import annotations

import csv
import json
import logging
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from fashion_core.catalog.schema import CSV_COLUMNS, Product, product_id_problem, year_problem
from fashion_core.errors import InvalidInputError, NotFoundError

log = logging.getLogger(__name__)
# (styles.csv, its size, its mtime in ns) whose skipped rows this process has already warned of: a command reads
# its catalog several times (the demo: training, then indexing), and one warning per file's content is enough;
# later reads log the same line at DEBUG
_WARNED: set[tuple[str, int, int]] = set()

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
# Fields a product cannot be searched or filtered without.
REQUIRED_FIELDS = ("gender", "masterCategory", "articleType", "productDisplayName")
# Values that mean "unknown" in the real file (the literal ``NA`` in usage, baseColour and productDisplayName):
# read as a missing value, so they are never a colour or a usage a user can filter on, nor words in a caption.
MISSING_VALUES = frozenset({"", "na", "n/a", "null", "none", "nan"})
# Rows left in the catalog by load tests of the shop, not products (the real file has ``RTV_LoadTest``).
TEST_ROW_NAME = re.compile(r"(?i)^\s*(rtv_\w*|\w*load_?test\w*)\s*$")
# The most physical lines one record (a quoted field holding newlines) may take.
MAX_RECORD_LINES = 8


@dataclass(frozen=True, slots=True)
class SkippedRow:
    line: int  # 1-based line number in styles.csv where the row starts (0 for a product not read from a file)
    product_id: str
    reason: str


@dataclass
class CatalogReadResult:
    root: Path
    products: list[Product] = field(default_factory=list)
    skipped: list[SkippedRow] = field(default_factory=list)
    encoding: str = "utf-8"

    def not_products(self, ids: Iterable[int]) -> list[SkippedRow]:
        """Why each of ``ids`` that is not one of the catalog's products is not: the reader's skip of its row
        (that line and reason), or no row with that id. Ids that are products are left out."""
        products = {p.id for p in self.products}
        skipped: dict[int, SkippedRow] = {}
        for row in self.skipped:
            if product_id_problem(row.product_id) is None:
                skipped.setdefault(int(row.product_id), row)
        out = []
        for pid in ids:
            if pid in products:
                continue
            skip = skipped.get(pid)
            out.append(SkippedRow(skip.line, str(pid), f"not in the catalog: its row was skipped ({skip.reason})")
                       if skip else SkippedRow(0, str(pid), "not in the catalog: no row with this id in styles.csv"))
        return out

    def reasons(self) -> Counter[str]:
        """Skip counts by reason kind (the text before the first colon)."""
        return Counter(s.reason.split(":", 1)[0] for s in self.skipped)

    def write_report(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        report = {
            "catalog": str(self.root),
            "products": len(self.products),
            "skipped": len(self.skipped),
            "reasons": dict(self.reasons()),
            "rows": [asdict(s) for s in self.skipped],
        }
        path.write_text(json.dumps(report, indent=2, ensure_ascii=False))


def _decode(raw: bytes) -> tuple[list[str], str]:
    """The file's lines (split at ``\\n``, so line i+1 of the file is item i), decoded line by line: UTF-8 where it
    is valid, cp1252 (then latin-1) for the lines that are not."""
    raw = raw.removeprefix(b"\xef\xbb\xbf")
    lines, fallback = [], 0
    for line in raw.split(b"\n"):
        try:
            lines.append(line.decode("utf-8"))
        except UnicodeDecodeError:
            fallback += 1
            try:
                lines.append(line.decode("cp1252"))
            except UnicodeDecodeError:
                lines.append(line.decode("latin-1"))  # never fails: every byte maps to a code point
    return lines, "utf-8" if not fallback else f"utf-8 ({fallback} lines cp1252)"


def _line_fields(line: str) -> tuple[list[str], bool]:
    """The fields of one physical line, and whether its quotes are balanced (False: a quoted field is still open
    at the end of the line)."""
    if '"' not in line:
        return next(csv.reader([line]), []), True
    reader = csv.reader([line, ""])  # an open quote makes the reader take the second item too
    return next(reader, []), reader.line_num == 1


def _is_row(line: str, width: int) -> bool:
    """Whether a physical line is a row of its own: a product id and at least ``width`` fields."""
    fields_, _ = _line_fields(line)
    return len(fields_) >= width and product_id_problem(fields_[0].strip()) is None


def _spanning_record(lines: list[str], start: int, width: int) -> tuple[list[str], int] | None:
    """The record whose quoted field opens on ``lines[start]`` and closes on a later line, and how many lines it
    takes; None when the quote does not close properly within MAX_RECORD_LINES lines or a line it would take is
    a row of its own."""
    for count in range(2, MAX_RECORD_LINES + 1):
        if start + count > len(lines) or _is_row(lines[start + count - 1], width):
            return None
        reader = csv.reader([line + "\n" for line in lines[start:start + count]], strict=True)
        try:
            return next(reader), count
        except csv.Error:  # still open at the end of these lines (or malformed: more lines will not mend it)
            continue
    return None


def find_image(images_dir: Path, product_id: int) -> Path | None:
    for suffix in IMAGE_SUFFIXES:
        candidate = images_dir / f"{product_id}{suffix}"
        if candidate.is_file():
            return candidate
    return None


def _parse_row(fields_: list[str], header: list[str]) -> dict[str, str]:
    """Map a row to columns; extra fields are commas inside the last column (productDisplayName)."""
    n = len(header)
    if len(fields_) > n and header[-1] == "productDisplayName":
        fields_ = [*fields_[: n - 1], ",".join(fields_[n - 1 :])]
    return {name: missing_to_empty(value, name) for name, value in zip(header, fields_, strict=False)}


def missing_to_empty(value: str, column: str | None = None) -> str:
    """The stripped value, or "" for the file's markers of a missing value: ``NA`` and the like, and a cell that
    holds its own column's name (the real file has a product named ``productDisplayName``, a placeholder)."""
    value = value.strip()
    if value.lower() in MISSING_VALUES or (column is not None and value.lower() == column.lower()):
        return ""
    return value


def parse_product(row: dict[str, str], images_dir: Path, require_image: bool, line: int = 0) -> Product | str:
    """A product (read at ``line`` of styles.csv), or the reason this row cannot be one."""
    raw_id = row.get("id", "")
    if (id_problem := product_id_problem(raw_id)) is not None:
        return f"bad id: {id_problem}"
    for name in REQUIRED_FIELDS:
        if not row.get(name):
            return f"missing field: {name}"
    if TEST_ROW_NAME.match(row["productDisplayName"]):
        return f"test row: productDisplayName {row['productDisplayName']!r}"
    year_text = row.get("year", "")
    year: int | None = None
    if year_text:
        try:
            year = int(float(year_text))
        except (ValueError, OverflowError):  # "20x1", "inf"
            return f"bad year: {year_text!r}"
        if (problem := year_problem(year)) is not None:  # "1e12": a number, not a year
            return f"bad year: {problem}"
    product_id = int(raw_id)
    image = find_image(images_dir, product_id)
    if image is None and require_image:
        return "missing image: no file images/" + raw_id + ".jpg"
    return Product(
        id=product_id,
        gender=row["gender"],
        masterCategory=row["masterCategory"],
        subCategory=row.get("subCategory", ""),
        articleType=row["articleType"],
        baseColour=row.get("baseColour", ""),
        season=row.get("season", ""),
        year=year,
        usage=row.get("usage", ""),
        productDisplayName=" ".join(row["productDisplayName"].split()),
        image_path=image,
        line=line,
    )


def _row_outcome(fields_: list[str], header: list[str], images_dir: Path, require_image: bool,
                 line: int) -> Product | str | None:
    """The product of the record at ``line``, the reason it cannot be one, or None for a blank record."""
    if not any(f.strip() for f in fields_):
        return None
    if len(fields_) < len(header):
        return f"too few fields: {len(fields_)}"
    return parse_product(_parse_row(fields_, header), images_dir, require_image, line)


def read_catalog(root: Path | str, require_image: bool = True) -> CatalogReadResult:
    """Read ``root/styles.csv`` and match ``root/images/<id>.jpg``; bad rows land in ``skipped``.

    ``root`` is resolved to an absolute path first, so every product's ``image_path`` (and what each writer of an
    index stores from it) is the same absolute path however the catalog was named (relative to this process's
    working directory or not): a service started elsewhere finds the images, and a diff compares like with like."""
    root = Path(root).resolve()
    styles = root / "styles.csv"
    if not styles.is_file():
        raise NotFoundError(f"{root}: no styles.csv (expected the Fashion Product Images layout)")
    lines, encoding = _decode(styles.read_bytes())
    if not any(line.strip() for line in lines):
        raise InvalidInputError(f"{styles}: empty file")
    header = [h.strip() for h in _line_fields(lines[0])[0]]
    missing = [c for c in ("id", *REQUIRED_FIELDS) if c not in header]
    if missing:
        raise InvalidInputError(f"{styles}: missing columns {', '.join(missing)}; expected {', '.join(CSV_COLUMNS)}")

    result = CatalogReadResult(root=root, encoding=encoding)
    images_dir = root / "images"
    seen: set[int] = set()
    i = 1
    while i < len(lines):
        line = i + 1  # 1-based, where the record starts
        fields_, closed = _line_fields(lines[i])
        used = 1
        if closed:
            parsed = _row_outcome(fields_, header, images_dir, require_image, line)
        else:
            spanning = _spanning_record(lines, i, len(header))
            outcome = None if spanning is None else _row_outcome(spanning[0], header, images_dir, require_image,
                                                                 line)
            if spanning is not None and isinstance(outcome, Product):
                parsed, used = outcome, spanning[1]
            else:
                parsed = "unbalanced quote: a quoted field opens on this line and is not closed"
        i += used
        if parsed is None:
            continue
        if isinstance(parsed, str):
            result.skipped.append(SkippedRow(line, fields_[0].strip() if fields_ else "", parsed))
        elif parsed.id in seen:
            result.skipped.append(SkippedRow(line, str(parsed.id), "duplicate id: kept the first row"))
        else:
            seen.add(parsed.id)
            result.products.append(parsed)
    if result.skipped:
        stat = styles.stat()
        key = (str(styles), stat.st_size, stat.st_mtime_ns)
        level = logging.DEBUG if key in _WARNED else logging.WARNING
        _WARNED.add(key)
        log.log(level, "%s: %d rows skipped (%s)", styles, len(result.skipped), dict(result.reasons()))
    return result
