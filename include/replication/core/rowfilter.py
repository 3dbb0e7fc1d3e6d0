"""Row filters: which rows of a table a reader streams, besides (or instead of) a key range.

An incremental sync reads part of a table: ``append`` the rows whose integer primary key is
above the high-water mark (a :data:`KeyRange`), ``merge`` the rows whose cursor column is at or
past the mark minus the lag (a :class:`RowFilter`). One function, :func:`where_sql`, turns both
into the ``WHERE`` clause of either dialect's reader (quoted identifiers, literals built from
typed values only); :func:`filter_batches` applies a filter to Arrow batches for sources that
cannot push it into a query (the dump and synthetic sources). Pure logic: no database driver.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from include.replication.core.catalog import TableSpec
from include.replication.core.dialect import Dialect
from include.replication.core.errors import ConfigurationError
from include.replication.core.keyranges import KeyRange, range_predicate

__all__ = ["CursorValue", "RowFilter", "cursor_literal", "parse_cursor", "format_cursor", "where_sql", "filter_batches"]

CursorValue = int | dt.datetime
"""A cursor column's value as the sync handles it: an integer, or a timestamp (naive or aware)."""


@dataclass(frozen=True)
class RowFilter:
    """``column >= lower`` (``inclusive``) or ``column > lower``: the rows a ``merge`` run reads.

    Attributes:
        column: the cursor column (a name of the source table).
        lower: the bound: an integer, or a timestamp.
        inclusive: True for ``>=`` (the merge window starts at the mark minus the lag).
    """

    column: str
    lower: CursorValue
    inclusive: bool = True

    def describe(self) -> str:
        """``"LastActivityDate" >= 2024-01-01T00:00:00`` for logs."""
        return f"{self.column} {'>=' if self.inclusive else '>'} {format_cursor(self.lower)}"


def format_cursor(value: CursorValue) -> str:
    """The text a cursor value is stored as (the ``replication_state`` mark, the audit rows): an
    integer's digits, or an ISO 8601 timestamp (``2024-01-01T10:00:00.123``, milliseconds unless
    the value has microseconds; ``+00:00`` kept when it has a time zone).

    Raises:
        TypeError: neither an integer nor a datetime.
    """
    if isinstance(value, bool) or not isinstance(value, int | dt.datetime):
        raise TypeError(f"a cursor value must be an integer or a datetime, got {type(value).__name__}")
    if isinstance(value, int):
        return str(value)
    return value.isoformat(timespec="milliseconds" if value.microsecond % 1000 == 0 else "microseconds")


def parse_cursor(text: str) -> CursorValue:
    """The value :func:`format_cursor` wrote (also a bare ``YYYY-MM-DD`` date, as midnight).

    Raises:
        ValueError: neither integer digits nor an ISO 8601 timestamp.
    """
    stripped = text.strip()
    if stripped.lstrip("-").isdigit():
        return int(stripped)
    return dt.datetime.fromisoformat(stripped)


def cursor_literal(value: CursorValue) -> str:
    """A SQL literal of a cursor value that both dialects read and compare with their column's
    type: integer digits, or ``'2024-01-01T10:00:00.123'`` (ISO 8601 with ``T``, which SQL Server
    reads the same under every ``DATEFORMAT``; at most 3 fractional digits unless the value has
    microseconds, so a SQL Server ``datetime`` column can take it)."""
    text = format_cursor(value)
    return text if isinstance(value, int) else f"'{text}'"


def where_sql(
    spec: TableSpec, dialect: Dialect, key_range: KeyRange | None = None, row_filter: RowFilter | None = None
) -> str:
    """The reader's ``WHERE`` clause (with the leading `` WHERE ``), or ``""`` when nothing restricts it.

    Args:
        spec: the table.
        dialect: the reader's dialect (identifier quoting).
        key_range: half-open range on the single integer primary key, or None.
        row_filter: a cursor bound, or None.

    Raises:
        ValueError: ``key_range`` on a table without a single integer primary key.
        ConfigurationError: the filter's column is not a column of the table.
    """
    parts = []
    if key_range is not None:
        parts.append(range_predicate(spec, key_range, dialect))
    if row_filter is not None:
        if row_filter.column not in spec.column_names:
            raise ConfigurationError(f"the cursor column {row_filter.column!r} is not a column of the table",
                                     table=spec.qualified_name, column=row_filter.column)
        op = ">=" if row_filter.inclusive else ">"
        parts.append(f"{dialect.quote(row_filter.column)} {op} {cursor_literal(row_filter.lower)}")
    return " WHERE " + " AND ".join(parts) if parts else ""


def filter_batches(batches: Iterable[pa.RecordBatch], row_filter: RowFilter | None) -> Iterator[pa.RecordBatch]:
    """The rows of ``batches`` that pass ``row_filter`` (all when None), batch by batch (a batch
    left empty is dropped); schema and order kept. For sources that cannot filter in a query.

    Raises:
        KeyError: the filter's column is not in the batches' schema.
    """
    for batch in batches:
        if row_filter is None:
            yield batch
            continue
        index = batch.schema.get_field_index(row_filter.column)
        if index < 0:
            raise KeyError(row_filter.column)
        column = batch.column(index)
        bound = pa.scalar(row_filter.lower, type=column.type)
        keep = pc.greater_equal(column, bound) if row_filter.inclusive else pc.greater(column, bound)
        kept = batch.filter(pc.fill_null(keep, False))
        if kept.num_rows:
            yield kept
