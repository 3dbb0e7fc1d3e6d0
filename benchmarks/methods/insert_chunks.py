"""Method 5, chunked INSERT into PostgreSQL through psycopg 3 (the SQL Server-style writer).

Variants (``ctx.variant``):

* ``executemany``: one parameterised ``INSERT ... VALUES (%s, ...)`` run by ``executemany`` over
  each chunk of ``ctx.chunk_rows`` rows (psycopg 3 pipelines the statements).
* ``values``: one ``INSERT ... VALUES (...), (...), ...`` statement per chunk, the chunk sized so
  rows x columns stays under 2,100 parameters, as the SQL Server writer must.

Rows are read as tuples through a server-side cursor. Both stop taking new chunks once
``ctx.time_cap_s`` has passed, commit what they wrote and report ``capped``.
"""

from __future__ import annotations

import psycopg

from benchmarks.methods.base import Deadline, Outcome, RunContext

__all__ = ["run", "values_chunk_rows", "MSSQL_MAX_PARAMS"]

MSSQL_MAX_PARAMS = 2_100
"""SQL Server's parameter limit per statement, kept here so the strategy is the same one."""


def values_chunk_rows(columns: int, limit: int = MSSQL_MAX_PARAMS - 1) -> int:
    """Rows per multi-row ``VALUES`` statement: the most rows with ``rows * columns <= limit``.

    Raises:
        ValueError: ``columns`` < 1.
    """
    if columns < 1:
        raise ValueError("a table has at least one column")
    return max(1, limit // columns)


def run(ctx: RunContext) -> Outcome:
    """Insert rows chunk by chunk until done or until the time cap; commit once at the end.

    Returns:
        :class:`Outcome` with rows written and ``capped``.

    Raises:
        ValueError: unknown variant.
        psycopg.Error: a statement failed.
    """
    if ctx.variant not in ("executemany", "values"):
        raise ValueError(f"unknown variant of method 5: {ctx.variant!r}")
    deadline = Deadline(ctx.time_cap_s)
    ncols = len(ctx.columns)
    cols = ", ".join(f'"{c}"' for c in ctx.columns)
    name = f'"{ctx.target_schema}"."{ctx.table}"'
    one_row = "(" + ", ".join(["%s"] * ncols) + ")"
    chunk = ctx.chunk_rows if ctx.variant == "executemany" else values_chunk_rows(ncols)
    rows = 0
    capped = False
    with psycopg.connect(ctx.source_uri) as src, psycopg.connect(ctx.target_uri) as dst:
        with src.cursor(name="bench_insert") as rcur, dst.cursor() as wcur:
            rcur.itersize = chunk
            rcur.execute(ctx.select_sql)
            while batch := rcur.fetchmany(chunk):
                if ctx.variant == "executemany":
                    wcur.executemany(f"INSERT INTO {name} ({cols}) VALUES {one_row}", batch)
                else:
                    sql = f"INSERT INTO {name} ({cols}) VALUES " + ", ".join([one_row] * len(batch))
                    wcur.execute(sql, [v for row in batch for v in row])
                rows += len(batch)
                if deadline.expired():
                    capped = rows < ctx.total_rows
                    break
        dst.commit()
    return Outcome(rows=rows, capped=capped, extra={"chunk_rows": chunk})
