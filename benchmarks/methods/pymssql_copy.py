"""The plain path from a SQL Server source into PostgreSQL, and the reference of
``throughput_tds.py``: pymssql ``fetchmany`` rows (our reader's ``SELECT``), written row by row
with psycopg 3's ``Copy.write_row`` into ``COPY ... FROM STDIN``, one transaction.

No Arrow, no checks, no buffer: pymssql's C driver (FreeTDS) decodes TDS into Python values and
psycopg's C dumpers encode them for COPY. Variants (``ctx.variant``):

* ``binary``: ``COPY ... (FORMAT binary)``, each column dumped as the target column's type
  (``Copy.set_types`` with the OIDs read from ``pg_attribute``, as psycopg's binary COPY needs);
* ``text``: ``COPY ... FROM STDIN`` in text format, values dumped by their Python type.
"""

from __future__ import annotations

import psycopg
from psycopg import sql as pgsql

from benchmarks.methods.base import Outcome, RunContext
from benchmarks.methods.tds import pymssql_row_chunks

__all__ = ["run", "copy_sql", "COLUMN_TYPES_SQL"]

COLUMN_TYPES_SQL = """
SELECT a.attname, a.atttypid::int
FROM pg_attribute AS a
WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped
"""
"""Name and type OID of every column of a table (parameter: the quoted qualified name)."""


def copy_sql(schema: str, table: str, columns: tuple[str, ...], binary: bool) -> str:
    """``COPY "schema"."table" ("c1", ...) FROM STDIN [(FORMAT binary)]`` (identifiers double-quoted,
    ``"`` doubled).

    Raises:
        ValueError: no columns.
    """
    if not columns:
        raise ValueError("COPY needs at least one column")

    def q(name: str) -> str:
        return '"' + name.replace('"', '""') + '"'

    cols = ", ".join(q(c) for c in columns)
    return f"COPY {q(schema)}.{q(table)} ({cols}) FROM STDIN" + (" (FORMAT binary)" if binary else "")


def run(ctx: RunContext) -> Outcome:
    """Copy every row of ``ctx.select_sql`` into the prepared target table and commit.

    Returns:
        :class:`Outcome` with the rows written; ``extra['format']`` = the COPY format.

    Raises:
        ValueError: unknown variant.
        pymssql.Error / psycopg.Error: the read or the COPY failed (the target is rolled back).
    """
    if ctx.variant not in ("binary", "text"):
        raise ValueError(f"unknown variant of pymssql_copy: {ctx.variant!r}")
    binary = ctx.variant == "binary"
    sql = copy_sql(ctx.target_schema, ctx.table, ctx.columns, binary)
    rows = 0
    with psycopg.connect(ctx.target_uri) as dst, dst.cursor() as cur:
        oids: list[int] = []
        if binary:
            name = pgsql.Identifier(ctx.target_schema, ctx.table).as_string(dst)
            by_name = dict(cur.execute(COLUMN_TYPES_SQL, (name,)).fetchall())
            oids = [by_name[c] for c in ctx.columns]
        with cur.copy(sql) as cin:
            if binary:
                cin.set_types(oids)
            for chunk in pymssql_row_chunks(ctx):
                for row in chunk:
                    cin.write_row(row)
                rows += len(chunk)
        dst.commit()
    return Outcome(rows=rows, extra={"format": ctx.variant})
