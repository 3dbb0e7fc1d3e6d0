"""Value checks before a batch reaches the target: lengths and NUL characters, with the row key."""

from __future__ import annotations

from dataclasses import replace

import pyarrow as pa
import pytest

from include.replication.core.batching import row_key
from include.replication.core.catalog import ColumnSpec, TableSpec
from include.replication.core.checks import check_batch
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


TIMESTAMP_US = pa.timestamp("us")


def _ts_batch(spec, values, typ=TIMESTAMP_US):
    return pa.RecordBatch.from_arrays([pa.array(range(1, len(values) + 1), pa.int32()), pa.array(values, typ)],
                                      schema=pa.schema([pa.field("Id", pa.int32(), nullable=False), pa.field("d", typ)]))


def _spec(source_type, dialect, precision=None):
    return TableSpec("T", (ColumnSpec("Id", "int" if dialect == "mssql" else "integer", nullable=False),
                           ColumnSpec("d", source_type, precision=precision)), primary_key=("Id",), dialect=dialect)


def test_datetime_range_and_ticks_for_a_sql_server_datetime_target():
    import datetime as dt

    spec = _spec("datetime", "mssql")
    check_batch(spec, _ts_batch(spec, [dt.datetime(1753, 1, 1), dt.datetime(9999, 12, 31, 23, 59, 59, 997000),
                                       dt.datetime(2010, 5, 6, 7, 8, 9, 3000), None]), MSSQL)
    with pytest.raises(DataError) as info:
        check_batch(spec, _ts_batch(spec, [dt.datetime(2001, 1, 1), dt.datetime(1700, 1, 1)]), MSSQL)
    assert (info.value.column, info.value.key) == ("d", 2)
    assert "1700-01-01 00:00:00.000000 is outside mssql datetime's range 1753-01-01" in str(info.value)
    for finer in (dt.datetime(2020, 1, 1, 0, 0, 0, 1500), dt.datetime(2020, 1, 1, 0, 0, 0, 998000)):
        with pytest.raises(DataError, match="finer than mssql datetime keeps.*1/300 s ticks") as info:
            check_batch(spec, _ts_batch(spec, [finer]), MSSQL)
        assert info.value.key == 1
    small = _spec("smalldatetime", "mssql")
    check_batch(small, _ts_batch(small, [dt.datetime(2079, 6, 6, 23, 59)]), MSSQL)
    with pytest.raises(DataError, match="finer than mssql smalldatetime"):
        check_batch(small, _ts_batch(small, [dt.datetime(2000, 1, 1, 0, 0, 30)]), MSSQL)
    with pytest.raises(DataError, match="outside mssql smalldatetime's range"):
        check_batch(small, _ts_batch(small, [dt.datetime(2079, 6, 7)]), MSSQL)


def test_timestamp_precision_and_range_for_a_postgres_target():
    import datetime as dt

    ms = _spec("timestamp without time zone", "postgresql", precision=3)
    check_batch(ms, _ts_batch(ms, [dt.datetime(2020, 1, 1, 0, 0, 0, 123000)]), POSTGRES)
    with pytest.raises(DataError, match=r"finer than postgresql timestamp\(3\) keeps \(multiples of 1000"):
        check_batch(ms, _ts_batch(ms, [dt.datetime(2020, 1, 1, 0, 0, 0, 123400)]), POSTGRES)
    us = _spec("timestamp without time zone", "postgresql", precision=6)
    check_batch(us, _ts_batch(us, [dt.datetime(2020, 1, 1, 0, 0, 0, 123456)]), POSTGRES)
    # a year before 4713 BC: Arrow holds it, PostgreSQL (and ADBC's COPY encoder) cannot
    early = pa.array([-(10**18)], pa.int64()).cast(pa.timestamp("us"))
    with pytest.raises(DataError, match="outside postgresql timestamp\\(6\\)'s range -4713-11-24"):
        check_batch(us, _ts_batch(us, early), POSTGRES)
    day = _spec("date", "postgresql")
    late = pa.array([2_145_042_906], pa.int32()).cast(pa.date32())
    with pytest.raises(DataError, match="outside postgresql date's range .* to 5874897-12-31"):
        check_batch(day, _ts_batch(day, late, pa.date32()), POSTGRES)
    check_batch(day, _ts_batch(day, pa.array([2_145_042_905, None], pa.int32()).cast(pa.date32()), pa.date32()), POSTGRES)


def test_postgres_timestamp_into_sql_server_datetime2_range():
    import datetime as dt

    spec = _spec("timestamp without time zone", "postgresql", precision=6)
    check_batch(spec, _ts_batch(spec, [dt.datetime(1, 1, 1), dt.datetime(9999, 12, 31, 23, 59, 59, 999999)]), MSSQL)
    year_10000 = pa.array([253_402_300_800_000_000], pa.int64()).cast(pa.timestamp("us"))
    with pytest.raises(DataError, match="10000-01-01 00:00:00.000000 is outside mssql datetime2\\(6\\)'s range"):
        check_batch(spec, _ts_batch(spec, year_10000), MSSQL)
