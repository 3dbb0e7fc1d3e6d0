"""Value checks before a batch reaches the target: lengths and NUL characters, with the row key."""

from __future__ import annotations

from dataclasses import replace

import pyarrow as pa
import pytest

from include.replication.core.catalog import ColumnSpec, TableSpec
from include.replication.core.checks import check_batch, row_key
from include.replication.core.errors import DataError
from include.replication.dialects.mssql.dialect import MSSQL
from include.replication.dialects.postgres.dialect import POSTGRES

CODEPOINTS = replace(POSTGRES, text_allows_nul=True)
"""Lengths in code points, NUL allowed: the length check alone."""
UTF16 = replace(MSSQL, text_allows_nul=True)
UTF16_NO_NUL = MSSQL

SPEC = TableSpec(
    name="Users",
    schema="dbo",
    dialect="mssql",
    columns=(
        ColumnSpec("Id", "int", nullable=False, identity=True),
        ColumnSpec("DisplayName", "nvarchar", length=5),
        ColumnSpec("AboutMe", "nvarchar", length=-1),
    ),
    primary_key=("Id",),
)
SCHEMA = pa.schema([pa.field("Id", pa.int32(), nullable=False), ("DisplayName", pa.string()), ("AboutMe", pa.string())])


def batch(names, about=None, ids=None, string_type=None):
    n = len(names)
    string_type = string_type or pa.string()
    schema = pa.schema([SCHEMA.field(0), pa.field("DisplayName", string_type), pa.field("AboutMe", string_type)])
    return pa.RecordBatch.from_arrays(
        [pa.array(ids or list(range(10, 10 + n)), pa.int32()), pa.array(names, string_type),
         pa.array(about or ["x"] * n, string_type)],
        schema=schema,
    )


@pytest.mark.parametrize("string_type", [pa.string(), pa.large_string()])
def test_values_within_limits_pass(string_type):
    check_batch(SPEC, batch(["abcde", None, "", "ééééé"], string_type=string_type), POSTGRES)


@pytest.mark.parametrize("string_type", [pa.string(), pa.large_string()])
def test_too_long_names_table_column_key(string_type):
    with pytest.raises(DataError) as info:
        check_batch(SPEC, batch(["ok", "abcdef", "also too long"], string_type=string_type), CODEPOINTS)
    err = info.value
    assert (err.table, err.column, err.key) == ("dbo.Users", "DisplayName", 11)
    assert "6 characters exceeds the column length 5" in str(err)


def test_multibyte_characters_are_counted_as_characters_not_bytes():
    check_batch(SPEC, batch(["ééééé", "日本語日本"]), POSTGRES)  # 10 and 15 bytes, 5 characters
    with pytest.raises(DataError) as info:
        check_batch(SPEC, batch(["日本語日本語"]), POSTGRES)
    assert info.value.key == 10


def test_utf16_units_count_astral_characters_twice():
    """SQL Server nvarchar(5) holds 5 UTF-16 code units: three emoji need 6."""
    check_batch(SPEC, batch(["😀😀"]), UTF16)
    check_batch(SPEC, batch(["😀😀😀"]), CODEPOINTS)  # 3 code points fit PostgreSQL varchar(5)
    with pytest.raises(DataError) as info:
        check_batch(SPEC, batch(["😀😀😀"]), UTF16)
    assert "6 characters" in str(info.value)


def test_nul_is_rejected_only_when_asked_and_names_the_row():
    data = batch(["a", "b", "c"], about=["fine", "bad\x00tail", "\x00"])
    check_batch(SPEC, data, CODEPOINTS)
    with pytest.raises(DataError) as info:
        check_batch(SPEC, data, POSTGRES)
    assert (info.value.column, info.value.key) == ("AboutMe", 11)


def test_sliced_batches_report_the_key_within_the_slice():
    """A slice's offsets start mid-buffer: the check must look only at the slice's values."""
    data = batch(["toolong!", "ok", "ok2", "ALSO TOO LONG"], about=["\x00", "x", "y", "z"])
    middle = data.slice(1, 2)
    check_batch(SPEC, middle, POSTGRES)  # the bad rows are outside the slice
    with pytest.raises(DataError) as info:
        check_batch(SPEC, data.slice(2, 2), POSTGRES)
    assert info.value.key == 13


def test_row_key_shapes():
    data = batch(["a", "b"])
    assert row_key(SPEC, data, 1) == 11
    composite = TableSpec(name="T", columns=SPEC.columns, primary_key=("Id", "DisplayName"))
    assert row_key(composite, data, 0) == (10, "a")
    keyless = TableSpec(name="T", columns=SPEC.columns)
    assert row_key(keyless, data, 1) == {"row_in_batch": 1}
