"""Value checks run by writers before a batch reaches the target, so that nothing is truncated or
mangled silently and a bad value fails with table, column and row key.

The checks are vectorised (pyarrow.compute) and cost one pass over the string columns.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from .catalog import MAX_LENGTH, TableSpec
from .errors import DataError

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


def check_batch(spec: TableSpec, batch: pa.RecordBatch, *, reject_nul: bool, length_unit: str = "code_points") -> None:
    """Check that every value of ``batch`` fits its target column unchanged.

    Checks: text longer than the column's declared length (``length_unit``: ``code_points`` for
    PostgreSQL, ``utf16`` for SQL Server ``nchar``/``nvarchar`` whose lengths count UTF-16 code
    units); a NUL character in text when ``reject_nul`` (PostgreSQL text cannot hold U+0000).

    Args:
        spec: the table (declared lengths come from its columns).
        batch: a RecordBatch with ``arrow_schema(spec)``.
        reject_nul: True for targets whose text types cannot hold NUL.
        length_unit: ``code_points`` or ``utf16``.

    Raises:
        DataError: the first offending value, naming table, column and primary key.
    """
    names = batch.schema.names
    for col in spec.columns:
        if col.name not in names:
            continue
        arr = batch.column(names.index(col.name))
        if not pa.types.is_string(arr.type) and not pa.types.is_large_string(arr.type):
            continue
        if reject_nul:
            idx = _first_true(pc.fill_null(pc.match_substring(arr, "\x00"), False))
            if idx is not None:
                raise DataError(
                    "text contains a NUL character (U+0000), which PostgreSQL text cannot hold",
                    table=spec.qualified_name,
                    column=col.name,
                    key=row_key(spec, batch, idx),
                )
        if col.length is not None and col.length != MAX_LENGTH and col.length > 0:
            if length_unit == "utf16":
                # code points above U+FFFF take two UTF-16 code units
                astral = pc.count_substring_regex(arr, "[\U00010000-\U0010ffff]")
                lengths = pc.add(pc.utf8_length(arr), astral)
            else:
                lengths = pc.utf8_length(arr)
            idx = _first_true(pc.fill_null(pc.greater(lengths, col.length), False))
            if idx is not None:
                raise DataError(
                    f"text of {lengths[idx].as_py()} characters exceeds the column length {col.length}",
                    table=spec.qualified_name,
                    column=col.name,
                    key=row_key(spec, batch, idx),
                )
