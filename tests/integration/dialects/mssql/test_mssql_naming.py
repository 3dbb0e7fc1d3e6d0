"""Naming and the dry run with SQL Server on either side (the session's TDS server): a SQL Server
source resolved by patterns into a lower-case PostgreSQL target (what a PostgreSQL user types
works), into a templated lower-case SQL Server target, and a dry run against that SQL Server target
that reports the existing rows and leaves its objects and rows as they were."""

from __future__ import annotations

import adbc_driver_postgresql.dbapi as pg
import pyarrow as pa
import pytest

from include.replication import engine
from include.replication.dialects.registry import open_source
from include.stackoverflow.synthetic import fill_synthetic, row_count

pytestmark = [pytest.mark.mssql, pytest.mark.integration]

SCALE = 0.0005
TABLES = ["Posts", "PostTypes", "Users"]


def _table(endpoint, name: str) -> pa.Table:
    with open_source(endpoint) as src:
        spec = src.describe(name)
        batches = list(src.read_batches(spec, batch_rows=100_000, batch_bytes=1 << 30))
    return pa.Table.from_batches(batches).sort_by(spec.primary_key[0])


@pytest.fixture(scope="module")
def mssql_source(mssql_server):
    mssql_server.create_database("naming_src")
    endpoint = mssql_server.database("naming_src")
    fill_synthetic(endpoint, SCALE, seed=4, tables=[*TABLES, "Votes"])
    return endpoint


def _run(source, target, params):
    entries = engine.plan_tables(source, target, params)
    for entry in entries:
        engine.copy_one_table(entry, source, target, params, run_id="r1", attempt=1, label="naming")
    return entries, engine.validate_tables(source, target, entries, params)


def test_sqlserver_source_by_pattern_into_lower_case_postgres(mssql_source, local_pg, fresh_database, tmp_path):
    name = fresh_database("mssql_lower")
    params = {"tables": ["Post*", "Users"], "target_case": "lower", "spill_root": str(tmp_path)}
    entries, counts = _run(mssql_source, local_pg.endpoint(name), params)
    assert sorted(entries) == ["PostTypes", "Posts", "Users"]
    assert all(c["ok"] for c in counts) and {c["table"]: c["target_rows"] for c in counts} == {
        t: row_count(t, SCALE) for t in TABLES
    }
    with pg.connect(local_pg.uri(name), autocommit=True) as conn, conn.cursor() as cur:
        cur.execute("select count(*) from posts where owneruserid is not null and posttypeid = 1")
        assert cur.fetchone()[0] > 0
        cur.execute("SELECT * FROM posts ORDER BY id")
        posts = cur.fetch_arrow_table()
    source = _table(mssql_source, "Posts")
    assert posts.column_names == [c.lower() for c in source.column_names]
    assert posts.num_rows == source.num_rows
    assert posts.column("id").to_pylist() == source.column("Id").to_pylist()
    assert posts.column("body").to_pylist() == source.column("Body").to_pylist()


def _objects(mssql_server, database: str) -> list[tuple]:
    conn = mssql_server.connect(database)
    try:
        cur = conn.cursor()
        cur.execute(
            "SELECT name, type, object_id, create_date, modify_date FROM sys.objects WHERE is_ms_shipped = 0 "
            "ORDER BY name"
        )
        return [tuple(r) for r in cur.fetchall()]
    finally:
        conn.close()


def test_templated_lower_case_sqlserver_target_and_a_dry_run_that_touches_nothing(
    mssql_source, mssql_server, fresh_mssql_database, tmp_path
):
    target = fresh_mssql_database("naming_tgt")
    params = {
        "tables": TABLES,
        "target_case": "lower",
        "target_table_template": "so_{table}",
        "spill_root": str(tmp_path),
    }
    _, counts = _run(mssql_source, target, params)
    assert all(c["ok"] for c in counts)
    assert _table(target, "so_users").num_rows == row_count("Users", SCALE)
    before = _objects(mssql_server, target.database)
    rows_before = {t: _table(target, t) for t in ("so_posts", "so_users", "so_posttypes")}
    plan = engine.dry_run(mssql_source, target, {**params, "tables": ["Post*", "Users", "Votes"]})
    assert _objects(mssql_server, target.database) == before
    assert all(_table(target, t).equals(rows) for t, rows in rows_before.items())
    by_entry = {p.entry: p for p in plan.tables}
    assert by_entry["Posts"].existing_rows == row_count("Posts", SCALE)
    assert by_entry["Posts"].action.startswith(
        f"swap-replace the existing dbo.so_posts ({row_count('Posts', SCALE):,} rows)"
    )
    assert by_entry["Votes"].existing_rows is None and by_entry["Votes"].action.startswith("create dbo.so_votes")
    assert by_entry["Posts"].target_ddl[0].startswith("CREATE TABLE [dbo].[so_posts] (\n    [id] int IDENTITY(1,1)")
    assert plan.audit_rows == 3
