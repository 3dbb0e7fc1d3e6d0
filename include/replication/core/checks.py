"""Value checks run by writers before a batch reaches the target, so that nothing is truncated or
mangled silently and a bad value fails with table, column and row key.

The checks cost about one memory scan of each string column: the NUL check looks for a zero
byte in the column's value buffer (a NUL character is the only UTF-8 sequence containing one), and
the length check first bounds characters by bytes (a value of at most ``n`` bytes has at most ``n``
characters and at most ``n`` UTF-16 code units) and counts characters only for the few values
whose byte length exceeds the column length. Only when something is found does it locate the
first offending row for the error.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from include.replication.core.batching import row_key
from include.replication.core.catalog import MAX_LENGTH, ColumnSpec, TableSpec
from include.replication.core.dialect import Dialect, LengthUnit
from include.replication.core.errors import DataError
from include.replication.core.typemap import target_type

__all__ = ["check_batch", "check_temporal"]


def _first_true(mask: pa.Array) -> int | None:
    if not pc.any(mask).as_py():
        return None
    return int(pc.index(mask, True).as_py())


def _offsets_and_data(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Value offsets (len + 1, relative to the data buffer) and the data bytes of a string array."""
    offset_type = np.int64 if pa.types.is_large_string(arr.type) else np.int32
    buffers = arr.buffers()
    offsets = np.frombuffer(buffers[1], dtype=offset_type)[arr.offset : arr.offset + len(arr) + 1]
    data = np.frombuffer(buffers[2], dtype=np.uint8) if buffers[2] is not None else np.zeros(0, np.uint8)
    return offsets, data[int(offsets[0]) : int(offsets[-1])] if len(offsets) else data[:0]


def _lengths(arr: pa.Array, length_unit: LengthUnit) -> pa.Array:
    lengths = pc.utf8_length(arr)
    if length_unit == "utf16":
        # code points above U+FFFF take two UTF-16 code units
        lengths = pc.add(lengths, pc.count_substring_regex(arr, "[\U00010000-\U0010ffff]"))
    return lengths


def check_batch(spec: TableSpec, batch: pa.RecordBatch, target: Dialect) -> None:
    """Check that every value of ``batch`` fits its target column unchanged.

    Checks: text longer than the column's declared length, counted in the target's
    ``Dialect.length_unit`` (code points for PostgreSQL, UTF-16 code units for SQL Server
    ``nchar``/``nvarchar``); a NUL character in text when the target's
    ``Dialect.text_allows_nul`` is False (PostgreSQL text cannot hold U+0000); dates and
    timestamps outside the target type's range or finer than it keeps (:func:`check_temporal`).

    Args:
        spec: the table (declared lengths come from its columns).
        batch: a RecordBatch with ``arrow_schema(spec)``; slices are fine.
        target: the Dialect record of the database the batch is written to.

    Raises:
        DataError: the first offending value, naming table, column and primary key.
    """
    reject_nul = not target.text_allows_nul
    length_unit = target.length_unit
    names = batch.schema.names
    for col in spec.columns:
        if col.name not in names:
            continue
        arr = batch.column(names.index(col.name))
        if pa.types.is_timestamp(arr.type) or pa.types.is_date32(arr.type):
            check_temporal(spec, col, arr, batch, target)
            continue
        if not pa.types.is_string(arr.type) and not pa.types.is_large_string(arr.type):
            continue
        if len(arr) == 0:
            continue
        offsets, data = _offsets_and_data(arr)
        if reject_nul and data.size and not data.all():
            idx = _first_true(pc.fill_null(pc.match_substring(arr, "\x00"), False))
            if idx is not None:
                raise DataError(
                    f"text contains a NUL character (U+0000), which {target.name} text cannot hold",
                    table=spec.qualified_name,
                    column=col.name,
                    key=row_key(spec, batch, idx),
                )
        if col.length is not None and col.length != MAX_LENGTH and col.length > 0:
            if not (np.diff(offsets) > col.length).any():
                continue  # no value has more bytes than the column has characters
            lengths = _lengths(arr, length_unit)
            idx = _first_true(pc.fill_null(pc.greater(lengths, col.length), False))
            if idx is not None:
                raise DataError(
                    f"text of {lengths[idx].as_py()} characters exceeds the column length {col.length}",
                    table=spec.qualified_name,
                    column=col.name,
                    key=row_key(spec, batch, idx),
                )


def _shown(value: int, unit: str) -> str:
    """A microsecond (or day) count since 1970 as ISO text, years outside 1..9999 included."""
    days, us = (value, 0) if unit == "day" else divmod(value, 86_400_000_000)
    y, m, d = _civil(days)
    if unit == "day":
        return f"{y:04d}-{m:02d}-{d:02d}"
    secs, frac = divmod(us, 1_000_000)
    return f"{y:04d}-{m:02d}-{d:02d} {secs // 3600:02d}:{secs // 60 % 60:02d}:{secs % 60:02d}.{frac:06d}"


def _civil(days: int) -> tuple[int, int, int]:
    """Proleptic Gregorian (year, month, day) of a day count since 1970-01-01 (any year; H. Hinnant's
    ``civil_from_days``, https://howardhinnant.github.io/date_algorithms.html)."""
    z = days + 719_468
    era = z // 146_097
    doe = z - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (m <= 2), m, d


def check_temporal(spec: TableSpec, col: ColumnSpec, arr: pa.Array, batch: pa.RecordBatch, target: Dialect) -> None:
    """Check a date or timestamp column against the target type's range and precision.

    The target type is the mapped DDL (``typemap.target_type``); its limits come from
    ``Dialect.temporal_limits`` (range, SQL Server ``datetime``'s 1/300 s ticks, ``smalldatetime``'s
    minutes) and its declared fractional digits ``(p)`` (``timestamp(3)`` keeps milliseconds). A
    value the target would reject, or silently round, fails here, before anything is written.

    Args:
        spec: the table.
        col: the column.
        arr: its values (``timestamp[us]`` with or without time zone, or ``date32``).
        batch: the batch, for the row key.
        target: the target's Dialect record.

    Raises:
        DataError: the first offending value, naming table, column, key and the type's limits.
    """
    if arr.null_count == len(arr):
        return
    ddl = target_type(spec, col, target)
    base = ddl.split("(")[0].strip()
    limits = target.temporal_limits.get(base)
    is_date = pa.types.is_date32(arr.type)
    if is_date:
        values = arr.cast(pa.int32()).cast(pa.int64())
    else:
        if arr.type.unit != "us":
            arr = arr.cast(pa.timestamp("us", arr.type.tz))
        values = arr.cast(pa.int64())
    unit = "day" if is_date else "us"
    if limits is not None and limits.unit == unit:
        bounds = pc.min_max(values).as_py()
        if bounds["min"] < limits.minimum or bounds["max"] > limits.maximum:
            bad = pc.or_(pc.less(values, limits.minimum), pc.greater(values, limits.maximum))
            idx = _first_true(pc.fill_null(bad, False))
            assert idx is not None
            raise DataError(
                f"value {_shown(values[idx].as_py(), unit)} is outside {target.name} {ddl}'s range "
                f"{_shown(limits.minimum, unit)} to {_shown(limits.maximum, unit)}",
                table=spec.qualified_name, column=col.name, key=row_key(spec, batch, idx),
            )
    if is_date:
        return
    step = limits.step_us if limits is not None else 1
    digits = ddl.split("(")[1].rstrip(")") if "(" in ddl else ""
    if digits.isdigit() and int(digits) < 6:
        step = max(step, 10 ** (6 - int(digits)))
    grid = limits is not None and limits.ms_last_digits is not None
    if step == 1 and not grid:
        return
    v = pc.fill_null(values, 0).to_numpy(zero_copy_only=False)  # int64: exact integer arithmetic
    off = np.mod(v, step) != 0
    if grid:
        assert limits is not None and limits.ms_last_digits is not None
        off |= ~np.isin(np.mod(v // 1000, 10), sorted(limits.ms_last_digits))
    off &= arr.is_valid().to_numpy(zero_copy_only=False)
    hits = np.flatnonzero(off)
    idx = int(hits[0]) if hits.size else None
    if idx is not None:
        what = "1/300 s ticks (milliseconds ending in 0, 3 or 7)" if grid else f"multiples of {step} microseconds"
        raise DataError(
            f"value {_shown(values[idx].as_py(), unit)} is finer than {target.name} {ddl} keeps ({what}); "
            "it would be rounded",
            table=spec.qualified_name, column=col.name, key=row_key(spec, batch, idx),
        )
