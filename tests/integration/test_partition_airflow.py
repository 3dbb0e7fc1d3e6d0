"""Key ranges as mapped task instances through the real DAG (``airflow dags test``): with
``partition_as=tasks`` and a low ``partition_min_rows`` the large table of a small synthetic
StackOverflow source (Posts) is copied by one mapped ``copy`` instance per key range, named
``Posts[lo:hi)``, and finished by one mapped ``finish`` instance; the small one (Users) is one
unit; counts equal."""

from __future__ import annotations

import sqlite3

import pytest

from include.replication.dialects.registry import open_source
from include.stackoverflow.synthetic import fill_synthetic
from tests.conftest import run_sql
from tools.airflow_local import airflow_env, dags_test, migrate

pytestmark = [pytest.mark.integration, pytest.mark.airflow]

DAG_ID = "replicate_stackoverflow_to_postgres"
TABLES = ["Posts", "Users"]


def test_key_ranges_run_as_mapped_task_instances(local_pg, fresh_database, tmp_path):
    src, tgt = fresh_database("dag_part_src"), fresh_database("dag_part_tgt")
    fill_synthetic(local_pg.endpoint(src), 0.0005, 3, TABLES)
    with open_source(local_pg.endpoint(src)) as source:
        counts = {t: source.count_rows(source.describe(t)) for t in TABLES}
        bounds = {t: source.key_bounds(source.describe(t)) for t in TABLES}
    min_rows = counts["Posts"]  # exactly the minimum: split
    assert counts["Users"] < min_rows  # Users stays one unit
    env = airflow_env(tmp_path / "airflow", {
        "stackoverflow_source": local_pg.airflow_conn_uri(src),
        "stackoverflow_postgres_target": local_pg.airflow_conn_uri(tgt),
    })
    migrate(env)
    conf = {"spill_root": str(tmp_path / "spill"), "tables": TABLES, "partition_as": "tasks",
            "partition_min_rows": min_rows, "parallel_ranges": 2}
    proc = dags_test(DAG_ID, env, conf=conf, log_file=tmp_path / "run.log")
    assert proc.returncode == 0, (tmp_path / "run.log").read_text()[-5000:]

    db = sqlite3.connect(tmp_path / "airflow" / "airflow.db")
    rows = db.execute("SELECT task_id, map_index, rendered_map_index, state FROM task_instance "
                      "WHERE task_id IN ('copy', 'finish') ORDER BY task_id, map_index").fetchall()
    expected_units = []
    for table in ("Posts",):
        lo, hi = bounds[table]
        mid = lo + (hi - lo + 1) // 2
        expected_units += [f"{table}[{lo}:{mid})", f"{table}[{mid}:{hi + 1})"]
    copies = [r[2] for r in rows if r[0] == "copy"]
    assert sorted(copies) == sorted([*expected_units, "Users"])
    assert [r[2] for r in rows if r[0] == "finish"] == ["Posts"]
    assert {r[3] for r in rows} == {"success"}
    for table in TABLES:
        assert run_sql(local_pg.uri(tgt), f'SELECT count(*) FROM "{table}"') == [(counts[table],)]
    audit = dict(run_sql(local_pg.uri(tgt), "SELECT table_name, rows_written FROM replication_audit"))
    assert {t: audit[t] for t in TABLES} == counts
    assert sum(audit[u] for u in expected_units if u.startswith("Posts")) == counts["Posts"]
    # the finish built the primary key; the staging copy and the claim are gone
    assert run_sql(local_pg.uri(tgt), "SELECT contype FROM pg_constraint WHERE contype = 'p' "
                   "AND conrelid = '\"Posts\"'::regclass") == [("p",)]
    assert run_sql(local_pg.uri(tgt), "SELECT to_regclass('\"Posts__stage\"'), count(*) FROM replication_claim") == [
        (None, 0)]
