"""The type map value by value: every TYPE_MAP entry (both dialects) against an expectation written
out by hand here, plus the typed error for a type outside the map."""

from __future__ import annotations

import pyarrow as pa
import pytest

from include.replication.core.catalog import ColumnSpec, TableSpec
from include.replication.core.errors import UnsupportedTypeError
from include.replication.core.typemap import TYPE_MAP, arrow_type, select_expression, target_type
from include.replication.dialects.mssql.dialect import MSSQL
from include.replication.dialects.postgres.dialect import POSTGRES

# (dialect, type): (column kwargs, Arrow type, PostgreSQL target, SQL Server target)
EXPECTED: dict[tuple[str, str], tuple[dict, pa.DataType, str, str]] = {
    ("mssql", "bigint"): ({}, pa.int64(), "bigint", "bigint"),
    ("mssql", "int"): ({}, pa.int32(), "integer", "int"),
    ("mssql", "smallint"): ({}, pa.int16(), "smallint", "smallint"),
    ("mssql", "tinyint"): ({}, pa.int16(), "smallint", "tinyint"),
    ("mssql", "bit"): ({}, pa.bool_(), "boolean", "bit"),
    ("mssql", "decimal"): ({"precision": 18, "scale": 4}, pa.decimal128(18, 4), "numeric(18,4)", "decimal(18,4)"),
    ("mssql", "numeric"): ({"precision": 38, "scale": 0}, pa.decimal128(38, 0), "numeric(38,0)", "numeric(38,0)"),
    ("mssql", "money"): ({}, pa.decimal128(19, 4), "numeric(19,4)", "money"),
    ("mssql", "smallmoney"): ({}, pa.decimal128(10, 4), "numeric(10,4)", "smallmoney"),
    ("mssql", "float"): ({}, pa.float64(), "double precision", "float"),
    ("mssql", "real"): ({}, pa.float32(), "real", "real"),
    ("mssql", "date"): ({}, pa.date32(), "date", "date"),
    ("mssql", "time"): ({"precision": 7}, pa.time64("ns"), "time(6)", "time(7)"),
    ("mssql", "datetime"): ({}, pa.timestamp("us"), "timestamp(3)", "datetime"),
    ("mssql", "smalldatetime"): ({}, pa.timestamp("us"), "timestamp(0)", "smalldatetime"),
    ("mssql", "datetime2"): ({"precision": 7}, pa.string(), "timestamp(6)", "datetime2(7)"),  # exact text
    ("mssql", "datetimeoffset"): ({"precision": 3}, pa.string(), "timestamptz(3)", "datetimeoffset(3)"),  # exact text
    ("mssql", "char"): ({"length": 10}, pa.string(), "char(10)", "char(10)"),
    ("mssql", "nchar"): ({"length": 2}, pa.string(), "char(2)", "nchar(2)"),
    ("mssql", "varchar"): ({"length": 50}, pa.string(), "varchar(50)", "varchar(50)"),
    ("mssql", "nvarchar"): ({"length": 40}, pa.string(), "varchar(40)", "nvarchar(40)"),
    ("mssql", "text"): ({"length": -1}, pa.string(), "text", "varchar(max)"),
    ("mssql", "ntext"): ({"length": -1}, pa.string(), "text", "nvarchar(max)"),
    ("mssql", "xml"): ({"length": -1}, pa.string(), "text", "xml"),
    ("mssql", "binary"): ({"length": 16}, pa.binary(), "bytea", "binary(16)"),
    ("mssql", "varbinary"): ({"length": 100}, pa.binary(), "bytea", "varbinary(100)"),
    ("mssql", "image"): ({"length": -1}, pa.binary(), "bytea", "varbinary(max)"),
    ("mssql", "uniqueidentifier"): ({}, pa.uuid(), "uuid", "uniqueidentifier"),
    ("mssql", "timestamp"): ({}, pa.binary(8), "bytea", "binary(8)"),
    ("mssql", "rowversion"): ({}, pa.binary(8), "bytea", "binary(8)"),
    ("postgresql", "smallint"): ({}, pa.int16(), "smallint", "smallint"),
    ("postgresql", "integer"): ({}, pa.int32(), "integer", "int"),
    ("postgresql", "bigint"): ({}, pa.int64(), "bigint", "bigint"),
    ("postgresql", "boolean"): ({}, pa.bool_(), "boolean", "bit"),
    ("postgresql", "numeric"): ({"precision": 12, "scale": 2}, pa.decimal128(12, 2), "numeric(12,2)", "decimal(12,2)"),
    ("postgresql", "real"): ({}, pa.float32(), "real", "real"),
    ("postgresql", "double precision"): ({}, pa.float64(), "double precision", "float"),
    ("postgresql", "date"): ({}, pa.date32(), "date", "date"),
    ("postgresql", "time without time zone"): ({"precision": 6}, pa.time64("us"), "time(6)", "time(6)"),
    ("postgresql", "timestamp without time zone"): ({"precision": 3}, pa.timestamp("us"), "timestamp(3)", "datetime2(3)"),
    ("postgresql", "timestamp with time zone"): ({"precision": 6}, pa.timestamp("us", tz="UTC"), "timestamptz(6)", "datetimeoffset(6)"),
    ("postgresql", "character"): ({"length": 3}, pa.string(), "char(3)", "nchar(3)"),
    ("postgresql", "character varying"): ({"length": 255}, pa.string(), "varchar(255)", "nvarchar(255)"),
    ("postgresql", "text"): ({}, pa.string(), "text", "nvarchar(max)"),
    ("postgresql", "json"): ({}, pa.string(), "json", "nvarchar(max)"),
    ("postgresql", "jsonb"): ({}, pa.json_(), "jsonb", "nvarchar(max)"),
    ("postgresql", "xml"): ({}, pa.string(), "xml", "xml"),
    ("postgresql", "bytea"): ({}, pa.binary(), "bytea", "varbinary(max)"),
    ("postgresql", "uuid"): ({}, pa.uuid(), "uuid", "uniqueidentifier"),
}


def _table(dialect: str, col: ColumnSpec) -> TableSpec:
    return TableSpec("T", (col,), schema="s", dialect=dialect)  # type: ignore[arg-type]


def test_every_entry_has_an_expectation():
    assert set(EXPECTED) == set(TYPE_MAP)


@pytest.mark.parametrize("key", sorted(TYPE_MAP), ids=[f"{d}:{t}" for d, t in sorted(TYPE_MAP)])
def test_entry_arrow_and_target_types(key):
    dialect, typ = key
    kwargs, arrow, pg, mssql = EXPECTED[key]
    col = ColumnSpec("c", typ, **kwargs)
    spec = _table(dialect, col)
    assert arrow_type(dialect, col) == arrow  # type: ignore[arg-type]
    assert target_type(spec, col, POSTGRES) == pg
    assert target_type(spec, col, MSSQL) == mssql


@pytest.mark.parametrize(
    "dialect,typ,length,pg,mssql",
    [
        ("mssql", "nvarchar", -1, "text", "nvarchar(max)"),
        ("mssql", "varchar", -1, "text", "varchar(max)"),
        ("mssql", "varbinary", -1, "bytea", "varbinary(max)"),
        ("postgresql", "character varying", None, "varchar", "nvarchar(max)"),
        ("postgresql", "character varying", 5000, "varchar(5000)", "nvarchar(max)"),  # nvarchar(n) stops at 4000
    ],
)
def test_max_lengths_stay_max(dialect, typ, length, pg, mssql):
    col = ColumnSpec("c", typ, length=length)
    spec = _table(dialect, col)
    assert (target_type(spec, col, POSTGRES), target_type(spec, col, MSSQL)) == (pg, mssql)


def test_unparameterised_time_types_use_dialect_default_precision():
    col = ColumnSpec("c", "datetime2")
    spec = _table("mssql", col)
    assert (target_type(spec, col, POSTGRES), target_type(spec, col, MSSQL)) == ("timestamp(6)", "datetime2(7)")


def test_select_templates_for_inexact_driver_types():
    t = _table("mssql", ColumnSpec("c", "time", precision=7))
    assert select_expression(t, t.columns[0], "[c]") == "DATEDIFF_BIG(NANOSECOND, CAST('00:00:00' AS time(7)), [c])"
    o = _table("mssql", ColumnSpec("c", "datetimeoffset", precision=7))
    assert select_expression(o, o.columns[0], "[c]") == "CAST([c] AS nvarchar(34))"
    i = _table("mssql", ColumnSpec("c", "int"))
    assert select_expression(i, i.columns[0], "[c]") == "[c]"


@pytest.mark.parametrize("dialect,typ", [("mssql", "sql_variant"), ("mssql", "hierarchyid"), ("postgresql", "point")])
def test_unknown_type_raises_with_table_and_column(dialect, typ):
    col = ColumnSpec("Shape", typ)
    spec = TableSpec("Places", (col,), schema="dbo", dialect=dialect)  # type: ignore[arg-type]
    with pytest.raises(UnsupportedTypeError) as err:
        target_type(spec, col, MSSQL)
    assert err.value.table == "dbo.Places"
    assert err.value.column == "Shape"
    assert typ in str(err.value) and err.value.retryable is False


def test_numeric_without_precision_is_refused():
    col = ColumnSpec("n", "numeric")
    with pytest.raises(UnsupportedTypeError) as err:
        arrow_type("postgresql", col, "public.t")
    assert (err.value.table, err.value.column) == ("public.t", "n")
