"""Harness code shared by the throughput benchmarks (``throughput.py``: PostgreSQL -> PostgreSQL,
``throughput_tds.py``: a SQL Server source): machine and package facts, filling and describing the
source tables, the interleaved run loop with its row-count check, the common results metadata and
the logging setup.

The loop (:func:`execute_plan`) runs every planned copy in its own spawned process
(:func:`benchmarks.methods.child.run_in_child`) into a freshly reset target table, then counts the
target's rows itself; :func:`record_run` (pure) turns one child's figures and that count into a
:class:`RunRecord`, failing an uncapped run whose count differs from the source's.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata
import logging
import os
import platform
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.methods.base import RunContext
from benchmarks.methods.report import RunRecord

__all__ = [
    "DEFAULT_TABLES",
    "RESULTS_DIR",
    "SourceTable",
    "add_run_arguments",
    "check_run_arguments",
    "common_meta",
    "configure_logging",
    "describe_tables",
    "ensure_source",
    "execute_plan",
    "machine_info",
    "package_versions",
    "record_run",
    "utc_now",
]

log = logging.getLogger("benchmarks.harness")

DEFAULT_TABLES = ("Posts", "Votes")
"""Posts (wide, long text) and Votes (narrow, many rows)."""

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def add_run_arguments(p: argparse.ArgumentParser, *, methods: Sequence[str], default_scale: float, repeats_help: str) -> None:
    """The options every throughput benchmark takes: what to copy, how often, where the results go."""
    p.add_argument("--scale", type=float, default=default_scale, help=f"synthetic scale, 1.0 = StackOverflow2010 row counts (default {default_scale})")
    p.add_argument("--seed", type=int, default=0, help="generator seed (default 0)")
    p.add_argument("--tables", default=",".join(DEFAULT_TABLES), help="comma-separated tables (default Posts,Votes)")
    p.add_argument("--methods", default=",".join(methods), help="comma-separated method keys, in run order (default: all): " + ", ".join(methods))
    p.add_argument("--repeats", type=int, default=2, help=repeats_help)
    p.add_argument("--time-cap", type=float, default=3.0, help="seconds after which capped (row-by-row) methods stop and report the rate reached (default 3)")
    p.add_argument("--chunk-rows", type=int, default=5_000, help="rows per fetch / INSERT chunk of the row-based methods (default 5000)")
    p.add_argument("--out-dir", type=Path, default=RESULTS_DIR, help="results directory (default benchmarks/results)")
    p.add_argument("--stem", help="results file name without extension (default <benchmark>_scale<scale>)")
    p.add_argument("--note", default="", help="free text stored with the results (e.g. machine load)")
    p.add_argument("--no-chart", action="store_true", help="skip the PNG chart")
    p.add_argument("-v", "--verbose", action="store_true", help="DEBUG logging")


def check_run_arguments(
    p: argparse.ArgumentParser, args: argparse.Namespace, *, methods: Sequence[str], reference: str, stem_prefix: str
) -> None:
    """Split ``--tables`` / ``--methods`` into lists, validate the options of :func:`add_run_arguments`
    and default ``args.stem`` to ``<stem_prefix>_scale<scale>``.

    Raises:
        SystemExit: an unknown method, the reference method left out, a scale outside (0, 1], or
            a non-positive count (``p.error``, exit code 2).
    """
    args.tables = [t.strip() for t in args.tables.split(",") if t.strip()]
    args.methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in args.methods if m not in methods]
    if unknown:
        p.error(f"unknown methods {unknown}; choose from {list(methods)}")
    if reference not in args.methods:
        p.error(f"method {reference!r} (the reference every ratio is taken against) must be included")
    if not 0 < args.scale <= 1.0:
        p.error("--scale must be in (0, 1]")
    if args.repeats < 1 or args.time_cap <= 0 or args.chunk_rows < 1:
        p.error("--repeats, --time-cap and --chunk-rows must be positive")
    args.stem = args.stem or f"{stem_prefix}_scale{args.scale:g}"


def utc_now() -> str:
    """The current UTC time, ISO 8601 to the second."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


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


def package_versions(names: Iterable[str]) -> dict[str, str]:
    """Installed versions of the named distributions (``missing`` when not installed)."""
    out = {}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "missing"
    return out


def configure_logging(verbose: bool, quiet: Iterable[str] = ()) -> None:
    """INFO (DEBUG with ``verbose``) logging to stderr; the ``quiet`` loggers only at WARNING."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for name in quiet:
        logging.getLogger(name).setLevel(logging.WARNING)


@dataclass(frozen=True)
class SourceTable:
    """One source table as the benchmark sees it.

    Attributes:
        spec: its catalog (``Source.describe``).
        select_sql: our reader's ``SELECT`` of it, the query every query-based method reads.
        rows: its exact row count.
    """

    spec: Any
    select_sql: str
    rows: int


def _reader_select(source: Any, spec: Any) -> str:
    if spec.dialect == "mssql":
        from include.replication.dialects.mssql.source import select_sql

        return select_sql(spec)
    return str(source.select_sql(spec))


def _row_counts(uri: str, schema: str, tables: Sequence[str]) -> dict[str, int | None]:
    """Rows of each of ``tables`` in the database of ``uri`` (None: no such table)."""
    from benchmarks.methods.tds import endpoint_for
    from include.replication.dialects.registry import open_source

    with open_source(endpoint_for(uri, schema)) as source:
        present = {t.lower(): t for t in source.list_tables(schema)}
        return {t: source.count_rows(source.describe(present[t.lower()], schema)) if t.lower() in present else None for t in tables}


def ensure_source(uri: str, schema: str, tables: Sequence[str], scale: float, seed: int, fill: bool) -> None:
    """Fill the source with synthetic tables unless each already holds ``row_count(scale)`` rows.

    Works for a PostgreSQL and a SQL Server source alike (through the product's Source and
    ``fill_synthetic``, which creates the tables with their primary keys and identities).

    Raises:
        ConfigurationError: ``fill`` is False and a table is missing or has another row count.
    """
    from benchmarks.methods.tds import endpoint_for
    from include.replication.core.errors import ConfigurationError
    from include.stackoverflow.synthetic import fill_synthetic, row_count

    todo = []
    for t, rows in _row_counts(uri, schema, tables).items():
        expected = row_count(t, scale)
        if rows != expected:
            todo.append(t)
            log.info("source %s: %s rows, expected %s", t, "no table" if rows is None else rows, expected)
    if todo and not fill:
        raise ConfigurationError(f"source tables {todo} are missing or not at scale {scale}; fill them or drop --source-uri")
    if todo:
        started = time.monotonic()
        report = fill_synthetic(endpoint_for(uri, schema), scale, seed, todo)
        log.info("filled synthetic %s at scale %s in %.1f s: %s", todo, scale, time.monotonic() - started, report.rows)


def describe_tables(uri: str, schema: str, tables: Sequence[str]) -> dict[str, SourceTable]:
    """Catalog, reader ``SELECT`` and exact row count of each table of the source at ``uri``.

    Raises:
        ReplicationError: a catalog query failed or a table is missing.
    """
    from benchmarks.methods.tds import endpoint_for
    from include.replication.dialects.registry import open_source

    with open_source(endpoint_for(uri, schema)) as source:
        out = {}
        for t in tables:
            spec = source.describe(t, schema)
            out[t] = SourceTable(spec, _reader_select(source, spec), source.count_rows(spec))
        return out


def record_run(
    table: str, key: str, repeat: int, order: int, result: dict[str, Any], counted_rows: int | None, expected_rows: int
) -> RunRecord:
    """The :class:`RunRecord` of one run from the child's figures (:func:`child.child_main`) and
    the rows the harness counted in the target afterwards.

    A failed child gives a record without seconds and with its error. A successful, uncapped run
    whose target holds other than ``expected_rows`` rows is recorded as failed (seconds None).

    Args:
        counted_rows: rows found in the target (ignored when the child failed); None for a method
            that writes nothing (``target="none"``): the rows it reports reading count.
    """
    ok = bool(result.get("ok"))
    rec = RunRecord(table, key, repeat, order, result.get("seconds") if ok else None, error=result.get("error"))
    if not ok:
        return rec
    rec.rows = int(result["rows"]) if counted_rows is None else int(counted_rows)
    rec.capped = bool(result["capped"])
    rec.peak_rss_bytes = int(result["peak_rss_bytes"])
    rec.baseline_rss_bytes = int(result["baseline_rss_bytes"])
    rec.extra = dict(result["extra"])
    rec.cpu_s = result.get("cpu_s")
    if not rec.capped and rec.rows != expected_rows:
        rec.error = f"target holds {rec.rows} rows, source {expected_rows}"
        rec.seconds = None
    return rec


def execute_plan(
    plan: Sequence[tuple[str, int, str]],
    *,
    context: Callable[[str, str], RunContext],
    reset: Callable[[str, str], None],
    count: Callable[[str, str], int | None],
    expected_rows: dict[str, int],
    env: dict[str, str] | None = None,
) -> list[RunRecord]:
    """Run the plan (:func:`report.plan_runs`), one spawned child per copy.

    Before each run ``reset(table, key)`` prepares an empty target table; the child runs method
    ``key`` on ``context(table, key)``; afterwards ``count(table, key)`` counts the target's rows.

    Returns:
        One record per planned run, in order (failed runs included, see :func:`record_run`).
    """
    from benchmarks.methods.child import run_in_child

    records: list[RunRecord] = []
    for order, (table, repeat, key) in enumerate(plan):
        reset(table, key)
        res = run_in_child(key, context(table, key), env=env)
        counted = count(table, key) if res.get("ok") else None
        rec = record_run(table, key, repeat, order, res, counted, expected_rows[table])
        records.append(rec)
        log.info(
            "[%d/%d] %s %s #%d: %s s, %s rows%s, peak RSS %.0f MiB%s",
            order + 1, len(plan), table, key, repeat,
            f"{rec.seconds:.2f}" if rec.seconds is not None else "FAILED", rec.rows,
            " (capped)" if rec.capped else "", rec.peak_rss_bytes / 2**20,
            f": {rec.error.splitlines()[0]}" if rec.error else "",
        )
    return records


def common_meta(
    args: argparse.Namespace,
    *,
    title: str,
    started: str,
    load_before: Sequence[float],
    tables: dict[str, SourceTable],
    table_bytes: dict[str, int],
    versions: dict[str, str],
    **extra: Any,
) -> dict[str, Any]:
    """The ``meta`` of a results file: run parameters (``args.scale``, ``seed``, ``repeats``,
    ``time_cap``, ``chunk_rows``, ``methods``, ``note``), tables, machine, versions, plus ``extra``."""
    machine = machine_info()
    machine["load_avg_before_runs"] = [round(x, 2) for x in load_before]
    meta = {
        "title": title,
        "started": started,
        "finished": utc_now(),
        "scale": args.scale,
        "seed": args.seed,
        "repeats": args.repeats,
        "time_cap_s": args.time_cap,
        "chunk_rows": args.chunk_rows,
        "methods": list(args.methods),
        "tables": {t: {"rows": info.rows, "copy_binary_bytes": table_bytes[t]} for t, info in tables.items()},
        "machine": machine,
        "versions": versions,
    }
    meta.update(extra)
    return meta
