"""TypeProbe round trip on a real TDS server: SQL Server -> SQL Server and SQL Server ->
PostgreSQL through ``pipeline.copy_table``.

The server is the session's ``mssql_server`` (tests/conftest.py): a local Babelfish for
PostgreSQL in CI, or the Microsoft SQL Server that ``STACKOVERFLOW_MSSQL_TEST_URI`` names (the
login needs CREATE DATABASE). Where Babelfish measurably differs from SQL Server (6 fractional
digits, lower-cased index names, row estimates of 0; ../shared/babelfish/README.md) the test
states the Babelfish expectation by name with ``mssql_server.expect(sqlserver=..., babelfish=...)``;
every other check is the same for both.

Every value is compared with a literal expectation written here, not only source against target.
datetime2 and datetimeoffset travel as the server's canonical text, so SQL Server -> SQL Server
keeps all 7 digits and the offset; documented, asserted losses on PostgreSQL: the 7th digit of
time(7)/datetime2(7)/datetimeoffset(7) (PostgreSQL keeps 6) and the offset (timestamptz holds the
UTC instant).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import uuid
from decimal import Decimal

import pytest

from include.replication.core.errors import ConfigurationError, DataError

pytestmark = [pytest.mark.mssql, pytest.mark.integration]

GUID = uuid.UUID("6F9619FF-8B86-D011-B42D-00C04FC964FF")
BIG_TEXT = ("Grüße, Ελληνικά, 日本語 😀 " * 120_000)[: 3 * 1024 * 1024]  # 3 Mi characters, non-ASCII, emoji
BIG_BLOB = bytes(range(256)) * (10 * 1024 * 1024 // 256)  # 10 MiB

PROBE_DDL = """
CREATE TABLE [dbo].[TypeProbe] (
    [Id] int IDENTITY(1,1) NOT NULL CONSTRAINT [PK_TypeProbe] PRIMARY KEY CLUSTERED,
    [c_bigint] bigint NULL, [c_int] int NULL, [c_smallint] smallint NULL, [c_tinyint] tinyint NULL,
    [c_bit] bit NULL, [c_decimal] decimal(38,10) NULL, [c_numeric] numeric(5,2) NULL,
    [c_money] money NULL, [c_smallmoney] smallmoney NULL, [c_float] float NULL, [c_real] real NULL,
    [c_date] date NULL, [c_time] time(7) NULL, [c_datetime] datetime NULL,
    [c_smalldatetime] smalldatetime NULL, [c_datetime2] datetime2(7) NULL, [c_datetime2_6] datetime2(6) NULL,
    [c_dto] datetimeoffset(7) NULL, [c_char] char(3) NULL, [c_varchar] varchar(50) NULL,
    [c_nchar] nchar(2) NULL, [c_nvarchar] nvarchar(40) NULL, [c_nvarchar_max] nvarchar(max) NULL,
    [c_text] text NULL, [c_ntext] ntext NULL, [c_xml] xml NULL, [c_binary] binary(4) NULL,
    [c_varbinary] varbinary(max) NULL, [c_image] image NULL, [c_guid] uniqueidentifier NULL,
    [c_rv] rowversion NOT NULL
)
"""

COLUMNS = [
    "c_bigint", "c_int", "c_smallint", "c_tinyint", "c_bit", "c_decimal", "c_numeric", "c_money", "c_smallmoney",
    "c_float", "c_real", "c_date", "c_time", "c_datetime", "c_smalldatetime", "c_datetime2", "c_datetime2_6", "c_dto",
    "c_char", "c_varchar", "c_nchar", "c_nvarchar", "c_nvarchar_max", "c_text", "c_ntext", "c_xml", "c_binary",
    "c_varbinary", "c_image", "c_guid",
]

# Inserted as T-SQL literals (so the source holds exactly these, independent of the driver).
ROW_MAX = [
    "9223372036854775807", "2147483647", "32767", "255", "1",
    "CAST('9999999999999999999999999999.9999999999' AS decimal(38,10))", "999.99",
    "CAST('922337203685477.5807' AS money)", "CAST('214748.3647' AS smallmoney)", "CAST(1.7976931348623157E308 AS float)",
    "CAST(3.40282347E38 AS real)", "'9999-12-31'", "{time_max}", "'9999-12-31T23:59:59.997'",
    "'2079-06-06T23:59:00'", "CAST('9999-12-31T23:59:59.9999999' AS datetime2(7))", "CAST('9999-12-31T23:59:59.999999' AS datetime2(6))",
    "CAST('2020-06-30T23:59:59.1234567+14:00' AS datetimeoffset(7))", "'ab '", "'Linked'", "N'ü€'", "N'[Order] ]x'",
    "%s", "'plain ascii text'", "N'Ωμέγα 😀'", "N'<a b=\"1\">ü</a>'", "0x00010203", "%s", "0x" + "ff" * 100,
    "'6F9619FF-8B86-D011-B42D-00C04FC964FF'",
]
ROW_MIN = [
    "-9223372036854775808", "-2147483648", "-32768", "0", "0",
    "CAST('-9999999999999999999999999999.9999999999' AS decimal(38,10))", "-999.99",
    "CAST('-922337203685477.5808' AS money)", "CAST('-214748.3648' AS smallmoney)", "CAST(-2.2250738585072014E-308 AS float)",
    "CAST(-1.17549435E-38 AS real)", "'0001-01-01'", "CAST('00:00:00' AS time(7))", "'1753-01-01T00:00:00'",
    "'1900-01-01T00:00:00'", "CAST('0001-01-01T00:00:00' AS datetime2(7))", "CAST('0001-01-01T00:00:00' AS datetime2(6))",
    "CAST('0001-01-01T00:00:00+00:00' AS datetimeoffset(7))", "''", "''", "N''", "N''", "N''", "''", "N''", "N''",
    "0x00000000", "0x", "0x", "'00000000-0000-0000-0000-000000000000'",
]

EXPECTED_ARROW = {  # column -> (row 1, row 2) as the reader must produce them (Arrow as_py values)
    "c_bigint": (2**63 - 1, -(2**63)),
    "c_int": (2**31 - 1, -(2**31)),
    "c_smallint": (32767, -32768),
    "c_tinyint": (255, 0),
    "c_bit": (True, False),
    "c_decimal": (Decimal("9999999999999999999999999999.9999999999"), Decimal("-9999999999999999999999999999.9999999999")),
    "c_numeric": (Decimal("999.99"), Decimal("-999.99")),
    "c_money": (Decimal("922337203685477.5807"), Decimal("-922337203685477.5808")),
    "c_smallmoney": (Decimal("214748.3647"), Decimal("-214748.3648")),
    "c_float": (1.7976931348623157e308, -2.2250738585072014e-308),
    "c_real": (3.4028234663852886e38, -1.1754943508222875e-38),
    "c_date": (dt.date(9999, 12, 31), dt.date(1, 1, 1)),
    "c_datetime": (dt.datetime(9999, 12, 31, 23, 59, 59, 997000), dt.datetime(1753, 1, 1)),
    "c_smalldatetime": (dt.datetime(2079, 6, 6, 23, 59), dt.datetime(1900, 1, 1)),
    # c_datetime2, c_datetime2_6, c_dto: the server's canonical text, see TEXT_EXPECTED
    "c_char": ("ab ", "   "),
    "c_varchar": ("Linked", ""),
    "c_nchar": ("ü€", "  "),
    "c_nvarchar": ("[Order] ]x", ""),
    "c_text": ("plain ascii text", ""),
    "c_ntext": ("Ωμέγα 😀", ""),
    "c_xml": ('<a b="1">ü</a>', ""),
    "c_binary": (b"\x00\x01\x02\x03", b"\x00\x00\x00\x00"),
    "c_image": (b"\xff" * 100, b""),
    "c_guid": (GUID, uuid.UUID(int=0)),
}
TIME_MAX = {"sqlserver": "CAST('23:59:59.9999999' AS time(7))",
            "babelfish": "CAST('23:59:59.999999' AS time(7))"}  # Babelfish keeps 6 digits and rounds .9999999 up to 24:00
TIME_NS = {"sqlserver": (86_399_999_999_900, 0), "babelfish": (86_399_999_999_000, 0)}
TEXT_EXPECTED = {  # exact canonical text the reader carries (CAST(col AS nvarchar))
    "sqlserver": {
        "c_datetime2": ("9999-12-31 23:59:59.9999999", "0001-01-01 00:00:00.0000000"),
        "c_datetime2_6": ("9999-12-31 23:59:59.999999", "0001-01-01 00:00:00.000000"),
        "c_dto": ("2020-06-30 23:59:59.1234567 +14:00", "0001-01-01 00:00:00.0000000 +00:00"),
    },
    "babelfish": {  # 6 digits (.1234567 -> .123457), trailing zeros dropped
        "c_datetime2": ("9999-12-31 23:59:59.999999", "0001-01-01 00:00:00"),
        "c_datetime2_6": ("9999-12-31 23:59:59.999999", "0001-01-01 00:00:00"),
        "c_dto": ("2020-06-30 23:59:59.123457 +14:00", "0001-01-01 00:00:00 +00:00"),
    },
}
EXPECTED_POSTGRES = {  # what PostgreSQL holds for the text-carried columns: 6 digits, UTC instant
    "c_datetime2": (dt.datetime(9999, 12, 31, 23, 59, 59, 999999), dt.datetime(1, 1, 1)),
    "c_datetime2_6": (dt.datetime(9999, 12, 31, 23, 59, 59, 999999), dt.datetime(1, 1, 1)),
}
DTO_POSTGRES = {  # SQL Server keeps .1234567 (PostgreSQL cuts to .123456); Babelfish already rounded to .123457
    "sqlserver": (dt.datetime(2020, 6, 30, 9, 59, 59, 123456, tzinfo=dt.UTC), dt.datetime(1, 1, 1, tzinfo=dt.UTC)),
    "babelfish": (dt.datetime(2020, 6, 30, 9, 59, 59, 123457, tzinfo=dt.UTC), dt.datetime(1, 1, 1, tzinfo=dt.UTC)),
}


def _kind(server) -> str:
    return server.expect(sqlserver="sqlserver", babelfish="babelfish")


@pytest.fixture(scope="module")
def probe_database(mssql_server):
    """A fresh source database holding TypeProbe with 3 rows (max, min, NULLs); its endpoint."""
    name = "typeprobe_src"
    mssql_server.create_database(name)
    conn = mssql_server.connect(name)
    try:
        cur = conn.cursor()
        cur.execute(PROBE_DDL)
        cols = ", ".join(f"[{c}]" for c in COLUMNS)
        row_max = [v.replace("{time_max}", TIME_MAX[_kind(mssql_server)]) for v in ROW_MAX]
        cur.execute(f"INSERT INTO [dbo].[TypeProbe] ({cols}) VALUES ({', '.join(row_max)})", (BIG_TEXT, bytearray(BIG_BLOB)))
        cur.execute(f"INSERT INTO [dbo].[TypeProbe] ({cols}) VALUES ({', '.join(ROW_MIN)})")
        cur.execute("INSERT INTO [dbo].[TypeProbe] DEFAULT VALUES")
    finally:
        conn.close()
    return mssql_server.database(name)


@pytest.fixture
def probe_source(probe_database):
    from include.replication.dialects.mssql.source import MssqlSource

    with MssqlSource(probe_database) as source:
        yield source, source.describe("TypeProbe")


def _settings(tmp_path):
    from include.replication.core.config import CopySettings

    return CopySettings(memory_budget_bytes=4 * 1024 * 1024, batch_rows=2, batch_bytes=1024 * 1024, spill_root=tmp_path, overlap=True)


def _check_arrow(table, rv_values, kind):
    """Compare an Arrow table read back (by MssqlSource) with the literal expectations."""
    rows = table.to_pylist()
    assert [r["Id"] for r in rows] == [1, 2, 3]
    for col, (v1, v2) in {**EXPECTED_ARROW, **TEXT_EXPECTED[kind]}.items():
        if col not in table.column_names:  # a projection (the bulk path copies TypeProbe without money)
            continue
        assert (rows[0][col], rows[1][col], rows[2][col]) == (v1, v2, None), col
    t = table.column("c_time")
    factor = 1 if t.type.unit == "ns" else 1000
    assert [None if t[i].as_py() is None else t[i].cast("int64").as_py() * factor for i in range(3)] == [*TIME_NS[kind], None]
    assert rows[0]["c_nvarchar_max"] == BIG_TEXT and rows[1]["c_nvarchar_max"] == ""
    assert hashlib.sha256(rows[0]["c_varbinary"]).digest() == hashlib.sha256(BIG_BLOB).digest()
    assert rows[1]["c_varbinary"] == b"" and rows[2]["c_varbinary"] is None
    assert [r["c_rv"] for r in rows] == rv_values and all(len(v) == 8 for v in rv_values)


def test_catalog_of_typeprobe(probe_source, mssql_server):
    source, spec = probe_source
    by = {c.name: c for c in spec.columns}
    assert spec.name == "TypeProbe" and spec.column_names[:3] == ("Id", "c_bigint", "c_int")  # case kept
    assert source.list_tables() == ["TypeProbe"]
    assert source.describe("typeprobe").name == "TypeProbe"  # the catalog's spelling, whatever was asked
    assert spec.primary_key == ("Id",)
    # sys.indexes names are lower-cased on Babelfish (INFORMATION_SCHEMA's constraint views too)
    assert spec.primary_key_name == mssql_server.expect(sqlserver="PK_TypeProbe", babelfish="pk_typeprobe")
    assert spec.identity is not None and (spec.identity.seed, spec.identity.increment, spec.identity.last_value) == (1, 1, 3)
    assert (by["c_nvarchar"].length, by["c_nvarchar_max"].length, by["c_nchar"].length) == (40, -1, 2)
    assert (by["c_decimal"].precision, by["c_decimal"].scale) == (38, 10)
    # Babelfish stores datetime2(7)/time(7)/datetimeoffset(7) with 6 fractional digits
    assert by["c_datetime2"].precision == mssql_server.expect(sqlserver=7, babelfish=6)
    assert by["c_datetime2_6"].precision == 6 and by["c_rv"].source_type == "timestamp"
    assert spec.row_estimate == mssql_server.expect(sqlserver=3, babelfish=0)  # sys.partitions.rows is 0 on Babelfish


@pytest.mark.parametrize("write_method", ["executemany", "bulk_copy"])
def test_mssql_to_mssql_roundtrip(probe_source, tmp_path, mssql_server, fresh_mssql_database, write_method):
    import pyarrow as pa

    from include.replication.core.pipeline import copy_table
    from include.replication.dialects.mssql.connect import connect_mssql
    from include.replication.dialects.mssql.source import MssqlSource
    from include.replication.dialects.mssql.target import MssqlTarget

    kind = _kind(mssql_server)
    source, spec = probe_source
    source_table = pa.Table.from_batches(list(source.read_batches(spec, batch_rows=2, batch_bytes=1 << 20)))
    rv = [source_table.column("c_rv")[i].as_py() for i in range(3)]
    _check_arrow(source_table, rv, kind)

    target_ep = fresh_mssql_database("rt_target")
    if write_method == "bulk_copy":
        with MssqlTarget(dataclasses.replace(target_ep, options={"write_method": write_method})) as target:
            target.prepare_table(spec)
            with pytest.raises(ConfigurationError) as info:  # permanent, before a row is written
                copy_table(source, target, spec, _settings(tmp_path))
            assert (info.value.column, info.value.retryable) == ("c_money", False)
            assert target.count_rows(spec) == 0
        spec = dataclasses.replace(spec, columns=tuple(c for c in spec.columns if c.source_type not in ("money", "smallmoney")))
    if write_method == "bulk_copy" and not mssql_server.babelfish:
        # SQL Server keeps the 7th fractional digit, which the bulk path refuses (executemany keeps it)
        with MssqlTarget(dataclasses.replace(target_ep, options={"write_method": write_method})) as target:
            target.prepare_table(spec)
            with pytest.raises(DataError, match="7th fractional digit"):
                copy_table(source, target, spec, _settings(tmp_path))
        return
    with MssqlTarget(dataclasses.replace(target_ep, options={"write_method": write_method})) as target:
        target.prepare_table(spec)
        result = copy_table(source, target, spec, _settings(tmp_path))
        assert (result.rows_read, result.rows_written) == (3, 3)
        assert target.count_rows(spec) == 3
    with MssqlSource(target_ep) as back:
        tspec = back.describe("TypeProbe")
        assert {c.name: c.source_type for c in tspec.columns}["c_rv"] == "binary"  # rowversion copied as binary(8)
        assert tspec.identity is not None and (tspec.identity.seed, tspec.identity.increment) == (1, 1)
        got = pa.Table.from_batches(list(back.read_batches(tspec, batch_rows=2, batch_bytes=1 << 20)))
    _check_arrow(got.set_column(got.schema.get_field_index("c_rv"), "c_rv", got.column("c_rv").cast(pa.binary(8))), rv, kind)
    conn = connect_mssql(target_ep, autocommit=True)
    try:
        cur = conn.cursor()
        cur.execute("SELECT CAST([c_guid] AS nvarchar(36)), CONVERT(varchar(27), [c_datetime2], 121), "
                    "CONVERT(nvarchar(34), [c_dto], 121), "
                    "DATALENGTH([c_varbinary]), IDENT_CURRENT('dbo.TypeProbe') FROM [dbo].[TypeProbe] WHERE [Id] = 1")
        guid_text, dt2_text, dto_text, blob_len, ident = cur.fetchone()
    finally:
        conn.close()
    assert guid_text == "6F9619FF-8B86-D011-B42D-00C04FC964FF"
    assert dt2_text == TEXT_EXPECTED[kind]["c_datetime2"][0]  # every digit the server keeps
    assert dto_text == TEXT_EXPECTED[kind]["c_dto"][0]  # offset and digits kept
    assert blob_len == len(BIG_BLOB) and int(ident) == 3


def test_mssql_to_postgres_roundtrip(probe_source, tmp_path, local_pg, fresh_database, mssql_server):
    from include.replication.core.pipeline import copy_table
    from include.replication.dialects.registry import open_target

    source, spec = probe_source
    db = fresh_database("mssql_rt")
    target = open_target(local_pg.endpoint(db))
    try:
        target.prepare_table(spec)
        result = copy_table(source, target, spec, _settings(tmp_path))
        assert result.rows_written == 3
        rows = target.read_table(spec).to_pylist()  # type: ignore[attr-defined]
    finally:
        target.close()
    rows.sort(key=lambda r: r["Id"])
    for col, (v1, v2) in {**EXPECTED_ARROW, **EXPECTED_POSTGRES, "c_dto": DTO_POSTGRES[_kind(mssql_server)]}.items():
        got = (rows[0][col], rows[1][col], rows[2][col])
        if col in {"c_decimal", "c_numeric", "c_money", "c_smallmoney"}:
            got = tuple(None if v is None else Decimal(str(v)) for v in got)
        if col == "c_guid":
            got = tuple(None if v is None else uuid.UUID(str(v)) if not isinstance(v, bytes) else uuid.UUID(bytes=v) for v in got)
        assert got == (v1, v2, None), col
    assert rows[0]["c_time"] == dt.time(23, 59, 59, 999999)  # PostgreSQL time(6): 7th digit truncated
    assert rows[0]["c_nvarchar_max"] == BIG_TEXT
    assert hashlib.sha256(rows[0]["c_varbinary"]).digest() == hashlib.sha256(BIG_BLOB).digest()
    assert rows[1]["c_varbinary"] == b"" and len(rows[0]["c_rv"]) == 8
