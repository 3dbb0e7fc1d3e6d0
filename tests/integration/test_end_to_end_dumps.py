"""End to end on real data: Stack Exchange dump -> PostgreSQL source -> the real Airflow DAG
(``airflow dags test``) -> PostgreSQL target, for every dump folder in ../shared/stackexchange.

Asserts, per dump: every target table equals its source table row for row and column for column
(sorted Arrow tables read with the catalog schema); the next insert without an Id gets
max(Id) + 1 on every identity table; a second DAG run leaves the target identical; the audit table
holds exactly one success row per table per run.
"""

from __future__ import annotations

from pathlib import Path

import adbc_driver_postgresql.dbapi as pg
import pyarrow as pa
import pytest

from include.replication.core.typemap import arrow_schema
from include.replication.dialects.registry import open_source
from include.stackoverflow.dump import import_dump
from tests.conftest import dump_folders
from tools.airflow_local import airflow_env, dags_test, migrate

pytestmark = [pytest.mark.integration, pytest.mark.airflow]

DAG_ID = "replicate_stackoverflow_to_postgres"
_DEFAULTS = {"int32": "1", "string": "'x'", "timestamp[us]": "now()", "extension<arrow.uuid>": "gen_random_uuid()"}
"""SQL literal per Arrow type, for an insert that fills only the NOT NULL columns."""
DUMPS = dump_folders()


def _snapshot(endpoint) -> dict[str, pa.Table]:
    """Every table of the database, read through the product's source with the catalog schema
    and sorted by primary key."""
    src = open_source(endpoint)
    try:
        out = {}
        for name in src.list_tables():
            if name == "replication_audit":
                continue
            spec = src.describe(name)
            table = pa.Table.from_batches(
                list(src.read_batches(spec, batch_rows=1_000_000, batch_bytes=1 << 30)), schema=arrow_schema(spec)
            )
            out[name] = table.sort_by([(c, "ascending") for c in spec.primary_key])
        return out
    finally:
        src.close()


@pytest.fixture(scope="module")
def airflow_home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("airflow_home")


@pytest.mark.skipif(not DUMPS, reason="no dump folders in ../shared/stackexchange")
@pytest.mark.parametrize("dump", DUMPS, ids=[d.name for d in DUMPS])
def test_dump_replicates_exactly_through_airflow(dump, local_pg, fresh_database, airflow_home, tmp_path):
    src_db, tgt_db = fresh_database("e2e_src"), fresh_database("e2e_tgt")
    report = import_dump(dump, local_pg.endpoint(src_db))
    env = airflow_env(
        airflow_home,
        {
            "stackoverflow_source": local_pg.airflow_conn_uri(src_db),
            "stackoverflow_postgres_target": local_pg.airflow_conn_uri(tgt_db),
        },
    )
    migrate(env)
    source = _snapshot(local_pg.endpoint(src_db))
    expected_tables = {"Badges", "Comments", "LinkTypes", "PostLinks", "Posts", "PostTypes", "Users", "Votes", "VoteTypes"}
    assert expected_tables <= set(source)
    assert (dump / "PostHistory.xml").exists() == ("PostHistory" in source)
    assert {t.table for t in report.tables} == set(source)

    conf = {"memory_budget_mib": 1, "batch_mib": 0.25, "spill_root": str(tmp_path / "spill")}
    snapshots = []
    for run in range(2):
        proc = dags_test(DAG_ID, env, conf=conf, log_file=tmp_path / f"run{run}.log")
        assert proc.returncode == 0, (tmp_path / f"run{run}.log").read_text()[-5000:]
        # regression: summary iterated the lazy XCom list of the mapped copies past its end
        assert "XCom not found" not in proc.stdout + proc.stderr
        target = _snapshot(local_pg.endpoint(tgt_db))
        assert set(target) == set(source)
        for name, table in source.items():
            assert target[name].schema == table.schema, name
            assert target[name].num_rows == table.num_rows, name
            assert target[name].equals(table), f"{name} differs from the source"
        snapshots.append(target)
    assert all(snapshots[0][n].equals(snapshots[1][n]) for n in source)
    assert not any((tmp_path / "spill").glob("*/*.parquet"))  # spill files removed

    with pg.connect(local_pg.uri(tgt_db)) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT run_id, table_name, status, rows_written FROM replication_audit ORDER BY run_id, table_name"
        )
        audit = cur.fetchall()
        runs = sorted({r[0] for r in audit})
        assert len(runs) == 2
        for run_id in runs:
            rows = [r for r in audit if r[0] == run_id]
            assert sorted(r[1] for r in rows) == sorted(source)
            assert all(r[2] == "success" for r in rows)
            assert {r[1]: r[3] for r in rows} == {n: t.num_rows for n, t in source.items()}
        # the next insert without an Id gets max(Id) + 1 on every identity table (rolled back)
        for name, table in source.items():
            cols = [f for f in table.schema if not f.nullable and f.name != "Id"]
            values = [_DEFAULTS[str(f.type)] for f in cols]
            names = ", ".join(f'"{f.name}"' for f in cols)
            cur.execute(f'INSERT INTO "{name}" ({names}) VALUES ({", ".join(values)}) RETURNING "Id"')
            new_id = cur.fetchone()[0]
            max_id = pa.compute.max(table.column("Id")).as_py()
            assert new_id == (max_id + 1 if max_id is not None else 1), name
        conn.rollback()
