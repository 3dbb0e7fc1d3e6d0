"""The ``replication_audit`` table in the target: one row per table per DAG run.

The table is described as a :class:`TableSpec` and created through the target's own DDL path, so
the same code serves PostgreSQL and SQL Server. Rows are keyed by (run_id, table_name): a retry
replaces its table's row, so a run ends with exactly one row per table, whose ``attempt`` says
which try wrote it. Error texts are redacted (no secrets) and cut at 4,000 characters.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

import pyarrow as pa

from include.replication.core.catalog import ColumnSpec, TableSpec
from include.replication.core.errors import redact
from include.replication.core.pipeline import CopyResult
from include.replication.core.protocols import Target
from include.replication.core.typemap import arrow_schema

__all__ = ["AUDIT_TABLE", "AUDIT_SPEC", "AuditRecord", "ensure_audit_table", "write_audit"]

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
    """

    run_id: str
    table_name: str
    status: str
    attempt: int
    result: CopyResult | None = None
    error: str | None = None

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
            "seconds": r.seconds if r else None,
            "error": redact(self.error)[:4000] if self.error else None,
            "finished_at": dt.datetime.now(dt.UTC),
        }
        return pa.RecordBatch.from_pylist([row], schema=arrow_schema(AUDIT_SPEC))


def ensure_audit_table(target: Target) -> None:
    """Create ``replication_audit`` in the target if missing (rows of earlier runs are kept)."""
    target.ensure_table(AUDIT_SPEC)


def write_audit(target: Target, record: AuditRecord) -> None:
    """Write (replace) the audit row of ``record.run_id`` / ``record.table_name``.

    Raises:
        TargetError: the write failed.
    """
    target.upsert_rows(AUDIT_SPEC, ("run_id", "table_name"), record.to_batch())
    log.info("audit: %s %s %s (attempt %d)", record.run_id, record.table_name, record.status, record.attempt)
