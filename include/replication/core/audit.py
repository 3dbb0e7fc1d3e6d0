"""The ``replication_audit`` table in the target: one row per table per DAG run.

The table is described as a :class:`TableSpec` and created through the target's own DDL path, so
the same code serves PostgreSQL and SQL Server. Rows are keyed by (run_id, table_name): a retry
replaces its table's row, so a run ends with exactly one row per table, whose ``attempt`` says
which try wrote it. Error texts are redacted (no secrets) and cut at 4,000 characters.

Besides the copy's figures, a row says how the table was loaded (``mode``: ``full`` or
``append``), how many rows that inserted, updated and deleted, the table's high-water mark before
and after (``append``: the largest primary key), and what the validate task found
(``validation``: the count and, with ``validate=checksum``, the checksum result naming the first
differing row), and what a ``merge`` run's delete detection found (``deletes``). An audit table of an earlier version gains the missing columns (NULL in its old
rows) the first time :func:`ensure_audit_table` meets it.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

import pyarrow as pa

from include.replication.core.catalog import ColumnSpec, TableSpec
from include.replication.core.ddl import add_column_sql, column_names_sql, string_literal
from include.replication.core.errors import redact
from include.replication.core.pipeline import CopyResult
from include.replication.core.protocols import Target
from include.replication.core.typemap import arrow_schema

__all__ = [
    "AUDIT_TABLE",
    "AUDIT_SPEC",
    "AuditRecord",
    "ensure_audit_table",
    "write_audit",
    "record_validation",
    "source_checksums",
]

log = logging.getLogger(__name__)

AUDIT_TABLE = "replication_audit"

_C = ColumnSpec
AUDIT_SPEC = TableSpec(
    name=AUDIT_TABLE,
    dialect="postgresql",
    columns=(
        _C("run_id", "character varying", length=250, nullable=False),
        _C("table_name", "character varying", length=250, nullable=False),
        _C("status", "character varying", length=20, nullable=False),
        _C("attempt", "integer", nullable=False),
        _C("rows_read", "bigint"),
        _C("rows_written", "bigint"),
        _C("bytes", "bigint"),
        _C("batches", "bigint"),
        _C("spill_files", "bigint"),
        _C("spill_bytes", "bigint"),
        _C("high_water_bytes", "bigint"),
        _C("peak_rss_bytes", "bigint"),
        _C("seconds", "double precision"),
        _C("error", "character varying", length=4000),
        _C("finished_at", "timestamp with time zone", precision=6, nullable=False),
        _C("mode", "character varying", length=20),
        _C("rows_inserted", "bigint"),
        _C("rows_updated", "bigint"),
        _C("rows_deleted", "bigint"),
        _C("high_water_mark_before", "character varying", length=100),
        _C("high_water_mark_after", "character varying", length=100),
        _C("validation", "character varying", length=4000),
        _C("source_checksum", "character varying", length=60),
        _C("deletes", "character varying", length=4000),
        _C("rss_growth_bytes", "bigint"),
    ),
    primary_key=("run_id", "table_name"),
)
"""Columns of the audit table (PostgreSQL-dialect catalog; mapped to each target by the type map)."""


@dataclass(frozen=True)
class AuditRecord:
    """One audit row.

    Attributes:
        run_id: Airflow run id.
        table_name: the copied table.
        status: ``success`` or ``failed``.
        attempt: task try number (1-based).
        result: the copy's figures, or None when it failed before finishing.
        error: the error text (redacted), or None.
        mode: how the table was loaded: ``full`` (every row replaced) or ``append``.
        rows_inserted: rows the run inserted (a full load: every row written), or None.
        rows_updated: rows the run updated (0 for full and append loads), or None.
        rows_deleted: rows the run deleted (None for a full load: the old rows are replaced, not
            counted; 0 for append).
        high_water_mark_before: the table's high-water mark before the run (``append``), or None.
        high_water_mark_after: the mark the run left (``append``), or None.
        validation: what the validate task found (written later by :func:`record_validation`).
        source_checksum: the digest (``rows:sum:xor``) of the source rows the copy read, when the
            run validates by checksum (the validate task then reads only the target), or None.
        deletes: a ``merge`` run's delete detection (``delete_mode`` report / apply): how many keys
            the source no longer has and the first of them, or None.
    """

    run_id: str
    table_name: str
    status: str
    attempt: int
    result: CopyResult | None = None
    error: str | None = None
    mode: str = "full"
    rows_inserted: int | None = None
    rows_updated: int | None = None
    rows_deleted: int | None = None
    high_water_mark_before: str | None = None
    high_water_mark_after: str | None = None
    validation: str | None = None
    source_checksum: str | None = None
    deletes: str | None = None

    def to_batch(self) -> pa.RecordBatch:
        """The row as a one-row RecordBatch with the audit table's schema."""
        r = self.result
        row = {
            "run_id": self.run_id,
            "table_name": self.table_name,
            "status": self.status,
            "attempt": self.attempt,
            "rows_read": r.rows_read if r else None,
            "rows_written": r.rows_written if r else None,
            "bytes": r.bytes if r else None,
            "batches": r.batches if r else None,
            "spill_files": r.spill_files if r else None,
            "spill_bytes": r.spill_bytes if r else None,
            "high_water_bytes": r.high_water_bytes if r else None,
            "peak_rss_bytes": r.peak_rss_bytes if r else None,
            "rss_growth_bytes": r.rss_growth_bytes if r else None,
            "seconds": r.seconds if r else None,
            "error": redact(self.error)[:4000] if self.error else None,
            "finished_at": dt.datetime.now(dt.UTC),
            "mode": self.mode,
            "rows_inserted": self.rows_inserted,
            "rows_updated": self.rows_updated,
            "rows_deleted": self.rows_deleted,
            "high_water_mark_before": self.high_water_mark_before,
            "high_water_mark_after": self.high_water_mark_after,
            "validation": self.validation[:4000] if self.validation else None,
            "source_checksum": self.source_checksum,
            "deletes": self.deletes[:4000] if self.deletes else None,
        }
        return pa.RecordBatch.from_pylist([row], schema=arrow_schema(AUDIT_SPEC))


def ensure_audit_table(target: Target) -> list[str]:
    """Create ``replication_audit`` in the target if missing (rows of earlier runs are kept), and
    add the columns an audit table of an earlier version lacks (nullable; its rows keep their values).

    Returns:
        The columns added (empty when the table was created now or was current).

    Raises:
        TargetError: the DDL failed.
    """
    target.ensure_table(AUDIT_SPEC)
    have = {str(r[0]) for r in target.execute(column_names_sql(target.schema, AUDIT_TABLE))}
    missing = [c.name for c in AUDIT_SPEC.columns if c.name not in have] if have else []
    for name in missing:
        target.execute(add_column_sql(AUDIT_SPEC, name, target.dialect, target.schema))
    if missing:
        log.info("audit: %s.%s migrated, columns added: %s", target.schema, AUDIT_TABLE, ", ".join(missing))
    return missing


def record_validation(target: Target, run_id: str, table: str, text: str) -> int:
    """Write the validate task's finding into the audit row of ``run_id`` / ``table``.

    Args:
        target: the target holding ``replication_audit``.
        run_id: the Airflow run id.
        table: the ``tables`` entry.
        text: e.g. ``count ok 177; checksum ok 177:...`` (cut at 4,000 characters).

    Returns:
        Audit rows updated (0 when the run wrote none for the table).

    Raises:
        TargetError: the update failed.
    """
    q = target.dialect.quote
    sql = (f"UPDATE {target.dialect.qualified(target.schema, AUDIT_TABLE)} SET {q('validation')} = "
           f"{string_literal(redact(text)[:4000])} WHERE {q('run_id')} = {string_literal(run_id)} "
           f"AND {q('table_name')} = {string_literal(table)}")
    target.execute(sql)
    rows = target.execute(
        f"SELECT count(*) FROM {target.dialect.qualified(target.schema, AUDIT_TABLE)} WHERE {q('run_id')} = "
        f"{string_literal(run_id)} AND {q('table_name')} = {string_literal(table)}"
    )
    return int(str(rows[0][0])) if rows else 0


def write_audit(target: Target, record: AuditRecord) -> None:
    """Write (replace) the audit row of ``record.run_id`` / ``record.table_name``.

    Raises:
        TargetError: the write failed.
    """
    target.upsert_rows(AUDIT_SPEC, ("run_id", "table_name"), record.to_batch())
    log.info("audit: %s %s %s (attempt %d)", record.run_id, record.table_name, record.status, record.attempt)


def source_checksums(target: Target, run_id: str) -> dict[str, str]:
    """``table -> source_checksum`` of the run's successful copies that took one.

    Raises:
        TargetError: the query failed.
    """
    q = target.dialect.quote
    rows = target.execute(
        f"SELECT {q('table_name')}, {q('source_checksum')} FROM {target.dialect.qualified(target.schema, AUDIT_TABLE)} "
        f"WHERE {q('run_id')} = {string_literal(run_id)} AND {q('status')} = N'success' "
        f"AND {q('source_checksum')} IS NOT NULL"
    )
    return {str(t): str(c) for t, c in rows}
