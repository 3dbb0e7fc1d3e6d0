"""Primary-key ranges: how a table is split into copy units that run in parallel.

A key range is half-open, ``(lo, hi)`` = ``lo <= key < hi``, on the table's single integer
primary key. Pure logic: no database driver here; the SQL predicate is built with quoted
identifiers and integer literals only.
"""

from __future__ import annotations

from include.replication.core.catalog import TableSpec
from include.replication.core.dialect import Dialect

__all__ = ["KeyRange", "INTEGER_TYPES", "integer_key", "split_key_range", "range_predicate"]

KeyRange = tuple[int, int]
"""Half-open range ``(lo, hi)`` of primary-key values: ``lo <= key < hi``."""

INTEGER_TYPES = frozenset({"int", "bigint", "smallint", "tinyint", "integer"})
"""Source types (both dialects' spellings) whose primary key can be split into ranges."""


def integer_key(spec: TableSpec) -> str | None:
    """Name of the table's primary-key column when it is a single integer column, else None."""
    if len(spec.primary_key) != 1:
        return None
    column = spec.column(spec.primary_key[0])
    return column.name if column.source_type in INTEGER_TYPES else None


def split_key_range(lo: int, hi: int, parts: int) -> list[KeyRange]:
    """Split the inclusive key bounds ``[lo, hi]`` into at most ``parts`` contiguous half-open
    ranges of (nearly) equal width that together cover exactly ``lo .. hi``.

    Args:
        lo: smallest key (inclusive).
        hi: largest key (inclusive), ``>= lo``.
        parts: wanted number of ranges, >= 1.

    Returns:
        Ranges in key order; fewer than ``parts`` when there are fewer distinct keys.

    Raises:
        ValueError: ``hi < lo`` or ``parts < 1``.
    """
    if hi < lo or parts < 1:
        raise ValueError(f"bad key range split: lo={lo}, hi={hi}, parts={parts}")
    width = hi - lo + 1
    parts = min(parts, width)
    bounds = [lo + (width * i) // parts for i in range(parts)] + [hi + 1]
    return [(bounds[i], bounds[i + 1]) for i in range(parts)]


def range_predicate(spec: TableSpec, key_range: KeyRange, dialect: Dialect) -> str:
    """SQL predicate ``"Id" >= lo AND "Id" < hi`` for a key range of ``spec``, quoted for ``dialect``.

    Raises:
        ValueError: the table has no single integer primary key.
    """
    column = integer_key(spec)
    if column is None:
        raise ValueError(f"{spec.qualified_name} has no single integer primary key to split")
    q = dialect.quote(column)
    lo, hi = key_range
    return f"{q} >= {int(lo)} AND {q} < {int(hi)}"
