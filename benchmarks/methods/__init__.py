"""Loader methods of the throughput benchmark, one small module per method.

Every method module exposes ``run(ctx: RunContext) -> Outcome`` (see :mod:`.base`): it copies the
rows of ``ctx.table`` from the source database into the already created, empty target table (or,
for dlt, into its own dataset schema) and returns when the rows are committed. The harness runs
each call in a fresh spawned process (:mod:`.child`) so its peak RSS is its own.

:data:`METHODS` is the closed registry of ``benchmarks/throughput.py`` (PostgreSQL -> PostgreSQL):
key -> :class:`MethodInfo`. :data:`TDS_METHODS` is the one of ``benchmarks/throughput_tds.py``
(a SQL Server source, here Babelfish, into SQL Server or PostgreSQL). Keys are what ``--methods``
accepts on the command line; they are unique across both registries (:func:`method_info`).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MethodInfo", "METHODS", "PIPE_KEY", "TDS_METHODS", "TDS_REFERENCE_KEY", "method_info"]


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
        target: ``table`` (writes into the prepared target table), ``dlt`` (dlt makes its own)
            or ``none`` (writes nothing: the rows it reports are the rows it read).
        source_dialect: dialect of the server the method reads (``postgresql`` or ``mssql``).
        target_dialect: dialect of the server the method writes (``postgresql`` or ``mssql``).
    """

    key: str
    number: int
    label: str
    module: str
    variant: str = ""
    capped: bool = False
    target: str = "table"
    source_dialect: str = "postgresql"
    target_dialect: str = "postgresql"


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
        MethodInfo("driver_read", 3, "3b ADBC read only, batches dropped (driver floor)", "driver_floor", "read",
                   target="none"),
        MethodInfo("driver_ingest", 3, "3c ADBC ingest only, from memory (driver floor)", "driver_floor", "ingest"),
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


TDS_REFERENCE_KEY = "pymssql_copy"
"""Key of the reference of ``throughput_tds.py``: the fastest plain path from a SQL Server source
that exists here (pymssql's C driver reading, PostgreSQL's binary COPY writing, no Arrow)."""

TDS_METHODS: dict[str, MethodInfo] = {
    m.key: m
    for m in (
        MethodInfo(
            TDS_REFERENCE_KEY, 1, "1 pymssql fetchmany -> COPY binary (psycopg write_row), to PG", "pymssql_copy",
            "binary", source_dialect="mssql",
        ),
        MethodInfo(
            "pymssql_copy_text", 1, "1b pymssql fetchmany -> COPY text (psycopg write_row), to PG", "pymssql_copy",
            "text", source_dialect="mssql",
        ),
        MethodInfo("ours_to_pg", 2, "2 our pipeline, to PG", "ours", "default", source_dialect="mssql"),
        MethodInfo(
            "ours_executemany", 2, "2e our pipeline, to TDS, executemany (multi-row INSERT)", "ours", "executemany",
            source_dialect="mssql", target_dialect="mssql",
        ),
        MethodInfo(
            "ours_bulk", 2, "2f our pipeline, to TDS, bulk_copy (python-tds INSERT BULK)", "ours", "bulk_copy",
            source_dialect="mssql", target_dialect="mssql",
        ),
        MethodInfo(
            "csv_spool_tds", 4, "4 pymssql rows -> CSV in SpooledTemporaryFile -> COPY csv, to PG", "csv_spool", "tds",
            source_dialect="mssql",
        ),
    )
}


def method_info(key: str) -> MethodInfo:
    """The :class:`MethodInfo` of ``key`` in :data:`METHODS` or :data:`TDS_METHODS`.

    Raises:
        KeyError: no such method.
    """
    if key in METHODS:
        return METHODS[key]
    return TDS_METHODS[key]
