"""SQL Server bulk load: RecordBatches through the TDS bulk-load protocol (``INSERT BULK``) with
python-tds (``pytds.Cursor.copy_to``), the writer's ``bulk_copy`` method.

Why python-tds and not pymssql's ``Connection.bulk_copy``: pymssql 2.4.6 (FreeTDS 1.5.19) sends a
bulk-load message Babelfish refuses for every table ("Trying to read more data than available in
BCP request"), binds ``datetime`` with milliseconds only and has no binding for uniqueidentifier,
date or decimals above 33 digits. python-tds writes each column in its declared TDS type from
Python values, inside the session's open transaction (measured: a rolled-back bulk load leaves no
row), identity values kept.

Every column is sent in exactly its target type (:func:`bulk_columns`): a text value sent for a
datetime2 column is not converted but misread by Babelfish (measured: garbage dates), so the
SQL Server canonical text the reader carries for datetime2/datetimeoffset is parsed here into
Python datetimes, which hold 6 fractional digits; a value with a non-zero 7th digit fails with a
``DataError`` (the ``executemany`` method keeps all 7).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from include.replication.core.batching import row_key
from include.replication.core.catalog import TableSpec
from include.replication.core.checks import check_batch
from include.replication.core.errors import ConfigurationError, DataError
from include.replication.dialects.mssql.convert import ColumnWritePlan, write_plan
from include.replication.dialects.mssql.dialect import MSSQL

__all__ = ["bulk_columns", "bulk_rows", "writable", "write_rows_bulk"]


def writable(spec: TableSpec, batch: pa.RecordBatch | None = None) -> tuple[TableSpec, pa.RecordBatch | None]:
    """The table and batch without their generated (computed) columns, which SQL Server computes
    itself and refuses values for."""
    if all(c.generated is None for c in spec.columns):
        return spec, batch
    kept = tuple(c for c in spec.columns if c.generated is None)
    narrowed = dataclasses.replace(spec, columns=kept)
    return narrowed, (batch.select([c.name for c in kept]) if batch is not None else None)

_ARGS = re.compile(r"^(\w+)(?:\((\w+)(?:,(\d+))?\))?$")
_CANONICAL = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,7}))?(?: ?([+-])(\d{2}):(\d{2}))?$"
)


def _tds_type(ddl: str, column: str, table: str) -> Any:
    """The python-tds type object of a SQL Server DDL type (``nvarchar(40)``, ``decimal(38,10)``)."""
    from pytds import tds_types as t

    m = _ARGS.match(ddl.replace(" ", "").lower())
    if m is None:
        raise ConfigurationError(f"bulk_copy cannot send SQL Server type {ddl!r}", table=table, column=column)
    base, arg, scale = m.group(1), m.group(2), m.group(3)
    size = None if arg in (None, "max") else int(arg)
    fixed: dict[str, Callable[[], Any]] = {
        "bit": t.BitType, "tinyint": t.TinyIntType, "smallint": t.SmallIntType, "int": t.IntType,
        "bigint": t.BigIntType, "real": t.RealType, "float": t.FloatType, "date": t.DateType, "datetime": t.DateTimeType,
        "smalldatetime": t.SmallDateTimeType, "uniqueidentifier": t.UniqueIdentifierType, "xml": t.XmlType,
    }
    if base in fixed:
        return fixed[base]()
    if base in ("decimal", "numeric"):
        # sent as decimal(38, s), which the server narrows to the column's (p, s): Babelfish reads
        # bulk-loaded decimals below precision 29 wrongly (measured: an overflow for 0.0001 in
        # decimal(19,4)), and every value of a decimal(p, s) column is a decimal(38, s)
        return t.DecimalType(38, int(scale or 0))
    if base in ("time", "datetime2", "datetimeoffset"):
        cls = {"time": t.TimeType, "datetime2": t.DateTime2Type, "datetimeoffset": t.DateTimeOffsetType}[base]
        return cls(int(arg) if arg is not None else 7)
    sized: dict[str, tuple[Callable[..., Any], Callable[[], Any] | None]] = {
        "char": (t.CharType, None), "nchar": (t.NCharType, None),
        "varchar": (t.VarCharType, t.VarCharMaxType), "nvarchar": (t.NVarCharType, t.NVarCharMaxType),
        # binary(n) as varbinary(n): python-tds 1.17's BinaryType has no serializer (it fails on use)
        "binary": (t.VarBinaryType, None), "varbinary": (t.VarBinaryType, t.VarBinaryMaxType),
    }
    if base in sized:
        cls, max_cls = sized[base]
        if size is None and max_cls is not None:
            return max_cls()
        return cls(size or 1)
    why = {
        "money": "python-tds fails at money's extremes and Babelfish misreads money sent as decimal",
        "smallmoney": "python-tds fails to send smallmoney's extremes",
    }.get(base, "python-tds has no exact binding for it")
    raise ConfigurationError(
        f"bulk_copy cannot send SQL Server type {ddl!r} exactly ({why}); use the executemany write method",
        table=table, column=column,
    )


def bulk_columns(spec: TableSpec, plans: Sequence[ColumnWritePlan] | None = None) -> list[Any]:
    """``pytds.Column`` per column of ``spec``, each in its mapped SQL Server type.

    Raises:
        ConfigurationError: a type python-tds cannot send exactly (``xml``), naming the column.
    """
    import pytds

    plans = list(plans) if plans is not None else write_plan(spec)
    return [pytds.Column(name=p.name, type=_tds_type(p.target_type, p.name, spec.qualified_name)) for p in plans]


def _from_text(value: str | None, with_offset: bool) -> dt.datetime | None:
    if value is None:
        return None
    m = _CANONICAL.match(value)
    if m is None:
        raise ValueError(f"{value!r} is not SQL Server datetime text")
    y, mo, d, h, mi, s, frac, sign, oh, om = m.groups()
    frac = (frac or "").ljust(7, "0")
    if frac[6] != "0":
        raise ValueError(f"{value!r} has a 7th fractional digit; bulk_copy carries 6 (use executemany to keep 7)")
    tz = None
    if with_offset:
        minutes = (int(oh or 0) * 60 + int(om or 0)) * (-1 if sign == "-" else 1)
        tz = dt.timezone(dt.timedelta(minutes=minutes))
    return dt.datetime(int(y), int(mo), int(d), int(h), int(mi), int(s), int(frac[:6]), tzinfo=tz)


def _column(arr: pa.Array, plan: ColumnWritePlan) -> list[Any]:
    base = plan.target_type.split("(")[0].strip().lower()
    typ = arr.type
    if getattr(typ, "extension_name", None) == "arrow.uuid":
        return [None if b is None else uuid.UUID(bytes=b) for b in arr.storage.to_pylist()]
    if pa.types.is_string(typ) and base in ("datetime2", "datetimeoffset"):
        return [_from_text(v, base == "datetimeoffset") for v in arr.to_pylist()]
    if pa.types.is_time64(typ):
        ns = arr.cast(pa.int64()).to_pylist() if typ.unit == "ns" else [
            None if v is None else v * 1000 for v in arr.cast(pa.int64()).to_pylist()]
        out: list[Any] = []
        for v in ns:
            if v is None:
                out.append(None)
                continue
            if v % 1000:
                raise ValueError(f"time {v} ns has a sub-microsecond part; bulk_copy carries microseconds")
            secs, us = divmod(v // 1000, 1_000_000)
            out.append(dt.time(secs // 3600, secs // 60 % 60, secs % 60, us))
        return out
    if pa.types.is_floating(typ):
        bad = pc.fill_null(pc.or_(pc.is_nan(arr), pc.is_inf(arr)), False)
        if pc.any(bad).as_py():
            raise ValueError("NaN or infinity cannot be held by SQL Server float/real")
    if pa.types.is_binary(typ) or pa.types.is_fixed_size_binary(typ) or pa.types.is_large_binary(typ):
        return [None if v is None else bytes(v) for v in arr.to_pylist()]
    return arr.to_pylist()


def bulk_rows(spec: TableSpec, batch: pa.RecordBatch, plans: Sequence[ColumnWritePlan] | None = None) -> list[tuple[Any, ...]]:
    """The batch as row tuples of the Python values python-tds sends exactly, column by column.

    Raises:
        DataError: a value the bulk path cannot send exactly (7th fractional digit, sub-microsecond
            time, NaN), naming table, column and key.
    """
    plans = list(plans) if plans is not None else write_plan(spec)
    cols: list[list[Any]] = []
    for i, plan in enumerate(plans):
        arr = batch.column(i)
        try:
            cols.append(_column(arr, plan))
        except ValueError as exc:
            idx = 0
            for idx in range(len(arr)):  # slow path only on failure: the first offending row
                try:
                    _column(arr.slice(idx, 1), plan)
                except ValueError:
                    break
            raise DataError(str(exc), table=spec.qualified_name, column=plan.name, key=row_key(spec, batch, idx)) from exc
    return list(zip(*cols, strict=True)) if cols else []


def write_rows_bulk(cursor: Any, spec: TableSpec, batch: pa.RecordBatch, *, schema: str, table: str | None = None,
                    columns: list[Any] | None = None) -> int:
    """Bulk-load one RecordBatch with ``cursor.copy_to`` (python-tds) inside the open transaction.

    Args:
        cursor: a python-tds cursor of the unit's session.
        spec: the table.
        batch: RecordBatch with ``arrow_schema(spec)``.
        schema: target schema.
        table: target table name (default ``spec.name``).
        columns: :func:`bulk_columns` of ``spec`` when the caller has them already.

    Returns:
        Rows written (``batch.num_rows``); 0 rows sends nothing.

    Raises:
        DataError: a value SQL Server cannot hold unchanged (table, column, key).
        ConfigurationError: a column type the bulk path cannot send.
    """
    if batch.num_rows == 0:
        return 0
    check_batch(spec, batch, MSSQL)
    spec, narrowed = writable(spec, batch)
    assert narrowed is not None
    batch = narrowed
    plans = write_plan(spec)
    rows = bulk_rows(spec, batch, plans)
    cursor.copy_to(
        table_or_view=table or spec.name, schema=schema, data=rows,
        columns=columns if columns is not None else bulk_columns(spec, plans), keep_nulls=True,
    )
    return len(rows)
