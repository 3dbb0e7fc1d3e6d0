"""Method 1, the physical limit: ``COPY (SELECT ...) TO STDOUT (FORMAT binary)`` piped into
``COPY ... FROM STDIN (FORMAT binary)`` through psycopg 3, raw bytes, nothing parsed.

The two servers do all the encoding; Python only moves ``bytes`` chunks from one socket to the
other. Every other method's ratio is taken against this one, measured in the same run.
"""

from __future__ import annotations

import logging

import psycopg

from benchmarks.methods.base import Outcome, RunContext

__all__ = ["run", "copy_out_bytes"]

log = logging.getLogger(__name__)


def _target_name(ctx: RunContext) -> str:
    return f'"{ctx.target_schema}"."{ctx.table}"'


def run(ctx: RunContext) -> Outcome:
    """Pipe the binary COPY stream of ``ctx.select_sql`` into the target table, one transaction.

    Returns:
        :class:`Outcome` with ``rows`` = rows reported by the target's COPY and
        ``extra['bytes']`` = bytes piped.

    Raises:
        psycopg.Error: either COPY failed (the target transaction is rolled back).
    """
    piped = 0
    with psycopg.connect(ctx.source_uri) as src, psycopg.connect(ctx.target_uri) as dst:
        with src.cursor() as rcur, dst.cursor() as wcur:
            with rcur.copy(f"COPY ({ctx.select_sql}) TO STDOUT (FORMAT binary)") as cout:
                with wcur.copy(f"COPY {_target_name(ctx)} FROM STDIN (FORMAT binary)") as cin:
                    for chunk in cout:
                        piped += len(chunk)
                        cin.write(chunk)
            rows = wcur.rowcount
        dst.commit()
    log.info("pipe %s: %s rows, %s bytes", ctx.table, rows, piped)
    return Outcome(rows=rows, extra={"bytes": piped})


def copy_out_bytes(uri: str, select_sql: str) -> int:
    """Size of ``COPY (select_sql) TO STDOUT (FORMAT binary)`` in bytes: the benchmark's measure of
    a table's row data (the MB in MB/s).

    Raises:
        psycopg.Error: the query failed.
    """
    total = 0
    with psycopg.connect(uri) as conn, conn.cursor() as cur:
        with cur.copy(f"COPY ({select_sql}) TO STDOUT (FORMAT binary)") as cout:
            for chunk in cout:
                total += len(chunk)
    return total
