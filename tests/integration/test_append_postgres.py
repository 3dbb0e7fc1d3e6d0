"""``append`` sync mode PostgreSQL -> PostgreSQL with a real dump (conlang.meta): the first run is a
full load that sets the high-water mark; a later run copies exactly the rows inserted in the source
since; a second run of the same state copies nothing; a run that fails mid-append leaves target
rows and mark as they were, and its retry ends equal to the source."""

from __future__ import annotations

import adbc_driver_postgresql.dbapi as pg
import pyarrow as pa
import pytest

from include.replication.airflow import tasks
from include.replication.core.typemap import arrow_schema
from include.replication.dialects.registry import open_source, open_target
from include.stackoverflow.dump import import_dump
from tests.conftest import dump_folders

pytestmark = pytest.mark.integration

CONLANG = next((p for p in dump_folders() if p.name == "conlang.meta"), None)
TABLES = ["Votes", "Comments", "Users"]


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


@pytest.fixture(scope="module")
def dump_source(local_pg):
    if CONLANG is None:
        pytest.skip("conlang.meta dump not present")
    local_pg.create_database("append_src", drop=True)
    endpoint = local_pg.endpoint("append_src")
    import_dump(CONLANG, endpoint, tables=TABLES)
    return endpoint


def _copy(source, target, table, params, run_id, attempt=1):
    return tasks.copy_one_table(table, source, target, params, run_id=run_id, attempt=attempt, label="test")


def _insert_votes(uri: str, offset: int, count: int) -> None:
    """``count`` new votes in the source: copies of the first votes with Ids above every existing one."""
    _psql(
        uri,
        f"""INSERT INTO "Votes" ("Id", "PostId", "VoteTypeId", "UserId", "BountyAmount", "CreationDate")
                  SELECT "Id" + {offset}, "PostId", "VoteTypeId", "UserId", "BountyAmount", "CreationDate"
                  FROM "Votes" ORDER BY "Id" LIMIT {count}""",
    )


def test_append_copies_exactly_the_new_rows_and_a_failed_run_moves_nothing(
    dump_source, local_pg, fresh_database, tmp_path
):
    source = dump_source
    target = local_pg.endpoint(fresh_database("append_tgt"))
    src_uri, tgt_uri = local_pg.uri(source.database), local_pg.uri(target.database)
    params = {
        "spill_root": str(tmp_path),
        "mode": "full",
        "table_modes": {"Votes": "append", "Comments": "append"},
        "validate": "checksum",
    }
    assert sorted(tasks.plan_tables(source, target, TABLES)) == sorted(TABLES)
    (votes0,) = _one(source, 'SELECT count(*), max("Id") FROM "Votes"')
    assert votes0[0] == 1119  # the real dump's votes

    # run 1: the first append run is a full load that sets the mark
    first = _copy(source, target, "Votes", params, "run_1")
    assert (first["mode"], first["first_load"], first["rows_inserted"]) == ("append", True, 1119)
    assert (first["high_water_mark_before"], first["high_water_mark_after"]) == (None, str(votes0[1]))
    assert _copy(source, target, "Users", params, "run_1")["rows_written"] > 0  # full mode: no state row
    assert _one(target, "SELECT table_name, mode, cursor_column, high_water_mark, run_id FROM replication_state") == [
        ("Votes", "append", "Id", str(votes0[1]), "run_1")
    ]

    # run 2: 25 new votes in the source; exactly those are copied
    _insert_votes(src_uri, 100_000, 25)
    second = _copy(source, target, "Votes", params, "run_2")
    assert (second["first_load"], second["rows_inserted"], second["rows_read"]) == (False, 25, 25)
    (top,) = _one(source, 'SELECT max("Id") FROM "Votes"')
    assert (second["high_water_mark_before"], second["high_water_mark_after"]) == (str(votes0[1]), str(top[0]))
    assert _sorted(target, "Votes").equals(_sorted(source, "Votes"))
    assert _one(target, 'SELECT count(*) FROM "Votes"') == [(1119 + 25,)]
    audit = _one(
        target,
        "SELECT mode, rows_inserted, rows_updated, rows_deleted, high_water_mark_before, "
        "high_water_mark_after FROM replication_audit WHERE run_id = 'run_2'",
    )
    assert audit == [("append", 25, 0, 0, str(votes0[1]), str(top[0]))]

    # run 3: nothing new, nothing copied, the mark stays
    third = _copy(source, target, "Votes", params, "run_3")
    assert (third["rows_inserted"], third["high_water_mark_before"], third["high_water_mark_after"]) == (
        0,
        str(top[0]),
        str(top[0]),
    )
    assert _sorted(target, "Votes").equals(_sorted(source, "Votes"))

    # run 4 fails mid-append (the target refuses one of the new rows): rows and mark stay as they were
    _insert_votes(src_uri, 200_000, 10)
    (bad,) = _one(source, 'SELECT max("Id") FROM "Votes"')
    _psql(
        tgt_uri,
        f"""CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
                IF NEW."Id" = {bad[0]} THEN RAISE EXCEPTION 'refused %', NEW."Id"; END IF; RETURN NEW; END $$""",
        'CREATE TRIGGER refuse BEFORE INSERT ON "Votes" FOR EACH ROW EXECUTE FUNCTION refuse()',
    )
    with pytest.raises(Exception, match="refused"):
        _copy(source, target, "Votes", params, "run_4")
    assert _one(target, 'SELECT count(*), max("Id") FROM "Votes"') == [(1119 + 25, top[0])]
    assert _one(target, "SELECT high_water_mark, run_id FROM replication_state") == [(str(top[0]), "run_3")]
    assert _one(target, "SELECT status, mode FROM replication_audit WHERE run_id = 'run_4'") == [("failed", "append")]
    # its retry, with the target fixed, copies the 10 rows once
    _psql(tgt_uri, 'DROP TRIGGER refuse ON "Votes"')
    retry = _copy(source, target, "Votes", params, "run_4", attempt=2)
    assert (retry["rows_inserted"], retry["high_water_mark_after"]) == (10, str(bad[0]))
    assert _sorted(target, "Votes").equals(_sorted(source, "Votes"))
    # the identity continues past the appended rows
    assert _one(
        target, 'INSERT INTO "Votes" ("PostId", "VoteTypeId", "CreationDate") VALUES (1, 2, now()) RETURNING "Id"'
    ) == [(bad[0] + 1,)]
    _psql(tgt_uri, f'DELETE FROM "Votes" WHERE "Id" = {bad[0] + 1}')

    # Comments through table_modes too; then the validate task proves equality by checksum
    comments = _copy(source, target, "Comments", params, "run_4")
    assert comments["first_load"] is True
    _psql(
        src_uri,
        """INSERT INTO "Comments" ("Id", "PostId", "Score", "Text", "CreationDate", "UserId")
                      SELECT "Id" + 500000, "PostId", "Score", "Text" || ' (again)', "CreationDate", "UserId"
                      FROM "Comments" ORDER BY "Id" LIMIT 7""",
    )
    assert _copy(source, target, "Comments", params, "run_5")["rows_inserted"] == 7
    checked = tasks.validate_tables(source, target, TABLES, params, run_id="run_5")
    assert [(c["table"], c["ok"], c["checksum"]["ok"]) for c in checked] == [
        ("Votes", True, True),
        ("Comments", True, True),
        ("Users", True, True),
    ]


def test_append_refuses_a_table_without_an_integer_key(local_pg, fresh_database, tmp_path):
    src, tgt = fresh_database("append_nokey"), fresh_database("append_nokey_tgt")
    _psql(local_pg.uri(src), 'CREATE TABLE "Tags" ("Name" varchar(40) PRIMARY KEY, "Count" int)')
    from include.replication.core.errors import ReplicationError

    with pytest.raises(Exception) as info:
        tasks.plan_tables(local_pg.endpoint(src), local_pg.endpoint(tgt), ["Tags"], params={"mode": "append"})
    assert isinstance(info.value.__cause__, ReplicationError)
    assert info.value.__cause__.table == "Tags"
    assert "append mode needs a single integer primary key" in str(info.value)
    # merge is a mode now, but it needs a cursor column configured for the table
    with pytest.raises(Exception, match="merge mode needs a cursor column for Tags") as info:
        tasks.plan_tables(local_pg.endpoint(src), local_pg.endpoint(tgt), ["Tags"], params={"mode": "merge"})
    assert info.value.__cause__.table == "Tags"
    with pytest.raises(Exception, match="mode must be one of"):
        tasks.plan_tables(local_pg.endpoint(src), local_pg.endpoint(tgt), ["Tags"], params={"mode": "upsert"})
