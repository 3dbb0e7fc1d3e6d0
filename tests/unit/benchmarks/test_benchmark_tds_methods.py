"""Each loader method of benchmarks/throughput_tds.py copies the exact rows from the TDS server
(tiny synthetic Posts and Votes).

Uses the session's TDS server (``mssql_server``: a local Babelfish, or the SQL Server named by
``STACKOVERFLOW_MSSQL_TEST_URI``) and the embedded PostgreSQL. A method writing into PostgreSQL is
compared with the same synthetic rows loaded straight into PostgreSQL (md5 of the ordered rows'
text, so every value counts); one writing into SQL Server is compared row for row with its source.
"""

from __future__ import annotations

import dataclasses
import importlib
import os

import pytest

pytestmark = [pytest.mark.mssql, pytest.mark.integration]

TABLES = ("Posts", "Votes")
SCALE = 0.0002  # Posts 746 rows, Votes 2,029 rows
SEED = 7


@pytest.fixture(scope="module")
def tds_bench(mssql_server, local_pg):
    """URIs of the filled TDS source, the TDS target, the PostgreSQL target (``public``, with the
    reference rows in schema ``measure``), and ``{table: SourceTable}``."""
    from benchmarks.harness import describe_tables
    from include.stackoverflow.synthetic import fill_synthetic

    src, dst, pg = f"bench_tds_src_{os.getpid()}", f"bench_tds_dst_{os.getpid()}", f"bench_tds_{os.getpid()}"
    mssql_server.create_database(src)
    mssql_server.create_database(dst)
    local_pg.create_database(pg, drop=True)
    fill_synthetic(mssql_server.database(src), SCALE, SEED, TABLES)
    fill_synthetic(dataclasses.replace(local_pg.endpoint(pg), schema="measure"), SCALE, SEED, TABLES)
    tables = describe_tables(mssql_server.uri(src), "dbo", TABLES)
    return {
        "source": mssql_server.uri(src),
        "mssql": mssql_server.uri(dst),
        "postgresql": local_pg.uri(pg),
        "tables": tables,
    }


def _pg_digest(uri: str, schema: str, table: str) -> tuple[int, str]:
    import psycopg

    with psycopg.connect(uri) as conn, conn.cursor() as cur:
        cur.execute(f'SELECT count(*), md5(string_agg(t::text, \'|\' ORDER BY t."Id")) FROM "{schema}"."{table}" t')
        n, digest = cur.fetchone()
    return int(n), str(digest)


def _tds_rows(uri: str, table: str) -> list[tuple]:
    from benchmarks.methods.tds import TEXTSIZE_SQL, pymssql_connect

    conn = pymssql_connect(uri)
    try:
        cur = conn.cursor()
        cur.execute(TEXTSIZE_SQL)
        cur.execute(f"SELECT * FROM [dbo].[{table}] ORDER BY [Id]")
        return list(cur.fetchall())
    finally:
        conn.close()


@pytest.mark.parametrize("table", TABLES)
@pytest.mark.parametrize("key", ["pymssql_copy", "pymssql_copy_text", "csv_spool_tds", "ours_to_pg", "ours_executemany", "ours_bulk"])
def test_tds_method_copies_every_value(tds_bench, tmp_path, key: str, table: str) -> None:
    from benchmarks.methods import TDS_METHODS
    from benchmarks.methods.base import RunContext
    from benchmarks.methods.tds import endpoint_for
    from include.replication.dialects.registry import open_target

    info = TDS_METHODS[key]
    dialect = info.target_dialect
    schema = "dbo" if dialect == "mssql" else "public"
    source_table = tds_bench["tables"][table]
    with open_target(endpoint_for(tds_bench[dialect], schema)) as target:
        target.prepare_table(source_table.spec)
    ctx = RunContext(
        table=table,
        source_uri=tds_bench["source"],
        target_uri=tds_bench[dialect],
        source_schema="dbo",
        target_schema=schema,
        select_sql=source_table.select_sql,
        columns=source_table.spec.column_names,
        total_rows=source_table.rows,
        variant=info.variant,
        chunk_rows=500,
        work_dir=str(tmp_path),
    )
    outcome = importlib.import_module(f"benchmarks.methods.{info.module}").run(ctx)
    assert outcome.rows == source_table.rows
    if dialect == "postgresql":
        assert _pg_digest(tds_bench["postgresql"], "public", table) == _pg_digest(tds_bench["postgresql"], "measure", table)
    else:
        assert _tds_rows(tds_bench["mssql"], table) == _tds_rows(tds_bench["source"], table)
