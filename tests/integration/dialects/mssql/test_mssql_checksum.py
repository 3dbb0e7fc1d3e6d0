"""Checksum validation and the append mode with SQL Server on either side (the session's TDS
server): SQL Server -> PostgreSQL and SQL Server -> SQL Server copies check equal across dialects;
a value changed in the target is named by key, column and both values; an append run into SQL
Server copies exactly the new rows and keeps its mark in the target's replication_state."""

from __future__ import annotations

import datetime as dt

import pytest

from include.replication.airflow import tasks
from include.replication.core.checksum import compare_checksum
from include.replication.core.config import CopySettings
from include.replication.core.pipeline import copy_table
from include.replication.dialects.registry import open_source, open_target
from include.stackoverflow.synthetic import fill_synthetic, row_count

pytestmark = [pytest.mark.mssql, pytest.mark.integration]

SCALE = 0.0005  # Posts 1,865 rows, Votes 5,072 rows
TABLES = ["Posts", "Votes"]


@pytest.fixture(scope="module")
def synthetic_mssql(mssql_server):
    mssql_server.create_database("checksum_src")
    endpoint = mssql_server.database("checksum_src")
    fill_synthetic(endpoint, SCALE, seed=5, tables=TABLES)
    return endpoint


def _copy_all(source, target, tmp_path) -> None:
    with open_source(source) as src, open_target(target) as tgt:
        for name in TABLES:
            spec = src.describe(name)
            tgt.prepare_table(spec)
            copy_table(src, tgt, spec, CopySettings(spill_root=tmp_path))


def _check(source, target, table: str):
    with open_source(source) as src, open_source(target) as reader, open_target(target) as tgt:
        return compare_checksum(src, src.describe(table), reader, reader.describe(table), tgt.dialect, leaf_keys=16)


@pytest.mark.parametrize("target_kind", ["postgresql", "mssql"])
def test_sqlserver_source_checksums_equal_and_names_a_changed_value(
    synthetic_mssql, local_pg, fresh_database, fresh_mssql_database, tmp_path, target_kind
):
    target = local_pg.endpoint(fresh_database("cks_pg")) if target_kind == "postgresql" else fresh_mssql_database("cks")
    _copy_all(synthetic_mssql, target, tmp_path)
    for name in TABLES:
        result = _check(synthetic_mssql, target, name)
        assert result.ok, result.summary()
        assert result.source.rows == row_count(name, SCALE)

    with open_target(synthetic_mssql) as src:
        key, created = src.execute("SELECT MIN([Id]), MIN([CreationDate]) FROM [dbo].[Posts] WHERE [Id] > 1000")[0]
        (before,) = src.execute("SELECT [CreationDate] FROM [dbo].[Posts] WHERE [Id] = %s", (key,))[0]
    later = before + dt.timedelta(milliseconds=10)
    with open_target(target) as tgt:
        placeholder = "$1" if target_kind == "postgresql" else "%s"
        q = tgt.dialect.quote
        tgt.execute(
            f"UPDATE {tgt.dialect.qualified(tgt.schema, 'Posts')} SET {q('CreationDate')} = {placeholder} "
            f"WHERE {q('Id')} = {int(key)}",
            (later,),
        )
    result = _check(synthetic_mssql, target, "Posts")
    diff = result.difference
    assert diff is not None
    assert (diff.kind, diff.key, diff.column, diff.source_value, diff.target_value) == (
        "value",
        key,
        "CreationDate",
        before,
        later,
    )


def test_append_into_sqlserver_copies_exactly_the_new_rows(
    synthetic_mssql, mssql_server, fresh_mssql_database, tmp_path
):
    target = fresh_mssql_database("cks_append")
    params = {"spill_root": str(tmp_path), "table_modes": {"Votes": "append"}, "validate": "checksum"}
    tasks.plan_tables(synthetic_mssql, target, ["Votes"], params=params)
    first = tasks.copy_one_table("Votes", synthetic_mssql, target, params, run_id="r1", attempt=1, label="test")
    votes = row_count("Votes", SCALE)
    assert (first["first_load"], first["rows_inserted"]) == (True, votes)
    with open_target(synthetic_mssql) as src:
        (top,) = src.execute("SELECT MAX([Id]) FROM [dbo].[Votes]")[0]
        src.execute(
            "SET IDENTITY_INSERT [dbo].[Votes] ON; INSERT INTO [dbo].[Votes] ([Id], [PostId], [UserId], [BountyAmount], "
            "[VoteTypeId], [CreationDate]) SELECT TOP 12 [Id] + 100000, [PostId], [UserId], [BountyAmount], "
            "[VoteTypeId], [CreationDate] FROM [dbo].[Votes] ORDER BY [Id]; SET IDENTITY_INSERT [dbo].[Votes] OFF"
        )
        (new_top,) = src.execute("SELECT MAX([Id]) FROM [dbo].[Votes]")[0]
    second = tasks.copy_one_table("Votes", synthetic_mssql, target, params, run_id="r2", attempt=1, label="test")
    assert (second["rows_inserted"], second["high_water_mark_before"], second["high_water_mark_after"]) == (
        12,
        str(top),
        str(new_top),
    )
    third = tasks.copy_one_table("Votes", synthetic_mssql, target, params, run_id="r3", attempt=1, label="test")
    assert third["rows_inserted"] == 0
    with open_target(target) as tgt:
        assert tgt.execute("SELECT [mode], [high_water_mark], [run_id] FROM [dbo].[replication_state]") == [
            ("append", str(new_top), "r3")
        ]
        assert tgt.execute("SELECT COUNT_BIG(*) FROM [dbo].[Votes]") == [(votes + 12,)]
    checked = tasks.validate_tables(synthetic_mssql, target, ["Votes"], params, run_id="r3")
    assert checked[0]["checksum"]["ok"] is True
    with open_target(target) as tgt:
        (text,) = tgt.execute("SELECT [validation] FROM [dbo].[replication_audit] WHERE [run_id] = 'r3'")[0]
    assert text.startswith(f"count ok {votes + 12}; checksum ok {votes + 12}:")
