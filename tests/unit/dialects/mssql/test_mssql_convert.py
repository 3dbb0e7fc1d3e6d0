"""SQL Server value conversion without a server: pymssql's Python values -> exact Arrow values
(read side) and Arrow -> the parameters pymssql quotes into exact T-SQL literals (write side).

The Python values used here are the kinds pymssql 2.4 returns for each type (see its
``_mssql.pyx`` ``convert_db_value``); the literal checks run pymssql's real quoting function
``_mssql.quote_simple_value``.
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import pyarrow as pa
import pytest
from pymssql import _mssql

from include.replication.core.catalog import ColumnSpec, TableSpec
from include.replication.core.errors import ConfigurationError, DataError
from include.replication.core.typemap import arrow_schema
from include.replication.dialects.mssql.convert import (
    batch_to_params,
    chunk_rows,
    group_rows_by_bytes,
    next_fetch_size,
    plan_chunks,
    rows_to_batch,
    write_plan,
)

GUID = uuid.UUID("6F9619FF-8B86-D011-B42D-00C04FC964FF")  # non-palindromic: byte order matters
UTC = dt.UTC


def _spec(*cols: ColumnSpec, dialect: str = "mssql") -> TableSpec:
    return TableSpec("Probe", (ColumnSpec("Id", "int", nullable=False),) + cols, schema="dbo", primary_key=("Id",), dialect=dialect)  # type: ignore[arg-type]


# (column, pymssql value, expected Arrow type, expected Arrow value via as_py())
CASES = [
    (ColumnSpec("c", "bigint"), -(2**63), pa.int64(), -(2**63)),
    (ColumnSpec("c", "int"), 2**31 - 1, pa.int32(), 2**31 - 1),
    (ColumnSpec("c", "smallint"), -32768, pa.int16(), -32768),
    (ColumnSpec("c", "tinyint"), 255, pa.int16(), 255),
    (ColumnSpec("c", "bit"), True, pa.bool_(), True),
    (ColumnSpec("c", "decimal", precision=38, scale=10), Decimal("-1234567890123456789012345678.0123456789"), pa.decimal128(38, 10), Decimal("-1234567890123456789012345678.0123456789")),
    (ColumnSpec("c", "numeric", precision=5, scale=2), Decimal("1.5"), pa.decimal128(5, 2), Decimal("1.50")),
    (ColumnSpec("c", "money"), Decimal("-922337203685477.5808"), pa.decimal128(19, 4), Decimal("-922337203685477.5808")),
    (ColumnSpec("c", "smallmoney"), Decimal("214748.3647"), pa.decimal128(10, 4), Decimal("214748.3647")),
    (ColumnSpec("c", "float"), 0.1, pa.float64(), 0.1),
    (ColumnSpec("c", "real"), 3.4028234663852886e38, pa.float32(), 3.4028234663852886e38),
    (ColumnSpec("c", "date"), dt.date(1, 1, 1), pa.date32(), dt.date(1, 1, 1)),
    (ColumnSpec("c", "time", precision=7), dt.time(23, 59, 59, 999999), pa.time64("ns"), 86_399_999_999_000),
    (ColumnSpec("c", "time", precision=7), 86_399_999_999_900, pa.time64("ns"), 86_399_999_999_900),  # DATEDIFF_BIG select
    (ColumnSpec("c", "time", precision=3), 45_296_789_000_000, pa.time64("us"), dt.time(12, 34, 56, 789000)),
    (ColumnSpec("c", "datetime"), dt.datetime(2010, 12, 31, 23, 59, 59, 997000), pa.timestamp("us"), dt.datetime(2010, 12, 31, 23, 59, 59, 997000)),
    (ColumnSpec("c", "smalldatetime"), dt.datetime(2079, 6, 6, 23, 59), pa.timestamp("us"), dt.datetime(2079, 6, 6, 23, 59)),
    (ColumnSpec("c", "datetime2", precision=7), "9999-12-31 23:59:59.9999999", pa.string(), "9999-12-31 23:59:59.9999999"),
    (ColumnSpec("c", "datetime2", precision=7), "0001-01-01 00:00:00.0000000", pa.string(), "0001-01-01 00:00:00.0000000"),
    (ColumnSpec("c", "datetimeoffset", precision=7), "2020-01-01 05:30:00.1234567 +05:30", pa.string(), "2020-01-01 05:30:00.1234567 +05:30"),
    (ColumnSpec("c", "datetimeoffset", precision=7), "0001-01-01 00:00:00.0000000 -14:00", pa.string(), "0001-01-01 00:00:00.0000000 -14:00"),
    (ColumnSpec("c", "char", length=3), "ab ", pa.string(), "ab "),
    (ColumnSpec("c", "varchar", length=50), "Linked", pa.string(), "Linked"),
    (ColumnSpec("c", "nchar", length=2), "ü€", pa.string(), "ü€"),
    (ColumnSpec("c", "nvarchar", length=-1), "naïve 😀 " * 3, pa.string(), "naïve 😀 " * 3),
    (ColumnSpec("c", "text", length=-1), "x" * 10_000, pa.string(), "x" * 10_000),
    (ColumnSpec("c", "ntext", length=-1), "Ωμέγα", pa.string(), "Ωμέγα"),
    (ColumnSpec("c", "xml", length=-1), "<a b=\"1\"/>", pa.string(), "<a b=\"1\"/>"),
    (ColumnSpec("c", "binary", length=4), b"\x00\x01\x02\x03", pa.binary(), b"\x00\x01\x02\x03"),
    (ColumnSpec("c", "varbinary", length=-1), b"", pa.binary(), b""),
    (ColumnSpec("c", "image", length=-1), b"\xff" * 100, pa.binary(), b"\xff" * 100),
    (ColumnSpec("c", "uniqueidentifier"), GUID, pa.uuid(), GUID),
    (ColumnSpec("c", "timestamp"), b"\x00\x00\x00\x00\x00\x00\x07\xd1", pa.binary(8), b"\x00\x00\x00\x00\x00\x00\x07\xd1"),
    (ColumnSpec("c", "rowversion"), b"\x00\x00\x00\x00\x00\x00\x07\xd2", pa.binary(8), b"\x00\x00\x00\x00\x00\x00\x07\xd2"),
]


@pytest.mark.parametrize("col,value,arrow,expected", CASES, ids=[f"{c[0].source_type}-{i}" for i, c in enumerate(CASES)])
def test_pymssql_value_becomes_exact_arrow_value(col, value, arrow, expected):
    spec = _spec(col)
    batch = rows_to_batch(spec, [(1, value), (2, None)])
    assert batch.schema == arrow_schema(spec)
    assert batch.column(1).type == arrow
    got = batch.column(1)[0]
    if pa.types.is_time64(arrow) and arrow.unit == "ns":
        assert got.cast(pa.int64()).as_py() == expected  # as_py() would cut nanoseconds
    else:
        assert got.as_py() == expected
    assert batch.column(1)[1].as_py() is None


def test_uuid_arrow_storage_is_rfc_byte_order_and_text_matches_sql_server():
    batch = rows_to_batch(_spec(ColumnSpec("g", "uniqueidentifier")), [(1, GUID)])
    assert batch.column(1).storage[0].as_py() == bytes.fromhex("6F9619FF8B86D011B42D00C04FC964FF")
    assert str(batch.column(1)[0].as_py()).upper() == "6F9619FF-8B86-D011-B42D-00C04FC964FF"


def test_money_float_is_refused_not_rounded():
    with pytest.raises(DataError) as err:
        rows_to_batch(_spec(ColumnSpec("m", "money")), [(7, 1.1)])
    assert (err.value.table, err.value.column, err.value.key) == ("dbo.Probe", "m", 7)


def test_decimal_with_more_digits_than_scale_fails_with_key():
    with pytest.raises(DataError) as err:
        rows_to_batch(_spec(ColumnSpec("d", "decimal", precision=10, scale=2)), [(1, Decimal("1.25")), (2, Decimal("1.255"))])
    assert (err.value.column, err.value.key) == ("d", 2)


def test_null_in_not_null_column_fails_with_key():
    with pytest.raises(DataError) as err:
        rows_to_batch(_spec(ColumnSpec("n", "int", nullable=False)), [(1, 5), (9, None)])
    assert (err.value.column, err.value.key) == ("n", 9)


def test_zero_rows_keep_schema():
    spec = _spec(ColumnSpec("s", "nvarchar", length=40))
    batch = rows_to_batch(spec, [])
    assert batch.num_rows == 0 and batch.schema == arrow_schema(spec)


def test_group_rows_by_bytes_big_row_travels_alone_and_order_kept():
    rows = [(1, "a"), (2, "b"), (3, "x" * 1000), (4, "c"), (5, "d"), (6, "e")]
    groups = list(group_rows_by_bytes(rows, batch_rows=2, batch_bytes=100))
    assert [[r[0] for r in g] for g in groups] == [[1, 2], [3], [4, 5], [6]]


def test_next_fetch_size_adapts_to_bytes_per_row():
    assert next_fetch_size(0, 0, batch_rows=50_000, batch_bytes=8 << 20) == 1000
    assert next_fetch_size(1_000_000, 100, batch_rows=50_000, batch_bytes=8 << 20) == 838  # 10,000 B/row
    assert next_fetch_size(100, 10, batch_rows=500, batch_bytes=8 << 20) == 500
    assert next_fetch_size(10 << 20, 1, batch_rows=500, batch_bytes=8 << 20) == 1


@pytest.mark.parametrize("columns,expected", [(1, 1000), (7, 299), (20, 104), (300, 6)])
def test_chunk_rows_respects_parameter_and_values_limits(columns, expected):
    n = chunk_rows(columns)
    assert n == expected
    assert n * columns <= 2099 and n <= 1000


def test_chunk_rows_rejects_impossible_widths():
    with pytest.raises(ConfigurationError):
        chunk_rows(0)
    with pytest.raises(ConfigurationError):
        chunk_rows(2100)


def test_plan_chunks_by_rows_and_bytes():
    assert plan_chunks([], 3, 100) == []
    assert plan_chunks([10] * 7, 3, 1000) == [(0, 3), (3, 6), (6, 7)]
    assert plan_chunks([10, 10, 500, 10], 10, 100) == [(0, 2), (2, 3), (3, 4)]


# ---------------------------------------------------------------- write side
def _write_spec() -> TableSpec:
    cols = (
        ColumnSpec("bin", "varbinary", length=-1),
        ColumnSpec("g", "uniqueidentifier"),
        ColumnSpec("dt", "datetime"),
        ColumnSpec("sdt", "smalldatetime"),
        ColumnSpec("dt2", "datetime2", precision=7),
        ColumnSpec("dto", "datetimeoffset", precision=7),
        ColumnSpec("t", "time", precision=7),
        ColumnSpec("m", "money"),
        ColumnSpec("b", "bit"),
        ColumnSpec("d", "date"),
        ColumnSpec("s", "nvarchar", length=-1),
    )
    return _spec(*cols)


def test_batch_to_params_values_and_pymssql_literals():
    spec = _write_spec()
    row = (
        1, b"abc", GUID, dt.datetime(2010, 1, 2, 3, 4, 5, 997000), dt.datetime(2079, 6, 6, 23, 59),
        "9999-12-31 23:59:59.9999999", "2020-01-01 05:30:00.1234567 +05:30", 86_399_999_999_900,
        Decimal("-922337203685477.5808"), False, dt.date(1, 1, 1), "it's 😀",
    )
    batch = rows_to_batch(spec, [row])
    (params,) = batch_to_params(spec, batch)
    # SQL Server datetime2/datetimeoffset travel as their canonical text and go back unchanged
    # (all 7 digits and the offset), bound as N'...' literals that SQL Server parses exactly
    assert [p.kind for p in write_plan(spec)][1:8] == ["binary", "uuid", "datetime", "smalldatetime", "plain", "plain", "time"]
    assert params == (
        1, bytearray(b"abc"), GUID, "2010-01-02T03:04:05.997", "2079-06-06T23:59:00", "9999-12-31 23:59:59.9999999",
        "2020-01-01 05:30:00.1234567 +05:30", "23:59:59.9999999", Decimal("-922337203685477.5808"), False,
        dt.date(1, 1, 1), "it's 😀",
    )
    quoted = [_mssql.quote_simple_value(p) for p in params]
    assert quoted[1] == b"0x616263"  # bytes b"abc" would have become the string literal 'abc'
    assert _mssql.quote_simple_value(b"abc") == b"'abc'"
    assert quoted[2] == b"N'6f9619ff-8b86-d011-b42d-00c04fc964ff'"
    assert quoted[6] == b"N'2020-01-01 05:30:00.1234567 +05:30'"
    assert quoted[8] == b"-922337203685477.5808"
    assert quoted[9] == b"0"
    assert quoted[10] == b"'0001-01-01'"
    assert quoted[11] == "N'it''s 😀'".encode()


def test_empty_binary_is_a_hex_literal():
    spec = _spec(ColumnSpec("bin", "varbinary", length=-1))
    (params,) = batch_to_params(spec, rows_to_batch(spec, [(1, b"")]))
    assert params[1] == bytearray() and _mssql.quote_simple_value(params[1]) == b"0x"


def test_nan_in_float_fails_with_key():
    spec = _spec(ColumnSpec("f", "float"))
    batch = rows_to_batch(spec, [(1, 1.0), (2, float("nan"))])
    with pytest.raises(DataError) as err:
        batch_to_params(spec, batch)
    assert (err.value.column, err.value.key) == ("f", 2)


def test_postgres_source_timestamps_go_to_datetime2_and_datetimeoffset():
    spec = _spec(
        ColumnSpec("ts", "timestamp without time zone", precision=6),
        ColumnSpec("tz", "timestamp with time zone", precision=6),
        dialect="postgresql",
    )
    spec = TableSpec(spec.name, (ColumnSpec("Id", "integer", nullable=False),) + spec.columns[1:], schema="public", primary_key=("Id",), dialect="postgresql")
    batch = pa.RecordBatch.from_pylist(
        [{"Id": 1, "ts": dt.datetime(1, 1, 1, 0, 0, 0, 1), "tz": dt.datetime(2000, 2, 29, 12, tzinfo=UTC)}], schema=arrow_schema(spec)
    )
    assert [p.target_type for p in write_plan(spec)] == ["int", "datetime2(6)", "datetimeoffset(6)"]
    assert batch_to_params(spec, batch) == [(1, "0001-01-01T00:00:00.0000010", "2000-02-29T12:00:00.0000000+00:00")]


def test_postgres_jsonb_extension_values_become_text_parameters():
    spec = TableSpec("J", (ColumnSpec("id", "integer", nullable=False), ColumnSpec("doc", "jsonb")), schema="public", primary_key=("id",), dialect="postgresql")
    batch = pa.RecordBatch.from_pylist([{"id": 1, "doc": '{"a": "ü"}'}, {"id": 2, "doc": None}], schema=arrow_schema(spec))
    assert [p.target_type for p in write_plan(spec)] == ["int", "nvarchar(max)"]
    assert batch_to_params(spec, batch) == [(1, '{"a": "ü"}'), (2, None)]
