"""The overlapped transfer: a reader iterator on its own thread feeds a :class:`SpillingBuffer`
while a writer callable drains it on the calling thread; the first error of either side stops
both, the reader thread is joined, the spill directory removed and that error re-raised.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from include.replication.core.batching import batch_nbytes
from include.replication.core.buffer import DEFAULT_SPILL_FILE_BYTES, BufferAborted, SpillingBuffer
from include.replication.core.config import DEFAULT_MEMORY_BUDGET_MIB, MiB
from include.replication.core.errors import ReplicationError, ValidationError
from include.replication.core.metrics import Progress, format_bytes, peak_rss_bytes

__all__ = ["TransferStats", "transfer"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TransferStats:
    """Figures of one :func:`transfer` (one table or copy unit).

    Attributes:
        label: table or unit name.
        rows, bytes, batches: rows / Arrow bytes / batches handed to the writer.
        rows_written: what the writer callable returned (rows; negative = unknown).
        spill_files, spill_batches: Parquet spill files and batches written.
        spill_bytes: bytes of spill files on disk.
        high_water_bytes: most Arrow bytes the buffer held in memory at once.
        budget_bytes: the buffer's memory budget.
        read_seconds: seconds the reader ran (from start to its last batch).
        write_seconds: seconds the writer ran.
        wall_seconds: seconds of the whole transfer.
        peak_rss_bytes: peak resident set size of this process at the end (bytes).
        overlap: True when reading and writing ran concurrently.
    """

    label: str
    rows: int
    bytes: int
    batches: int
    rows_written: int
    spill_files: int
    spill_batches: int
    spill_bytes: int
    high_water_bytes: int
    budget_bytes: int
    read_seconds: float
    write_seconds: float
    wall_seconds: float
    peak_rss_bytes: int
    overlap: bool

    def as_dict(self) -> dict[str, Any]:
        """The figures as a plain dict (for the audit row)."""
        return dataclasses.asdict(self)


def transfer(
    batches: Iterator[pa.RecordBatch],
    consume: Callable[[Iterator[pa.RecordBatch]], int],
    *,
    schema: pa.Schema,
    budget_bytes: int = DEFAULT_MEMORY_BUDGET_MIB * MiB,
    spill_root: str | os.PathLike[str] | None = None,
    label: str = "?",
    overlap: bool = True,
    estimated_rows: int | None = None,
    attempt_id: str | None = None,
    progress_interval_s: float = 10.0,
    join_timeout_s: float = 60.0,
    spill_file_bytes: int = DEFAULT_SPILL_FILE_BYTES,
    on_rows: Callable[[int], None] | None = None,
) -> TransferStats:
    """Move a stream of RecordBatches from a reader to a writer through a :class:`SpillingBuffer`.

    With ``overlap=True`` the reader iterator runs on its own thread and feeds the buffer while
    ``consume`` drains it on the calling thread, so reading and writing overlap and a slow writer
    makes the reader spill instead of wait. ``overlap=False`` reads everything first, then writes
    (same buffer; for benchmarks). On any error of either side the other side is stopped, the
    reader thread joined, the reader iterator closed (its ``finally``/``with`` blocks run on its
    own thread), the spill directory removed, and the first real error re-raised. On success the
    spill directory is removed too.

    Logs a progress line at least every ``progress_interval_s`` seconds while rows move, and one
    INFO summary at the end.

    Args:
        batches: the reader: RecordBatches with ``schema`` (if it is a generator it is closed on
            the reader thread when the transfer stops).
        consume: the writer: receives an iterator of the batches, must exhaust it, returns rows
            written (negative if unknown).
        schema: the Arrow schema of every batch.
        budget_bytes: memory budget of the buffer (bytes).
        spill_root: parent of the spill directory (default under the system temp dir).
        label: table or unit name for logs, errors and the spill directory name.
        overlap: run reader and writer concurrently (True) or one after the other (False).
        estimated_rows: expected rows, for the progress line's percentage and ETA.
        attempt_id: task-attempt identifier used in the spill directory name.
        progress_interval_s: seconds between progress lines.
        join_timeout_s: seconds to wait for the reader thread to stop after an error.
        spill_file_bytes: Arrow bytes after which a spill file is sealed.
        on_rows: called with each batch's row count as the writer takes it (a progress bar).

    Returns:
        :class:`TransferStats`.

    Raises:
        BaseException: the first real error of the reader or the writer, unchanged.
        ReplicationError: the writer returned without exhausting the batches, or the reader thread
            did not stop within ``join_timeout_s`` after an error (retryable).
        ValidationError: the writer reports a row count different from the rows it received.
        ConfigurationError: invalid budget or spill root.
    """
    buffer = SpillingBuffer(
        schema,
        budget_bytes=budget_bytes,
        spill_root=spill_root,
        label=label,
        attempt_id=attempt_id,
        spill_file_bytes=spill_file_bytes,
    )
    progress = Progress(label, estimated_rows, interval_s=progress_interval_s)
    # read-all-then-write: the write progress is silent while reading, so reading reports its own
    read_progress = None if overlap else Progress(f"{label} (reading)", estimated_rows, interval_s=progress_interval_s)
    timing = {"read_start": 0.0, "read_end": 0.0}
    started = time.monotonic()

    def produce() -> None:
        timing["read_start"] = time.monotonic()
        try:
            for batch in batches:
                buffer.put(batch)
                if read_progress is not None:
                    read_progress.add(batch.num_rows, batch_nbytes(batch))
            buffer.close()
        except BufferAborted:
            pass  # the writer failed first; its error is the one that surfaces
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, re-raised there
            buffer.fail(exc)
        finally:
            timing["read_end"] = time.monotonic()
            close = getattr(batches, "close", None)
            if callable(close):
                try:
                    close()
                except Exception:  # noqa: BLE001 - the reader's own cleanup must not hide the first error
                    log.warning("%s: closing the reader failed", label, exc_info=True)

    exhausted = False

    def counted() -> Iterator[pa.RecordBatch]:
        nonlocal exhausted
        for batch in buffer.iterate(on_wait=progress.maybe_log):
            progress.add(batch.num_rows, batch_nbytes(batch))
            if on_rows is not None:
                on_rows(batch.num_rows)
            yield batch
        exhausted = True

    thread: threading.Thread | None = None
    write_seconds = 0.0
    rows_written = -1
    try:
        if overlap:
            thread = threading.Thread(target=produce, name=f"reader-{label}", daemon=True)
            thread.start()
        else:
            produce()
            if buffer.first_error is not None:
                raise buffer.first_error
        write_start = time.monotonic()
        try:
            rows_written = consume(counted())
            if not exhausted:
                raise ReplicationError("the writer returned before the end of the batches", table=label)
        except BaseException as exc:
            buffer.abort(exc)
            raise
        finally:
            write_seconds = time.monotonic() - write_start
            if thread is not None:
                thread.join(join_timeout_s)
        if thread is not None and thread.is_alive():
            raise ReplicationError(
                f"the reader thread did not stop within {join_timeout_s:.0f} s", table=label, retryable=True
            )
    except BaseException as exc:
        first = buffer.first_error or exc
        if thread is not None and thread.is_alive():
            log.error("%s: reader thread still running %.0f s after the error; abandoning it", label, join_timeout_s)
        buffer.cleanup()
        if first is exc:
            raise
        raise first from None
    buffer.cleanup()

    s = buffer.stats
    if rows_written >= 0 and rows_written != s.rows_out:
        raise ValidationError(f"the writer reports {rows_written} rows but received {s.rows_out}", table=label)
    stats = TransferStats(
        label=label,
        rows=s.rows_out,
        bytes=s.bytes_out,
        batches=s.batches_out,
        rows_written=rows_written,
        spill_files=s.spill_files,
        spill_batches=s.spill_batches,
        spill_bytes=s.spill_bytes,
        high_water_bytes=s.high_water_bytes,
        budget_bytes=s.budget_bytes,
        read_seconds=timing["read_end"] - timing["read_start"],
        write_seconds=write_seconds,
        wall_seconds=time.monotonic() - started,
        peak_rss_bytes=peak_rss_bytes(),
        overlap=overlap,
    )
    log.info(
        "%s: %s rows, %s in %s batches in %.1f s (read %.1f s, write %.1f s, overlap %s); "
        "spilled %s files, %s batches, %s on disk; buffer high-water %s of budget %s; peak RSS %s",
        label,
        stats.rows,
        format_bytes(stats.bytes),
        stats.batches,
        stats.wall_seconds,
        stats.read_seconds,
        stats.write_seconds,
        "on" if overlap else "off",
        stats.spill_files,
        stats.spill_batches,
        format_bytes(stats.spill_bytes),
        format_bytes(stats.high_water_bytes),
        format_bytes(stats.budget_bytes),
        format_bytes(stats.peak_rss_bytes),
    )
    return stats
