"""Bad input on the SQL Server side, one kind per test, on the session's TDS server: each kind ends in
an exact copy or a ``DataError`` naming table, column and row key, with the target unchanged.

Kinds: supplementary-plane characters (nvarchar lengths count UTF-16 code units), lone surrogates,
values that collide under a case-insensitive collation, pre-1753 dates into ``datetime``,
sub-millisecond values (datetime ticks and datetime2 parameters), money extremes.
"""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest

from include.replication.core.config import CopySettings
from include.replication.core.errors import DataError
from include.replication.core.pipeline import copy_table
from include.replication.dialects.mssql.source import MssqlSource
from include.replication.dialects.mssql.target import MssqlTarget
from include.replication.dialects.registry import open_source

pytestmark = [pytest.mark.mssql, pytest.mark.integration]


def _pg_table(local_pg, db: str, ddl: str, rows_sql: str) -> None:
    import adbc_driver_postgresql.dbapi as pg

    with pg.connect(local_pg.uri(db), autocommit=True) as conn, conn.cursor() as cur:
        cur.execute(ddl)
        cur.execute(rows_sql)


def _copy(source_ep, target_ep, table: str, tmp_path: Path, write_method: str = "executemany"):
    target_ep = dataclasses.replace(target_ep, options={**target_ep.options, "write_method": write_method})
    with open_source(source_ep) as src, MssqlTarget(target_ep) as tgt:
        spec = src.describe(table)
        tgt.prepare_table(spec)
        return copy_table(src, tgt, spec, CopySettings(spill_root=tmp_path)), spec


def _read(target_ep, table: str) -> list[dict]:
    with MssqlSource(target_ep) as back:
        spec = back.describe(table)
        rows = pa.Table.from_batches(list(back.read_batches(spec, batch_rows=1000, batch_bytes=1 << 20)))
    return sorted(rows.to_pylist(), key=lambda r: r[spec.primary_key[0]])


@pytest.mark.parametrize("write_method", ["executemany", "bulk_copy"])
def test_supplementary_characters_count_two_utf16_units(local_pg, fresh_database, fresh_mssql_database, tmp_path,
                                                        write_method):
    db = fresh_database("bad_sup")
    _pg_table(local_pg, db, 'CREATE TABLE "Tags" ("Id" integer PRIMARY KEY, "Name" varchar(2))',
              """INSERT INTO "Tags" VALUES (1, 'ab'), (2, '😀'), (3, 'é€')""")
    target = fresh_mssql_database("bad_sup")
    result, _ = _copy(local_pg.endpoint(db), target, "Tags", tmp_path, write_method)
    assert result.rows_written == 3
    assert [r["Name"] for r in _read(target, "Tags")] == ["ab", "😀", "é€"]  # one emoji = 2 of nvarchar(2)'s units
    _pg_table(local_pg, db, "SELECT 1", """INSERT INTO "Tags" VALUES (4, '😀😀')""")  # 2 code points, 4 units
    with pytest.raises(DataError) as info:
        _copy(local_pg.endpoint(db), target, "Tags", tmp_path, write_method)
    assert (info.value.table, info.value.column, info.value.key) == ("public.Tags", "Name", 4)
    assert "4 characters exceeds the column length 2" in str(info.value)
    with MssqlTarget(target) as tgt:
        assert tgt.execute("SELECT COUNT_BIG(*) FROM [dbo].[Tags]") == [(0,)]  # the failed unit left nothing


def test_keys_that_differ_only_in_case_or_accent_stay_distinct(local_pg, fresh_database, fresh_mssql_database, tmp_path):
    db = fresh_database("bad_ci")
    keys = ["a", "A", "e", "é", "É", "😀", "😁", "ß", "ss"]
    values = ", ".join(f"('{k}', {i})" for i, k in enumerate(keys))
    _pg_table(local_pg, db, 'CREATE TABLE "Names" ("Key" varchar(10) PRIMARY KEY, "N" integer NOT NULL)',
              f'INSERT INTO "Names" VALUES {values}')
    target = fresh_mssql_database("bad_ci")
    result, _ = _copy(local_pg.endpoint(db), target, "Names", tmp_path)  # finish_table builds the primary key
    assert result.rows_written == len(keys)
    with MssqlSource(target) as back:
        spec = back.describe("Names")
        assert spec.primary_key == ("Key",)
        got = pa.Table.from_batches(list(back.read_batches(spec, batch_rows=100, batch_bytes=1 << 20))).to_pylist()
    assert sorted((r["Key"], r["N"]) for r in got) == sorted((k, i) for i, k in enumerate(keys))


def _dump_folder(tmp_path: Path, comment_date: str) -> Path:
    folder = tmp_path / "dump"
    folder.mkdir()
    for name in ("Users", "Posts", "Badges", "Votes", "PostLinks"):
        (folder / f"{name}.xml").write_text(f"<{name.lower()}/>")
    (folder / "Comments.xml").write_text(
        '<comments>\n  <row Id="1" PostId="1" Text="fine" CreationDate="2018-02-06T20:30:28.907" />\n'
        f'  <row Id="2" PostId="1" Text="bad" CreationDate="{comment_date}" />\n</comments>\n'
    )
    return folder


@pytest.mark.parametrize(("date", "message"), [
    ("1700-01-01T00:00:00.000", "outside mssql datetime's range 1753-01-01"),
    ("2018-02-06T20:30:28.9015", "finer than mssql datetime keeps"),  # sub-millisecond: would be rounded
    ("2018-02-06T20:30:28.901", "finer than mssql datetime keeps"),  # not a 1/300 s tick
])
def test_values_sql_server_datetime_cannot_hold(date, message, fresh_mssql_database, tmp_path):
    from include.stackoverflow.dump import DumpSource

    target = fresh_mssql_database("bad_dt")
    with DumpSource(_dump_folder(tmp_path, date), ["Comments"]) as src, MssqlTarget(target) as tgt:
        spec = src.describe("Comments")
        tgt.prepare_table(spec)
        with pytest.raises(DataError) as info:
            copy_table(src, tgt, spec, CopySettings(spill_root=tmp_path))
        assert (info.value.table, info.value.column, info.value.key) == ("dbo.Comments", "CreationDate", 2)
        assert message in str(info.value)
        assert tgt.count_rows(spec) == 0


@pytest.mark.parametrize("write_method", ["executemany", "bulk_copy"])
def test_microseconds_and_money_extremes_copy_exactly(local_pg, fresh_database, fresh_mssql_database, tmp_path,
                                                      write_method):
    db = fresh_database("bad_us")
    _pg_table(local_pg, db, 'CREATE TABLE "M" ("Id" integer PRIMARY KEY, "At" timestamp(6), "Amount" numeric(19,4))',
              """INSERT INTO "M" VALUES (1, '2020-01-01 00:00:00.123456', 922337203685477.5807),
                 (2, '0001-01-01 00:00:00.000001', -922337203685477.5808), (3, '9999-12-31 23:59:59.999999', 0)""")
    target = fresh_mssql_database("bad_us")
    _copy(local_pg.endpoint(db), target, "M", tmp_path, write_method)
    with MssqlTarget(target) as tgt:
        rows = tgt.execute("SELECT [Id], CONVERT(varchar(27), [At], 121), [Amount] FROM [dbo].[M] ORDER BY [Id]")
    assert rows == [
        (1, "2020-01-01 00:00:00.123456", Decimal("922337203685477.5807")),  # no cut to milliseconds
        (2, "0001-01-01 00:00:00.000001", Decimal("-922337203685477.5808")),
        (3, "9999-12-31 23:59:59.999999", Decimal("0.0000")),
    ]


def test_lone_surrogate_is_an_error_or_an_exact_copy(mssql_server, fresh_mssql_database, tmp_path):
    """A lone surrogate (U+D800) is valid in SQL Server's UTF-16 nvarchar but in no UTF-8 text."""
    source = fresh_mssql_database("bad_surrogate")
    conn = mssql_server.connect(source.database)
    try:
        cur = conn.cursor()
        cur.execute("CREATE TABLE [dbo].[S] ([Id] int NOT NULL PRIMARY KEY, [T] nvarchar(10) NULL)")
        try:
            cur.execute("INSERT INTO [dbo].[S] VALUES (1, N'ok'), (2, NCHAR(55296))")
            inserted = True
        except Exception as exc:  # noqa: BLE001 - the server's own refusal is the Babelfish expectation
            inserted = False
            refusal = str(exc)
    finally:
        conn.close()
    # Babelfish stores nvarchar as UTF-8 text and refuses the value at the server; SQL Server stores it
    assert inserted is mssql_server.expect(sqlserver=True, babelfish=False)
    if not inserted:
        assert "not valid for encoding" in refusal
        return
    with MssqlSource(source) as src:
        spec = src.describe("S")
        try:
            rows = pa.Table.from_batches(list(src.read_batches(spec, batch_rows=10, batch_bytes=1 << 20))).to_pylist()
        except DataError as exc:
            assert (exc.column, exc.key) == ("T", 2)
        else:
            assert rows[1]["T"] == "\ud800", "a lone surrogate was replaced while reading"


def test_a_lone_surrogate_from_the_driver_is_a_data_error():
    """What reaches the Arrow conversion from pymssql: a str that cannot be UTF-8."""
    from include.replication.core.catalog import ColumnSpec, TableSpec
    from include.replication.dialects.mssql.convert import rows_to_batch

    spec = TableSpec("S", (ColumnSpec("Id", "int", nullable=False), ColumnSpec("T", "nvarchar", length=10)),
                     schema="dbo", primary_key=("Id",), dialect="mssql")
    with pytest.raises(DataError) as info:
        rows_to_batch(spec, [(1, "ok"), (2, "\ud800")])
    assert (info.value.table, info.value.column, info.value.key) == ("dbo.S", "T", 2)


def test_datetime2_text_keeps_every_digit_into_sql_server(mssql_server, fresh_mssql_database, tmp_path):
    source = fresh_mssql_database("dt2_src")
    conn = mssql_server.connect(source.database)
    try:
        cur = conn.cursor()
        cur.execute("CREATE TABLE [dbo].[D] ([Id] int NOT NULL PRIMARY KEY, [At] datetime2(7) NULL, "
                    "[Off] datetimeoffset(7) NULL)")
        cur.execute("INSERT INTO [dbo].[D] VALUES (1, '2020-01-01T00:00:00.1234567', '2020-01-01T00:00:00.1234567-08:00')")
    finally:
        conn.close()
    target = fresh_mssql_database("dt2_tgt")
    _copy(source, target, "D", tmp_path)
    with MssqlTarget(target) as tgt:
        rows = tgt.execute("SELECT CONVERT(varchar(27), [At], 121), CONVERT(nvarchar(34), [Off], 121) FROM [dbo].[D]")
    # Babelfish keeps 6 digits (rounding .1234567 to .123457 on insert); SQL Server all 7
    assert rows == [mssql_server.expect(
        sqlserver=("2020-01-01 00:00:00.1234567", "2020-01-01 00:00:00.1234567 -08:00"),
        babelfish=("2020-01-01 00:00:00.123457", "2020-01-01 00:00:00.123457 -08:00"),
    )]


def test_time_at_midnight_rounding_edge_is_a_clear_data_error(mssql_server, fresh_mssql_database):
    source = fresh_mssql_database("time_edge")
    conn = mssql_server.connect(source.database)
    try:
        cur = conn.cursor()
        cur.execute("CREATE TABLE [dbo].[T] ([Id] int NOT NULL PRIMARY KEY, [At] time(7) NULL)")
        cur.execute("INSERT INTO [dbo].[T] VALUES (1, '12:00:00'), (2, CAST('23:59:59.9999999' AS time(7)))")
    finally:
        conn.close()
    with MssqlSource(source) as src:
        spec = src.describe("T")
        if not mssql_server.babelfish:  # SQL Server keeps 23:59:59.9999999 exactly
            got = pa.Table.from_batches(list(src.read_batches(spec, batch_rows=10, batch_bytes=1 << 20)))
            assert got.column("At")[1].cast(pa.int64()).as_py() == 86_399_999_999_900
            return
        # Babelfish keeps 6 digits and rounds 23:59:59.9999999 up to 24:00:00, past a time of day
        with pytest.raises(DataError) as info:
            list(src.read_batches(spec, batch_rows=10, batch_bytes=1 << 20))
    assert (info.value.table, info.value.column, info.value.key) == ("dbo.T", "At", 2)
    assert "24:00:00" in str(info.value) and "outside 00:00:00 to 23:59:59.9999999" in str(info.value)
