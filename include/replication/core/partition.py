"""Copy units for ``partition_as = tasks``: a whole table, or one primary-key range of a table.

A unit is named by a plain string, so it can be an Airflow mapped task's argument and its map
index: ``Posts`` (the whole table; the ``tables`` entry as it is) or ``Posts[1:425000)`` (the
half-open key range ``1 <= Id < 425000`` of the entry ``Posts``; ``dbo.Posts[1:425000)`` for a
``schema.table`` entry). :func:`parse_unit` reads the name back. Pure logic: no database driver.

Which tables split (:func:`range_count`): a table is split only when it has a single integer
primary key, its load mode and sync mode allow ranges (``swap`` or ``drop``, sync mode ``full``),
it has at least ``partition_min_rows`` rows (default 100,000) and ``parallel_ranges`` asks for at
least 2 ranges.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from include.replication.core.errors import ConfigurationError
from include.replication.core.keyranges import KeyRange, split_key_range

__all__ = [
    "PARTITION_AS",
    "PartitionAs",
    "DEFAULT_PARTITION_AS",
    "DEFAULT_PARTITION_MIN_ROWS",
    "RANGE_LOAD_MODES",
    "CopyUnit",
    "unit_name",
    "parse_unit",
    "partition_as",
    "partition_min_rows",
    "range_count",
    "table_units",
    "tables_of",
    "split_tables",
]

PartitionAs = Literal["threads", "tasks"]
PARTITION_AS: tuple[PartitionAs, ...] = ("threads", "tasks")
"""``threads``: key ranges run as threads inside one copy task (today's behaviour); ``tasks``:
each key range is its own copy unit (a mapped Airflow task instance), then one finish per table."""

DEFAULT_PARTITION_AS: PartitionAs = "threads"
DEFAULT_PARTITION_MIN_ROWS = 100_000
"""Tables with fewer rows than this are never split into range units (rows)."""

RANGE_LOAD_MODES = frozenset({"swap", "drop"})
"""Load modes whose table can be loaded as separately committed range units (``truncate`` loads
the live table in one transaction, so it is never split)."""

_RANGE_NAME = re.compile(r"^(?P<table>.+)\[(?P<lo>-?\d+):(?P<hi>-?\d+)\)$")


@dataclass(frozen=True)
class CopyUnit:
    """One copy unit.

    Attributes:
        table: the ``tables`` entry (``Posts``, ``dbo.Posts``).
        key_range: the half-open key range ``(lo, hi)`` = ``lo <= key < hi``, or None for the
            whole table.
    """

    table: str
    key_range: KeyRange | None = None

    @property
    def name(self) -> str:
        """The unit's name: ``Posts`` or ``Posts[1:425000)`` (:func:`unit_name`)."""
        return unit_name(self.table, self.key_range)


def unit_name(table: str, key_range: KeyRange | None = None) -> str:
    """``table`` for a whole table, ``table[lo:hi)`` for the key range ``lo <= key < hi``.

    Raises:
        ValueError: an empty range (``hi <= lo``).
    """
    if key_range is None:
        return table
    lo, hi = int(key_range[0]), int(key_range[1])
    if hi <= lo:
        raise ValueError(f"empty key range [{lo}:{hi}) of {table}")
    return f"{table}[{lo}:{hi})"


def parse_unit(name: str) -> CopyUnit:
    """The unit a :func:`unit_name` string names.

    A name ending in ``[lo:hi)`` with integers ``lo < hi`` is a key range of the table before
    it; any other non-empty name is a whole table.

    Raises:
        ConfigurationError: an empty name, or a range with ``hi <= lo`` (permanent).
    """
    if not name:
        raise ConfigurationError("empty copy unit name")
    match = _RANGE_NAME.match(name)
    if match is None:
        return CopyUnit(name)
    lo, hi = int(match["lo"]), int(match["hi"])
    if hi <= lo:
        raise ConfigurationError(f"copy unit {name!r}: empty key range", table=match["table"])
    return CopyUnit(match["table"], (lo, hi))


def partition_as(params: Mapping[str, Any] | None) -> PartitionAs:
    """The run's ``partition_as`` param (default ``threads``).

    Raises:
        ConfigurationError: a value other than ``threads`` or ``tasks``.
    """
    value = (params or {}).get("partition_as") or DEFAULT_PARTITION_AS
    if value == "threads" or value == "tasks":
        return value
    raise ConfigurationError(f"partition_as must be one of {list(PARTITION_AS)}, got {value!r}")


def partition_min_rows(params: Mapping[str, Any] | None) -> int:
    """The run's ``partition_min_rows`` param (rows; default 100,000).

    Raises:
        ConfigurationError: not a non-negative integer.
    """
    raw = (params or {}).get("partition_min_rows")
    try:
        value = DEFAULT_PARTITION_MIN_ROWS if raw is None else int(raw)
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"partition_min_rows must be an integer, got {raw!r}") from exc
    if value < 0:
        raise ConfigurationError(f"partition_min_rows must be >= 0, got {value}")
    return value


def range_count(rows: int, parts: int, min_rows: int, *, splittable: bool = True) -> int:
    """How many range units a table of ``rows`` rows becomes; 1 means the table is one unit.

    Args:
        rows: the table's exact row count.
        parts: wanted ranges (the ``parallel_ranges`` param).
        min_rows: ``partition_min_rows``: a table with fewer rows is never split.
        splittable: False when the table cannot be split at all (no single integer primary key,
            a load or sync mode that needs one transaction, a dialect without key ranges).

    Returns:
        ``parts`` when the table splits, else 1.
    """
    if not splittable or parts < 2 or rows < max(min_rows, 1):
        return 1
    return parts


def table_units(table: str, bounds: tuple[int, int] | None, parts: int) -> list[CopyUnit]:
    """The units of one table: one whole-table unit, or ``parts`` key ranges covering the inclusive
    key bounds ``[min, max]`` exactly (fewer when there are fewer distinct keys).

    Args:
        table: the ``tables`` entry.
        bounds: ``(min key, max key)``, or None (empty table or no integer key): one unit.
        parts: from :func:`range_count`.

    Returns:
        Units in key order.
    """
    if bounds is None or parts < 2:
        return [CopyUnit(table)]
    return [CopyUnit(table, r) for r in split_key_range(bounds[0], bounds[1], parts)]


def tables_of(units: list[str]) -> list[str]:
    """The tables of ``units`` (unit names), each once, in the order of their first unit."""
    return list(dict.fromkeys(parse_unit(u).table for u in units))


def split_tables(units: list[str]) -> list[str]:
    """The tables among ``units`` that are loaded in key ranges (each once, in order): the ones
    that need a finish."""
    return list(dict.fromkeys(c.table for c in map(parse_unit, units) if c.key_range is not None))
