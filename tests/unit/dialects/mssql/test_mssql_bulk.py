"""The bulk-load writer's conversions (python-tds types and values), without a server."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import pyarrow as pa
import pytest

from include.replication.core.catalog import ColumnSpec, TableSpec
from include.replication.core.errors import ConfigurationError, DataError
from include.replication.core.typemap import arrow_schema
from include.replication.dialects.mssql.bulk import bulk_columns, bulk_rows

SPEC = TableSpec("P", (
    ColumnSpec("Id", "int", nullable=False, identity=True),
    ColumnSpec("g", "uniqueidentifier"),
    ColumnSpec("d2", "datetime2", precision=7),
    ColumnSpec("dto", "datetimeoffset", precision=7),
    ColumnSpec("t", "time", precision=7),
    ColumnSpec("m", "decimal", precision=38, scale=10),
    ColumnSpec("b", "varbinary", length=-1),
    ColumnSpec("s", "nvarchar", length=40),
    ColumnSpec("day", "date"),
), schema="dbo", primary_key=("Id",), dialect="mssql")


def _batch(rows):
    return pa.RecordBatch.from_pylist(rows, schema=arrow_schema(SPEC))


def test_columns_are_sent_in_their_target_types():
    types = [type(c.type).__name__ for c in bulk_columns(SPEC)]
    assert types == ["IntType", "UniqueIdentifierType", "DateTime2Type", "DateTimeOffsetType", "TimeType",
                     "DecimalType", "VarBinaryMaxType", "NVarCharType", "DateType"]
    cols = bulk_columns(SPEC)
    assert (cols[5].type.precision, cols[5].type.scale) == (38, 10) and cols[7].type.size == 40
    from include.replication.dialects.mssql.bulk import _tds_type

    narrow = _tds_type("decimal(19,4)", "m", "dbo.P")  # sent as decimal(38, s); the server narrows it
    assert (narrow.precision, narrow.scale) == (38, 4)


def test_values_become_the_python_objects_python_tds_sends_exactly():
    g = uuid.UUID("6F9619FF-8B86-D011-B42D-00C04FC964FF")
    rows = bulk_rows(SPEC, _batch([
        {"Id": 1, "g": g.bytes, "d2": "9999-12-31 23:59:59.9999990", "dto": "2020-06-30 23:59:59.123456 +14:00",
         "t": 86_399_999_999_000, "m": Decimal("9999999999999999999999999999.9999999999"), "b": b"\x00\x01",
         "s": "Ωμέγα 😀", "day": dt.date(1, 1, 1)},
        {"Id": 2, "g": None, "d2": "0001-01-01 00:00:00", "dto": None, "t": None, "m": None, "b": None, "s": None,
         "day": None},
    ]))
    assert rows[0][:3] == (1, g, dt.datetime(9999, 12, 31, 23, 59, 59, 999999))
    assert rows[0][3] == dt.datetime(2020, 6, 30, 23, 59, 59, 123456, tzinfo=dt.timezone(dt.timedelta(hours=14)))
    assert rows[0][4] == dt.time(23, 59, 59, 999999) and rows[0][5] == Decimal("9999999999999999999999999999.9999999999")
    assert rows[0][6:] == (b"\x00\x01", "Ωμέγα 😀", dt.date(1, 1, 1))
    assert rows[1] == (2, None, dt.datetime(1, 1, 1), None, None, None, None, None, None)


@pytest.mark.parametrize(("column", "value", "message"), [
    ("d2", "2020-01-01 00:00:00.1234567", "7th fractional digit"),
    ("t", 86_399_999_999_900, "sub-microsecond"),
    ("dto", "not a date", "not SQL Server datetime text"),
])
def test_values_the_bulk_path_cannot_send_exactly_are_data_errors(column, value, message):
    base = {"Id": 7, "g": None, "d2": None, "dto": None, "t": None, "m": None, "b": None, "s": None, "day": None}
    with pytest.raises(DataError, match=message) as info:
        bulk_rows(SPEC, _batch([{**base, "Id": 6}, {**base, column: value}]))
    assert (info.value.table, info.value.column, info.value.key) == ("dbo.P", column, 7)


def test_a_type_without_an_exact_bulk_binding_is_refused_by_name():
    from include.replication.dialects.mssql.bulk import _tds_type

    assert type(_tds_type("xml", "doc", "dbo.X")).__name__ == "XmlType"
    for ddl in ("geography", "money", "smallmoney"):
        with pytest.raises(ConfigurationError) as info:
            _tds_type(ddl, "c", "dbo.X")
        assert (info.value.table, info.value.column) == ("dbo.X", "c") and "use the executemany" in str(info.value)
