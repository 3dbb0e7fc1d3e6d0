"""Build a replication DAG: plan -> copy (one mapped task per copy unit) -> finish (one mapped task
per table loaded in key ranges; ``ranged`` names those tables from the plan's units, since only a
task's own return value can be mapped over) -> foreign_keys -> validate -> summary -> cleanup.

A copy unit is a whole table (map index ``Posts``) or, with ``partition_as = tasks``, one
primary-key range of a large table (``Posts[1:425000)``); with the default ``partition_as =
threads`` every unit is a table, ``finish`` has no instance (skipped) and the run is today's.

Both DAGs (``replicate_stackoverflow_to_postgres``, ``replicate_stackoverflow_to_target``) are this
one shape with different connection ids, so the DAG files stay a few lines long. Parsing the DAG
has no side effects: no connection, no driver import (task bodies import lazily).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import Param, dag, get_current_context, task, teardown

from include.replication.airflow.assets import replication_alias
from include.replication.core.config import (
    DEFAULT_BATCH_ROWS,
    DEFAULT_MEMORY_BUDGET_MIB,
    DEFAULT_SPILL_ROOT_ENV,
    DEFAULT_TABLE_TEMPLATE,
    DEFAULT_TARGET_CASE,
    LOAD_MODES,
    MAX_PARALLEL_RANGES,
    TARGET_CASES,
)
from include.replication.core.deletes import DELETE_MODES
from include.replication.core.incremental import DEFAULT_MERGE_LAG_S, SYNC_MODES
from include.replication.core.partition import DEFAULT_PARTITION_AS, DEFAULT_PARTITION_MIN_ROWS, PARTITION_AS
from include.replication.core.validate import VALIDATE_MODES

__all__ = ["DEFAULT_PARAMS", "build_replication_dag"]

DEFAULT_PARAMS: dict[str, Param] = {
    "tables": Param(
        [],
        type="array",
        items={"type": "string"},
        description='Source tables to copy: "Table" (the source\'s default schema), "schema.Table", or patterns '
        '("Post*", "dbo.*"; case-insensitive, resolved against the source catalog by plan, which fails naming a '
        "pattern that matches nothing); empty = every base table of the source's default schema.",
    ),
    "exclude": Param(
        [], type="array", items={"type": "string"},
        description='Patterns of tables to leave out ("Vote*", "dbo.PostHistory"), applied after tables.',
    ),
    "target_case": Param(
        DEFAULT_TARGET_CASE, type="string", enum=list(TARGET_CASES),
        description="preserve: target names spelled as in the source (\"Posts\".\"CreationDate\", quoted in "
        "PostgreSQL); lower: table, column, index and constraint names lower-cased (select creationdate from posts).",
    ),
    "target_table_template": Param(
        DEFAULT_TABLE_TEMPLATE, type="string",
        description="Target table name: {table} is the source table's name, {schema} its schema, e.g. so_{table}; "
        "applied before target_case.",
    ),
    "plan_only": Param(
        False, type="boolean",
        description="Dry run: the plan task logs, per table, the source DDL, the mapped target DDL, the row estimate, "
        "the load mode and what would be done to an existing target, and touches nothing; no table is copied.",
    ),
    "memory_budget_mib": Param(
        DEFAULT_MEMORY_BUDGET_MIB, type="integer", minimum=1, maximum=65536,
        description="Most MiB of row data a copy task holds in memory; beyond it batches spill to Parquet.",
    ),
    "batch_rows": Param(DEFAULT_BATCH_ROWS, type="integer", minimum=1, description="Most rows per Arrow RecordBatch."),
    "batch_mib": Param(
        0, type="number", minimum=0,
        description="Target MiB per RecordBatch; 0 = budget/32 (4 MiB at 128), at most 8 MiB.",
    ),
    "parallel_ranges": Param(
        1, type="integer", minimum=1, maximum=MAX_PARALLEL_RANGES,
        description="Copy each table as this many primary-key ranges at once (single integer key): threads in "
        "the table's copy task sharing its memory budget, or with partition_as=tasks one mapped copy task each "
        "(each with the whole budget).",
    ),
    "partition_as": Param(
        DEFAULT_PARTITION_AS, type="string", enum=list(PARTITION_AS),
        description="How a table is split into parallel_ranges primary-key ranges: threads (inside its one copy "
        "task, as before); tasks (each range its own mapped copy task instance, named Posts[1:425000), which the "
        "executor can spread over workers, then one finish task per table: keys, identity, count check, swap). "
        "Only tables with a single integer key, at least partition_min_rows rows, load mode swap or drop and "
        "sync mode full are split.",
    ),
    "partition_min_rows": Param(
        DEFAULT_PARTITION_MIN_ROWS, type="integer", minimum=0,
        description="With partition_as=tasks: tables with fewer rows than this (exact count at plan time) are "
        "never split and are copied by one task.",
    ),
    "load_mode": Param(
        "swap", type="string", enum=list(LOAD_MODES),
        description="swap: load a staging copy, swap it in when it is complete and checked (readers keep the "
        "previous replica until then); truncate: keep the existing table, grants and views, TRUNCATE and load "
        "in one transaction; drop: drop and re-create the tables (a first load).",
    ),
    "foreign_keys": Param(
        True, type="boolean",
        description="Create the source's foreign keys between the copied tables after every table is loaded.",
    ),
    "generated_columns": Param(
        "keep", type="string", enum=["keep", "plain"],
        description="keep: re-create generated (computed) columns as generated (same dialect only; the plan fails "
        "for another dialect); plain: copy their values as ordinary columns.",
    ),
    "schema_map": Param(
        {}, type="object",
        description='Target schema per source schema for "schema.Table" entries of tables, e.g. '
        '{"archive": "archive_copy"}; unlisted schemas keep their name.',
    ),
    "sqlserver_write_method": Param(
        "executemany", type="string", enum=["executemany", "bulk_copy"],
        description="How a SQL Server target receives rows: chunked multi-row INSERT (executemany) or the "
        "TDS bulk-load protocol (bulk_copy, python-tds; 6 fractional digits for datetime2).",
    ),
    "mode": Param(
        "full", type="string", enum=list(SYNC_MODES),
        description="full: copy every row; append: copy only the rows whose integer primary key is above the "
        "high-water mark kept in the target's replication_state table (the first run is a full load that sets it); "
        "merge: upsert the rows whose cursor column (cursor_columns) is at or past the mark minus merge_lag_seconds.",
    ),
    "table_modes": Param(
        {}, type="object",
        description='Sync mode per table, overriding mode, e.g. {"Votes": "append", "Posts": "merge"}.',
    ),
    "cursor_columns": Param(
        {}, type="object",
        description='Cursor column per table of mode merge, e.g. {"Posts": "LastActivityDate"} (an integer or '
        "timestamp column the source moves forward on every change).",
    ),
    "merge_lag_seconds": Param(
        DEFAULT_MERGE_LAG_S, type="number", minimum=0,
        description="Seconds before the high-water mark that a merge run reads again, so a row committed late "
        "with an earlier cursor value is still seen (timestamp cursors).",
    ),
    "delete_mode": Param(
        "ignore", type="string", enum=list(DELETE_MODES),
        description="Rows deleted in the source, for merge tables with a single integer key: ignore; report "
        "(count and first keys in the log and the audit row, by comparing both sides' sorted keys in bounded "
        "memory); apply (also delete them, in the merge's transaction).",
    ),
    "validate": Param(
        "count", type="string", enum=list(VALIDATE_MODES),
        description="count: exact COUNT(*) on both sides; checksum: also an order-independent checksum of every "
        "row's values on both sides, bisected by primary key to name the first differing row.",
    ),
    "spill_root": Param(
        "", type="string",
        description=f"Directory for spill files; empty = ${DEFAULT_SPILL_ROOT_ENV} or the system temp dir.",
    ),
}


def build_replication_dag(*, dag_id: str, source_conn_id: str, target_conn_id: str, tags: list[str], doc_md: str) -> Any:
    """Create the replication DAG.

    Args:
        dag_id: the DAG id.
        source_conn_id: Airflow connection id of the source (PostgreSQL or SQL Server).
        target_conn_id: Airflow connection id of the target.
        tags: DAG tags.
        doc_md: the DAG's documentation (Markdown).

    Returns:
        The ``airflow.sdk.DAG`` object (module-level name in the DAG file registers it).
    """

    @dag(
        dag_id=dag_id,
        schedule=None,
        start_date=datetime(2026, 1, 1),
        catchup=False,
        max_active_runs=1,
        tags=tags,
        doc_md=doc_md,
        params=dict(DEFAULT_PARAMS),
        default_args={"retries": 2, "retry_delay": timedelta(seconds=30), "owner": "data-engineering"},
    )
    def replication() -> None:
        @task
        def plan() -> list[str]:
            """Read the source catalog, prepare the target tables (and, with partition_as=tasks, the
            staging copies of the tables loaded in key ranges); return the copy units."""
            from include.replication.airflow.tasks import plan_units

            ctx = get_current_context()
            return plan_units(source_conn_id, target_conn_id, ctx["params"], run_id=ctx["run_id"], label=dag_id)["units"]

        @task
        def ranged(units: list[str]) -> list[str]:
            """The tables the plan split into key ranges: one finish each (none with partition_as=threads)."""
            from include.replication.core.partition import split_tables

            return split_tables(units)

        @task(map_index_template="{{ task.op_kwargs['unit'] }}", outlets=[replication_alias(dag_id)])
        def copy(unit: str) -> dict[str, object]:
            """Copy one unit (a table, or one key range of it) through the bounded buffer and write its
            audit row; a whole table emits its asset event and OpenLineage datasets (a range's table
            emits them from finish)."""
            from include.replication.airflow.assets import publish_copy
            from include.replication.airflow.tasks import copy_unit

            ctx = get_current_context()
            result = copy_unit(unit, source_conn_id, target_conn_id, ctx["params"], run_id=ctx["run_id"],
                               attempt=int(ctx["ti"].try_number or 1), label=dag_id)
            if result.get("key_range") is None:
                publish_copy(ctx, dag_id, result)
            return result

        @task(map_index_template="{{ task.op_kwargs['table'] }}", outlets=[replication_alias(dag_id)])
        def finish(table: str, copies: list[Mapping[str, Any]]) -> dict[str, object]:
            """After every key range of one table: count check, primary key, indexes, identity, swap;
            the table's audit row and asset event."""
            from include.replication.airflow.assets import publish_copy
            from include.replication.airflow.tasks import finish_ranges

            ctx = get_current_context()
            results = [copies[i] for i in range(len(copies))]  # by length: see summary
            result = finish_ranges(table, source_conn_id, target_conn_id, ctx["params"], results,
                                   run_id=ctx["run_id"], attempt=int(ctx["ti"].try_number or 1), label=dag_id)
            publish_copy(ctx, dag_id, result)
            return result

        @task(trigger_rule="none_failed")  # runs when finish has no instance (no table in key ranges)
        def foreign_keys(units: list[str]) -> list[str]:
            """Create the source's foreign keys between the copied tables, once every table is loaded."""
            from include.replication.airflow.tasks import add_foreign_keys
            from include.replication.core.partition import tables_of

            return add_foreign_keys(source_conn_id, target_conn_id, tables_of(units), get_current_context()["params"])

        @task(trigger_rule="none_failed")
        def validate(units: list[str]) -> list[dict[str, object]]:
            """Compare exact source and target row counts (and, with validate=checksum, row checksums)."""
            from include.replication.airflow.tasks import validate_tables
            from include.replication.core.partition import tables_of

            ctx = get_current_context()
            return validate_tables(source_conn_id, target_conn_id, tables_of(units), ctx["params"], run_id=ctx["run_id"])

        @task
        def summary(counts: list[dict[str, Any]], copies: list[dict[str, Any]]) -> str:
            """Log the per-table source/target row-count table."""
            from include.replication.airflow.tasks import summarise

            # index the lazy XCom sequence by its length: iterating it asks for one XCom past the
            # end, which the API answers 404 and the task log shows as an error
            return summarise(counts, [copies[i] for i in range(len(copies))])

        @teardown
        def cleanup() -> list[str]:
            """Remove the spill directories the run left behind (a teardown: runs whatever the copies
            did, and does not decide the run's state, so a failed copy still fails the run)."""
            from include.replication.airflow.tasks import sweep

            ctx = get_current_context()
            return sweep(ctx["params"], run_id=ctx["run_id"], label=dag_id)

        # TaskFlow calls return XComArgs that resolve at run time to the annotated types
        units: Any = plan()
        copies: Any = copy.expand(unit=units)
        finished: Any = finish.partial(copies=copies).expand(table=ranged(units))
        counts: Any = validate(units)
        copies >> finished >> foreign_keys(units) >> counts
        summary(counts, copies) >> cleanup()

    return replication()
