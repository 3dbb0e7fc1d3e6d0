"""Safe runs through the real DAG (``airflow dags test``): a permanent error fails its task once,
without retries, writes a failed audit row, and leaves that table's previous replica as it was; the
other tables of the run are copied; the cleanup task still runs."""

from __future__ import annotations

import pytest

from tests.conftest import run_sql
from tools.airflow_local import airflow_env, dags_test, migrate

pytestmark = [pytest.mark.integration, pytest.mark.airflow]

DAG_ID = "replicate_stackoverflow_to_postgres"


def _sql(local_pg, db, *statements):
    return run_sql(local_pg.uri(db), *statements)


def test_a_permanent_error_runs_once_and_keeps_the_previous_replica(local_pg, fresh_database, tmp_path):
    src, tgt = fresh_database("dag_safe_src"), fresh_database("dag_safe_tgt")
    _sql(local_pg, src,
         'CREATE TABLE "Good" ("Id" integer PRIMARY KEY, "N" integer)',
         'INSERT INTO "Good" SELECT g, g FROM generate_series(1, 100) g',
         'CREATE TABLE "Events" ("Id" integer PRIMARY KEY, "At" timestamp)',
         "INSERT INTO \"Events\" SELECT g, timestamp '2020-01-01' + g * interval '1 day' FROM generate_series(1, 50) g")
    env = airflow_env(tmp_path / "airflow", {
        "stackoverflow_source": local_pg.airflow_conn_uri(src),
        "stackoverflow_postgres_target": local_pg.airflow_conn_uri(tgt),
    })
    migrate(env)
    conf = {"spill_root": str(tmp_path / "spill")}
    first = dags_test(DAG_ID, env, conf=conf, log_file=tmp_path / "run1.log")
    assert first.returncode == 0, (tmp_path / "run1.log").read_text()[-4000:]
    _sql(local_pg, src, 'UPDATE "Events" SET "At" = \'infinity\' WHERE "Id" = 17', 'UPDATE "Good" SET "N" = -"N"')
    second = dags_test(DAG_ID, env, conf=conf, log_file=tmp_path / "run2.log")
    log = (tmp_path / "run2.log").read_text()
    assert second.returncode != 0  # the run fails ...
    assert "up_for_retry" not in log.lower() and "UP_FOR_RETRY" not in log  # ... without a retry of the permanent error
    assert "DataError: table public.Events, column At, key 17: PostgreSQL 'infinity' cannot be copied exactly" in log
    # the failing table keeps its previous replica, the other table has the new rows
    assert _sql(local_pg, tgt, 'SELECT count(*), max("At") FROM "Events"')[0][0] == 50
    assert _sql(local_pg, tgt, 'SELECT sum("N") FROM "Good"') == [(-5050,)]
    audit = _sql(local_pg, tgt, "SELECT table_name, status, attempt, error FROM replication_audit "
                 "WHERE run_id = (SELECT run_id FROM replication_audit ORDER BY finished_at DESC LIMIT 1) ORDER BY table_name")
    assert [(r[0], r[1], r[2]) for r in audit] == [("Events", "failed", 1), ("Good", "success", 1)]
    assert "key 17" in audit[0][3]
    assert "cleanup" in log and not any((tmp_path / "spill").glob("*"))
