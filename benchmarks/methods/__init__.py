"""Loader methods of the throughput benchmark, one small module per method.

Every method module exposes ``run(ctx: RunContext) -> Outcome`` (see :mod:`.base`): it copies the
rows of ``ctx.table`` from the source database into the already created, empty target table (or,
for dlt, into its own dataset schema) and returns when the rows are committed. The harness runs
each call in a fresh spawned process (:mod:`.child`) so its peak RSS is its own.

:data:`METHODS` is the closed registry: key -> :class:`MethodInfo`. Keys are what ``--methods``
accepts on the command line.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MethodInfo", "METHODS", "PIPE_KEY"]


@dataclass(frozen=True)
class MethodInfo:
    """One benchmarked loader.

    Attributes:
        key: command-line name (``pipe``, ``ours``, ...).
        number: method number of issue 5 (1-7).
        label: human-readable name for tables and charts.
        module: module under ``benchmarks.methods`` whose ``run`` does the copy.
        variant: passed to ``run`` as ``ctx.variant`` (one module can serve several variants).
        capped: True when the method stops after ``ctx.time_cap_s`` seconds and reports the rate
            reached (slow row-by-row methods).
        target: ``table`` (writes into the prepared target table) or ``dlt`` (dlt makes its own).
    """

    key: str
    number: int
    label: str
    module: str
    variant: str = ""
    capped: bool = False
    target: str = "table"


PIPE_KEY = "pipe"
"""Key of method 1, the physical limit every ratio is taken against."""

METHODS: dict[str, MethodInfo] = {
    m.key: m
    for m in (
        MethodInfo(PIPE_KEY, 1, "1 COPY binary pipe (psycopg, raw bytes)", "pipe"),
        MethodInfo("pipe_psql", 1, "1b COPY binary pipe (two psql processes)", "pipe_psql"),
        MethodInfo("ours", 2, "2 our pipeline (default 128 MiB budget)", "ours", "default"),
        MethodInfo("ours_no_overlap", 2, "2b our pipeline, overlap off", "ours", "no_overlap"),
        MethodInfo("ours_spill", 2, "2c our pipeline, spill forced (1 MiB)", "ours", "spill"),
        MethodInfo("ours_parallel", 2, "2d our pipeline, 2 parallel key ranges", "ours", "parallel2"),
        MethodInfo("adbc_naive", 3, "3 ADBC fetch_arrow_table + adbc_ingest", "adbc_naive"),
        MethodInfo("csv_spool", 4, "4 CSV in SpooledTemporaryFile + COPY csv", "csv_spool"),
        MethodInfo("executemany", 5, "5a INSERT executemany (psycopg)", "insert_chunks", "executemany", capped=True),
        MethodInfo("values", 5, "5b multi-row INSERT VALUES (psycopg)", "insert_chunks", "values", capped=True),
        MethodInfo("airflow_rows", 6, "6a Airflow insert_rows (GenericTransfer default)", "airflow_hook", "rows", capped=True),
        MethodInfo(
            "airflow_many", 6, "6b Airflow insert_rows executemany", "airflow_hook", "executemany", capped=True
        ),
        MethodInfo("dlt", 7, "7 dlt sql_database, pyarrow backend", "dlt_sql", capped=True, target="dlt"),
    )
}
