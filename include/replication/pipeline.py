"""The copy pipeline: Source reader -> SpillingBuffer -> Target writer, for any pair of dialects.

``copy_table`` runs one copy unit (a whole table) in one target transaction, so a retry or a re-run
leaves exactly one copy of every row. It never branches on the dialect.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass

from .allocators import tune_allocators
from .buffer import transfer
from .catalog import TableSpec
from .config import CopySettings
from .endpoints import Source, Target
from .typemap import arrow_schema

__all__ = ["CopyResult", "copy_table"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CopyResult:
    """What one table copy did; the audit row is built from it.

    Attributes:
        table: source table name.
        rows_read: rows the reader produced.
        rows_written: rows the writer wrote (equal to rows_read on success).
        bytes: bytes of row data moved (Arrow buffer sizes).
        batches: RecordBatches moved.
        spill_files: Parquet spill files written.
        spill_bytes: bytes of spill files on disk.
        high_water_bytes: most bytes the buffer held in memory at once.
        peak_rss_bytes: peak resident set size of the copying process (bytes).
        seconds: wall time of the unit, from begin to finish_table (seconds).
    """

    table: str
    rows_read: int
    rows_written: int
    bytes: int
    batches: int
    spill_files: int
    spill_bytes: int
    high_water_bytes: int
    peak_rss_bytes: int
    seconds: float

    def as_dict(self) -> dict[str, object]:
        """Plain dict (XCom-serialisable)."""
        return asdict(self)


def copy_table(source: Source, target: Target, spec: TableSpec, settings: CopySettings) -> CopyResult:
    """Copy one table: clear it in the target, stream every row through the buffer, check the
    count, commit, then build the primary key and indexes and align the identity.

    The target table must exist (``target.prepare_table``) before.

    Args:
        source: open source.
        target: open target.
        spec: the table's catalog, read from ``source``.
        settings: memory budget, batch sizes, spill root, overlap, run id and attempt.

    Returns:
        The unit's figures.

    Raises:
        ReplicationError: the first real error of the reader or the writer (the unit is rolled
            back, no reader thread and no spill directory are left behind).
    """
    tune_allocators()
    log.info(
        "copying %s (~%d rows): memory budget %d MiB (buffer %d MiB + batches in flight), batches of "
        "%d KiB / %d rows, overlap %s, spill root %s",
        spec.qualified_name, spec.row_estimate, settings.memory_budget_bytes >> 20, settings.buffer_budget_bytes >> 20,
        settings.batch_bytes >> 10, settings.batch_rows, "on" if settings.overlap else "off", settings.spill_root,
    )
    started = time.monotonic()
    schema = arrow_schema(spec)
    target.begin_unit(spec)
    try:
        stats = transfer(
            source.read_batches(spec, batch_rows=settings.batch_rows, batch_bytes=settings.batch_bytes),
            lambda batches: target.write_batches(spec, batches),
            schema=schema,
            budget_bytes=settings.buffer_budget_bytes,
            spill_root=settings.spill_root,
            label=spec.name,
            attempt_id=f"{settings.label}-{settings.run_id}-try{settings.attempt}",
            overlap=settings.overlap,
            estimated_rows=spec.row_estimate or None,
        )
        target.commit_unit(spec, stats.rows)
    except BaseException:
        target.rollback_unit()
        raise
    target.finish_table(spec)
    result = CopyResult(
        table=spec.name,
        rows_read=stats.rows,
        rows_written=stats.rows_written,
        bytes=stats.bytes,
        batches=stats.batches,
        spill_files=stats.spill_files,
        spill_bytes=stats.spill_bytes,
        high_water_bytes=stats.high_water_bytes,
        peak_rss_bytes=stats.peak_rss_bytes,
        seconds=time.monotonic() - started,
    )
    log.info(
        "copied %s: %d rows, %d bytes, %d batches, %d spill files (%d bytes), high-water %d bytes, "
        "peak RSS %d bytes, %.2f s",
        spec.qualified_name,
        result.rows_written,
        result.bytes,
        result.batches,
        result.spill_files,
        result.spill_bytes,
        result.high_water_bytes,
        result.peak_rss_bytes,
        result.seconds,
    )
    return result
