"""Command line of the StackOverflow data producers: import a dump, generate synthetic data, measure.

::

    python -m include.stackoverflow import-dump ../shared/stackexchange/bicycles.meta --uri postgresql://u@/so?host=/tmp
    python -m include.stackoverflow synthetic --scale 0.01 --uri mssql://user:pw@127.0.0.1:1433/so
    python -m include.stackoverflow synthetic --scale 1.0 --dry-run      # time the generator alone
    python -m include.stackoverflow measure [FOLDER ...] [--write]       # the figures behind synthetic

The target is any database the product writes to (PostgreSQL or SQL Server), given as a URI
(``--uri``; the password may come from ``$PGPASSWORD`` for the ``--host`` form). Exit codes: 0 done,
2 bad input or data (the message names table, column and row Id).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from include.replication.airflow.connections import endpoint_from_uri
from include.replication.core.config import DEFAULT_BATCH_ROWS
from include.replication.core.endpoint import Endpoint
from include.replication.core.errors import ConfigurationError, DataError
from include.replication.dialects.postgres.dialect import POSTGRES

__all__ = ["build_parser", "endpoint_from_args", "main"]


def _add_target(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("target database (password from the URI or $PGPASSWORD)")
    g.add_argument("--uri", help="postgresql://user@host:5432/db, postgresql://user@/db?host=/socket/dir, "
                   "or mssql://user:password@host:1433/db")
    g.add_argument("--host", help="PostgreSQL host name or Unix-socket directory (instead of --uri)")
    g.add_argument("--port", type=int, help="PostgreSQL TCP port")
    g.add_argument("--database", help="PostgreSQL database name")
    g.add_argument("--user", help="PostgreSQL login")
    g.add_argument("--schema", help="target schema (default: public / dbo)")


def endpoint_from_args(args: argparse.Namespace) -> Endpoint:
    """The target :class:`Endpoint` from the target options.

    Raises:
        ConfigurationError: neither ``--uri`` nor ``--database`` given, or an unusable URI.
    """
    if args.uri:
        return endpoint_from_uri(args.uri, "--uri", schema=args.schema)
    if not args.database:
        raise ConfigurationError("give --uri or --database")
    return Endpoint(POSTGRES.name, args.host, args.port, args.database, args.user, os.environ.get("PGPASSWORD"), args.schema)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (``--help`` on every subcommand)."""
    parser = argparse.ArgumentParser(prog="python -m include.stackoverflow", description=__doc__.split("\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="INFO logging (progress lines)")
    sub = parser.add_subparsers(dest="command", required=True)

    dump = sub.add_parser("import-dump", help="import a Stack Exchange dump folder into the StackOverflow2010 schema",
                          description="Import a Stack Exchange data-dump folder (Posts.xml, Users.xml, ...) into the "
                          "StackOverflow2010 schema through the product's own pipeline.")
    dump.add_argument("folder", type=Path, help="dump folder holding Posts.xml, Users.xml, ...")
    dump.add_argument("--tables", help="comma-separated table names (default: all the folder allows)")
    dump.add_argument("--batch-rows", type=int, default=DEFAULT_BATCH_ROWS, help="rows per RecordBatch")
    _add_target(dump)

    syn = sub.add_parser("synthetic", help="generate deterministic synthetic StackOverflow2010 data",
                         description="Generate synthetic StackOverflow2010 data (deterministic from --seed) into a "
                         "database through the product's own pipeline, or time the generator alone.")
    syn.add_argument("--scale", type=float, default=0.001, help="1.0 = published row counts (19.3 million rows)")
    syn.add_argument("--seed", type=int, default=0, help="generator seed")
    syn.add_argument("--tables", help="comma-separated tables (default: the nine StackOverflow2010 tables)")
    syn.add_argument("--batch-rows", type=int, default=DEFAULT_BATCH_ROWS, help="rows per RecordBatch")
    syn.add_argument("--dry-run", action="store_true", help="only generate and time the batches; no database")
    _add_target(syn)

    meas = sub.add_parser("measure", help="measure null rates, text lengths and Id gaps on dump folders",
                          description="Measure the figures the synthetic generator uses on real dump folders.")
    meas.add_argument("folders", nargs="*", type=Path, help="dump folders (default: ../shared/stackexchange/*)")
    meas.add_argument("--write", action="store_true", help="rewrite include/stackoverflow/measured.json")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code (0 done, 2 bad input or data)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    tables = [t.strip() for t in args.tables.split(",")] if getattr(args, "tables", None) else None
    try:
        if args.command == "import-dump":
            from include.stackoverflow.dump import import_dump

            print(import_dump(args.folder, endpoint_from_args(args), batch_rows=args.batch_rows, tables=tables).format())
        elif args.command == "synthetic":
            from include.stackoverflow.synthetic import GENERATED_TABLES, SyntheticReport, fill_synthetic, generate

            if args.dry_run:
                report = SyntheticReport(args.scale, args.seed)
                for name in tables or GENERATED_TABLES[:9]:
                    t0 = time.perf_counter()
                    report.rows[name] = sum(b.num_rows for b in generate(name, args.scale, args.seed, args.batch_rows))
                    report.seconds[name] = time.perf_counter() - t0
            else:
                report = fill_synthetic(endpoint_from_args(args), args.scale, args.seed, tables, batch_rows=args.batch_rows)
            print(report.format())
        else:
            from include.stackoverflow.measure import MEASURED_JSON, default_dump_folders, dumps_json, measure

            text = dumps_json(measure(args.folders or default_dump_folders()))
            if args.write:
                MEASURED_JSON.write_text(text)
                print(f"wrote {MEASURED_JSON}")
            else:
                print(text, end="")
    except (ConfigurationError, DataError) as exc:
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    return 0
