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

from include.replication.core.catalog import MAX_LENGTH, TableSpec
from include.replication.core.dialect import Dialect, LengthUnit
from include.replication.core.errors import DataError

__all__ = ["row_key", "check_batch"]


def row_key(spec: TableSpec, batch: pa.RecordBatch, index: int) -> object:
    """Primary-key value of row ``index`` of ``batch``: a scalar for a one-column key, a tuple for
    a composite key, the row number within the batch when the table has no key."""
    if not spec.primary_key:
        return {"row_in_batch": index}
    names = batch.schema.names
    values = tuple(batch.column(names.index(c))[index].as_py() for c in spec.primary_key if c in names)
    return values[0] if len(values) == 1 else values


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
    ``Dialect.text_allows_nul`` is False (PostgreSQL text cannot hold U+0000).

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
