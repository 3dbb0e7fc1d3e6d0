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


@pytest.mark.parametrize("table", TABLES)
def test_driver_floors_read_every_row_and_ingest_them_unchanged(bench_dbs, tmp_path, table: str) -> None:
    """3b reads every row and writes nothing; 3c's input is read by ``prepare`` in the child
    before the timer, and the ingest leaves the target equal to the source."""
    from benchmarks.methods.child import run_in_child

    src, dst, info = bench_dbs
    _prepare(dst, info[table][0])
    read = run_in_child("driver_read", _ctx(bench_dbs, table, tmp_path=tmp_path), timeout_s=120)
    assert read["ok"] is True, read.get("error")
    assert read["rows"] == info[table][2]
    assert _digest(dst, table)[0] == 0  # the read wrote nothing
    ingest = run_in_child("driver_ingest", _ctx(bench_dbs, table, tmp_path=tmp_path), timeout_s=120)
    assert ingest["ok"] is True, ingest.get("error")
    assert ingest["rows"] == info[table][2] and ingest["extra"]["arrow_bytes"] > 0
    assert _digest(dst, table) == _digest(src, table)


def test_record_run_counts_the_rows_a_write_nothing_method_read() -> None:
    from benchmarks.harness import record_run

    result = {"ok": True, "seconds": 1.5, "rows": 10, "capped": False, "extra": {}, "peak_rss_bytes": 1,
              "baseline_rss_bytes": 1}
    assert record_run("Votes", "driver_read", 0, 0, result, None, 10).seconds == 1.5
    short = record_run("Votes", "driver_read", 0, 0, {**result, "rows": 9}, None, 10)
    assert short.seconds is None and "9 rows" in short.error
