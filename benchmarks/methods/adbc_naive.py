"""Method 3, ADBC naive: ``fetch_arrow_table()`` of the whole table, then one ``adbc_ingest``.

Fast (binary COPY on both sides, columnar in between) but the whole table sits in memory at once:
its peak RSS grows with the table.
"""

from __future__ import annotations

import adbc_driver_postgresql.dbapi as pg

from benchmarks.methods.base import Outcome, RunContext

__all__ = ["run"]


def run(ctx: RunContext) -> Outcome:
    """Read the table into one ``pa.Table``, then bulk-ingest it in one transaction.

    Returns:
        :class:`Outcome`; ``extra['arrow_bytes']`` = bytes of the in-memory table.

    Raises:
        adbc_driver_manager.Error: the query or the ingest failed.
    """
    with pg.connect(ctx.source_uri, autocommit=True) as src, src.cursor() as cur:
        cur.execute(ctx.select_sql)
        table = cur.fetch_arrow_table()
    with pg.connect(ctx.target_uri) as dst:
        with dst.cursor() as cur:
            rows = cur.adbc_ingest(ctx.table, table, mode="append", db_schema_name=ctx.target_schema)
        dst.commit()
    return Outcome(rows=int(rows) if rows and rows > 0 else table.num_rows, extra={"arrow_bytes": table.nbytes})
