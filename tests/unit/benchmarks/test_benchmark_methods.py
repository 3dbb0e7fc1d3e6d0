"""Each in-process loader method of the throughput benchmark copies the exact rows (tiny tables).

Uses the session's embedded PostgreSQL (``integration`` marker): a few hundred synthetic Posts and
Votes rows, copied by every method except Airflow and dlt (their imports alone take ~10 s; the
benchmark run itself checks their row counts), then compared value by value with the source
through an md5 of the ordered rows' text.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration

TABLES = ("Posts", "Votes")
SCALE = 0.0002  # Posts 746 rows, Votes 2,029 rows


@pytest.fixture(scope="module")
def bench_dbs(local_pg):
    """(source URI, target URI, {table: (spec, select_sql, rows)}) with the synthetic tables."""
    import os

    from include.replication.dialects.registry import open_source
    from include.stackoverflow.synthetic import fill_synthetic

    src, dst = f"bench_src_{os.getpid()}", f"bench_dst_{os.getpid()}"
    local_pg.create_database(src, drop=True)
    local_pg.create_database(dst, drop=True)
    fill_synthetic(local_pg.endpoint(src), SCALE, 7, TABLES)
    source = open_source(local_pg.endpoint(src))
    try:
        info = {}
        for t in TABLES:
            spec = source.describe(t, "public")
            info[t] = (spec, source.select_sql(spec), source.count_rows(spec))
    finally:
        source.close()
    return local_pg.uri(src), local_pg.uri(dst), info


def _digest(uri: str, table: str) -> tuple[int, str]:
    import psycopg

    with psycopg.connect(uri) as conn, conn.cursor() as cur:
        cur.execute(f'SELECT count(*), md5(string_agg(t::text, \'|\' ORDER BY t."Id")) FROM public."{table}" t')
        n, digest = cur.fetchone()
    return int(n), str(digest)


def _prepare(uri: str, spec) -> None:  # noqa: ANN001 - TableSpec
    from benchmarks.methods.ours import endpoint_from_uri
    from include.replication.dialects.postgres.target import PostgresTarget

    with PostgresTarget(endpoint_from_uri(uri, "public")) as target:
        target.prepare_table(spec)


def _ctx(bench_dbs, table: str, variant: str = "", cap: float = 60.0, tmp_path=None):  # noqa: ANN001, ANN202
    from benchmarks.methods.base import RunContext

    src, dst, info = bench_dbs
    spec, select, rows = info[table]
    return RunContext(
        table=table,
        source_uri=src,
        target_uri=dst,
        source_schema="public",
        target_schema="public",
        select_sql=select,
        columns=spec.column_names,
        total_rows=rows,
        variant=variant,
        time_cap_s=cap,
        chunk_rows=500,
        work_dir=str(tmp_path or "/tmp"),
    )


@pytest.mark.parametrize("table", TABLES)
@pytest.mark.parametrize(
    "module, variant",
    [
        ("pipe", ""),
        ("pipe_psql", ""),
        ("ours", "default"),
        ("ours", "spill"),
        ("adbc_naive", ""),
        ("csv_spool", ""),
        ("insert_chunks", "executemany"),
        ("insert_chunks", "values"),
    ],
)
def test_method_copies_every_value(bench_dbs, tmp_path, module: str, variant: str, table: str) -> None:
    import importlib

    src, dst, info = bench_dbs
    _prepare(dst, info[table][0])
    outcome = importlib.import_module(f"benchmarks.methods.{module}").run(_ctx(bench_dbs, table, variant, tmp_path=tmp_path))
    assert outcome.rows == info[table][2]
    assert outcome.capped is False
    assert _digest(dst, table) == _digest(src, table)


def test_pipe_moves_exactly_the_measured_copy_bytes(bench_dbs, tmp_path) -> None:
    from benchmarks.methods import pipe

    src, dst, info = bench_dbs
    _prepare(dst, info["Votes"][0])
    measured = pipe.copy_out_bytes(src, info["Votes"][1])
    outcome = pipe.run(_ctx(bench_dbs, "Votes", tmp_path=tmp_path))
    assert measured > info["Votes"][2] * 10  # at least the 10 bytes of a row's int32 Id field
    assert outcome.extra["bytes"] == measured


def test_time_cap_stops_after_the_first_chunk_and_commits_it(bench_dbs, tmp_path) -> None:
    from benchmarks.methods import insert_chunks

    src, dst, info = bench_dbs
    _prepare(dst, info["Posts"][0])
    outcome = insert_chunks.run(_ctx(bench_dbs, "Posts", "values", cap=1e-9, tmp_path=tmp_path))
    chunk = insert_chunks.values_chunk_rows(len(info["Posts"][0].columns))
    assert outcome.capped is True
    assert outcome.rows == chunk
    assert _digest(dst, "Posts")[0] == chunk
