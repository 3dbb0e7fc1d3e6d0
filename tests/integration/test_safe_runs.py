"""Safe runs on a real PostgreSQL: a failed or interrupted copy never leaves the target worse, every
error says why, nothing is left behind, two copies of one table never duplicate a row.

Each test first reproduces the failure kind (the failing input), then checks the outcome: the
previous replica byte-identical (sorted Arrow tables) with its grant and dependent view, the error's
class, table, column and key, no staging table, no spill directory, one copy of every row.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import adbc_driver_postgresql.dbapi as pg
import pyarrow as pa
import pytest

from include.replication.core.config import CopySettings, MiB
from include.replication.core.errors import (
    DataError,
    ReplicationError,
    TargetError,
    UnsupportedTypeError,
    ValidationError,
)
from include.replication.core.pipeline import copy_table
from include.replication.dialects.registry import open_source, open_target

pytestmark = [pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]


def _sql(local_pg, db: str, *statements: str) -> list:
    with pg.connect(local_pg.uri(db), autocommit=True) as conn, conn.cursor() as cur:
        rows: list = []
        for statement in statements:
            cur.execute(statement)
            try:
                rows = cur.fetchall()
            except Exception:  # noqa: BLE001 - a statement without rows
                rows = []
        return rows


def _table(local_pg, db: str, name: str) -> pa.Table:
    with pg.connect(local_pg.uri(db), autocommit=True) as conn, conn.cursor() as cur:
        cur.execute(f'SELECT * FROM "{name}" ORDER BY "Id"')
        return cur.fetch_arrow_table()


def _copy(local_pg, src: str, tgt: str, table: str, tmp_path: Path, **settings):
    with open_source(local_pg.endpoint(src)) as source, open_target(local_pg.endpoint(tgt)) as target:
        spec = source.describe(table)
        return copy_table(source, target, spec, CopySettings(spill_root=tmp_path / "spill", **settings))


@pytest.fixture
def replica(local_pg, fresh_database, tmp_path):
    """A source table and a good replica of it, with a grant to a reader role and a view on it."""
    src, tgt = fresh_database("safe_src"), fresh_database("safe_tgt")
    _sql(local_pg, src,
         'CREATE TABLE "Comments" ("Id" integer PRIMARY KEY, "Text" varchar(50) NOT NULL, "Score" integer, '
         '"At" timestamp(3))',
         'INSERT INTO "Comments" SELECT g, \'comment \' || g, g % 7, timestamp \'2010-01-01\' + g * interval \'1 minute\' '
         'FROM generate_series(1, 5000) g')
    _copy(local_pg, src, tgt, "Comments", tmp_path)
    role = f"reader_{tgt}"
    _sql(local_pg, tgt, f'DROP ROLE IF EXISTS {role}', f"CREATE ROLE {role}",
         f'GRANT SELECT ON "Comments" TO {role}',
         'CREATE VIEW high_scores AS SELECT "Id", "Score" FROM "Comments" WHERE "Score" > 5')
    return src, tgt, role


def _intact(local_pg, tgt: str, role: str, before: pa.Table) -> None:
    assert _table(local_pg, tgt, "Comments").equals(before)
    assert _sql(local_pg, tgt, f"SELECT has_table_privilege('{role}', '\"Comments\"', 'SELECT')") == [(True,)]
    assert _sql(local_pg, tgt, "SELECT count(*) FROM high_scores") == [(714,)]
    assert _sql(local_pg, tgt, "SELECT to_regclass('\"Comments__stage\"')") == [(None,)]  # no staging debris


def test_a_successful_swap_keeps_grant_and_view_on_the_new_rows(local_pg, replica, tmp_path):
    src, tgt, role = replica
    _sql(local_pg, src, 'UPDATE "Comments" SET "Score" = 6 WHERE "Id" <= 10')
    result = _copy(local_pg, src, tgt, "Comments", tmp_path)
    assert result.rows_written == 5000
    assert _table(local_pg, tgt, "Comments").equals(_table(local_pg, src, "Comments"))
    assert _sql(local_pg, tgt, f"SELECT has_table_privilege('{role}', '\"Comments\"', 'SELECT')") == [(True,)]
    assert _sql(local_pg, tgt, "SELECT count(*) FROM high_scores") == [(714 + 10 - 1,)]  # Id 6 had score 6 already
    keys = _sql(local_pg, tgt, "SELECT conname FROM pg_constraint WHERE conrelid = '\"Comments\"'::regclass AND contype = 'p'")
    assert keys == [("Comments_pkey",)]  # the live key name, not the staging one


def test_regression_a_bad_value_used_to_empty_a_good_replica(local_pg, replica, tmp_path):
    """Before: plan dropped and re-created the table, so a run failing on a new bad value left it empty."""
    src, tgt, role = replica
    before = _table(local_pg, tgt, "Comments")
    _sql(local_pg, src, 'UPDATE "Comments" SET "At" = \'infinity\' WHERE "Id" = 4321')
    with pytest.raises(DataError) as info:
        _copy(local_pg, src, tgt, "Comments", tmp_path)
    assert (info.value.table, info.value.column, info.value.key, info.value.retryable) == ("public.Comments", "At", 4321, False)
    _intact(local_pg, tgt, role, before)
    assert not any((tmp_path / "spill").glob("*"))


def test_a_failing_key_build_keeps_the_previous_replica(local_pg, replica, tmp_path):
    src, tgt, role = replica
    before = _table(local_pg, tgt, "Comments")
    _sql(local_pg, src, 'ALTER TABLE "Comments" DROP CONSTRAINT "Comments_pkey"',
         'INSERT INTO "Comments" VALUES (7, \'a duplicate key\', 1)')
    with open_source(local_pg.endpoint(src)) as source, open_target(local_pg.endpoint(tgt)) as target:
        spec = dataclasses.replace(source.describe("Comments"), primary_key=("Id",), primary_key_name="Comments_pkey")
        with pytest.raises(TargetError) as info:
            copy_table(source, target, spec, CopySettings(spill_root=tmp_path / "spill"))
    assert info.value.retryable is False and "could not create unique index" in str(info.value)
    _intact(local_pg, tgt, role, before)


def test_a_copy_failing_its_count_check_keeps_the_previous_replica(local_pg, replica, tmp_path):
    """A target that silently loses a row (here a BEFORE INSERT trigger, attached by an event trigger
    to every staging table created, drops Id 2500) fails the unit's count check: ValidationError,
    not retried, and the previous replica is untouched."""
    src, tgt, role = replica
    before = _table(local_pg, tgt, "Comments")
    _sql(local_pg, tgt,
         "CREATE FUNCTION drop_one() RETURNS trigger LANGUAGE plpgsql AS "
         "$$ BEGIN IF NEW.\"Id\" = 2500 THEN RETURN NULL; END IF; RETURN NEW; END $$",
         "CREATE FUNCTION attach_drop_one() RETURNS event_trigger LANGUAGE plpgsql AS $$ "
         "DECLARE r record; BEGIN FOR r IN SELECT * FROM pg_event_trigger_ddl_commands() "
         "WHERE command_tag = 'CREATE TABLE' AND object_identity LIKE '%__stage%' LOOP "
         "EXECUTE format('CREATE TRIGGER lose_a_row BEFORE INSERT ON %s FOR EACH ROW EXECUTE FUNCTION drop_one()', "
         "r.object_identity); END LOOP; END $$",
         "CREATE EVENT TRIGGER lose_rows ON ddl_command_end EXECUTE FUNCTION attach_drop_one()")
    try:
        with pytest.raises(ValidationError) as info:
            _copy(local_pg, src, tgt, "Comments", tmp_path)
    finally:
        _sql(local_pg, tgt, "DROP EVENT TRIGGER lose_rows")
    assert info.value.retryable is False
    assert "Comments" in str(info.value) and "4999" in str(info.value) and "5000" in str(info.value)
    _intact(local_pg, tgt, role, before)


def test_a_killed_target_connection_mid_copy_keeps_the_replica_and_the_retry_replaces_it(local_pg, replica, tmp_path):
    src, tgt, role = replica
    before = _table(local_pg, tgt, "Comments")

    class Killing:
        """A source whose reader kills the target's copy backends halfway through."""

        def __init__(self, inner):
            self._inner, self.dialect = inner, inner.dialect

        def __getattr__(self, name):
            return getattr(self._inner, name)

        def read_batches(self, spec, **kw):
            for i, batch in enumerate(self._inner.read_batches(spec, **kw)):
                if i == 2:
                    _sql(local_pg, tgt, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = "
                         f"'{tgt}' AND pid <> pg_backend_pid() AND query ILIKE 'COPY%'")
                    time.sleep(0.5)
                yield batch

    with open_source(local_pg.endpoint(src)) as source, open_target(local_pg.endpoint(tgt)) as target:
        spec = source.describe("Comments")
        with pytest.raises(ReplicationError) as info:
            copy_table(Killing(source), target, spec, CopySettings(spill_root=tmp_path / "spill", batch_rows=500,
                                                                    batch_bytes=64 * 1024))
    assert info.value.retryable is True  # a lost connection: Airflow retries it
    _intact(local_pg, tgt, role, before)
    assert _copy(local_pg, src, tgt, "Comments", tmp_path, attempt=2).rows_written == 5000


def test_truncate_mode_keeps_the_table_and_refuses_a_changed_one(local_pg, replica, tmp_path):
    src, tgt, role = replica
    _sql(local_pg, src, 'UPDATE "Comments" SET "Score" = 0')
    assert _copy(local_pg, src, tgt, "Comments", tmp_path, load_mode="truncate").rows_written == 5000
    assert _sql(local_pg, tgt, 'SELECT sum("Score") FROM "Comments"') == [(0,)]
    assert _sql(local_pg, tgt, f"SELECT has_table_privilege('{role}', '\"Comments\"', 'SELECT')") == [(True,)]
    oid = _sql(local_pg, tgt, "SELECT '\"Comments\"'::regclass::oid")
    _sql(local_pg, src, 'ALTER TABLE "Comments" ALTER COLUMN "Text" TYPE varchar(60)')
    with pytest.raises(ReplicationError) as info:
        _copy(local_pg, src, tgt, "Comments", tmp_path, load_mode="truncate")
    assert info.value.retryable is False and info.value.column == "Text" and "character varying(60)" in str(info.value)
    assert _sql(local_pg, tgt, "SELECT '\"Comments\"'::regclass::oid") == oid  # the same table, untouched
    assert _sql(local_pg, tgt, 'SELECT count(*) FROM "Comments"') == [(5000,)]


@pytest.mark.parametrize("parallel_ranges", [1, 3])
def test_two_copies_of_one_table_at_once_leave_one_copy_of_every_row(local_pg, replica, tmp_path, parallel_ranges):
    src, tgt, _ = replica
    outcomes: list[object] = []

    def run(i: int) -> None:
        try:
            outcomes.append(_copy(local_pg, src, tgt, "Comments", tmp_path / f"c{i}", parallel_ranges=parallel_ranges,
                                  lock_wait_s=0.5, batch_rows=200, batch_bytes=64 * 1024, run_id=f"run{i}"))
        except ReplicationError as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    errors = [o for o in outcomes if isinstance(o, Exception)]
    # either both finished one after the other (the second waited), or the second was refused
    # with the holder named; never interleaved
    for exc in errors:
        assert isinstance(exc, TargetError) and exc.retryable and "is being copied by 'replication copy run run" in str(exc)
    assert len(errors) <= 1
    assert _sql(local_pg, tgt, 'SELECT count(*), count(DISTINCT "Id") FROM "Comments"') == [(5000, 5000)]
    assert _table(local_pg, tgt, "Comments").equals(_table(local_pg, src, "Comments"))


def test_two_tries_of_the_same_unit_never_duplicate_rows(local_pg, fresh_database, tmp_path):
    """The unit lock: two transactions loading the same key range serialise (drop mode, no table lock)."""
    src, tgt = fresh_database("unit_src"), fresh_database("unit_tgt")
    _sql(local_pg, src, 'CREATE TABLE "V" ("Id" integer PRIMARY KEY, "X" integer)',
         'INSERT INTO "V" SELECT g, g FROM generate_series(1, 20000) g')
    with open_source(local_pg.endpoint(src)) as source, open_target(local_pg.endpoint(tgt)) as target:
        spec = source.describe("V")
        target.prepare_table(spec)
    results: list[object] = []

    def unit() -> None:
        with open_source(local_pg.endpoint(src)) as source, open_target(local_pg.endpoint(tgt)) as target:
            target.begin_unit(spec, (1, 20001))
            time.sleep(0.3)
            n = target.write_batches(spec, source.read_batches(spec, batch_rows=1000, batch_bytes=1 << 20, key_range=(1, 20001)))
            target.commit_unit(spec, n, (1, 20001))
            results.append(n)

    threads = [threading.Thread(target=unit) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [20000, 20000]
    assert _sql(local_pg, tgt, 'SELECT count(*), count(DISTINCT "Id") FROM "V"') == [(20000, 20000)]


def test_a_copy_killed_by_the_os_leaves_no_spill_directory_after_its_retry(local_pg, fresh_database, tmp_path):
    src, tgt = fresh_database("kill_src"), fresh_database("kill_tgt")
    from include.stackoverflow.synthetic import fill_synthetic

    fill_synthetic(local_pg.endpoint(src), 0.005, tables=["Posts"])
    spill = tmp_path / "spill"
    child = subprocess.Popen(
        [sys.executable, "-c", (
            "import sys, time; sys.path.insert(0, sys.argv[1]);"
            "from pathlib import Path;"
            "from include.replication.core.config import CopySettings, MiB;"
            "from include.replication.core.pipeline import copy_table;"
            "from include.replication.dialects.registry import open_source, open_target;"
            "from tools.localpg import LocalPostgres;"
            "srv = LocalPostgres(Path(sys.argv[2]), sys.argv[3]);"
            "src = open_source(srv.endpoint(sys.argv[4])); tgt = open_target(srv.endpoint(sys.argv[5]));"
            "spec = src.describe('Posts');"
            "slow = lambda batches: (time.sleep(0.05) or b for b in batches);"
            "w = tgt.write_batches; tgt.write_batches = lambda s, b: w(s, slow(b));"
            "copy_table(src, tgt, spec, CopySettings(spill_root=Path(sys.argv[6]), memory_budget_bytes=MiB, "
            "batch_bytes=64 * 1024, run_id='r1', attempt=1, label='killtest'))"
        ), str(ROOT), str(local_pg.data_dir), local_pg.socket_dir, src, tgt, str(spill)],
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(spill.glob("*/*.parquet")):
        time.sleep(0.1)
    assert any(spill.glob("*/*.parquet")), "the child never spilled"
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    left = [p.name for p in spill.iterdir()]
    assert left and all("-try1" in n for n in left)  # the killed try's directory is debris now
    result = _copy(local_pg, src, tgt, "Posts", tmp_path, memory_budget_bytes=MiB, batch_bytes=64 * 1024,
                   run_id="r1", attempt=2, label="killtest")
    assert result.rows_written > 0
    assert list(spill.iterdir()) == []  # the retry removed try 1's directory and its own
    from include.replication.core.spill import sweep_run

    (spill / "killtest-0000-left").mkdir()  # another label's: never touched
    assert sweep_run(spill, "killtest", "r1") == []
    assert [p.name for p in spill.iterdir()] == ["killtest-0000-left"]


@pytest.mark.parametrize(("ddl", "column", "message"), [
    ('"v" numeric(80,2)', "v", "more digits than Arrow's widest decimal"),
    ('"v" numeric(5,-2)', "v", "scale outside 0..precision"),
    ('"v" interval', "v", "unsupported postgresql type 'interval'"),
    ('"v" integer[]', "v", "unsupported postgresql type 'ARRAY'"),
])
def test_types_the_map_cannot_express_fail_in_plan_naming_table_and_column(local_pg, fresh_database, ddl, column, message):
    src = fresh_database("bad_types")
    _sql(local_pg, src, f'CREATE TABLE "T" ("Id" integer PRIMARY KEY, {ddl})')
    with open_source(local_pg.endpoint(src)) as source, pytest.raises(UnsupportedTypeError) as info:
        source.describe("T")
    assert (info.value.table, info.value.column, info.value.retryable) == ("public.T", column, False)
    assert message in str(info.value)


def test_a_table_without_columns_is_named_as_such_not_as_missing(local_pg, fresh_database):
    src = fresh_database("no_cols")
    _sql(local_pg, src, 'CREATE TABLE "Empty" ()')
    with open_source(local_pg.endpoint(src)) as source, pytest.raises(UnsupportedTypeError, match="no columns"):
        source.describe("Empty")


@pytest.mark.parametrize(("value", "message"), [
    ("'infinity'", "PostgreSQL 'infinity' cannot be copied exactly"),
    ("'-infinity'", "PostgreSQL '-infinity' cannot be copied exactly"),
    # PostgreSQL keeps timestamps to 294276 AD; Arrow's timestamp[us] ends in 294247, and ADBC's
    # reader wraps a later value around to about 290278 BC (it used to be reported as that value)
    ("'294276-12-31 23:59:59'", "after 294247-01-10 04:00:54.775807, the last instant Arrow's timestamp[us] holds"),
    ("'294247-01-10 04:00:54.775808'", "after 294247-01-10 04:00:54.775807, the last instant Arrow's timestamp[us] holds"),
])
def test_special_and_out_of_range_timestamps_fail_by_key_and_leave_the_target(local_pg, fresh_database, tmp_path, value, message):
    src, tgt = fresh_database("bad_ts_src"), fresh_database("bad_ts_tgt")
    _sql(local_pg, src, 'CREATE TABLE "E" ("Id" integer PRIMARY KEY, "At" timestamp)',
         "INSERT INTO \"E\" VALUES (1, '2020-01-01'), (2, " + value + ")")
    with pytest.raises(DataError) as info:
        _copy(local_pg, src, tgt, "E", tmp_path)
    assert (info.value.table, info.value.column, info.value.key, info.value.retryable) == ("public.E", "At", 2, False)
    assert message in str(info.value)
    assert _sql(local_pg, tgt, "SELECT to_regclass('\"E\"'), to_regclass('\"E__stage\"')") == [(None, None)]


def test_a_value_postgresql_rejects_inside_copy_is_named_by_column_and_key(local_pg, fresh_database, tmp_path):
    """A rejection the batch checks cannot see coming (here a CHECK constraint on the staging copy
    added by hand) is decoded from the server's CONTEXT line, not reported as a bare IO error."""
    from include.replication.dialects.postgres.target import copy_error

    class Rejected(Exception):
        sqlstate = "22001"

    sent = [(0, pa.record_batch([pa.array([10, 11, 12], pa.int32())], names=["Id"])),
            (3, pa.record_batch([pa.array([13, 14], pa.int32())], names=["Id"]))]
    from include.replication.core.catalog import ColumnSpec, TableSpec

    spec = TableSpec("U", (ColumnSpec("Id", "integer", nullable=False), ColumnSpec("v", "text")), primary_key=("Id",))
    err = copy_error(spec, Rejected("INVALID_DATA: [libpq] Failed to execute COPY statement: PGRES_FATAL_ERROR ERROR:  "
                                    "value too long for type character varying(3)\nCONTEXT:  COPY U__stage, line 5, column v\n"), sent)
    assert isinstance(err, DataError) and (err.column, err.key, err.retryable) == ("v", 14, False)
    assert "value too long for type character varying(3)" in str(err)
    lost = copy_error(spec, type("E", (Exception,), {"sqlstate": None})("server closed the connection unexpectedly"), sent)
    assert isinstance(lost, TargetError) and lost.retryable is True


def test_a_source_connection_dying_mid_read_is_a_source_error_with_its_cause(local_pg, fresh_database, tmp_path):
    from include.replication.core.errors import SourceError
    from include.stackoverflow.synthetic import fill_synthetic

    src, tgt = fresh_database("die_src"), fresh_database("die_tgt")
    fill_synthetic(local_pg.endpoint(src), 0.005, tables=["Posts"])
    with open_source(local_pg.endpoint(src)) as source, open_target(local_pg.endpoint(tgt)) as target:
        spec = source.describe("Posts")
        batches = source.read_batches(spec, batch_rows=50, batch_bytes=64 * 1024)
        next(batches)
        _sql(local_pg, src, f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{src}' "
             "AND pid <> pg_backend_pid() AND query ILIKE 'COPY%'")
        with pytest.raises(SourceError) as info:
            for _ in batches:
                pass
    assert info.value.table == "public.Posts" and info.value.retryable is True
    assert "Failed to rollback" not in str(info.value)  # the cleanup error never replaces the real one
    _ = target
