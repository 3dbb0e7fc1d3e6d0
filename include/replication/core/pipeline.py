"""The copy pipeline: Source reader -> SpillingBuffer -> Target writer, for any pair of dialects.

``copy_table`` runs one copy unit (a whole table) in one target transaction, so a retry or a re-run
leaves exactly one copy of every row. With ``partition_as = tasks`` a table is instead
:func:`prepare_ranges` (once), :func:`copy_key_range` (one task per range, each its own
transaction) and :func:`finish_key_ranges` (keys, identity, count, swap). It never branches on the
dialect.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace

import pyarrow as pa

from include.replication.core.allocators import tune_allocators
from include.replication.core.catalog import TableSpec
from include.replication.core.config import CopySettings, MiB, default_batch_bytes
from include.replication.core.errors import ConfigurationError, ValidationError
from include.replication.core.keyranges import KeyRange, integer_key, split_key_range
from include.replication.core.metrics import current_rss_bytes, peak_rss_bytes, reset_peak_rss
from include.replication.core.protocols import Source, Target
from include.replication.core.spill import attempt_id, remove_earlier_attempts
from include.replication.core.transfer import TransferStats, transfer
from include.replication.core.typemap import arrow_schema

__all__ = ["CopyResult", "copy_table", "load_target", "prepare_ranges", "copy_key_range", "finish_key_ranges"]

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
        rss_growth_bytes: how far the process's RSS rose during the copy above its RSS when the
            copy began (bytes; drivers loaded, connections open): what the copy itself needs,
            to hold against the memory budget. Linux resets the peak at the start
            (:func:`core.metrics.reset_peak_rss`); elsewhere the peak since process start is
            used, so the figure is an upper bound. 0 when not measured.
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
    rss_growth_bytes: int = 0

    def as_dict(self) -> dict[str, object]:
        """Plain dict (XCom-serialisable)."""
        return asdict(self)


def copy_table(
    source: Source, target: Target, spec: TableSpec, settings: CopySettings, target_spec: TableSpec | None = None
) -> CopyResult:
    """Copy one table under its table lock, in the settings' load mode, so that a failure at any
    point leaves the target no worse than before:

    * ``swap`` (default): load a staging copy (every row through the SpillingBuffer, one
      transaction per unit with its count check), build its keys, align its identity, then swap
      it in with the live table in one short transaction. Until then readers see the previous
      replica, unchanged, with its grants and views.
    * ``truncate``: the existing table must have exactly the mapped columns; ``TRUNCATE``, load and
      count check in one transaction, its keys, grants and views kept (one stream: key ranges would
      commit separately).
    * ``drop``: load into the table the caller created (``target.prepare_table``), then build keys.

    Args:
        source: open source.
        target: open target (the live table's).
        spec: the table's catalog, read from ``source``.
        settings: load mode, memory budget, batch sizes, spill root, overlap, run id and attempt.
        target_spec: the same table with the target's names (``NamingOptions.target_spec``:
            template, lower case), or None for the source's names. Every target call gets it;
            the reader's batches are renamed to its column names (no copy).

    Returns:
        The copy's figures.

    Raises:
        ReplicationError: the first real error of the reader or the writer (the unit is rolled
            back, no reader thread and no spill directory are left behind); ``TargetError`` when
            another copy holds the table lock longer than ``settings.lock_wait_s``.
    """
    tune_allocators()
    tspec = target_spec or spec
    log.info(
        "copying %s%s (~%d rows) in load mode %s: memory budget %d MiB (buffer %d MiB + batches in flight), batches of "
        "%d KiB / %d rows, overlap %s, spill root %s",
        spec.qualified_name, f" to {target.schema}.{tspec.name}" if tspec.name != spec.name else "", spec.row_estimate,
        settings.load_mode, settings.memory_budget_bytes >> 20,
        settings.buffer_budget_bytes >> 20, settings.batch_bytes >> 10, settings.batch_rows,
        "on" if settings.overlap else "off", settings.spill_root,
    )
    started = time.monotonic()
    start_rss = current_rss_bytes()
    reset_peak_rss()
    remove_earlier_attempts(settings.spill_root, settings.label, settings.run_id, spec.name, settings.attempt)
    holder = f"replication {settings.label} run {settings.run_id} try {settings.attempt}"
    with target.lock_table(tspec, holder, settings.lock_wait_s):
        if settings.load_mode == "swap":
            with target.stage(tspec) as stage:
                try:
                    stage.prepare_table(tspec)
                    units = _load(source, stage, spec, tspec, settings, keep_keys=False)
                    stage.finish_table(tspec)
                    target.swap_in(tspec)
                except BaseException:
                    stage.discard(tspec)  # the live table was never touched; leave no staging copy behind
                    raise
        elif settings.load_mode == "truncate":
            target.check_table(tspec)
            units = _load(source, target, spec, tspec, replace(settings, parallel_ranges=1), keep_keys=True)
            target.finish_table(tspec, build_keys=False)
        else:
            units = _load(source, target, spec, tspec, settings, keep_keys=False)
            target.finish_table(tspec)
    result = _result(spec, units, started, start_rss)
    log.info(
        "copied %s (%s) in %d unit(s): %d rows, %d bytes, %d batches, %d spill files (%d bytes), high-water %d bytes, "
        "peak RSS %d bytes (%d bytes above the %d bytes at the start), %.2f s",
        spec.qualified_name, settings.load_mode, len(units), result.rows_written, result.bytes, result.batches,
        result.spill_files, result.spill_bytes, result.high_water_bytes, result.peak_rss_bytes,
        result.rss_growth_bytes, start_rss, result.seconds,
    )
    return result


def transfer_unit(
    reader: Iterator[pa.RecordBatch], target: Target, tspec: TableSpec, settings: CopySettings, *,
    schema: pa.Schema, label: str, spill_name: str, suffix: str = "", estimated_rows: int | None = None,
) -> TransferStats:
    """:func:`core.transfer.transfer` of ``reader`` into ``target.write_batches(tspec, ...)`` with the
    settings' buffer budget, spill root, overlap and progress callback, spilling under the attempt
    directory of ``spill_name`` + ``suffix``. The one place a copy unit (full, range, append window,
    merge stage) turns CopySettings into a transfer.

    Returns:
        The transfer's figures (rows, bytes, spill, seconds).

    Raises:
        The errors of ``transfer`` (the caller rolls its unit back).
    """
    return transfer(
        reader,
        lambda batches: target.write_batches(tspec, batches),
        schema=schema,
        budget_bytes=settings.buffer_budget_bytes,
        spill_root=settings.spill_root,
        label=label,
        attempt_id=attempt_id(settings.label, settings.run_id, spill_name, settings.attempt, suffix),
        overlap=settings.overlap,
        estimated_rows=estimated_rows,
        on_rows=settings.on_rows,
    )


def _result(spec: TableSpec, units: list[TransferStats], started: float, start_rss: int) -> CopyResult:
    """The figures of ``units`` (of one table), timed from ``started`` (``time.monotonic()``), the
    RSS growth measured from ``start_rss`` (bytes, taken with :func:`reset_peak_rss` at the start)."""
    rows = sum(u.rows for u in units)
    return CopyResult(
        table=spec.name,
        rows_read=rows,
        rows_written=sum(u.rows_written for u in units),
        bytes=sum(u.bytes for u in units),
        batches=sum(u.batches for u in units),
        spill_files=sum(u.spill_files for u in units),
        spill_bytes=sum(u.spill_bytes for u in units),
        high_water_bytes=sum(u.high_water_bytes for u in units),  # ranges run at once: their sum
        peak_rss_bytes=max(u.peak_rss_bytes for u in units),
        seconds=time.monotonic() - started,
        rss_growth_bytes=max(0, peak_rss_bytes() - start_rss),
    )


def load_target(target: Target, spec: TableSpec, load_mode: str) -> Target:
    """The target that holds the rows of a table loaded as range units: the staging copy
    (``target.stage``, on its own connection; close it) for ``swap``, else ``target`` itself."""
    return target.stage(spec) if load_mode == "swap" else target


def prepare_ranges(target: Target, spec: TableSpec, load_mode: str) -> None:
    """Before the range units of a table (``partition_as = tasks``): create the empty table they
    load, without keys: the staging copy for ``swap`` (dropped and re-created, so a plan retried or
    re-run starts clean); for ``drop`` the plan has created the live table already. The caller
    holds the table lock exclusively.

    Raises:
        ConfigurationError: a load mode that cannot be split (``truncate``).
        TargetError: DDL failed.
    """
    if load_mode == "drop":
        return
    if load_mode != "swap":
        raise ConfigurationError(f"load mode {load_mode} cannot be loaded in key-range units", table=spec.qualified_name)
    with target.stage(spec) as stage:
        stage.prepare_table(spec)


def copy_key_range(
    source: Source, target: Target, spec: TableSpec, settings: CopySettings, key_range: KeyRange,
    target_spec: TableSpec | None = None, *, unit: str,
) -> CopyResult:
    """One key range of a table as its own copy unit (``partition_as = tasks``), into ``target``
    (the :func:`load_target`, prepared by :func:`prepare_ranges`, without keys), in one transaction
    that first deletes exactly the range's rows (``lo <= key < hi``), then streams the range through
    a SpillingBuffer, checks the range's count and commits. A retry, or a second run of the same
    range, leaves exactly one copy of each of its rows; an interrupted one leaves none (rolled back).
    The caller holds the table lock (shared).

    Args:
        source: open source.
        target: the load target (staging copy or live table).
        spec: the table's catalog, read from ``source``.
        settings: memory budget, batch sizes, spill root, run id, attempt.
        key_range: the half-open range ``(lo, hi)``.
        target_spec: the table under the target's names, or None.
        unit: the unit's name (``Posts[1:425000)``): logs and spill directory names.

    Returns:
        The range's figures (``table`` is the table's name).

    Raises:
        ReplicationError: the first real error of the reader or the writer (the range is rolled back).
    """
    tune_allocators()
    tspec = target_spec or spec
    started = time.monotonic()
    start_rss = current_rss_bytes()
    reset_peak_rss()
    remove_earlier_attempts(settings.spill_root, settings.label, settings.run_id, unit, settings.attempt)
    stats = _copy_unit(source, target, spec, tspec, settings, key_range, unit, "", spill_name=unit)
    result = _result(spec, [stats], started, start_rss)
    log.info("copied %s: %d rows, %d bytes, %d batches, %d spill files, peak RSS %d bytes (%d above the start), %.2f s",
             unit, result.rows_written, result.bytes, result.batches, result.spill_files, result.peak_rss_bytes,
             result.rss_growth_bytes, result.seconds)
    return result


def finish_key_ranges(target: Target, spec: TableSpec, load_mode: str, expected_rows: int) -> int:
    """After every range unit of a table: check the loaded table holds ``expected_rows`` rows (the
    sum the units wrote), build its primary key and indexes, align its identity, and (``swap``)
    swap it in. The caller holds the table lock exclusively. A retry after a failure at any of
    these steps (before the swap commits) starts again: keys an earlier try built are dropped first.

    Args:
        target: the live table's target.
        spec: the table under the target's names.
        load_mode: ``swap`` or ``drop``.
        expected_rows: rows the range units wrote together.

    Returns:
        Rows of the finished table.

    Raises:
        ValidationError: the count differs (nothing is swapped; the staging copy stays for a retry).
        TargetError: building the keys (duplicates) or the swap failed.
    """
    loaded = load_target(target, spec, load_mode)
    try:
        count = loaded.count_rows(spec)
        if count != expected_rows:
            raise ValidationError(f"target holds {count} rows after the key-range units, they wrote {expected_rows}",
                                  table=spec.qualified_name)
        loaded.drop_keys(spec)  # built by an earlier try of this finish that failed later (at the swap)
        loaded.finish_table(spec)
        if load_mode == "swap":
            target.swap_in(spec)
    finally:
        if loaded is not target:
            loaded.close()
    return count


def _load(
    source: Source, target: Target, spec: TableSpec, tspec: TableSpec, settings: CopySettings, *, keep_keys: bool
) -> list[TransferStats]:
    """Every row of ``spec`` into ``target``'s table ``tspec``: one unit, or parallel key ranges
    whose total count is checked against the rows read."""
    bounds = _range_bounds(source, target, spec, settings)
    if bounds is None:
        return [_copy_unit(source, target, spec, tspec, settings, None, spec.name, "", keep_keys=keep_keys)]
    units = _copy_key_ranges(source, target, spec, tspec, settings, bounds)
    rows = sum(u.rows for u in units)
    if (total := target.count_rows(tspec)) != rows:
        raise ValidationError(f"target holds {total} rows after the key-range copy, read {rows}", table=spec.qualified_name)
    return units


def _renamed(reader: Iterator[pa.RecordBatch], schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    """The reader's batches with ``schema``'s (the target's) column names; closes the reader."""
    try:
        for batch in reader:
            yield pa.RecordBatch.from_arrays(batch.columns, schema=schema)
    finally:
        close = getattr(reader, "close", None)
        if callable(close):
            close()


def _copy_unit(
    source: Source, target: Target, spec: TableSpec, tspec: TableSpec, settings: CopySettings,
    key_range: KeyRange | None, label: str, suffix: str, *, keep_keys: bool = False, spill_name: str | None = None,
) -> TransferStats:
    """One copy unit in one target transaction: clear the unit's rows (the table, or exactly its
    key range), stream the rows through a SpillingBuffer, check the count, commit; roll back on
    any error (the first real one is raised)."""
    reader = source.read_batches(spec, batch_rows=settings.batch_rows, batch_bytes=settings.batch_bytes, key_range=key_range)
    schema = arrow_schema(tspec)
    if tspec.column_names != spec.column_names:
        reader = _renamed(reader, schema)
    target.begin_unit(tspec, key_range, keep_keys=keep_keys)
    try:
        stats = transfer_unit(
            reader, target, tspec, settings, schema=schema, label=label, spill_name=spill_name or spec.name,
            suffix=suffix, estimated_rows=(spec.row_estimate or None) if key_range is None else None,
        )
        target.commit_unit(tspec, stats.rows, key_range)
    except BaseException:
        target.rollback_unit()
        raise
    return stats


def _range_bounds(source: Source, target: Target, spec: TableSpec, settings: CopySettings) -> tuple[int, int] | None:
    """Key bounds to split on, or None for a single stream (one range wanted, a dialect without
    key ranges, no single integer primary key, or an empty table)."""
    if settings.parallel_ranges < 2 or integer_key(spec) is None:
        return None
    if not (source.dialect.key_ranges and target.dialect.key_ranges):
        log.info("%s: %s -> %s has no key-range support; copying as one stream", spec.qualified_name,
                 source.dialect.name, target.dialect.name)
        return None
    return source.key_bounds(spec)


def _copy_key_ranges(
    source: Source, target: Target, spec: TableSpec, tspec: TableSpec, settings: CopySettings, bounds: tuple[int, int]
) -> list[TransferStats]:
    """Copy ``spec`` as parallel primary-key ranges, each a :func:`_copy_unit` on its own target
    connection with an equal share of the memory budget. The table is emptied (and its keys
    dropped) first and committed, so the units do not wait on that lock. A failed range fails the
    copy (first error raised, after every range thread has ended); a retry starts again from the
    empty table.
    """
    ranges = split_key_range(bounds[0], bounds[1], settings.parallel_ranges)
    share = replace(settings, memory_budget_bytes=max(MiB, settings.memory_budget_bytes // len(ranges)))
    share = replace(share, batch_bytes=min(share.batch_bytes, default_batch_bytes(share.memory_budget_bytes)))
    log.info("%s: %d key ranges %s, %d MiB of budget each", spec.qualified_name, len(ranges), ranges,
             share.memory_budget_bytes >> 20)
    target.clear_table(tspec)
    results: list[TransferStats | None] = [None] * len(ranges)
    errors: list[BaseException] = []

    def run(index: int, key_range: KeyRange) -> None:
        try:
            with target.clone() as unit:
                label = f"{spec.name}[{key_range[0]}:{key_range[1]})"
                results[index] = _copy_unit(source, unit, spec, tspec, share, key_range, label, f"-r{index}")
        except BaseException as exc:  # noqa: BLE001 - re-raised by the calling thread
            errors.append(exc)

    threads = [
        threading.Thread(target=run, args=(i, r), name=f"range-{spec.name}-{i}", daemon=True)
        for i, r in enumerate(ranges)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return [r for r in results if r is not None]
