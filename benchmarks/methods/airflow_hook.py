"""Method 6, Airflow's own generic path: ``DbApiHook.insert_rows`` of the postgres provider's
``PostgresHook``, fed the way ``GenericTransfer`` feeds it (rows as tuples from the source hook).

Variants (``ctx.variant``): ``rows`` = ``insert_rows`` with its defaults, as ``GenericTransfer``
calls it without ``insert_args`` (one ``INSERT`` per row, commit every 1,000 rows); ``executemany``
= ``insert_rows(..., executemany=True)``. Pages of ``ctx.chunk_rows`` rows are read from the source
hook's server-side cursor and handed to ``insert_rows`` until done or until the time cap.

The two Airflow connections come from ``AIRFLOW_CONN_<ID>`` environment variables that the
harness sets for the child process.
"""

from __future__ import annotations

from airflow.providers.postgres.hooks.postgres import PostgresHook

from benchmarks.methods.base import Deadline, Outcome, RunContext

__all__ = ["run"]


def run(ctx: RunContext) -> Outcome:
    """Copy pages of rows through ``PostgresHook.insert_rows`` until done or capped.

    Returns:
        :class:`Outcome` with rows written and ``capped``.

    Raises:
        ValueError: unknown variant.
        psycopg2.Error: a statement failed.
    """
    if ctx.variant not in ("rows", "executemany"):
        raise ValueError(f"unknown variant of method 6: {ctx.variant!r}")
    deadline = Deadline(ctx.time_cap_s)
    src_id, dst_id = ctx.airflow_conn_ids
    source = PostgresHook(postgres_conn_id=src_id)
    target = PostgresHook(postgres_conn_id=dst_id)
    table = f'"{ctx.target_schema}"."{ctx.table}"'
    fields = [f'"{c}"' for c in ctx.columns]
    rows = 0
    capped = False
    conn = source.get_conn()
    try:
        with conn.cursor(name="bench_airflow") as cur:
            cur.itersize = ctx.chunk_rows
            cur.execute(ctx.select_sql)
            while page := cur.fetchmany(ctx.chunk_rows):
                target.insert_rows(
                    table, page, target_fields=fields, commit_every=1000, executemany=ctx.variant == "executemany"
                )
                rows += len(page)
                if deadline.expired():
                    capped = rows < ctx.total_rows
                    break
    finally:
        conn.close()
    return Outcome(rows=rows, capped=capped)
