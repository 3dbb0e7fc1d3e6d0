"""Method 4, the original project's approach: rows written as CSV into a
``tempfile.SpooledTemporaryFile(max_size=128 MiB)`` (memory first, disk beyond), then one
``COPY ... FROM STDIN (FORMAT csv)`` of the file.

Rows are read as Python tuples through a psycopg server-side cursor (``fetchmany``), as the
original read pymssql rows. NULL is written as the text :data:`NULL` and COPY is told so, so an
empty string stays an empty string (``csv`` would write both as an empty field).
"""

from __future__ import annotations

import csv
import io
import tempfile

import psycopg

from benchmarks.methods.base import Outcome, RunContext

__all__ = ["run", "SPOOL_MAX_BYTES", "COPY_CHUNK_BYTES", "NULL"]

NULL = "\\N"
"""How NULL is spelled in the CSV."""

SPOOL_MAX_BYTES = 128 * 1024 * 1024
"""In-memory size of the spool before it rolls over to a disk file (bytes)."""

COPY_CHUNK_BYTES = 1024 * 1024
"""Bytes read from the spool per ``COPY`` write (bytes)."""


def run(ctx: RunContext) -> Outcome:
    """Spool every row as CSV, then COPY the spool into the target table in one transaction.

    Returns:
        :class:`Outcome`; ``extra['spool_bytes']`` = CSV bytes, ``extra['rolled_over']`` = 1 when
        the spool went to disk.

    Raises:
        psycopg.Error: the read or the COPY failed.
    """
    rows = 0
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_MAX_BYTES, mode="w+b", dir=ctx.work_dir) as spool:
        text = io.TextIOWrapper(spool, encoding="utf-8", newline="")
        writer = csv.writer(text)
        with psycopg.connect(ctx.source_uri) as src, src.cursor(name="bench_csv") as cur:
            cur.itersize = ctx.chunk_rows
            cur.execute(ctx.select_sql)
            while batch := cur.fetchmany(ctx.chunk_rows):
                writer.writerows([[NULL if v is None else v for v in row] for row in batch])
                rows += len(batch)
        text.flush()
        size = text.tell()
        rolled = int(getattr(spool, "_rolled", False))
        text.seek(0)
        with psycopg.connect(ctx.target_uri) as dst, dst.cursor() as cur:
            cols = ", ".join(f'"{c}"' for c in ctx.columns)
            sql = f'COPY "{ctx.target_schema}"."{ctx.table}" ({cols}) FROM STDIN (FORMAT csv, NULL \'{NULL}\')'
            with cur.copy(sql) as cin:
                while data := spool.read(COPY_CHUNK_BYTES):
                    cin.write(data)
            dst.commit()
        text.detach()
    return Outcome(rows=rows, extra={"spool_bytes": size, "rolled_over": rolled})
