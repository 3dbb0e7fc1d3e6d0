"""Method 4, the original project's approach: rows written as CSV into a
``tempfile.SpooledTemporaryFile(max_size=128 MiB)`` (memory first, disk beyond), then one
``COPY ... FROM STDIN (FORMAT csv)`` of the file.

Variants (``ctx.variant``) differ in the reader only:

* ``""`` (``csv_spool``): rows as tuples through a psycopg server-side cursor (``fetchmany``) of a
  PostgreSQL source, as the original read pymssql rows;
* ``tds`` (``csv_spool_tds``): pymssql ``fetchmany`` rows of a SQL Server source, as the original
  did (:func:`benchmarks.methods.tds.pymssql_row_chunks`).

NULL is written as the text :data:`NULL` and COPY is told so, so an empty string stays an empty
string (``csv`` would write both as an empty field).
"""

from __future__ import annotations

import csv
import io
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from typing import IO, Any

import psycopg

from benchmarks.methods.base import Outcome, RunContext

__all__ = ["run", "spool_csv", "copy_csv_sql", "SPOOL_MAX_BYTES", "COPY_CHUNK_BYTES", "NULL"]

NULL = "\\N"
"""How NULL is spelled in the CSV."""

SPOOL_MAX_BYTES = 128 * 1024 * 1024
"""In-memory size of the spool before it rolls over to a disk file (bytes)."""

COPY_CHUNK_BYTES = 1024 * 1024
"""Bytes read from the spool per ``COPY`` write (bytes)."""


def _psycopg_row_chunks(ctx: RunContext) -> Iterator[list[tuple[Any, ...]]]:
    with psycopg.connect(ctx.source_uri) as src, src.cursor(name="bench_csv") as cur:
        cur.itersize = ctx.chunk_rows
        cur.execute(ctx.select_sql)
        while batch := cur.fetchmany(ctx.chunk_rows):
            yield batch


def spool_csv(chunks: Iterable[Sequence[Sequence[Any]]], spool: IO[bytes]) -> tuple[int, int]:
    """Write the rows of ``chunks`` as UTF-8 CSV into the binary file ``spool`` (None -> :data:`NULL`).

    Returns:
        ``(rows, bytes)`` written; ``spool`` is left positioned at its start, ready to be read.
    """
    text = io.TextIOWrapper(spool, encoding="utf-8", newline="")
    writer = csv.writer(text)
    rows = 0
    for batch in chunks:
        writer.writerows([[NULL if v is None else v for v in row] for row in batch])
        rows += len(batch)
    text.flush()
    size = text.tell()
    text.seek(0)
    text.detach()  # the caller keeps the spool open
    return rows, size


def copy_csv_sql(schema: str, table: str, columns: Sequence[str]) -> str:
    """``COPY "schema"."table" ("c1", ...) FROM STDIN (FORMAT csv, NULL '\\N')``."""
    cols = ", ".join(f'"{c}"' for c in columns)
    return f'COPY "{schema}"."{table}" ({cols}) FROM STDIN (FORMAT csv, NULL \'{NULL}\')'


def run(ctx: RunContext) -> Outcome:
    """Spool every row as CSV, then COPY the spool into the target table in one transaction.

    Returns:
        :class:`Outcome`; ``extra['spool_bytes']`` = CSV bytes, ``extra['rolled_over']`` = 1 when
        the spool went to disk.

    Raises:
        ValueError: unknown variant.
        psycopg.Error / pymssql.Error: the read or the COPY failed.
    """
    if ctx.variant == "tds":
        from benchmarks.methods.tds import pymssql_row_chunks

        chunks: Iterator[list[tuple[Any, ...]]] = pymssql_row_chunks(ctx)
    elif not ctx.variant:
        chunks = _psycopg_row_chunks(ctx)
    else:
        raise ValueError(f"unknown variant of method 4: {ctx.variant!r}")
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_MAX_BYTES, mode="w+b", dir=ctx.work_dir) as spool:
        rows, size = spool_csv(chunks, spool)
        rolled = int(getattr(spool, "_rolled", False))
        with psycopg.connect(ctx.target_uri) as dst, dst.cursor() as cur:
            with cur.copy(copy_csv_sql(ctx.target_schema, ctx.table, ctx.columns)) as cin:
                while data := spool.read(COPY_CHUNK_BYTES):
                    cin.write(data)
            dst.commit()
    return Outcome(rows=rows, extra={"spool_bytes": size, "rolled_over": rolled})
