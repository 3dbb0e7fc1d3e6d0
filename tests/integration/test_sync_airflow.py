"""Append mode and checksum validation through the real DAG (``airflow dags test``): the first run
loads in full and sets the mark, the second copies only the new rows, both validated by checksum
with the finding in the audit rows; a value changed by hand in the target fails the third run's
validate task, naming key, column and both values in the log and the audit row."""

from __future__ import annotations

import adbc_driver_postgresql.dbapi as pg
import pytest

from tools.airflow_local import airflow_env, dags_test, migrate

pytestmark = [pytest.mark.integration, pytest.mark.airflow]

DAG_ID = "replicate_stackoverflow_to_postgres"


def _sql(local_pg, db, *statements):
    with pg.connect(local_pg.uri(db), autocommit=True) as conn, conn.cursor() as cur:
        rows = []
        for statement in statements:
            cur.execute(statement)
            try:
                rows = cur.fetchall()
            except Exception:  # noqa: BLE001 - no result set
                rows = []
        return rows


def test_append_and_checksum_through_the_dag(local_pg, fresh_database, tmp_path):
    src, tgt = fresh_database("dag_sync_src"), fresh_database("dag_sync_tgt")
    _sql(
        local_pg,
        src,
        'CREATE TABLE "Votes" ("Id" integer PRIMARY KEY, "PostId" integer NOT NULL, "Note" varchar(20))',
        """INSERT INTO "Votes" SELECT g, g % 13, 'v' || g FROM generate_series(1, 3000) g""",
        'CREATE TABLE "Users" ("Id" integer PRIMARY KEY, "Name" text)',
        """INSERT INTO "Users" SELECT g, 'u' || g FROM generate_series(1, 40) g""",
    )
    env = airflow_env(
        tmp_path / "airflow",
        {
            "stackoverflow_source": local_pg.airflow_conn_uri(src),
            "stackoverflow_postgres_target": local_pg.airflow_conn_uri(tgt),
        },
    )
    migrate(env)
    conf = {"spill_root": str(tmp_path / "spill"), "table_modes": {"Votes": "append"}, "validate": "checksum"}
    first = dags_test(DAG_ID, env, conf=conf, log_file=tmp_path / "run1.log")
    assert first.returncode == 0, (tmp_path / "run1.log").read_text()[-4000:]
    _sql(local_pg, src, """INSERT INTO "Votes" SELECT g, g % 13, 'new ' || g FROM generate_series(3001, 3040) g""")
    second = dags_test(DAG_ID, env, conf=conf, log_file=tmp_path / "run2.log")
    assert second.returncode == 0, (tmp_path / "run2.log").read_text()[-4000:]

    audit = _sql(
        local_pg,
        tgt,
        "SELECT table_name, mode, rows_inserted, high_water_mark_before, high_water_mark_after, "
        "validation FROM replication_audit ORDER BY run_id, table_name",
    )  # run ids sort by time
    assert [a[:5] for a in audit] == [
        ("Users", "full", 40, None, None),
        ("Votes", "append", 3000, None, "3000"),
        ("Users", "full", 40, None, None),
        ("Votes", "append", 40, "3000", "3040"),
    ]
    for (_, *_figures, validation), rows in zip(audit, [40, 3000, 40, 3040], strict=True):
        assert validation.startswith(f"count ok {rows}; checksum ok {rows}:"), validation
    # the full copies (Users) digested the source as they read it; validate read only the target
    taken = _sql(local_pg, tgt, "SELECT source_checksum, validation FROM replication_audit WHERE table_name = 'Users'")
    assert len(taken) == 2 and all(c and v == f"count ok 40; checksum ok {c}" for c, v in taken), taken
    assert _sql(
        local_pg,
        tgt,
        "SELECT count(*) FROM replication_audit WHERE table_name = 'Votes' AND source_checksum IS NOT NULL",
    ) == [(0,)]  # append copies read only new rows: no digest
    assert _sql(local_pg, tgt, 'SELECT count(*) FROM "Votes"') == [(3040,)]
    assert _sql(local_pg, tgt, "SELECT table_name, high_water_mark FROM replication_state") == [("Votes", "3040")]

    _sql(local_pg, tgt, """UPDATE "Votes" SET "Note" = 'edited' WHERE "Id" = 2024""")
    third = dags_test(DAG_ID, env, conf=conf, log_file=tmp_path / "run3.log")
    log = (tmp_path / "run3.log").read_text()
    assert third.returncode != 0
    assert "ChecksumMismatch: table Votes, column Note, key 2024: checksum DIFF" in log
    assert "source 'v2024' != target 'edited'" in log
    (validation,) = _sql(
        local_pg,
        tgt,
        "SELECT validation FROM replication_audit WHERE table_name = 'Votes' ORDER BY finished_at DESC LIMIT 1",
    )[0]
    assert validation.endswith("key 2024, column Note: source 'v2024' != target 'edited'")


def test_merge_with_deletes_through_the_dag(local_pg, fresh_database, tmp_path):
    """The DAG params ``cursor_columns``, ``merge_lag_seconds`` and ``delete_mode`` reach the copy
    task: the second run updates, inserts and deletes exactly the changed users."""
    src, tgt = fresh_database("dag_merge_src"), fresh_database("dag_merge_tgt")
    _sql(
        local_pg,
        src,
        'CREATE TABLE "Users" ("Id" integer PRIMARY KEY, "Name" text, "UpdatedAt" timestamp(3) NOT NULL)',
        """INSERT INTO "Users" SELECT g, 'u' || g, TIMESTAMP '2024-01-01' + g * INTERVAL '1 minute'
           FROM generate_series(1, 200) g""",
    )
    env = airflow_env(
        tmp_path / "airflow",
        {
            "stackoverflow_source": local_pg.airflow_conn_uri(src),
            "stackoverflow_postgres_target": local_pg.airflow_conn_uri(tgt),
        },
    )
    migrate(env)
    conf = {"spill_root": str(tmp_path / "spill"), "mode": "merge", "cursor_columns": {"Users": "UpdatedAt"},
            "merge_lag_seconds": 0, "delete_mode": "apply", "validate": "checksum"}
    first = dags_test(DAG_ID, env, conf=conf, log_file=tmp_path / "run1.log")
    assert first.returncode == 0, (tmp_path / "run1.log").read_text()[-4000:]
    _sql(
        local_pg,
        src,
        """UPDATE "Users" SET "Name" = 'edited', "UpdatedAt" = TIMESTAMP '2024-02-01' WHERE "Id" IN (3, 50, 120)""",
        """INSERT INTO "Users" VALUES (201, 'new', TIMESTAMP '2024-02-01')""",
        """DELETE FROM "Users" WHERE "Id" IN (7, 8)""",
    )
    second = dags_test(DAG_ID, env, conf=conf, log_file=tmp_path / "run2.log")
    assert second.returncode == 0, (tmp_path / "run2.log").read_text()[-4000:]
    audit = _sql(
        local_pg,
        tgt,
        "SELECT mode, rows_inserted, rows_updated, rows_deleted, high_water_mark_after, deletes, validation "
        "FROM replication_audit ORDER BY run_id",
    )
    assert [a[:6] for a in audit] == [
        ("merge", 200, 0, None, "2024-01-01T03:20:00.000", None),
        ("merge", 1, 3, 2, "2024-02-01T00:00:00.000", "2 keys deleted in the source: 7, 8"),
    ]
    assert audit[1][6].startswith("count ok 199; checksum ok 199:"), audit[1][6]
    assert _sql(local_pg, tgt, "SELECT table_name, mode, cursor_column, high_water_mark FROM replication_state") == [
        ("Users", "merge", "UpdatedAt", "2024-02-01T00:00:00.000")]
