"""End to end on a real TDS server: a real Stack Exchange dump, imported into SQL Server through the
product's own SQL Server target, then every path that involves SQL Server run as the real DAGs with
``airflow dags test``:

* SQL Server -> PostgreSQL (``replicate_stackoverflow_to_postgres``)
* SQL Server -> SQL Server, into a second database (``replicate_stackoverflow_to_target``)
* PostgreSQL -> SQL Server (``replicate_stackoverflow_to_target`` with a PostgreSQL source)

Each path runs twice with a 1 MiB budget (so it spills). Asserted per path: every table equals its
source row for row and column for column (sorted Arrow tables, read through the product's Sources
with the catalog schema); the next insert without an Id gets max(Id) + 1; the second run leaves the
target identical; the audit holds one success row per table per run with the source's row count;
no spill file is left. The TDS server is the session's ``mssql_server`` (Babelfish in CI).
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from include.replication.core.typemap import adapt_batch, arrow_schema, target_arrow_schema
from include.replication.dialects.postgres.dialect import POSTGRES
from include.replication.dialects.registry import open_source, open_target
from include.stackoverflow.dump import import_dump
from tests.conftest import dump_folders
from tools.airflow_local import airflow_env, dags_test, migrate

pytestmark = [pytest.mark.integration, pytest.mark.airflow, pytest.mark.mssql]

DUMP = next((d for d in dump_folders() if d.name == "conlang.meta"), None)
"""The smallest real dump with every file (PostHistory and Tags included)."""


def snapshot(endpoint, parsed_for=None) -> dict[str, pa.Table]:
    """Every table of a database but the audit, read through the product's source with the catalog
    schema and sorted by primary key. ``parsed_for``: a Dialect record whose writer parses the
    text-carried columns (SQL Server datetime2 text -> timestamp, as the PostgreSQL writer does), to
    compare a SQL Server copy with a PostgreSQL original."""
    with open_source(endpoint) as src:
        out = {}
        for name in src.list_tables():
            if name == "replication_audit":
                continue
            spec = src.describe(name)
            batches = list(src.read_batches(spec, batch_rows=1_000_000, batch_bytes=1 << 30))
            schema = arrow_schema(spec)
            if parsed_for is not None:
                batches = [adapt_batch(spec, b, parsed_for) for b in batches]
                schema = target_arrow_schema(spec, parsed_for)
            table = pa.Table.from_batches(batches, schema=schema)
            out[name] = table.sort_by([(c, "ascending") for c in spec.primary_key])
        return out


def assert_same_tables(source: dict[str, pa.Table], target: dict[str, pa.Table]) -> None:
    assert set(target) == set(source)
    for name, table in source.items():
        assert target[name].schema == table.schema, name
        assert target[name].num_rows == table.num_rows, name
        assert target[name].equals(table), f"{name} differs from the source"


def audit_rows(endpoint) -> list[tuple]:
    with open_target(endpoint) as tgt:
        return sorted(tgt.execute("SELECT run_id, table_name, status, rows_written FROM replication_audit"))


def assert_audit(rows: list[tuple], source: dict[str, pa.Table], runs: int) -> None:
    run_ids = sorted({r[0] for r in rows})
    assert len(run_ids) == runs
    for run_id in run_ids:
        mine = [r for r in rows if r[0] == run_id]
        assert sorted(r[1] for r in mine) == sorted(source)
        assert all(r[2] == "success" for r in mine)
        assert {r[1]: int(r[3]) for r in mine} == {n: t.num_rows for n, t in source.items()}


def next_ids_mssql(server, database: str, source: dict[str, pa.Table]) -> None:
    """An insert without Id gets max(Id) + 1 in every table (each rolled back)."""
    conn = server.connect(database, autocommit=True)
    try:
        cur = conn.cursor()
        for name, table in source.items():
            cols = [f for f in table.schema if not f.nullable and f.name != "Id"]
            values = [{"int32": "1", "string": "N'x'", "timestamp[us]": "SYSDATETIME()",
                       "extension<arrow.uuid>": "NEWID()"}[str(f.type)] for f in cols]
            names = ", ".join(f"[{f.name}]" for f in cols)
            cur.execute("BEGIN TRANSACTION")
            cur.execute(f"INSERT INTO [dbo].[{name}] ({names}) OUTPUT INSERTED.[Id] VALUES ({', '.join(values)})")
            new_id = cur.fetchone()[0]
            cur.execute("ROLLBACK TRANSACTION")
            max_id = pa.compute.max(table.column("Id")).as_py()
            assert new_id == (max_id + 1 if max_id is not None else 1), name
    finally:
        conn.close()


@pytest.fixture(scope="module")
def airflow_home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("airflow_home_mssql")


@pytest.fixture(scope="module")
def mssql_dump_source(mssql_server):
    """The conlang.meta dump imported into a SQL Server database by the product's SQL Server target."""
    if DUMP is None:
        pytest.skip("no conlang.meta dump in ../shared/stackexchange")
    mssql_server.create_database("so_e2e_src")
    endpoint = mssql_server.database("so_e2e_src")
    report = import_dump(DUMP, endpoint)
    assert report.total_rows == 3013
    return endpoint


def _run_twice(dag_id, env, conf, tmp_path, target_endpoint, source, parsed_for=None):
    snapshots = []
    for run in range(2):
        log = tmp_path / f"run{run}.log"
        proc = dags_test(dag_id, env, conf=conf, log_file=log)
        assert proc.returncode == 0, log.read_text()[-6000:]
        target = snapshot(target_endpoint, parsed_for)
        assert_same_tables(source, target)
        snapshots.append(target)
    assert all(snapshots[0][n].equals(snapshots[1][n]) for n in source)
    assert not any((tmp_path / "spill").glob("**/*.parquet"))
    assert_audit(audit_rows(target_endpoint), source, runs=2)


def test_sqlserver_to_postgres_through_airflow(mssql_server, mssql_dump_source, local_pg, fresh_database,
                                                airflow_home, tmp_path):
    source = snapshot(mssql_dump_source)
    assert {"Posts", "Users", "Votes", "PostHistory", "Tags"} <= set(source)
    tgt_db = fresh_database("e2e_ms_pg")
    env = airflow_env(airflow_home, {
        "stackoverflow_source": mssql_server.uri("so_e2e_src"),
        "stackoverflow_postgres_target": local_pg.airflow_conn_uri(tgt_db),
    })
    migrate(env)
    conf = {"memory_budget_mib": 1, "batch_mib": 0.25, "spill_root": str(tmp_path / "spill")}
    _run_twice("replicate_stackoverflow_to_postgres", env, conf, tmp_path, local_pg.endpoint(tgt_db), source)
    with open_target(local_pg.endpoint(tgt_db)) as tgt:
        for name, table in source.items():
            max_id = pa.compute.max(table.column("Id")).as_py()
            cols = [f for f in table.schema if not f.nullable and f.name != "Id"]
            values = [{"int32": "1", "string": "'x'", "timestamp[us]": "now()",
                       "extension<arrow.uuid>": "gen_random_uuid()"}[str(f.type)] for f in cols]
            names = ", ".join(f'"{f.name}"' for f in cols)
            new_id = tgt.execute(f'INSERT INTO "{name}" ({names}) VALUES ({", ".join(values)}) RETURNING "Id"')[0][0]
            assert new_id == max_id + 1, name
            tgt.execute(f'DELETE FROM "{name}" WHERE "Id" = $1', (new_id,))


def test_sqlserver_to_sqlserver_through_airflow(mssql_server, mssql_dump_source, airflow_home, tmp_path):
    source = snapshot(mssql_dump_source)
    mssql_server.create_database("so_e2e_tgt")
    env = airflow_env(airflow_home, {
        "stackoverflow_source": mssql_server.uri("so_e2e_src"),
        "stackoverflow_target": mssql_server.uri("so_e2e_tgt"),
    })
    migrate(env)
    conf = {"memory_budget_mib": 1, "batch_mib": 0.25, "spill_root": str(tmp_path / "spill")}
    _run_twice("replicate_stackoverflow_to_target", env, conf, tmp_path, mssql_server.database("so_e2e_tgt"), source)
    next_ids_mssql(mssql_server, "so_e2e_tgt", source)


def test_postgres_to_sqlserver_through_airflow(mssql_server, local_pg, fresh_database, airflow_home, tmp_path):
    if DUMP is None:
        pytest.skip("no conlang.meta dump in ../shared/stackexchange")
    src_db = fresh_database("e2e_pg_src")
    import_dump(DUMP, local_pg.endpoint(src_db))
    source = snapshot(local_pg.endpoint(src_db))
    mssql_server.create_database("so_e2e_from_pg")
    env = airflow_env(airflow_home, {
        "stackoverflow_source": local_pg.airflow_conn_uri(src_db),
        "stackoverflow_target": mssql_server.uri("so_e2e_from_pg"),
    })
    migrate(env)
    conf = {"memory_budget_mib": 1, "batch_mib": 0.25, "spill_root": str(tmp_path / "spill")}
    # PostgreSQL timestamp(3) becomes datetime2(3), which the SQL Server reader carries as text:
    # compare it parsed the way the PostgreSQL writer parses it
    _run_twice("replicate_stackoverflow_to_target", env, conf, tmp_path, mssql_server.database("so_e2e_from_pg"),
               source, parsed_for=POSTGRES)
    next_ids_mssql(mssql_server, "so_e2e_from_pg", source)
