"""Reader for the "Fashion Product Images" layout: ``styles.csv`` + ``images/<id>.jpg``.

The real file is dirty: productDisplayName holds stray commas (so a row has more than 10 fields), fields are
empty or hold the literal ``NA``, years are not numbers, some ids have no image, a load-test row sits among the
products, and the encoding is not always UTF-8. Rows that cannot become a product are reported with their line
and a reason, never dropped silently and never fatal: every data row of the file is either a product or a skip.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from fashion_core.catalog.schema import CSV_COLUMNS, Product, product_id_problem, year_problem
from fashion_core.errors import InvalidInputError, NotFoundError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
# Fields a product cannot be searched or filtered without.
REQUIRED_FIELDS = ("gender", "masterCategory", "articleType", "productDisplayName")
# Values that mean "unknown" in the real file (the literal ``NA`` in usage, baseColour and productDisplayName):
# read as a missing value, so they are never a colour or a usage a user can filter on, nor words in a caption.
MISSING_VALUES = frozenset({"", "na", "n/a", "null", "none", "nan"})
# Rows left in the catalog by load tests of the shop, not products (the real file has ``RTV_LoadTest``).
TEST_ROW_NAME = re.compile(r"(?i)^\s*(rtv_\w*|\w*load_?test\w*)\s*$")


@dataclass(frozen=True, slots=True)
class SkippedRow:
    line: int  # 1-based line number in styles.csv (0 when the problem was found after reading)
    product_id: str
    reason: str


@dataclass
class CatalogReadResult:
    root: Path
    products: list[Product] = field(default_factory=list)
    skipped: list[SkippedRow] = field(default_factory=list)
    encoding: str = "utf-8"

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


def _decode(raw: bytes) -> tuple[str, str]:
    """Decode line by line: UTF-8 where it is valid, cp1252 (then latin-1) for the lines that are not."""
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
    return "\n".join(lines), "utf-8" if not fallback else f"utf-8 ({fallback} lines cp1252)"


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


def parse_product(row: dict[str, str], images_dir: Path, require_image: bool) -> Product | str:
    """A product, or the reason this row cannot be one."""
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
    )


def read_catalog(root: Path | str, require_image: bool = True) -> CatalogReadResult:
    """Read ``root/styles.csv`` and match ``root/images/<id>.jpg``; bad rows land in ``skipped``."""
    root = Path(root)
    styles = root / "styles.csv"
    if not styles.is_file():
        raise NotFoundError(f"{root}: no styles.csv (expected the Fashion Product Images layout)")
    text, encoding = _decode(styles.read_bytes())
    reader = csv.reader(io.StringIO(text))
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise InvalidInputError(f"{styles}: empty file") from None
    missing = [c for c in ("id", *REQUIRED_FIELDS) if c not in header]
    if missing:
        raise InvalidInputError(f"{styles}: missing columns {', '.join(missing)}; expected {', '.join(CSV_COLUMNS)}")

    result = CatalogReadResult(root=root, encoding=encoding)
    images_dir = root / "images"
    seen: set[int] = set()
    for fields_ in reader:
        line = reader.line_num
        if not any(f.strip() for f in fields_):
            continue
        if len(fields_) < len(header):
            result.skipped.append(SkippedRow(line, fields_[0] if fields_ else "", f"too few fields: {len(fields_)}"))
            continue
        parsed = parse_product(_parse_row(fields_, header), images_dir, require_image)
        if isinstance(parsed, str):
            result.skipped.append(SkippedRow(line, fields_[0].strip(), parsed))
        elif parsed.id in seen:
            result.skipped.append(SkippedRow(line, str(parsed.id), "duplicate id: kept the first row"))
        else:
            seen.add(parsed.id)
            result.products.append(parsed)
    if result.skipped:
        log.warning("%s: %d rows skipped (%s)", styles, len(result.skipped), dict(result.reasons()))
    return result
