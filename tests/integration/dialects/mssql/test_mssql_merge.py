"""The ``merge`` mode into the session's TDS server (PostgreSQL source from a real dump, conlang.meta
Posts, ``delete_mode`` apply): the first run loads in full; a merge run inserts, updates and deletes
exactly the changed posts;
the same window again changes nothing; a failure inside the merge transaction leaves rows and
state as they were, and its retry ends equal (checksum across the two dialects).

Microsoft SQL Server runs one ``MERGE``; Babelfish 4.4 refuses ``MERGE`` ("'MERGE' is not
currently supported in Babelfish"), so the target runs ``UPDATE ... FROM ... JOIN`` + ``INSERT ...
WHERE NOT EXISTS`` there: the test says which path it expects on which server."""

from __future__ import annotations

import datetime as dt
import logging

import adbc_driver_postgresql.dbapi as pg
import pytest

from include.replication.airflow import tasks
from include.replication.core import merge as merge_module
from include.replication.core.rowfilter import format_cursor
from include.replication.dialects.registry import open_target
from include.stackoverflow.dump import import_dump
from tests.conftest import dump_folders

pytestmark = [pytest.mark.mssql, pytest.mark.integration]

CONLANG = next((p for p in dump_folders() if p.name == "conlang.meta"), None)


def _psql(uri: str, *statements: str) -> None:
    with pg.connect(uri, autocommit=True) as conn, conn.cursor() as cur:
        for s in statements:
            cur.execute(s)


def _one(endpoint, sql: str):
    with open_target(endpoint) as t:
        return t.execute(sql)


def _copy(source, target, params, run_id, attempt=1):
    return tasks.copy_one_table("Posts", source, target, params, run_id=run_id, attempt=attempt, label="test")


def _edit(uri: str, moved: dt.datetime, *, update: int, insert: int, offset: int) -> None:
    at = f"TIMESTAMP '{moved.isoformat()}'"
    _psql(
        uri,
        f"""UPDATE "Posts" SET "Score" = "Score" + 100, "Title" = coalesce("Title", '') || ' (edited)',
                   "LastActivityDate" = {at}
            WHERE "Id" IN (SELECT "Id" FROM "Posts" WHERE "Id" < 100000 ORDER BY "LastActivityDate", "Id" LIMIT {update})""",
        f'CREATE TEMP TABLE new_posts AS SELECT * FROM "Posts" WHERE "Id" < 100000 ORDER BY "Id" LIMIT {insert}',
        f'UPDATE new_posts SET "Id" = "Id" + {offset}, "LastActivityDate" = {at}',
        'INSERT INTO "Posts" SELECT * FROM new_posts',
    )


def _delete_first(uri: str, count: int) -> list[int]:
    """Delete the ``count`` lowest-Id posts the test never edited in the source; return their Ids."""
    with pg.connect(uri, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute(f"""DELETE FROM "Posts" WHERE "Id" IN (SELECT "Id" FROM "Posts" WHERE "Id" < 100000
                        AND ("Title" IS NULL OR "Title" NOT LIKE '%(edited)') ORDER BY "Id" LIMIT {count}) RETURNING "Id" """)
        return sorted(int(r[0]) for r in cur.fetchall())


def test_merge_into_sql_server_upserts_the_changes_by_the_servers_own_path(
    local_pg, fresh_database, fresh_mssql_database, mssql_server, tmp_path, monkeypatch, caplog
):
    if CONLANG is None:
        pytest.skip("conlang.meta dump not present")
    source = local_pg.endpoint(fresh_database("mmerge_src"))
    import_dump(CONLANG, source, tables=["Posts"])
    target = fresh_mssql_database("merge")
    src_uri = local_pg.uri(source.database)
    params = {"spill_root": str(tmp_path), "mode": "merge", "cursor_columns": {"Posts": "LastActivityDate"},
              "validate": "checksum", "foreign_keys": False, "delete_mode": "apply"}
    assert tasks.plan_tables(source, target, ["Posts"], params=params) == ["Posts"]
    first = _copy(source, target, params, "run_1")
    ((posts, mark),) = _one(target, "SELECT COUNT(*), MAX([LastActivityDate]) FROM [dbo].[Posts]")
    assert (first["first_load"], first["rows_inserted"], first["high_water_mark_after"]) == (
        True, posts, format_cursor(mark))

    moved = mark + dt.timedelta(hours=1)
    _edit(src_uri, moved, update=3, insert=2, offset=100_000)
    deleted = _delete_first(src_uri, 2)
    caplog.set_level(logging.INFO, logger="include.replication.dialects.mssql.target")
    second = _copy(source, target, params, "run_2")
    assert (second["rows_inserted"], second["rows_updated"], second["rows_deleted"], second["high_water_mark_after"]) == (
        2, 3, 2, format_cursor(moved))
    assert second["deletes"] == f"2 keys deleted in the source: {deleted[0]}, {deleted[1]}"
    path = mssql_server.expect(sqlserver="(MERGE)", babelfish="(UPDATE + INSERT on Babelfish)")
    assert any(path in r.getMessage() and "2 inserted, 3 updated" in r.getMessage() for r in caplog.records)
    assert _one(target, "SELECT COUNT(*) FROM [dbo].[Posts]") == [(posts + 2 - 2,)]
    assert _one(target, "SELECT OBJECT_ID(N'dbo.Posts__merge')") == [(None,)]  # staging dropped

    # the same window again: read, nothing changed
    third = _copy(source, target, params, "run_3")
    assert (third["rows_read"], third["rows_inserted"], third["rows_updated"], third["rows_deleted"]) == (5, 0, 0, 0)

    # a failure inside the merge transaction, after the upsert: rows and state as they were
    later = moved + dt.timedelta(hours=1)
    _edit(src_uri, later, update=2, insert=1, offset=200_000)
    real = merge_module.state_upsert_sql
    monkeypatch.setattr(merge_module, "state_upsert_sql",
                        lambda t, s: [*real(t, s), "THROW 50000, 'injected failure after the upsert', 1"])
    with pytest.raises(Exception, match="injected failure"):
        _copy(source, target, params, "run_4")
    assert _one(target, "SELECT COUNT(*), MAX([LastActivityDate]) FROM [dbo].[Posts]") == [(posts, moved)]
    assert _one(target, "SELECT [high_water_mark], [run_id] FROM [dbo].[replication_state]") == [
        (format_cursor(moved), "run_3")]
    monkeypatch.setattr(merge_module, "state_upsert_sql", real)
    retry = _copy(source, target, params, "run_4", attempt=2)
    assert (retry["rows_inserted"], retry["rows_updated"], retry["high_water_mark_after"]) == (
        1, 2, format_cursor(later))
    checked = tasks.validate_tables(source, target, ["Posts"], params, run_id="run_4")
    assert [(c["table"], c["ok"], c["checksum"]["ok"]) for c in checked] == [("Posts", True, True)]
