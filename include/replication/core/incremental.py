"""Sync modes per table: ``full`` (every row replaced, :func:`pipeline.copy_table`), ``append``
(only the rows whose integer primary key is above the target's high-water mark) or ``merge``
(the rows whose cursor column is at or past the mark minus a lag, upserted: :mod:`core.merge`).

``append`` suits insert-only tables (Votes, Badges, Comments, PostLinks). Its state is the
``replication_state`` row of the table in the target (:mod:`core.state`):

* no state yet (the first run), or a target table that is missing or empty (dropped since): a
  full load in the run's load mode, then the mark is set to the largest key the target holds;
* else one copy unit, in one target transaction: delete the target's rows above the mark (none,
  unless something else wrote there), stream the source's rows ``mark < key <= max`` through a
  SpillingBuffer, take the new mark (the largest key written), replace the state row, check the
  count and commit. A failure anywhere rolls back rows and mark together, so a retry starts from
  the same mark and ends with exactly one copy of every row.

Limits: updates and deletes of rows at or below the mark are not seen (use ``merge``); a row whose key is below the mark but committed after a run read past it (out-of-order
identity commits) is missed. A checksum validation (``validate=checksum``) reports both.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

from include.replication.core.catalog import TableSpec
from include.replication.core.config import CopySettings
from include.replication.core.ddl import column_names_sql
from include.replication.core.errors import ConfigurationError
from include.replication.core.keyranges import KeyRange, integer_key
from include.replication.core.metrics import current_rss_bytes, peak_rss_bytes, reset_peak_rss
from include.replication.core.pipeline import CopyResult, copy_table, transfer_unit
from include.replication.core.protocols import Source, Target
from include.replication.core.spill import remove_earlier_attempts
from include.replication.core.state import SyncState, ensure_state_table, read_state, state_upsert_sql
from include.replication.core.transfer import TransferStats
from include.replication.core.typemap import arrow_schema

__all__ = [
    "SyncMode",
    "SYNC_MODES",
    "DEFAULT_MERGE_LAG_S",
    "table_mode",
    "cursor_column",
    "merge_lag_seconds",
    "SyncResult",
    "first_load",
    "append_table",
]

log = logging.getLogger(__name__)

SyncMode = Literal["full", "append", "merge"]
"""How a table's rows reach the target: all of them (``full``), the new ones (``append``), or the
new and changed ones by a cursor column, upserted (``merge``)."""
SYNC_MODES: tuple[str, ...] = get_args(SyncMode)
DEFAULT_MERGE_LAG_S = 300.0
"""Default ``merge_lag_seconds``: a merge run re-reads the 5 minutes before the high-water mark, so a
row committed late with an earlier cursor value (a long transaction) is still seen."""


def table_mode(params: Mapping[str, Any] | None, entry: str) -> SyncMode:
    """The sync mode of one ``tables`` entry: ``table_modes[entry]`` (also by the bare table name),
    else the param ``mode``, else ``full``.

    Raises:
        ConfigurationError: a mode other than ``full``, ``append`` or ``merge``, or ``table_modes``
            not a mapping.
    """
    params = params or {}
    overrides = params.get("table_modes") or {}
    if not isinstance(overrides, Mapping):
        raise ConfigurationError(f"table_modes must map table names to modes, got {type(overrides).__name__}")
    bare = entry.partition(".")[2] or entry
    value = overrides.get(entry, overrides.get(bare, params.get("mode") or "full"))
    if value not in SYNC_MODES:
        raise ConfigurationError(f"mode must be one of {list(SYNC_MODES)}, got {value!r}", table=entry)
    return value


def cursor_column(params: Mapping[str, Any] | None, entry: str) -> str | None:
    """The ``merge`` cursor column of one ``tables`` entry: ``cursor_columns[entry]`` (also by the
    bare table name), or None when none is configured.

    Raises:
        ConfigurationError: ``cursor_columns`` not a mapping of names to column names.
    """
    columns = (params or {}).get("cursor_columns") or {}
    if not isinstance(columns, Mapping):
        raise ConfigurationError(f"cursor_columns must map table names to columns, got {type(columns).__name__}")
    bare = entry.partition(".")[2] or entry
    value = columns.get(entry, columns.get(bare))
    if value is not None and (not isinstance(value, str) or not value):
        raise ConfigurationError(f"cursor_columns: the cursor column must be a column name, got {value!r}", table=entry)
    return value


def merge_lag_seconds(params: Mapping[str, Any] | None) -> float:
    """The param ``merge_lag_seconds`` (seconds, >= 0; default :data:`DEFAULT_MERGE_LAG_S`).

    Raises:
        ConfigurationError: not a number, or negative.
    """
    raw = (params or {}).get("merge_lag_seconds")
    try:
        lag = DEFAULT_MERGE_LAG_S if raw is None or raw == "" else float(raw)
    except (TypeError, ValueError):
        raise ConfigurationError(f"merge_lag_seconds must be a number of seconds, got {raw!r}") from None
    if lag < 0:
        raise ConfigurationError(f"merge_lag_seconds must be >= 0, got {lag}")
    return lag


@dataclass(frozen=True)
class SyncResult:
    """What one table's sync did.

    Attributes:
        copy: the copy's figures (of the full load, or of the appended rows).
        mode: the table's sync mode.
        first_load: True when this run was the full load that set the mark.
        rows_inserted: rows the run inserted.
        high_water_mark_before: the mark before the run (None on a first load).
        high_water_mark_after: the mark the run left (None for ``full``).
        rows_updated: rows the run updated (``merge``: matched rows whose values differed).
        rows_deleted: rows the run deleted (None on a first load: replaced, not counted).
        deletes: what delete detection found (``merge`` with ``delete_mode`` report or apply: the
            count and the first keys deleted in the source), or None when it did not run.
    """

    copy: CopyResult
    mode: SyncMode
    first_load: bool
    rows_inserted: int
    high_water_mark_before: str | None
    high_water_mark_after: str | None
    rows_updated: int = 0
    rows_deleted: int | None = 0
    deletes: str | None = None

    def as_dict(self) -> dict[str, object]:
        """The copy's figures plus the sync's (XCom-serialisable)."""
        return {
            **self.copy.as_dict(),
            "mode": self.mode,
            "first_load": self.first_load,
            "rows_inserted": self.rows_inserted,
            "rows_updated": self.rows_updated,
            "rows_deleted": self.rows_deleted,
            "deletes": self.deletes,
            "high_water_mark_before": self.high_water_mark_before,
            "high_water_mark_after": self.high_water_mark_after,
        }


def _max_key(target: Target, spec: TableSpec, key: str, *, in_unit: bool = False) -> int | None:
    """The largest key of the target's table, or None when it is empty or missing."""
    if not in_unit and not target.execute(column_names_sql(target.schema, spec.name)):
        return None
    sql = f"SELECT max({target.dialect.quote(key)}) FROM {target.dialect.qualified(target.schema, spec.name)}"
    rows = target.execute_in_unit(sql) if in_unit else target.execute(sql)
    return None if not rows or rows[0][0] is None else int(str(rows[0][0]))


def first_load(
    source: Source, target: Target, spec: TableSpec, settings: CopySettings, *, name: str, mode: SyncMode, column: str,
    state: SyncState | None, mark: Callable[[], Any], fmt: Callable[[Any], str],
) -> SyncResult:
    """The first run of an incremental mode (no state yet, or an empty/missing target table): a full
    load (:func:`core.pipeline.copy_table`), then the state row with the mark it leaves.

    Args:
        name: the table's state key; mode: ``append`` or ``merge``; column: the key or cursor column.
        state: the state row read before (None = none), for the log line.
        mark: returns the loaded table's high-water value (None when empty); fmt: its text form.

    Returns:
        The result with ``full_load`` True, every row counted as inserted, the mark after.

    Raises:
        The errors of ``copy_table``; TargetError: writing the state failed (the rows are loaded,
        no state is left: the next run loads in full again).
    """
    log.info(
        "%s: %s mode, %s: full load that sets the high-water mark",
        spec.qualified_name, mode, "no state yet" if state is None else "the target table is empty or missing",
    )
    copied = copy_table(source, target, spec, settings)
    value = mark()
    after = None if value is None else fmt(value)
    for sql in state_upsert_sql(target, SyncState(name, mode, column, after, settings.run_id)):
        target.execute(sql)
    return SyncResult(copied, mode, True, copied.rows_written, None, after, rows_deleted=None)


def append_table(
    source: Source, target: Target, spec: TableSpec, settings: CopySettings, *, table: str | None = None
) -> SyncResult:
    """Sync one table in ``append`` mode (see the module doc).

    Args:
        source: open source.
        target: open target (the table's schema; the state row lives there too).
        spec: the table's catalog, read from ``source``.
        settings: memory budget, batch sizes, spill root, load mode of a first load, run id, attempt.
        table: the ``tables`` entry the state row is keyed by (default ``spec.name``).

    Returns:
        The sync's figures.

    Raises:
        ConfigurationError: the table has no single integer primary key.
        ReplicationError: the first real error of the reader or the writer (rows and mark rolled
            back together).
    """
    name = table or spec.name
    key = integer_key(spec)
    if key is None:
        raise ConfigurationError("append mode needs a single integer primary key", table=spec.qualified_name)
    ensure_state_table(target)
    state = read_state(target, name)
    in_target = _max_key(target, spec, key)
    if state is None or state.high_water_mark is None or in_target is None:
        return first_load(source, target, spec, settings, name=name, mode="append", column=key, state=state,
                          mark=lambda: _max_key(target, spec, key), fmt=str)

    before = int(state.high_water_mark)
    started = time.monotonic()
    start_rss = current_rss_bytes()
    reset_peak_rss()
    remove_earlier_attempts(settings.spill_root, settings.label, settings.run_id, spec.name, settings.attempt)
    holder = f"replication {settings.label} run {settings.run_id} try {settings.attempt}"
    with target.lock_table(spec, holder, settings.lock_wait_s):
        bounds = source.key_bounds(spec)
        if bounds is None or bounds[1] <= before:
            stats, last = None, before
            for sql in state_upsert_sql(target, SyncState(name, "append", key, str(before), settings.run_id)):
                target.execute(sql)
        else:
            stats, mark = _append_unit(source, target, spec, settings, (before + 1, bounds[1] + 1), name, key)
            last = before if mark is None else mark
            target.finish_table(spec, build_keys=False)  # identity aligned past the new rows
    rows = stats.rows if stats else 0
    result = CopyResult(
        table=spec.name,
        rows_read=rows,
        rows_written=stats.rows_written if stats else 0,
        bytes=stats.bytes if stats else 0,
        batches=stats.batches if stats else 0,
        spill_files=stats.spill_files if stats else 0,
        spill_bytes=stats.spill_bytes if stats else 0,
        high_water_bytes=stats.high_water_bytes if stats else 0,
        peak_rss_bytes=stats.peak_rss_bytes if stats else 0,
        seconds=time.monotonic() - started,
        rss_growth_bytes=max(0, peak_rss_bytes() - start_rss),
    )
    log.info(
        "appended %s: %d rows above key %d, high-water mark %d -> %d, %.2f s",
        spec.qualified_name,
        rows,
        before,
        before,
        last,
        result.seconds,
    )
    return SyncResult(result, "append", False, rows, str(before), str(last))


def _append_unit(
    source: Source,
    target: Target,
    spec: TableSpec,
    settings: CopySettings,
    key_range: KeyRange,
    name: str,
    key: str,
) -> tuple[TransferStats, int | None]:
    """The rows of ``key_range`` into the target and the new mark into the state row, in one unit;
    rolled back together on any error. Returns the transfer's figures and the largest key written."""
    reader = source.read_batches(
        spec, batch_rows=settings.batch_rows, batch_bytes=settings.batch_bytes, key_range=key_range
    )
    target.begin_unit(spec, key_range, keep_keys=True)
    try:
        stats = transfer_unit(
            reader, target, spec, settings, schema=arrow_schema(spec),
            label=f"{spec.name}[{key_range[0]}:{key_range[1]})", spill_name=spec.name, suffix="-append",
        )
        mark = _max_key(target, spec, key, in_unit=True)
        state = SyncState(name, "append", key, str(mark if mark is not None else key_range[0] - 1), settings.run_id)
        for sql in state_upsert_sql(target, state):
            target.execute_in_unit(sql)
        target.commit_unit(spec, stats.rows, key_range)
    except BaseException:
        target.rollback_unit()
        raise
    return stats, mark
