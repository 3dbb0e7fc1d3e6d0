"""SQL Server value conversion, both directions, column by column; no database driver imported.

Read side (pymssql -> Arrow): :func:`rows_to_batch` turns the row tuples of one ``fetchmany``
window into a ``pa.RecordBatch`` with the catalog's schema (``typemap.arrow_schema``), converting
each column with one ``pa.array`` call of the column's exact Arrow type; the schema is never
inferred from the values. :func:`group_rows_by_bytes` cuts the row stream into batches bounded in
rows and bytes, and :func:`next_fetch_size` adapts the ``fetchmany`` size to the observed bytes
per row.

Python values pymssql 2.4 returns (read from its ``_mssql.pyx``): ``bool`` (bit), ``int``
(tinyint..bigint), ``float`` (real, float), ``Decimal`` (decimal, numeric, money, smallmoney; money
has 4 decimals, never a float), ``datetime.date``, ``datetime.time``, naive ``datetime`` (datetime,
smalldatetime, datetime2), timezone-aware ``datetime`` (datetimeoffset), ``str`` (char family,
text, ntext, xml), ``bytes`` (binary family, image, rowversion), ``uuid.UUID``
(uniqueidentifier), ``None``.

Precision pymssql loses, and what this project does about it:

* ``time(7)``: pymssql keeps microseconds only, so the reader selects
  ``DATEDIFF_BIG(NANOSECOND, '00:00:00', col)`` (the typemap ``select`` template) and gets an exact
  ``int`` of nanoseconds since midnight; :func:`rows_to_batch` accepts both forms.
* ``datetime2`` and ``datetimeoffset``: the reader selects SQL Server's canonical text
  (``CAST(col AS nvarchar(27|34))``: ``YYYY-MM-DD hh:mm:ss[.nnnnnnn] [+hh:mm]``), which travels as an
  Arrow string: exact, because Arrow's ``timestamp[ns]`` cannot hold years 0001..9999 and pymssql
  keeps only microseconds. A SQL Server target binds the text back (all 7 digits and the offset
  kept); a PostgreSQL target parses it (``typemap.adapt_batch``: UTC instant, 6 digits).

Write side (Arrow -> pymssql parameters): :func:`batch_to_params` returns, per row, the Python
values that pymssql's client-side quoting (``_mssql._quote_simple_value``) turns into exact T-SQL
literals: ``bytearray`` for binary (always ``0x..`` hex; ``bytes`` that happen to be ASCII are
quoted as a ``'...'`` string, which SQL Server refuses to convert implicitly to varbinary),
``Decimal`` for decimals, ``uuid.UUID`` for uniqueidentifier, ``datetime.date`` for date, and ISO
8601 strings for times and timestamps (pymssql would otherwise cut naive datetimes to
milliseconds, and ``yyyy-mm-ddThh:mm:ss`` is read the same under every ``SET LANGUAGE`` /
``DATEFORMAT``). :func:`chunk_rows` and :func:`plan_chunks` size the ``executemany`` chunks.
"""

from __future__ import annotations

import datetime as dt
import decimal
import logging
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from include.replication.core.batching import row_key
from include.replication.core.catalog import TableSpec
from include.replication.core.errors import ConfigurationError, DataError
from include.replication.core.typemap import arrow_schema, target_type
from include.replication.dialects.mssql.dialect import MSSQL

__all__ = [
    "MAX_PARAMETERS",
    "MAX_VALUES_ROWS",
    "chunk_rows",
    "plan_chunks",
    "estimate_row_bytes",
    "group_rows_by_bytes",
    "next_fetch_size",
    "column_to_arrow",
    "rows_to_batch",
    "ColumnWritePlan",
    "write_plan",
    "column_to_params",
    "batch_to_params",
    "param_bytes",
]

log = logging.getLogger(__name__)

MAX_PARAMETERS = 2099
"""SQL Server allows 2,100 parameters per request; one is kept free."""

MAX_VALUES_ROWS = 1000
"""A ``VALUES`` table constructor holds at most 1,000 rows."""

_NS_PER_DAY = 86_400 * 1_000_000_000


# ---------------------------------------------------------------------------------------------
# chunking
# ---------------------------------------------------------------------------------------------
def chunk_rows(columns: int) -> int:
    """Rows per ``INSERT ... VALUES`` chunk: ``min(1000, floor(2099 / columns))``.

    Args:
        columns: number of columns written per row (>= 1).

    Returns:
        Rows per chunk, at least 1 (SQL Server tables have at most 1,024 columns, so the
        parameter limit always admits 2 rows).

    Raises:
        ConfigurationError: ``columns`` < 1 or > 2099 (no row fits the parameter limit).
    """
    if columns < 1 or columns > MAX_PARAMETERS:
        raise ConfigurationError(f"cannot chunk rows of {columns} columns (1..{MAX_PARAMETERS} allowed)")
    return min(MAX_VALUES_ROWS, MAX_PARAMETERS // columns)


def plan_chunks(row_sizes: Sequence[int], max_rows: int, max_bytes: int) -> list[tuple[int, int]]:
    """Cut rows into consecutive ``(start, stop)`` chunks of at most ``max_rows`` rows and about
    ``max_bytes`` bytes of SQL literal text; a row larger than ``max_bytes`` travels alone.

    Args:
        row_sizes: estimated literal bytes of each row (see :func:`param_bytes`).
        max_rows: rows per chunk limit (from :func:`chunk_rows`).
        max_bytes: statement text budget (bytes).

    Returns:
        Half-open index ranges covering ``range(len(row_sizes))`` in order; ``[]`` for no rows.
    """
    chunks: list[tuple[int, int]] = []
    start, size = 0, 0
    for i, n in enumerate(row_sizes):
        if i > start and (i - start >= max_rows or size + n > max_bytes):
            chunks.append((start, i))
            start, size = i, 0
        size += n
    if start < len(row_sizes):
        chunks.append((start, len(row_sizes)))
    return chunks


# ---------------------------------------------------------------------------------------------
# read side: rows -> Arrow
# ---------------------------------------------------------------------------------------------
def estimate_row_bytes(row: Sequence[Any]) -> int:
    """Approximate in-memory bytes of one fetched row: string/binary lengths, 8 per scalar, 1 per NULL."""
    total = 0
    for v in row:
        if v is None:
            total += 1
        elif isinstance(v, (str, bytes, bytearray)):
            total += len(v) + 4
        elif isinstance(v, (decimal.Decimal, uuid.UUID)):
            total += 16
        else:
            total += 8
    return total


def group_rows_by_bytes(
    rows: Iterable[Sequence[Any]], *, batch_rows: int, batch_bytes: int
) -> Iterator[list[Sequence[Any]]]:
    """Group a row stream into lists of at most ``batch_rows`` rows and about ``batch_bytes``.

    A list is closed before a row that would push it over ``batch_bytes`` (so a row larger than
    the budget travels alone) and as soon as it reaches ``batch_rows`` rows. Order is kept.

    Args:
        rows: row tuples in source order.
        batch_rows: row limit per list (>= 1).
        batch_bytes: byte budget per list (>= 1), measured with :func:`estimate_row_bytes`.

    Yields:
        Non-empty lists of rows.
    """
    pending: list[Sequence[Any]] = []
    size = 0
    for row in rows:
        n = estimate_row_bytes(row)
        if pending and size + n > batch_bytes:
            yield pending
            pending, size = [], 0
        pending.append(row)
        size += n
        if len(pending) >= batch_rows or size >= batch_bytes:
            yield pending
            pending, size = [], 0
    if pending:
        yield pending


def next_fetch_size(observed_bytes: int, observed_rows: int, *, batch_rows: int, batch_bytes: int) -> int:
    """``fetchmany`` size for the next window: the rows that fit ``batch_bytes`` at the observed
    bytes per row, between 1 and ``batch_rows``.

    Args:
        observed_bytes: bytes of the rows fetched so far (:func:`estimate_row_bytes`).
        observed_rows: rows fetched so far; 0 before the first fetch.
        batch_rows: upper bound (rows).
        batch_bytes: byte budget of one window (bytes).

    Returns:
        Rows to ask for; ``min(batch_rows, 1000)`` before anything was observed.
    """
    if observed_rows <= 0 or observed_bytes <= 0:
        return max(1, min(batch_rows, 1000))
    per_row = max(1, observed_bytes // observed_rows)
    return max(1, min(batch_rows, batch_bytes // per_row))


def _time_to_ns(value: Any) -> Any:
    if value is None or isinstance(value, int):
        return value
    if isinstance(value, dt.time):
        return ((value.hour * 60 + value.minute) * 60 + value.second) * 1_000_000_000 + value.microsecond * 1000
    raise TypeError(f"expected datetime.time or nanoseconds, got {type(value).__name__}")


def column_to_arrow(values: Sequence[Any], typ: pa.DataType) -> pa.Array:
    """Convert one column of pymssql values to an Arrow array of exactly ``typ``.

    Args:
        values: the column's Python values (see the module docstring for the kinds), ``None`` = NULL.
        typ: the catalog's Arrow type for the column.

    Returns:
        ``pa.Array`` of type ``typ`` and ``len(values)`` elements.

    Raises:
        pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError: a value the type
            cannot hold exactly (e.g. a decimal with more digits than the scale); callers turn it
            into ``DataError`` naming the row.
    """
    if getattr(typ, "extension_name", None) == "arrow.uuid":
        storage = pa.array(
            [None if v is None else (v.bytes if isinstance(v, uuid.UUID) else uuid.UUID(str(v)).bytes) for v in values],
            type=pa.binary(16),
        )
        return pa.ExtensionArray.from_storage(typ, storage)
    if pa.types.is_time64(typ):
        ns = [_time_to_ns(v) for v in values]
        for v in ns:
            if v is not None and not 0 <= v < _NS_PER_DAY:
                secs, frac = divmod(v, 1_000_000_000)
                raise ValueError(
                    f"time of day {secs // 3600:02d}:{secs // 60 % 60:02d}:{secs % 60:02d}.{frac:09d} is outside "
                    "00:00:00 to 23:59:59.9999999 (a server that keeps fewer fractional digits, such as Babelfish, "
                    "rounds 23:59:59.9999999 up to 24:00:00); fix the value in the source"
                )
        if typ.unit == "ns":
            return pa.array(ns, type=pa.int64()).cast(typ)
        for v in ns:
            if v is not None and v % 1000:
                raise ValueError(f"time {v} ns has a sub-microsecond part for a time64[us] column")
        return pa.array([None if v is None else v // 1000 for v in ns], type=pa.int64()).cast(typ)
    if pa.types.is_timestamp(typ):
        for v in values:
            if isinstance(v, dt.datetime) and v.tzinfo is not None:
                raise TypeError("time-zone aware value for a timestamp column without time zone")
        return pa.array(values, type=typ)
    if pa.types.is_string(typ):
        for v in values:
            if v is not None and not isinstance(v, str):
                raise TypeError(f"expected str, got {type(v).__name__} (check the connection charset)")
        return pa.array(values, type=typ)
    if pa.types.is_floating(typ):
        for v in values:
            if v is not None and not isinstance(v, float | int):
                raise TypeError(f"expected float, got {type(v).__name__}")
        return pa.array(values, type=typ)
    if pa.types.is_decimal(typ):
        for v in values:
            if isinstance(v, float):
                raise TypeError("a float for a decimal column would lose digits; expected Decimal")
        return pa.array(values, type=typ)
    if pa.types.is_binary(typ) or pa.types.is_fixed_size_binary(typ):
        return pa.array([None if v is None else bytes(v) for v in values], type=typ)
    return pa.array(values, type=typ)


def rows_to_batch(spec: TableSpec, rows: Sequence[Sequence[Any]], schema: pa.Schema | None = None) -> pa.RecordBatch:
    """Convert fetched row tuples to one RecordBatch with the catalog's schema, column by column.

    Args:
        spec: the table; its columns decide the Arrow types (``typemap.arrow_schema``).
        rows: row tuples in column order of ``spec.columns``; may be empty.
        schema: ``arrow_schema(spec)`` when the caller has it already.

    Returns:
        ``pa.RecordBatch`` with ``schema`` and ``len(rows)`` rows.

    Raises:
        DataError: a value cannot be held exactly by its column's Arrow type, or NULL in a NOT NULL
            column; names table, column and the row's primary key.
        UnsupportedTypeError: a column type outside the type map.
    """
    schema = schema if schema is not None else arrow_schema(spec)
    ncols = len(schema)
    columns: list[Sequence[Any]] = list(zip(*rows, strict=True)) if rows else [() for _ in range(ncols)]
    arrays = []
    for i, field in enumerate(schema):
        try:
            arr = column_to_arrow(columns[i], field.type)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError) as exc:
            raise _row_error(spec, schema, rows, i, exc) from exc
        if not field.nullable and arr.null_count:
            idx = int(pc.index(arr.is_null(), True).as_py())
            raise DataError("NULL in a NOT NULL column", table=spec.qualified_name, column=field.name, key=_key(spec, schema, rows[idx]))
        arrays.append(arr)
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _key(spec: TableSpec, schema: pa.Schema, row: Sequence[Any]) -> Any:
    names = schema.names
    vals = tuple(row[names.index(c)] for c in spec.primary_key if c in names)
    if not vals:
        return None
    return vals[0] if len(vals) == 1 else vals


def _row_error(spec: TableSpec, schema: pa.Schema, rows: Sequence[Sequence[Any]], i: int, exc: Exception) -> DataError:
    field = schema.field(i)
    for row in rows:  # slow path only on failure: find the first offending row
        try:
            column_to_arrow([row[i]], field.type)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError) as one:
            return DataError(
                f"value {row[i]!r:.80} cannot be held exactly as {field.type}: {one}",
                table=spec.qualified_name,
                column=field.name,
                key=_key(spec, schema, row),
            )
    return DataError(f"column cannot be converted to {field.type}: {exc}", table=spec.qualified_name, column=field.name)


# ---------------------------------------------------------------------------------------------
# write side: Arrow -> pymssql parameters
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ColumnWritePlan:
    """How one column is turned into pymssql parameters.

    Attributes:
        name: column name.
        target_type: the SQL Server DDL type (``datetime``, ``datetime2(7)``, ``varbinary(max)``).
        kind: converter name: ``plain``, ``float``, ``binary``, ``uuid``, ``time``, ``datetime``,
            ``smalldatetime``, ``datetime2``, ``datetimeoffset``.
        placeholder: the parameter's SQL in the INSERT: ``%s``, or ``CAST(%s AS <type>)`` for the
            date and time types, whose values travel as text (pymssql sends every str as
            ``N'...'``, which Babelfish does not convert to ``datetimeoffset`` implicitly; an
            explicit CAST reads the same on every server).
    """

    name: str
    target_type: str
    kind: str
    placeholder: str = "%s"


_CAST_BASES = frozenset({"date", "time", "datetime", "smalldatetime", "datetime2", "datetimeoffset"})
"""Target base types whose parameters are wrapped in ``CAST(%s AS type)``."""


def write_plan(spec: TableSpec) -> list[ColumnWritePlan]:
    """Per-column conversion plan for writing ``spec`` to SQL Server.

    Raises:
        UnsupportedTypeError: a column SQL Server cannot hold exactly.
    """
    schema = arrow_schema(spec)
    plans = []
    for col, field in zip(spec.columns, schema, strict=True):
        tt = target_type(spec, col, MSSQL)
        base = tt.split("(")[0].strip().lower()
        t = field.type
        if pa.types.is_floating(t):
            kind = "float"
        elif pa.types.is_binary(t) or pa.types.is_fixed_size_binary(t) or pa.types.is_large_binary(t):
            kind = "binary"
        elif getattr(t, "extension_name", None) == "arrow.uuid":
            kind = "uuid"
        elif pa.types.is_time(t):
            kind = "time"
        elif pa.types.is_timestamp(t):
            kind = base if base in {"datetime", "smalldatetime", "datetime2", "datetimeoffset"} else "datetime2"
        else:
            kind = "plain"
        placeholder = f"CAST(%s AS {tt})" if base in _CAST_BASES else "%s"
        plans.append(ColumnWritePlan(col.name, tt, kind, placeholder))
    return plans


def _iso(v: dt.datetime, digits: int) -> str:
    base = f"{v.year:04d}-{v.month:02d}-{v.day:02d}T{v.hour:02d}:{v.minute:02d}:{v.second:02d}"
    if digits == 0:
        return base
    frac = f"{v.microsecond:06d}"
    return base + "." + (frac[:digits] if digits <= 6 else frac + "0" * (digits - 6))


def _time_text(ns: int) -> str:
    secs, frac = divmod(ns, 1_000_000_000)
    if frac % 100:
        raise ValueError(f"time {ns} ns is finer than SQL Server's 100 ns")
    h, rem = divmod(secs, 3600)
    m, s = divmod(rem, 60)
    return f"{h:02d}:{m:02d}:{s:02d}.{frac // 100:07d}"


def column_to_params(arr: pa.Array, plan: ColumnWritePlan) -> list[Any]:
    """Convert one Arrow column to the Python values pymssql quotes into exact T-SQL literals.

    Args:
        arr: the column (a chunk of a RecordBatch with the catalog schema).
        plan: the column's plan from :func:`write_plan`.

    Returns:
        One value per row (``None`` = NULL): ``bytearray`` (binary), ``uuid.UUID``, ``str`` in ISO
        8601 for time/datetime/datetime2/datetimeoffset, ``Decimal``, ``int``, ``float``,
        ``bool``, ``str``, ``datetime.date``.

    Raises:
        ValueError: NaN or infinity in a float column (SQL Server float cannot hold them), or a time
            finer than 100 ns.
    """
    kind = plan.kind
    if kind == "binary":
        return [None if v is None else bytearray(v) for v in arr.to_pylist()]
    if kind == "float":
        bad = pc.fill_null(pc.or_(pc.is_nan(arr), pc.is_inf(arr)), False)
        if pc.any(bad).as_py():
            raise ValueError("NaN or infinity cannot be held by SQL Server float/real")
        return arr.to_pylist()
    if kind == "uuid":
        return [None if b is None else uuid.UUID(bytes=b) for b in arr.storage.to_pylist()]
    if kind == "time":
        factor = 1 if arr.type.unit == "ns" else 1000
        return [None if v is None else _time_text(v * factor) for v in arr.view(pa.int64()).to_pylist()]
    if kind in {"datetime", "smalldatetime", "datetime2", "datetimeoffset"}:
        digits = {"datetime": 3, "smalldatetime": 0}.get(kind, 7)
        out: list[Any] = []
        for v in arr.to_pylist():
            if v is None:
                out.append(None)
            elif kind == "datetimeoffset":
                utc = v.astimezone(dt.UTC) if v.tzinfo else v
                out.append(_iso(utc, digits) + "+00:00")
            else:
                out.append(_iso(v, digits))
        return out
    return arr.to_pylist()


def batch_to_params(spec: TableSpec, batch: pa.RecordBatch, plans: Sequence[ColumnWritePlan] | None = None) -> list[tuple[Any, ...]]:
    """Convert a RecordBatch to row tuples of pymssql parameters, column by column.

    Args:
        spec: the table.
        batch: RecordBatch with ``arrow_schema(spec)``.
        plans: :func:`write_plan` of ``spec`` when the caller has it already.

    Returns:
        ``batch.num_rows`` tuples of ``len(spec.columns)`` values each.

    Raises:
        DataError: a value SQL Server cannot hold (NaN/infinity), naming table, column and key.
    """
    plans = list(plans) if plans is not None else write_plan(spec)
    cols: list[list[Any]] = []
    for i, plan in enumerate(plans):
        try:
            cols.append(column_to_params(batch.column(i), plan))
        except ValueError as exc:
            arr = batch.column(i)
            idx = 0
            for idx in range(len(arr)):  # slow path only on failure: find the first offending row
                try:
                    column_to_params(arr.slice(idx, 1), plan)
                except ValueError:
                    break
            raise DataError(str(exc), table=spec.qualified_name, column=plan.name, key=row_key(spec, batch, idx)) from exc
    return list(zip(*cols, strict=True)) if cols else []


def param_bytes(row: Sequence[Any]) -> int:
    """Estimated bytes of one row as T-SQL literal text (binary is hex: 2 bytes per byte; text is
    UTF-8: up to 3 bytes per UTF-16 unit)."""
    total = 0
    for v in row:
        if isinstance(v, (bytes, bytearray)):
            total += 2 * len(v) + 3
        elif isinstance(v, str):
            total += 3 * len(v) + 4
        else:
            total += 24
    return total

