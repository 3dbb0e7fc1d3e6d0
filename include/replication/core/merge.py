"""The ``merge`` sync mode: rows new or changed since the high-water mark of a cursor column,
staged, then upserted into the live table in one transaction together with the new mark.

Per table (the param ``cursor_columns`` names its cursor, e.g. ``{"Posts": "LastActivityDate"}``;
an integer or timestamp column the source moves forward on every change):

* no state yet (the first run), or a target table that is missing or empty: a full load in the
  run's load mode; the mark becomes the largest cursor value the target then holds;
* else, under the table lock: the source's rows with ``cursor >= mark - lag`` (``merge_lag_seconds``,
  default 300 s, re-read so that a row committed late with an earlier cursor value is still seen;
  an integer cursor is read from the mark itself) stream through a SpillingBuffer into the
  staging table ``<table>__merge`` (created, without keys, for the run; committed on its own);
  then :meth:`Target.merge_from_stage` upserts it into the live table by primary key, updating a
  matched row only when some column differs, and writes the state row with the new mark (the
  larger of the old mark and the staged rows' largest cursor value), all in one transaction. The
  staging table is dropped on every path.

A re-run of the same window therefore changes nothing (rows updated 0); a failure anywhere before
the commit leaves live rows and mark as they were, and its retry stages the same window again.

Deleted rows are not in any window: with ``delete_mode`` ``report`` or ``apply`` (:mod:`core.deletes`)
the run also merge-joins the source's and the target's key streams (bounded memory) and reports
the keys the source no longer has, or deletes them in the same transaction as the upsert.

Limits: a change that does not move the cursor is not seen; the cursor's values must be comparable in the source and the target
(the same column, copied).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time
from collections.abc import Iterator

import pyarrow as pa

from include.replication.core.catalog import TableSpec
from include.replication.core.config import CopySettings
from include.replication.core.ddl import column_names_sql
from include.replication.core.deletes import SAMPLE_KEYS, DeleteMode, key_batches, key_spec, missing_keys
from include.replication.core.errors import ConfigurationError
from include.replication.core.incremental import SyncResult, first_load
from include.replication.core.keyranges import integer_key
from include.replication.core.pipeline import CopyResult, transfer_unit
from include.replication.core.protocols import Source, Target
from include.replication.core.rowfilter import CursorValue, RowFilter, format_cursor, parse_cursor
from include.replication.core.spill import remove_earlier_attempts
from include.replication.core.state import SyncState, ensure_state_table, read_state, state_upsert_sql
from include.replication.core.transfer import TransferStats
from include.replication.core.typemap import arrow_schema

__all__ = ["MERGE_SUFFIX", "DELETES_SUFFIX", "check_cursor", "stage_spec", "window_start", "merge_table"]

log = logging.getLogger(__name__)

MERGE_SUFFIX = "__merge"
"""Suffix of the staging table a ``merge`` run loads before it upserts (``Posts__merge``)."""
DELETES_SUFFIX = "__merge_del"
"""Suffix of the staging table of the keys a ``delete_mode`` apply run deletes (``Posts__merge_del``)."""


def check_cursor(
    spec: TableSpec, cursor: str | None, *, table: str | None = None, deletes: DeleteMode = "ignore"
) -> str:
    """The cursor column of a ``merge`` table, checked against the catalog.

    Raises:
        ConfigurationError: no cursor configured (names the table and the param), no primary key,
            or the column is missing or neither an integer nor a timestamp; ``deletes`` other than
            ``ignore`` on a table without a single integer primary key.
    """
    name = table or spec.qualified_name
    if deletes != "ignore" and spec.primary_key and integer_key(spec) is None:
        raise ConfigurationError(f"delete_mode {deletes} needs a single integer primary key", table=name)
    if cursor is None:
        raise ConfigurationError(
            f'merge mode needs a cursor column for {name}: set cursor_columns, e.g. {{"{spec.name}": "LastActivityDate"}}',
            table=name,
        )
    if not spec.primary_key:
        raise ConfigurationError("merge mode needs a primary key to match rows on", table=name)
    if cursor not in spec.column_names:
        raise ConfigurationError(f"the cursor column {cursor!r} is not a column of the table", table=name, column=cursor)
    kind = arrow_schema(spec).field(cursor).type
    if not (pa.types.is_integer(kind) or pa.types.is_timestamp(kind)):
        raise ConfigurationError(
            f"the cursor column {cursor!r} must be an integer or a timestamp, not {kind}", table=name, column=cursor
        )
    return cursor


def stage_spec(spec: TableSpec) -> TableSpec:
    """The staging table of a merge: ``<table>__merge``, the same columns as plain ones (no
    identity, no generated expressions), no keys, indexes or foreign keys."""
    columns = tuple(dataclasses.replace(c, identity=False, generated=None) for c in spec.columns)
    return dataclasses.replace(
        spec, name=spec.name + MERGE_SUFFIX, columns=columns, identity=None, indexes=(), foreign_keys=(),
        primary_key_name=None,
    )


def window_start(mark: CursorValue, lag_s: float) -> CursorValue:
    """Where a merge run starts reading: ``mark - lag_s`` seconds for a timestamp, the mark itself
    for an integer cursor."""
    return mark if isinstance(mark, int) else mark - dt.timedelta(seconds=lag_s)


def _max_cursor(target: Target, spec: TableSpec, cursor: str) -> CursorValue | None:
    """The largest cursor value of the target's ``spec`` table; None when empty or missing."""
    if not target.execute(column_names_sql(target.schema, spec.name)):
        return None
    rows = target.execute(
        f"SELECT max({target.dialect.quote(cursor)}) FROM {target.dialect.qualified(target.schema, spec.name)}"
    )
    value = rows[0][0] if rows else None
    if value is None:
        return None
    if isinstance(value, dt.datetime | int) and not isinstance(value, bool):
        return value
    return parse_cursor(str(value))


def _later(a: CursorValue, b: CursorValue | None) -> CursorValue:
    if b is None:
        return a
    try:
        return max(a, b)
    except TypeError:  # naive against aware: the staged value, as the target holds it, wins
        return b


def merge_table(
    source: Source,
    target: Target,
    spec: TableSpec,
    settings: CopySettings,
    *,
    cursor: str,
    lag_s: float,
    table: str | None = None,
    deletes: DeleteMode = "ignore",
    target_reader: Source | None = None,
) -> SyncResult:
    """Sync one table in ``merge`` mode (see the module doc).

    Args:
        source: open source.
        target: open target (the table's schema; state and staging table live there too).
        spec: the table's catalog, read from ``source``.
        settings: memory budget, batch sizes, spill root, a first load's load mode, run id, attempt.
        cursor: the cursor column (checked by :func:`check_cursor`).
        lag_s: seconds re-read before the mark (timestamp cursors), >= 0.
        table: the ``tables`` entry the state row is keyed by (default ``spec.name``).
        deletes: ``delete_mode``: ``ignore``, ``report`` or ``apply`` (:mod:`core.deletes`).
        target_reader: the target database opened as a Source in ``target``'s schema (reads the
            target's keys); required unless ``deletes`` is ``ignore``.

    Returns:
        The sync's figures: ``rows_inserted`` and ``rows_updated`` of the upsert; ``copy.rows_read``
        the rows of the window, ``copy.rows_written`` the rows inserted or updated.

    Raises:
        ConfigurationError: a bad cursor column.
        ReplicationError: the first real error of the reader, the staging load or the upsert
            (live rows and mark rolled back together).
    """
    name = table or spec.name
    check_cursor(spec, cursor, table=name, deletes=deletes)
    if deletes != "ignore" and target_reader is None:
        raise ConfigurationError(f"delete_mode {deletes} needs a reader of the target", table=name)
    ensure_state_table(target)
    state = read_state(target, name)
    in_target = _max_cursor(target, spec, cursor)
    if state is None or state.high_water_mark is None or in_target is None:
        return first_load(source, target, spec, settings, name=name, mode="merge", column=cursor, state=state,
                          mark=lambda: _max_cursor(target, spec, cursor), fmt=format_cursor)

    before = parse_cursor(state.high_water_mark)
    window = RowFilter(cursor, window_start(before, lag_s))
    started = time.monotonic()
    remove_earlier_attempts(settings.spill_root, settings.label, settings.run_id, spec.name, settings.attempt)
    holder = f"replication {settings.label} run {settings.run_id} try {settings.attempt}"
    stage = stage_spec(spec)
    gone = key_spec(spec, spec.name + DELETES_SUFFIX) if deletes == "apply" else None
    found: str | None = None
    with target.lock_table(spec, holder, settings.lock_wait_s):
        try:
            stats = _stage_window(source, target, spec, stage, settings, window)
            staged_s = time.monotonic() - started
            if deletes != "ignore" and target_reader is not None:
                found = _find_deletes(source, target_reader, target, spec, settings, gone)
            found_s = time.monotonic() - started
            last = _later(before, _max_cursor(target, stage, cursor))
            new_state = SyncState(name, "merge", cursor, format_cursor(last), settings.run_id)
            inserted, updated, deleted = target.merge_from_stage(
                spec, stage, then=state_upsert_sql(target, new_state), deletes=gone
            )
        finally:
            target.discard(stage)
            if gone is not None:
                target.discard(gone)
        merged_s = time.monotonic() - started  # the identity is aligned inside the merge's transaction
    result = CopyResult(
        table=spec.name,
        rows_read=stats.rows,
        rows_written=inserted + updated,
        bytes=stats.bytes,
        batches=stats.batches,
        spill_files=stats.spill_files,
        spill_bytes=stats.spill_bytes,
        high_water_bytes=stats.high_water_bytes,
        peak_rss_bytes=stats.peak_rss_bytes,
        seconds=time.monotonic() - started,
    )
    log.info(
        "merged %s: %d rows read (%s), %d inserted, %d updated, %d deleted, high-water mark %s -> %s, %.2f s "
        "(staged at %.2f s, deletes found at %.2f s, merged at %.2f s)",
        spec.qualified_name,
        stats.rows,
        window.describe(),
        inserted,
        updated,
        deleted,
        format_cursor(before),
        format_cursor(last),
        result.seconds,
        staged_s,
        found_s,
        merged_s,
    )
    return SyncResult(
        result, "merge", False, inserted, format_cursor(before), format_cursor(last), rows_updated=updated,
        rows_deleted=deleted, deletes=found,
    )


def _stage_window(
    source: Source, target: Target, spec: TableSpec, stage: TableSpec, settings: CopySettings, window: RowFilter
) -> TransferStats:
    """The source's rows of ``window`` into a fresh staging table, committed (a scratch table: the
    live table and the state are untouched). Returns the transfer's figures."""
    target.prepare_table(stage)
    reader = source.read_batches(
        spec, batch_rows=settings.batch_rows, batch_bytes=settings.batch_bytes, row_filter=window
    )
    target.begin_unit(stage, keep_keys=True)
    try:
        stats = transfer_unit(
            reader, target, stage, settings, schema=arrow_schema(spec),
            label=f"{spec.name}[{window.describe()}]", spill_name=spec.name, suffix="-merge",
        )
        target.commit_unit(stage, stats.rows)
    except BaseException:
        target.rollback_unit()
        raise
    return stats


def _find_deletes(
    source: Source, target_reader: Source, target: Target, spec: TableSpec, settings: CopySettings,
    gone: TableSpec | None,
) -> str:
    """Merge-join the source's and the target's key streams (:func:`deletes.missing_keys`); with
    ``gone`` (``delete_mode`` apply) stage the missing keys in it, committed. Returns the finding
    for the log and the audit: ``N keys deleted in the source: k1, k2, ...`` (first
    :data:`SAMPLE_KEYS`)."""
    key = integer_key(spec)
    if key is None:  # check_cursor refused it already
        raise ConfigurationError("delete detection needs a single integer primary key", table=spec.qualified_name)
    keys = key_spec(spec)
    rows, size = settings.batch_rows, settings.batch_bytes
    there = key_spec(target_reader.describe(spec.name, target.schema))
    arrays = missing_keys(
        source.read_batches(keys, batch_rows=rows, batch_bytes=size),
        target_reader.read_batches(there, batch_rows=rows, batch_bytes=size),
        key,
    )
    count, sample = 0, list[int]()

    def counted() -> Iterator[pa.RecordBatch]:
        nonlocal count
        for batch in key_batches(arrays, key, arrow_schema(keys).field(key).type):
            count += batch.num_rows
            if len(sample) < SAMPLE_KEYS:
                sample.extend(batch.column(0).to_pylist()[: SAMPLE_KEYS - len(sample)])
            yield batch

    if gone is None:
        for _ in counted():
            pass
    else:
        target.prepare_table(gone)
        target.begin_unit(gone, keep_keys=True)
        try:
            written = target.write_batches(gone, counted())
            target.commit_unit(gone, written)
        except BaseException:
            target.rollback_unit()
            raise
    finding = f"{count} keys deleted in the source" + (f": {', '.join(str(k) for k in sample)}" if sample else "")
    if count > len(sample):
        finding += ", ..."
    finding += "" if gone is not None else " (delete_mode report: kept in the target)"
    log.info("%s: %s", spec.qualified_name, finding)
    return finding
