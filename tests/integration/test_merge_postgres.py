"""``merge`` sync mode PostgreSQL -> PostgreSQL with a real dump (conlang.meta Posts, cursor
``LastActivityDate``, ``delete_mode`` apply): the first run is a full load that sets the high-water
mark; after the test inserts posts, updates others (moving their cursor) and deletes some in the
source, a merge run inserts, updates and deletes exactly those; a second run of the same window changes nothing; a run that fails mid-merge
leaves target rows, state and staging as they were, and its retry ends equal to the source."""

from __future__ import annotations

import datetime as dt

import adbc_driver_postgresql.dbapi as pg
import pyarrow as pa
import pytest

from include.replication.airflow import tasks
from include.replication.core.rowfilter import format_cursor
from include.replication.core.typemap import arrow_schema
from include.replication.dialects.registry import open_source, open_target
from include.stackoverflow.dump import import_dump
from tests.conftest import dump_folders

pytestmark = pytest.mark.integration

CONLANG = next((p for p in dump_folders() if p.name == "conlang.meta"), None)
LAG = 300


def _psql(uri: str, *statements: str) -> None:
    with pg.connect(uri, autocommit=True) as conn, conn.cursor() as cur:
        for s in statements:
            cur.execute(s)


def _sorted(endpoint, table: str) -> pa.Table:
    with open_source(endpoint) as src:
        spec = src.describe(table)
        batches = list(src.read_batches(spec, batch_rows=100_000, batch_bytes=1 << 30))
    return pa.Table.from_batches(batches, schema=arrow_schema(spec)).sort_by("Id")


def _one(endpoint, sql: str, params=()):
    with open_target(endpoint) as t:
        return t.execute(sql, params)


def _copy(source, target, params, run_id, attempt=1):
    return tasks.copy_one_table("Posts", source, target, params, run_id=run_id, attempt=attempt, label="test")


def _delete_old(uri: str, mark: dt.datetime, count: int) -> list[int]:
    """Delete the ``count`` highest-Id posts last active over a day before ``mark`` (never edited by
    the test) in the source; return their Ids, ascending."""
    with pg.connect(uri, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute(f"""DELETE FROM "Posts" WHERE "Id" IN (SELECT "Id" FROM "Posts" WHERE "Id" < 100000
                        AND "LastActivityDate" < TIMESTAMP '{mark.isoformat()}' - INTERVAL '1 day'
                        AND "Title" IS DISTINCT FROM '' AND "Title" NOT LIKE '%(edited)' ORDER BY "Id" DESC LIMIT {count})
                        RETURNING "Id" """)
        return sorted(int(r[0]) for r in cur.fetchall())


def _touch(uri: str, mark: dt.datetime, *, update: int, insert: int, offset: int, hours: int) -> None:
    """In the source: edit the ``update`` oldest-active posts (Score, Title, cursor moved to
    ``mark + hours``) and add ``insert`` new ones (copies of the first posts, Id + ``offset``)."""
    moved = f"TIMESTAMP '{mark.isoformat()}' + INTERVAL '{hours} hours'"
    _psql(
        uri,
        f"""UPDATE "Posts" SET "Score" = "Score" + 100, "Title" = coalesce("Title", '') || ' (edited)',
                   "LastActivityDate" = {moved}
            WHERE "Id" IN (SELECT "Id" FROM "Posts" WHERE "Id" < 100000 ORDER BY "LastActivityDate", "Id" LIMIT {update})""",
        f"""CREATE TEMP TABLE new_posts AS SELECT * FROM "Posts" WHERE "Id" < 100000 ORDER BY "Id" LIMIT {insert}""",
        f"""UPDATE new_posts SET "Id" = "Id" + {offset}, "LastActivityDate" = {moved}""",
        'INSERT INTO "Posts" SELECT * FROM new_posts',
    )


@pytest.fixture
def dump_source(local_pg, fresh_database):
    if CONLANG is None:
        pytest.skip("conlang.meta dump not present")
    endpoint = local_pg.endpoint(fresh_database("merge_src"))
    import_dump(CONLANG, endpoint, tables=["Posts"])
    return endpoint


def test_merge_upserts_exactly_the_changed_rows_and_a_failed_run_moves_nothing(
    dump_source, local_pg, fresh_database, tmp_path
):
    source = dump_source
    target = local_pg.endpoint(fresh_database("merge_tgt"))
    src_uri, tgt_uri = local_pg.uri(source.database), local_pg.uri(target.database)
    params = {
        "spill_root": str(tmp_path),
        "mode": "merge",
        "cursor_columns": {"Posts": "LastActivityDate"},
        "merge_lag_seconds": LAG,
        "delete_mode": "apply",
        "validate": "checksum",
    }
    assert tasks.plan_tables(source, target, ["Posts"], params=params) == ["Posts"]
    ((posts, mark),) = _one(source, 'SELECT count(*), max("LastActivityDate") FROM "Posts"')
    assert posts > 100  # the real dump's posts

    # run 1: a full load that sets the mark to the largest cursor value
    first = _copy(source, target, params, "run_1")
    assert (first["mode"], first["first_load"], first["rows_inserted"]) == ("merge", True, posts)
    assert (first["high_water_mark_before"], first["high_water_mark_after"]) == (None, format_cursor(mark))
    assert _one(target, "SELECT table_name, mode, cursor_column, high_water_mark, run_id FROM replication_state") == [
        ("Posts", "merge", "LastActivityDate", format_cursor(mark), "run_1")
    ]

    # run 2: 5 posts edited (cursor moved past the mark) and 4 new ones; the lag re-reads the rows
    # of the 5 minutes before the mark too, unchanged
    ((in_lag,),) = _one(
        source, f"""SELECT count(*) FROM "Posts" WHERE "LastActivityDate" >= TIMESTAMP '{mark.isoformat()}'
                    - INTERVAL '{LAG} seconds'""")
    _touch(src_uri, mark, update=5, insert=4, offset=100_000, hours=1)
    deleted = _delete_old(src_uri, mark, 2)
    second = _copy(source, target, params, "run_2")
    moved = mark + dt.timedelta(hours=1)
    assert (second["first_load"], second["rows_inserted"], second["rows_updated"]) == (False, 4, 5)
    assert second["rows_deleted"] == 2
    assert second["deletes"] == f"2 keys deleted in the source: {deleted[0]}, {deleted[1]}"
    assert (second["rows_read"], second["rows_written"]) == (9 + in_lag, 9)
    assert (second["high_water_mark_before"], second["high_water_mark_after"]) == (
        format_cursor(mark), format_cursor(moved))
    assert _sorted(target, "Posts").equals(_sorted(source, "Posts"))
    audit = _one(target, "SELECT mode, rows_inserted, rows_updated, rows_deleted, high_water_mark_before, "
                 "high_water_mark_after FROM replication_audit WHERE run_id = 'run_2'")
    assert audit == [("merge", 4, 5, 2, format_cursor(mark), format_cursor(moved))]
    assert _one(target, "SELECT deletes FROM replication_audit WHERE run_id = 'run_2'") == [(second["deletes"],)]
    assert _one(target, """SELECT to_regclass('"Posts__merge"')""") == [(None,)]  # no staging table left

    # run 3: the same window again: its 9 rows are read and change nothing
    third = _copy(source, target, params, "run_3")
    assert (third["rows_read"], third["rows_inserted"], third["rows_updated"], third["rows_deleted"]) == (9, 0, 0, 0)
    assert third["deletes"] == "0 keys deleted in the source"
    assert third["high_water_mark_after"] == format_cursor(moved)
    assert _sorted(target, "Posts").equals(_sorted(source, "Posts"))

    # run 4 fails mid-merge (the target refuses the update of one edited post): rows, state and
    # staging stay as they were
    before = _sorted(target, "Posts")
    _touch(src_uri, moved, update=3, insert=2, offset=200_000, hours=1)
    (gone,) = _delete_old(src_uri, mark, 1)
    later = moved + dt.timedelta(hours=1)
    ((bad,),) = _one(source, f"""SELECT min("Id") FROM "Posts" WHERE "Id" < 100000
                                 AND "LastActivityDate" = TIMESTAMP '{later.isoformat()}'""")
    _psql(
        tgt_uri,
        f"""CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
                IF NEW."Id" = {bad} THEN RAISE EXCEPTION 'refused %', NEW."Id"; END IF; RETURN NEW; END $$""",
        'CREATE TRIGGER refuse BEFORE UPDATE ON "Posts" FOR EACH ROW EXECUTE FUNCTION refuse()',
    )
    with pytest.raises(Exception, match="refused"):
        _copy(source, target, params, "run_4")
    assert _sorted(target, "Posts").equals(before)
    assert _one(target, "SELECT high_water_mark, run_id FROM replication_state") == [(format_cursor(moved), "run_3")]
    assert _one(target, "SELECT status, mode FROM replication_audit WHERE run_id = 'run_4'") == [("failed", "merge")]
    assert _one(target, """SELECT to_regclass('"Posts__merge"'), to_regclass('"Posts__merge_del"')""") == [
        (None, None)]
    # its retry, with the target fixed, ends equal to the source
    _psql(tgt_uri, 'DROP TRIGGER refuse ON "Posts"')
    retry = _copy(source, target, params, "run_4", attempt=2)
    assert (retry["rows_inserted"], retry["rows_updated"], retry["rows_deleted"], retry["high_water_mark_after"]) == (
        2, 3, 1, format_cursor(later))
    assert retry["deletes"] == f"1 keys deleted in the source: {gone}"
    assert _sorted(target, "Posts").equals(_sorted(source, "Posts"))
    # the identity continues past the merged rows
    ((top,),) = _one(source, 'SELECT max("Id") FROM "Posts"')
    _psql(tgt_uri, """INSERT INTO "Posts" ("Body", "CreationDate", "PostTypeId", "Score", "ViewCount", "LastActivityDate")
                      VALUES ('x', now(), 1, 0, 0, now())""")
    assert _one(target, 'SELECT max("Id") FROM "Posts"') == [(top + 1,)]
    _psql(tgt_uri, f'DELETE FROM "Posts" WHERE "Id" = {top + 1}')
    checked = tasks.validate_tables(source, target, ["Posts"], params, run_id="run_4")
    assert [(c["table"], c["ok"], c["checksum"]["ok"]) for c in checked] == [("Posts", True, True)]


def test_merge_refuses_a_table_without_a_cursor_column(dump_source, local_pg, fresh_database):
    target = local_pg.endpoint(fresh_database("merge_nocursor"))
    from include.replication.core.errors import ReplicationError

    for params, message in (
        ({"mode": "merge"}, "merge mode needs a cursor column for Posts: set cursor_columns"),
        ({"mode": "merge", "cursor_columns": {"Posts": "Body"}}, "must be an integer or a timestamp"),
    ):
        with pytest.raises(Exception, match=message) as info:
            tasks.plan_tables(dump_source, target, ["Posts"], params=params)
        assert isinstance(info.value.__cause__, ReplicationError)
        assert info.value.__cause__.table == "Posts"


def test_merge_with_delete_mode_report_names_the_deleted_keys_and_keeps_them(dump_source, local_pg, fresh_database,
                                                                               tmp_path):
    target = local_pg.endpoint(fresh_database("merge_report"))
    params = {"spill_root": str(tmp_path), "mode": "merge", "cursor_columns": {"Posts": "LastActivityDate"},
              "delete_mode": "report"}
    tasks.plan_tables(dump_source, target, ["Posts"], params=params)
    first = _copy(dump_source, target, params, "run_1")
    ((mark,),) = _one(dump_source, 'SELECT max("LastActivityDate") FROM "Posts"')
    deleted = _delete_old(local_pg.uri(dump_source.database), mark, 12)
    second = _copy(dump_source, target, params, "run_2")
    assert (second["rows_inserted"], second["rows_updated"], second["rows_deleted"]) == (0, 0, 0)
    assert second["deletes"] == (f"12 keys deleted in the source: {', '.join(map(str, deleted[:10]))}, ... "
                                 "(delete_mode report: kept in the target)")
    assert _one(target, 'SELECT count(*) FROM "Posts"') == [(first["rows_inserted"],)]
    assert _one(target, "SELECT rows_deleted, deletes FROM replication_audit WHERE run_id = 'run_2'") == [
        (0, second["deletes"])]
