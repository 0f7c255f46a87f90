"""Metadata filters: any-of on the keyword fields and a year range, combined with AND."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fashion_core.catalog.schema import KEYWORD_FIELDS, year_problem
from fashion_core.errors import InvalidInputError


def _unknown_value(name: str, value: str, by_lower: Mapping[str, str]) -> str:
    """The error for ``value`` not among a field's indexed values (``by_lower``: lower-cased -> as indexed): the
    closest ones first ("Tshirt" -> "Tshirts"), then the alphabetical rest up to 12, and how many are not shown."""
    if not by_lower:
        return f"unknown {name} value {value!r}; none indexed"
    close = [by_lower[v] for v in difflib.get_close_matches(value.lower(), list(by_lower), n=3, cutoff=0.6)]
    listed = close + [v for v in sorted(by_lower.values()) if v not in close][:max(0, 12 - len(close))]
    more = len(by_lower) - len(listed)
    hint = f"did you mean {' or '.join(repr(v) for v in close)}? " if close else ""
    return (f"unknown {name} value {value!r}; {hint}indexed values: {', '.join(listed)}"
            + (f" and {more} more" if more else ""))


def _as_tuple(value: str | Iterable[str] | None) -> tuple[str, ...]:
    """The values named, stripped, each once (in order): an any-of set, whose repeats a backend would search
    again (FAISS searched a partition per value named and returned its hits twice)."""
    if value is None:
        return ()
    items = value.split(",") if isinstance(value, str) else (str(v) for v in value)
    return tuple(dict.fromkeys(v.strip() for v in items if v.strip()))


@dataclass(frozen=True)
class SearchFilter:
    """``equals[field]`` is an any-of set for that field; all given fields and the year range must hold."""

    equals: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    year_min: int | None = None
    year_max: int | None = None

    @classmethod
    def build(cls, year_min: int | None = None, year_max: int | None = None,
              **values: str | Iterable[str] | None) -> SearchFilter:
        """From keyword arguments named like the catalog fields; a comma-separated string means any-of.

        Raises InvalidInputError for an unknown field, a year outside 1..9999 or an empty year range."""
        unknown = set(values) - set(KEYWORD_FIELDS)
        if unknown:
            raise InvalidInputError(f"unknown filter field(s): {', '.join(sorted(unknown))}; "
                                    f"known: {', '.join(KEYWORD_FIELDS)}, year range")
        equals = {name: vals for name in KEYWORD_FIELDS if (vals := _as_tuple(values.get(name)))}
        for name, year in (("year_min", year_min), ("year_max", year_max)):
            if year is not None and (problem := year_problem(year)) is not None:
                raise InvalidInputError(f"{name}: {problem}")
        if year_min is not None and year_max is not None and year_min > year_max:
            raise InvalidInputError(f"year range is empty: {year_min} > {year_max}")
        return cls(equals=equals, year_min=year_min, year_max=year_max)

    def without(self, name: str) -> SearchFilter:
        """This filter without its condition on field ``name`` (a structure holding only items that meet it:
        a Qdrant companion, a gender shard)."""
        return SearchFilter(equals={f: v for f, v in self.equals.items() if f != name}, year_min=self.year_min,
                            year_max=self.year_max)

    @property
    def is_empty(self) -> bool:
        return not self.equals and self.year_min is None and self.year_max is None

    def matches(self, payload: Mapping[str, Any]) -> bool:
        for name, allowed in self.equals.items():
            if payload.get(name) not in allowed:
                return False
        year = payload.get("year")
        if self.year_min is not None and (year is None or year < self.year_min):
            return False
        return not (self.year_max is not None and (year is None or year > self.year_max))

    def canonical(self, known: Mapping[str, Iterable[str]]) -> SearchFilter:
        """Values matched case-insensitively to the values the index holds, each once ("Red,red" is "Red"). Raises
        InvalidInputError for an unknown value, naming the closest indexed values (difflib's ratio, as "did you
        mean") and how many values the field holds besides those listed."""
        equals = {}
        for name, wanted in self.equals.items():
            by_lower = {v.lower(): v for v in known.get(name, ())}
            resolved = []
            for value in wanted:
                if value.lower() not in by_lower:
                    raise InvalidInputError(_unknown_value(name, value, by_lower))
                resolved.append(by_lower[value.lower()])
            equals[name] = tuple(dict.fromkeys(resolved))
        return SearchFilter(equals=equals, year_min=self.year_min, year_max=self.year_max)

    def describe(self) -> str:
        parts = [f"{k} in {list(v)}" if len(v) > 1 else f"{k}={v[0]}" for k, v in self.equals.items()]
        if self.year_min is not None or self.year_max is not None:
            parts.append(f"year {self.year_min or '..'}-{self.year_max or '..'}")
        return " AND ".join(parts) or "no filter"
