"""Methods 3b and 3c, the ADBC driver's own floors: what one side of our copy costs when nothing
but the driver runs.

- ``read`` (3b): ``execute(select_sql)`` and ``fetch_record_batch()`` on the source, every
  RecordBatch dropped as it arrives. The floor of our reader: the server's ``COPY ... TO STDOUT
  (FORMAT binary)`` and the driver's decoding into Arrow, nothing of ours.
- ``ingest`` (3c): ``adbc_ingest`` (append, one transaction) of the table's RecordBatches into the
  prepared target table; the batches were read into memory by :func:`prepare`, before the timer.
  The floor of our writer: the driver's encoding of Arrow into binary COPY and the server's
  ``COPY ... FROM STDIN``, nothing of ours.

Our pipeline runs both at once on two threads (:mod:`.ours`), so with no overhead of its own it
would take about the slower of the two floors when the machine has cores to spare, and about their
sum when it has none (two cores shared with both server backends).
"""

from __future__ import annotations

import adbc_driver_postgresql.dbapi as pg
import pyarrow as pa

from benchmarks.methods.base import Outcome, RunContext

__all__ = ["prepare", "run"]


def _read(uri: str, sql: str, keep: bool) -> tuple[int, list[pa.RecordBatch]]:
    """Rows read by ``sql`` and, when ``keep``, its RecordBatches (else each is dropped)."""
    rows, kept = 0, []
    with pg.connect(uri, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute(sql)
        for batch in cur.fetch_record_batch():
            rows += batch.num_rows
            if keep:
                kept.append(batch)
    return rows, kept


def prepare(ctx: RunContext) -> pa.Table | None:
    """Untimed setup: for ``ingest``, the table read into memory (``pa.Table``); None for ``read``.

    Raises:
        adbc_driver_manager.Error: the query failed.
        ValueError: an unknown variant.
    """
    if ctx.variant == "read":
        return None
    if ctx.variant != "ingest":
        raise ValueError(f"unknown variant of the driver floor: {ctx.variant!r}")
    _, batches = _read(ctx.source_uri, ctx.select_sql, keep=True)
    return pa.Table.from_batches(batches)


def run(ctx: RunContext) -> Outcome:
    """The timed part: the read (rows dropped) or the ingest of ``ctx.prepared``.

    Returns:
        :class:`Outcome` with the rows read or ingested; ``extra['arrow_bytes']`` for ``ingest``.

    Raises:
        adbc_driver_manager.Error: the query or the ingest failed.
    """
    if ctx.variant == "read":
        rows, _ = _read(ctx.source_uri, ctx.select_sql, keep=False)
        return Outcome(rows=rows)
    table: pa.Table = ctx.prepared
    with pg.connect(ctx.target_uri) as dst:
        with dst.cursor() as cur:
            cur.adbc_ingest(ctx.table, table, mode="append", db_schema_name=ctx.target_schema)
        dst.commit()
    return Outcome(rows=table.num_rows, extra={"arrow_bytes": table.nbytes})
