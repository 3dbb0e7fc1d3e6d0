"""Assets and OpenLineage of a real DAG run (``airflow dags test`` on embedded PostgreSQL).

Each copy emits the target table's asset event through the DAG's AssetAlias, with rows, run id
and load mode; the downstream example DAG, scheduled on that alias, is queued by every
table's event; and the OpenLineage provider's file transport receives, for every copy task, the
source table as input and the target table as output with their row counts as facets.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys

import pytest

from include.replication.dialects.registry import open_source
from include.stackoverflow.synthetic import fill_synthetic
from tools.airflow_local import airflow_env, dags_test, migrate

pytestmark = [pytest.mark.integration, pytest.mark.airflow]

DAG_ID = "replicate_stackoverflow_to_postgres"
TARGET_CONN = "stackoverflow_postgres_target"


def test_copies_emit_assets_and_openlineage_datasets(local_pg, fresh_database, tmp_path):
    src_db, tgt_db = fresh_database("asset_src"), fresh_database("asset_tgt")
    fill_synthetic(local_pg.endpoint(src_db), 0.0005, 3)
    source = open_source(local_pg.endpoint(src_db))
    try:
        counts = {t: source.count_rows(source.describe(t)) for t in source.list_tables()}
    finally:
        source.close()
    lineage_file = tmp_path / "openlineage.jsonl"
    env = airflow_env(tmp_path / "home", {
        "stackoverflow_source": local_pg.airflow_conn_uri(src_db),
        TARGET_CONN: local_pg.airflow_conn_uri(tgt_db),
    })
    env["AIRFLOW__OPENLINEAGE__TRANSPORT"] = json.dumps(
        {"type": "file", "log_file_path": str(lineage_file), "append": True})
    env["AIRFLOW__OPENLINEAGE__NAMESPACE"] = "stackoverflow-tests"
    migrate(env)
    # the downstream DAG must be known to the metadata DB to be queued by an asset event
    # (and unpaused: events queue runs only for unpaused DAGs)
    for cmd in (["dags", "reserialize"], ["dags", "unpause", "report_on_replicated_tables"]):
        subprocess.run([sys.executable, "-m", "airflow", *cmd], env=env, check=True, capture_output=True, text=True)
    proc = dags_test(DAG_ID, env, conf={"spill_root": str(tmp_path / "spill")}, log_file=tmp_path / "run.log")
    assert proc.returncode == 0, (tmp_path / "run.log").read_text()[-5000:]
    # a socket connection names no port: the URI carries PostgreSQL's default, as the provider's sanitize_uri does
    port = local_pg.endpoint(tgt_db).port or 5432
    src_port = local_pg.endpoint(src_db).port or 5432

    db = sqlite3.connect(tmp_path / "home" / "airflow.db")
    events = db.execute(
        "SELECT a.name, a.uri, e.extra, e.source_task_id, e.source_map_index FROM asset_event e "
        "JOIN asset a ON a.id = e.asset_id ORDER BY a.name").fetchall()
    by_name = {name: (uri, json.loads(extra), task, index) for name, uri, extra, task, index in events}
    assert len(events) == len(counts) == 9
    for table, rows in counts.items():
        uri, extra, task, _ = by_name[f"{TARGET_CONN}.public.{table}"]
        assert uri == f"postgres://localhost:{port}/{tgt_db}/public/{table}"
        assert extra["rows"] == rows and extra["mode"] == "swap" and extra["run_id"].startswith("manual__")
        assert extra["sync_mode"] == "full"
        assert extra["source"] == f"postgres://localhost:{src_port}/{src_db}/public/{table}"
        assert task == "copy"
    resolved = db.execute(
        "SELECT al.name, count(*) FROM asset_alias al JOIN asset_alias_asset aa ON aa.alias_id = al.id "
        "GROUP BY al.name").fetchall()
    assert resolved == [(f"{DAG_ID}.tables", 9)]  # the alias resolved to the nine table assets
    queued = db.execute(
        "SELECT q.target_dag_id, a.name FROM asset_dag_run_queue q JOIN asset a ON a.id = q.asset_id").fetchall()
    # the downstream example, scheduled on the alias, is queued by every table's event
    assert sorted(queued) == sorted(("report_on_replicated_tables", f"{TARGET_CONN}.public.{t}") for t in counts)

    ol_events = [json.loads(line) for line in lineage_file.read_text().splitlines() if line.strip()]
    complete = [e for e in ol_events if e["eventType"] == "COMPLETE" and e["job"]["name"] == f"{DAG_ID}.copy"]
    assert len(complete) == 9, [(e["eventType"], e["job"]["name"]) for e in ol_events]
    seen = {}
    for event in complete:
        (inp,), (out,) = event["inputs"], event["outputs"]
        table = out["name"].rsplit(".", 1)[1]
        assert inp["namespace"] == f"postgres://localhost:{src_port}"
        assert inp["name"] == f"{src_db}.public.{table}"
        assert out["namespace"] == f"postgres://localhost:{port}" and out["name"] == f"{tgt_db}.public.{table}"
        seen[table] = (inp["inputFacets"]["inputStatistics"]["rowCount"], out["outputFacets"]["outputStatistics"]["rowCount"])
    assert seen == {t: (n, n) for t, n in counts.items()}
