"""The steps of a replication run, on endpoints: plan (or dry-run), copy one table, foreign keys,
validate, summarise, sweep; with ``partition_as = tasks`` the plan is :func:`plan_units` and a
large table is copied as :func:`copy_range` units followed by one :func:`finish_ranges`. The Airflow tasks (``airflow/tasks.py``) and the command line
(``cli.py``) both call these functions and nothing else, so a DAG run and a shell run do the same.

Every step takes the run's options as a mapping under the DAG params' names (``tables``,
``exclude``, ``target_case``, ``target_table_template``, ``schema_map``, ``load_mode``,
``memory_budget_mib``, ...; defaults in :mod:`core.config`), validated once by
:class:`core.naming.NamingOptions` and :class:`core.config.CopySettings`. Each step opens what it
needs, closes it on every path, and raises :class:`core.errors.ReplicationError` subclasses; the
caller decides what a permanent error means (no retry in Airflow, exit code 2 in the shell).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from include.replication.core.audit import (
    AUDIT_SPEC,
    AuditRecord,
    ensure_audit_table,
    record_validation,
    source_checksums,
    write_audit,
)
from include.replication.core.catalog import TableSpec
from include.replication.core.checksum import ChecksumMismatch, DigestingSource, checksum_tables
from include.replication.core.claims import check_claim, claim_table, release_claim
from include.replication.core.config import CopySettings, RowsCallback
from include.replication.core.ddl import STAGE_SUFFIX, build_keys_sql, create_table_sql, foreign_key_sql
from include.replication.core.deletes import delete_mode
from include.replication.core.endpoint import Endpoint
from include.replication.core.errors import ConfigurationError, ReplicationError, ValidationError
from include.replication.core.incremental import SyncResult, append_table, cursor_column, merge_lag_seconds, table_mode
from include.replication.core.keyranges import integer_key
from include.replication.core.merge import check_cursor, merge_table
from include.replication.core.naming import NamingOptions, TableRef, resolve_tables
from include.replication.core.partition import (
    RANGE_LOAD_MODES,
    parse_unit,
    partition_as,
    partition_min_rows,
    range_count,
    table_units,
)
from include.replication.core.pipeline import (
    CopyResult,
    copy_key_range,
    copy_table,
    finish_key_ranges,
    load_target,
    prepare_ranges,
)
from include.replication.core.protocols import Source, Target
from include.replication.core.rowhash import Digest
from include.replication.core.spill import sweep_run
from include.replication.core.validate import (
    CountRow,
    compare_counts,
    format_count_table,
    raise_if_counts_differ,
    validate_mode,
)
from include.replication.dialects.base import dialect
from include.replication.dialects.registry import open_source, open_target

__all__ = [
    "PARAM_OPTIONS",
    "TablePlan",
    "DryRun",
    "endpoint_with_params",
    "opened",
    "prepare_run",
    "resolved_tables",
    "plan_tables",
    "dry_run",
    "copy_one_table",
    "plan_units",
    "copy_unit",
    "copy_range",
    "finish_ranges",
    "add_foreign_keys",
    "validate_tables",
    "summarise",
    "sweep",
]

log = logging.getLogger(__name__)

PARAM_OPTIONS = {"sqlserver_write_method": "write_method"}
"""Run option -> the connection option it sets on every endpoint whose dialect takes that option."""


def endpoint_with_params(endpoint: Endpoint, params: Mapping[str, Any] | None = None) -> Endpoint:
    """``endpoint`` with the run options that are connection options of its dialect applied by
    name (``sqlserver_write_method`` -> ``write_method`` for SQL Server); others untouched."""
    chosen = {
        name: str(params[key])
        for key, name in PARAM_OPTIONS.items()
        if params and params.get(key) and name in dialect(endpoint.dialect).option_names
    }
    return dataclasses.replace(endpoint, options={**endpoint.options, **chosen}) if chosen else endpoint


@contextlib.contextmanager
def opened(source_ep: Endpoint, target_ep: Endpoint) -> Iterator[tuple[Source, Target]]:
    """Open the source, then the target; close both on every path (target first)."""
    source = open_source(source_ep)
    try:
        target = open_target(target_ep)
        try:
            yield source, target
        finally:
            target.close()
    finally:
        source.close()


@contextlib.contextmanager
def _closing_clone(tgt: Target, where: Target) -> Iterator[Target]:
    """``where``, closed at the end when it is a clone of ``tgt``."""
    try:
        yield where
    finally:
        if where is not tgt:
            where.close()


def _spec(src: Source, entry: str, params: Mapping[str, Any] | None) -> TableSpec:
    """The catalog of a ``tables`` entry, with the run's ``generated_columns`` choice applied."""
    ref = TableRef.parse(entry)
    spec = src.describe(ref.name, ref.schema)
    return spec.as_plain() if (params or {}).get("generated_columns") == "plain" else spec


def _where(tgt: Target, naming: NamingOptions, entry: str) -> Target:
    """The target writing ``entry``: ``tgt``, or a clone on the entry's target schema."""
    schema = naming.target_schema(entry)
    return tgt.clone(schema=schema) if schema is not None and schema != tgt.schema else tgt


def _mapped(
    src: Source, tgt: Target, params: Mapping[str, Any] | None
) -> tuple[NamingOptions, dict[str, tuple[TableSpec, TableSpec]]]:
    """Resolve the run's tables and map each one's DDL (no target is touched).

    Returns:
        The naming options and, per entry, ``(source spec, target spec)``.

    Raises:
        PatternError: a pattern matches nothing. ConfigurationError: a table does not exist, or
        two tables get the same target name. UnsupportedTypeError: the target cannot hold a column.
    """
    naming = NamingOptions.from_params(params)
    entries = resolve_tables(naming.tables, naming.exclude, src.list_tables)
    mapped: dict[str, tuple[TableSpec, TableSpec]] = {}
    owners: dict[tuple[str, str], str] = {}
    for entry in entries:
        spec = _spec(src, entry, params)
        tspec = naming.target_spec(spec, src.dialect.quote)
        where = (naming.target_schema(entry) or tgt.schema, tspec.name)
        if where in owners:
            raise ConfigurationError(
                f"{owners[where]} and {entry} would both be written to {where[0]}.{where[1]}; "
                "change target_table_template or target_case",
                table=spec.qualified_name,
            )
        owners[where] = entry
        create_table_sql(tspec, tgt.dialect, where[0], source=src.dialect)  # raises before anything is touched
        _check_sync_options(entry, spec, tspec, params)
        mapped[entry] = (spec, tspec)
    return naming, mapped


def _renamed(spec: TableSpec, tspec: TableSpec) -> bool:
    """True when the naming options give the table or a column another name in the target."""
    return tspec.name != spec.name or [c.name for c in tspec.columns] != [c.name for c in spec.columns]


def _check_sync_options(entry: str, spec: TableSpec, tspec: TableSpec, params: Mapping[str, Any] | None) -> None:
    """Fail before anything is touched on a sync mode or validation the table cannot take.

    Raises:
        ConfigurationError: an unknown ``mode`` / ``table_modes`` / ``validate`` value; ``append``
            on a table without a single integer primary key; ``merge`` without a valid cursor
            column (``cursor_columns``) or primary key, or a bad ``merge_lag_seconds``; ``append``,
            ``merge`` or ``validate=checksum`` together with naming options that rename the table or its columns (the high-water
            mark and the checksum read the target under the source's names; not supported yet).
    """
    mode = table_mode(params, entry)
    check = validate_mode(params)
    if mode == "append" and integer_key(spec) is None:
        raise ConfigurationError("append mode needs a single integer primary key", table=entry)
    if mode == "merge":
        check_cursor(spec, cursor_column(params, entry), table=entry, deletes=delete_mode(params))
        merge_lag_seconds(params)
    if _renamed(spec, tspec) and (mode != "full" or check == "checksum"):
        what = f"mode {mode}" if mode != "full" else "validate=checksum"
        raise ConfigurationError(
            f"{what} is not supported together with target_case/target_table_template that rename the table "
            f"or its columns ({spec.name} -> {tspec.name}); keep target_case=preserve and no template for this run",
            table=entry,
        )


def prepare_run(source: Endpoint, target: Endpoint, params: Mapping[str, Any] | None = None) -> list[tuple[str, int]]:
    """Resolve the run's tables (patterns, ``exclude``), read every table's catalog and map its DDL
    to the target under the target names, failing now, before any table is touched, on a type or
    generated column the target cannot hold exactly; create the audit table. Only the ``drop``
    load mode drops and re-creates the target tables here; ``swap`` and ``truncate`` leave them as
    they are until each copy has its new rows ready.

    Args:
        source: source endpoint.
        target: target endpoint.
        params: run options (``tables``, ``exclude``, ``target_case``, ``target_table_template``,
            ``schema_map``, ``load_mode``, ``generated_columns``).

    Returns:
        ``(entry, row estimate)`` per table, largest estimate first (the long copies start first).

    Raises:
        PatternError: a ``tables`` pattern matches no table (names the pattern).
        ConfigurationError: a named table does not exist; two tables map to one target name.
        UnsupportedTypeError: a column type is not in the type map, or the target cannot hold it.
    """
    with opened(source, endpoint_with_params(target, params)) as (src, tgt):
        naming, mapped = _mapped(src, tgt, params)
        if (params or {}).get("load_mode") == "drop":
            for entry, (_, tspec) in mapped.items():
                with _closing_clone(tgt, _where(tgt, naming, entry)) as where:
                    where.prepare_table(tspec)
        ensure_audit_table(tgt)
        ordered = sorted(mapped, key=lambda e: (-mapped[e][0].row_estimate, e))
        log.info(
            "planned %d tables: %s",
            len(ordered),
            ", ".join(
                f"{e} (~{mapped[e][0].row_estimate:,} rows)"
                + (f" -> {mapped[e][1].name}" if mapped[e][1].name != mapped[e][0].name else "")
                for e in ordered
            ),
        )
        return [(e, mapped[e][0].row_estimate) for e in ordered]


def resolved_tables(source: Endpoint, params: Mapping[str, Any] | None = None) -> list[str]:
    """The run's ``tables`` entries (patterns resolved, ``exclude`` applied) from the source
    catalog alone; the target is not opened.

    Raises:
        PatternError: a pattern matches no table.
    """
    naming = NamingOptions.from_params(params)
    with open_source(source) as src:
        return resolve_tables(naming.tables, naming.exclude, src.list_tables)


def plan_tables(source: Endpoint, target: Endpoint, params: Mapping[str, Any] | None = None) -> list[str]:
    """:func:`prepare_run`'s entries only (the plan task's XCom: ``list[str]``)."""
    return [entry for entry, _ in prepare_run(source, target, params)]


@dataclass(frozen=True)
class TablePlan:
    """What a run would do to one table (the dry run, ``plan_only``).

    Attributes:
        entry: the ``tables`` entry (``Posts``, ``dbo.Posts``).
        source_table: ``schema.table`` in the source.
        target_table: ``schema.table`` in the target.
        row_estimate: the source catalog's row estimate (rows; 0 when unknown).
        load_mode: ``swap``, ``truncate`` or ``drop``.
        existing_rows: exact rows of the existing target table, or None when there is none.
        action: what the copy would do to the target, in words.
        source_ddl: the source table's DDL, rendered from its catalog in the source's dialect.
        target_ddl: the statements a copy would run to create the target table, its keys and
            the foreign keys between the run's tables.
    """

    entry: str
    source_table: str
    target_table: str
    row_estimate: int
    load_mode: str
    existing_rows: int | None
    action: str
    source_ddl: tuple[str, ...]
    target_ddl: tuple[str, ...]

    def as_dict(self) -> dict[str, object]:
        """Plain dict (XCom-serialisable)."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class DryRun:
    """The whole dry run.

    Attributes:
        source: the source, without password (``Endpoint.describe``).
        target: the target, without password.
        tables: one :class:`TablePlan` per table, largest row estimate first.
        audit_rows: rows of the existing ``replication_audit``, or None when a run would create it.
    """

    source: str
    target: str
    tables: tuple[TablePlan, ...]
    audit_rows: int | None

    def format(self) -> str:
        """The report: per table a header (source -> target, estimate, load mode), the action,
        the source DDL and the target DDL; then the audit line."""
        count = f"{len(self.tables)} table{'' if len(self.tables) == 1 else 's'}"
        lines = [
            f"plan: {count} from {self.source} to {self.target} (dry run: nothing is changed)",
            "",
        ]
        for p in self.tables:
            lines += [
                f"== {p.source_table} -> {p.target_table}  (~{p.row_estimate:,} rows, load mode {p.load_mode})",
                f"action: {p.action}",
                "-- source DDL",
                *(s + ";" for s in p.source_ddl),
                "-- target DDL",
                *(s + ";" for s in p.target_ddl),
                "",
            ]
        audit = (
            f"append one row per table to replication_audit ({self.audit_rows:,} rows now)"
            if self.audit_rows is not None
            else "create replication_audit and write one row per table"
        )
        lines.append(f"audit: {audit}")
        return "\n".join(lines)


def _action(where: Target, tspec: TableSpec, load_mode: str, existing: int | None) -> str:
    """What a copy in ``load_mode`` would do to the target table, in words (reads only)."""
    name = f"{where.schema}.{tspec.name}"
    if load_mode == "swap":
        if existing is None:
            return f"create {name}: load {name}{STAGE_SUFFIX}, build its keys, rename it to {name}"
        return (
            f"swap-replace the existing {name} ({existing:,} rows): load {name}{STAGE_SUFFIX}, build its keys, "
            "check its count, swap it in (views, grants and other tables' foreign keys kept), drop the old copy"
        )
    if load_mode == "truncate":
        if existing is None:
            return f"FAIL: load_mode truncate needs {name} to exist; use swap or drop"
        try:
            where.check_table(tspec)
        except ConfigurationError as exc:
            return f"FAIL: {exc}"
        return (
            f"truncate the existing {name} ({existing:,} rows) and load into it in one transaction "
            "(its DDL, keys, grants and views kept)"
        )
    if existing is None:
        return f"create {name}"
    return f"drop the existing {name} ({existing:,} rows) and re-create it empty at plan time, then load it"


def dry_run(source: Endpoint, target: Endpoint, params: Mapping[str, Any] | None = None) -> DryRun:
    """Read both catalogs and say, per table, what a run with ``params`` would do, touching
    nothing: no table, staging table, audit row or schema is created, changed or dropped (the
    target is only read; ``truncate``'s column check creates its probe table inside a transaction
    that is rolled back). A SQL Server target whose database does not exist yet is the exception:
    opening it creates the database.

    Returns:
        The :class:`DryRun` (``format()`` is the printed report).

    Raises:
        The same errors as :func:`prepare_run` (a bad pattern, a missing table, a type the target
        cannot hold): what would fail the real plan fails the dry run.
    """
    params = params or {}
    load_mode = str(params.get("load_mode") or "swap")
    fks_on = params.get("foreign_keys", True) is not False
    with opened(source, endpoint_with_params(target, params)) as (src, tgt):
        naming, mapped = _mapped(src, tgt, params)
        names = {TableRef.parse(e).name for e in mapped}
        plans = []
        for entry in sorted(mapped, key=lambda e: (-mapped[e][0].row_estimate, e)):
            spec, tspec = mapped[entry]
            with _closing_clone(tgt, _where(tgt, naming, entry)) as where:
                try:
                    source_ddl = [
                        create_table_sql(spec, src.dialect, spec.schema, source=src.dialect),
                        *build_keys_sql(spec, src.dialect, spec.schema),
                    ]
                except ReplicationError as exc:
                    source_ddl = [f"-- not rendered in {src.dialect.name}: {exc}"]
                target_ddl = [
                    create_table_sql(tspec, tgt.dialect, where.schema, source=src.dialect),
                    *build_keys_sql(tspec, tgt.dialect, where.schema),
                ]
                if fks_on:
                    target_ddl += [
                        foreign_key_sql(tspec, tfk, tgt.dialect, where.schema)
                        for fk, tfk in zip(spec.foreign_keys, tspec.foreign_keys, strict=True)
                        if fk.ref_table in names
                    ]
                existing = where.existing_rows(tspec)
                plans.append(
                    TablePlan(
                        entry=entry,
                        source_table=spec.qualified_name,
                        target_table=f"{where.schema}.{tspec.name}",
                        row_estimate=spec.row_estimate,
                        load_mode=load_mode,
                        existing_rows=existing,
                        action=_action(where, tspec, load_mode, existing),
                        source_ddl=tuple(source_ddl),
                        target_ddl=tuple(target_ddl),
                    )
                )
        result = DryRun(source.describe(), target.describe(), tuple(plans), tgt.existing_rows(AUDIT_SPEC))
    return result


def copy_one_table(
    table: str,
    source: Endpoint,
    target: Endpoint,
    params: Mapping[str, Any],
    *,
    run_id: str,
    attempt: int,
    label: str,
    on_rows: RowsCallback | None = None,
) -> dict[str, object]:
    """Copy one table (a resolved ``tables`` entry) under its target name and write its audit row
    (keyed by the entry), success or failure. The table's sync mode (``mode`` / ``table_modes``:
    ``full``, ``append`` or ``merge``, :mod:`core.incremental`, :mod:`core.merge`) decides how:
    ``full`` copies every row in the load mode; ``append`` copies only the rows above the target's
    high-water mark; ``merge`` upserts the rows whose cursor column is at or past the mark minus
    ``merge_lag_seconds``.

    Args:
        table: the entry, as :func:`plan_tables` returned it.
        source: source endpoint.
        target: target endpoint.
        params: run options (naming, load mode, memory budget, batch sizes, spill root, ...).
        run_id: the run's id (audit key, spill directory name).
        attempt: try number, 1-based.
        label: DAG id or ``cli`` (spill directory names, the table lock's holder text).
        on_rows: called with each batch's rows as the writer takes it (a progress bar).

    Returns:
        ``CopyResult.as_dict()`` (``append``, ``merge``: ``SyncResult.as_dict()``, with the mode,
        rows inserted, updated and deleted, and the high-water marks) plus ``sync_mode`` and ``load_mode`` (as the run used
        them) and where the rows came from and went: ``source_schema``, ``source_table``,
        ``target_schema``, ``target_table`` (the names as they are in each database, after the
        naming options).

    Raises:
        ReplicationError: the copy failed (``retryable`` says whether a retry can help); the
            failed audit row is written first.
    """
    settings = dataclasses.replace(
        CopySettings.from_params(params, run_id=run_id, attempt=attempt, label=label), on_rows=on_rows
    )
    naming = NamingOptions.from_params(params)
    target_ep = endpoint_with_params(target, params)
    with opened(source, target_ep) as (src, tgt):
        spec = _spec(src, table, params)
        mode = table_mode(params, table)
        # a full copy validated by checksum digests the source rows as it reads them
        tap = DigestingSource(src, tgt.dialect) if mode == "full" and validate_mode(params) == "checksum" else None
        try:
            tspec = naming.target_spec(spec, src.dialect.quote)
            _check_sync_options(table, spec, tspec, params)
            with _closing_clone(tgt, _where(tgt, naming, table)) as where:
                if mode == "append":
                    synced = append_table(src, where, spec, settings, table=table)
                elif mode == "merge":
                    synced = _merge(src, where, target_ep, spec, settings, table, params)
                else:
                    copied = copy_table(tap or src, where, spec, settings, tspec)
                target_schema = where.schema
        except Exception as exc:
            _audit_failure(tgt, target_ep, AuditRecord(run_id, table, "failed", attempt,
                                                       error=f"{type(exc).__name__}: {exc}", mode=mode))
            raise
        if mode != "full":
            write_audit(tgt, AuditRecord(
                run_id, table, "success", attempt, result=synced.copy, mode=mode, rows_inserted=synced.rows_inserted,
                rows_updated=synced.rows_updated, rows_deleted=synced.rows_deleted, deletes=synced.deletes,
                high_water_mark_before=synced.high_water_mark_before, high_water_mark_after=synced.high_water_mark_after,
            ))
            result = synced.as_dict()
        else:
            write_audit(tgt, AuditRecord(run_id, table, "success", attempt, result=copied, mode="full",
                                         rows_inserted=copied.rows_written, rows_updated=0,
                                         source_checksum=tap.digest.hex if tap else None))
            result = copied.as_dict()
        return {**result, "sync_mode": mode, "load_mode": settings.load_mode, "source_schema": spec.schema,
                "source_table": spec.name, "target_schema": target_schema, "target_table": tspec.name}


def _holder(label: str, run_id: str, attempt: int, what: str) -> str:
    """The table lock's holder text (who holds a lock, for a waiting copy's error)."""
    return f"replication {label} run {run_id} try {attempt} {what}"


def plan_units(
    source: Endpoint, target: Endpoint, params: Mapping[str, Any] | None = None, *, run_id: str = "manual",
    label: str = "copy",
) -> dict[str, list[str]]:
    """The plan of a run as copy units (:mod:`core.partition`): :func:`prepare_run`, then, with
    ``partition_as = tasks``, one unit per primary-key range of every table that splits
    (``partition_min_rows`` rows or more, ``parallel_ranges`` >= 2, a single integer key, load mode
    ``swap`` or ``drop``, sync mode ``full``, dialects with key ranges) and one unit for every other
    table. For each split table, under its table lock (exclusive), the run claims the table
    (:mod:`core.claims`) and prepares the table the ranges load (the staging copy for ``swap``),
    so the range units only insert. With ``partition_as = threads`` every table is one unit and
    nothing more is done than :func:`plan_tables`.

    Returns:
        ``tables``: the entries, largest estimate first (as :func:`plan_tables`); ``units``: the unit
        names (``Posts``, ``Posts[1:425000)``), the ranges of one table in key order; ``split``: the
        entries loaded in ranges (each gets a :func:`finish_ranges`).

    Raises:
        The errors of :func:`prepare_run`; ConfigurationError: a bad ``partition_as`` or
        ``partition_min_rows``; TargetError: another run holds a table's lock past ``lock_wait_s``.
    """
    params = params or {}
    how, min_rows = partition_as(params), partition_min_rows(params)
    tables = plan_tables(source, target, params)
    if how == "threads":
        return {"tables": tables, "units": list(tables), "split": []}
    settings = CopySettings.from_params(params, run_id=run_id, label=label)
    naming = NamingOptions.from_params(params)
    units: list[str] = []
    split: list[str] = []
    with opened(source, endpoint_with_params(target, params)) as (src, tgt):
        ranges_ok = src.dialect.key_ranges and tgt.dialect.key_ranges
        for entry in tables:
            spec = _spec(src, entry, params)
            splittable = bool(ranges_ok and integer_key(spec) is not None and settings.load_mode in RANGE_LOAD_MODES
                              and table_mode(params, entry) == "full" and settings.parallel_ranges >= 2)
            rows = src.count_rows(spec) if splittable else 0
            parts = range_count(rows, settings.parallel_ranges, min_rows, splittable=splittable)
            these = table_units(entry, src.key_bounds(spec) if parts > 1 else None, parts)
            if len(these) > 1:
                tspec = naming.target_spec(spec, src.dialect.quote)
                with _closing_clone(tgt, _where(tgt, naming, entry)) as where, \
                        where.lock_table(tspec, _holder(label, run_id, 1, "plan"), settings.lock_wait_s):
                    claim_table(where, tspec.name, run_id)
                    prepare_ranges(where, tspec, settings.load_mode)
                split.append(entry)
                log.info("%s: %d rows in %d key-range units %s", entry, rows, len(these), [u.name for u in these])
            units += [u.name for u in these]
    return {"tables": tables, "units": units, "split": split}


def copy_unit(
    unit: str, source: Endpoint, target: Endpoint, params: Mapping[str, Any], *, run_id: str, attempt: int,
    label: str, on_rows: RowsCallback | None = None,
) -> dict[str, object]:
    """Copy one unit of :func:`plan_units`: a key range (:func:`copy_range`) or a whole table
    (:func:`copy_one_table`; with ``partition_as = tasks`` as one stream, ``parallel_ranges`` being
    the range units' count then).

    Returns:
        The result of :func:`copy_range` or :func:`copy_one_table`, with ``unit``.
    """
    parsed = parse_unit(unit)
    if parsed.key_range is not None:
        return copy_range(unit, source, target, params, run_id=run_id, attempt=attempt, label=label, on_rows=on_rows)
    options = {**params, "parallel_ranges": 1} if partition_as(params) == "tasks" else params
    result = copy_one_table(unit, source, target, options, run_id=run_id, attempt=attempt, label=label, on_rows=on_rows)
    return {**result, "unit": unit}


def copy_range(
    unit: str, source: Endpoint, target: Endpoint, params: Mapping[str, Any], *, run_id: str, attempt: int,
    label: str, on_rows: RowsCallback | None = None,
) -> dict[str, object]:
    """Copy one key-range unit (``Posts[1:425000)``) of a table the run's :func:`plan_units` claimed
    and prepared, and write the unit's audit row (keyed by the unit's name), success or failure.
    Holds the table lock shared (the run's other ranges run alongside; another run's plan, a
    whole-table copy or a finish wait) and checks the claim first. Idempotent: the unit's
    transaction deletes exactly its range (``lo <= key < hi``) before loading it.

    Returns:
        ``CopyResult.as_dict()`` plus ``unit``, ``key_range`` (``[lo, hi]``), ``sync_mode``,
        ``load_mode``, ``source_schema``, ``source_table``, ``target_schema``, ``target_table``.

    Raises:
        ConfigurationError: ``unit`` names no key range.
        TargetError: the table is claimed by another run (permanent), or its lock is held too long.
        ReplicationError: the copy failed (the range is rolled back; the failed audit row is written).
    """
    parsed = parse_unit(unit)
    if parsed.key_range is None:
        raise ConfigurationError(f"copy unit {unit!r} is not a key range", table=unit)
    settings = dataclasses.replace(
        CopySettings.from_params(params, run_id=run_id, attempt=attempt, label=label), on_rows=on_rows
    )
    naming = NamingOptions.from_params(params)
    target_ep = endpoint_with_params(target, params)
    with opened(source, target_ep) as (src, tgt):
        spec = _spec(src, parsed.table, params)
        try:
            tspec = naming.target_spec(spec, src.dialect.quote)
            with _closing_clone(tgt, _where(tgt, naming, parsed.table)) as where, \
                    where.lock_table(tspec, _holder(label, run_id, attempt, unit), settings.lock_wait_s, shared=True):
                check_claim(where, tspec.name, run_id)
                loaded = load_target(where, tspec, settings.load_mode)
                try:
                    copied = copy_key_range(src, loaded, spec, settings, parsed.key_range, tspec, unit=unit)
                finally:
                    if loaded is not where:
                        loaded.close()
                target_schema = where.schema
        except Exception as exc:
            _audit_failure(tgt, target_ep, AuditRecord(run_id, unit, "failed", attempt,
                                                       error=f"{type(exc).__name__}: {exc}", mode="full"))
            raise
        write_audit(tgt, AuditRecord(run_id, unit, "success", attempt, result=copied, mode="full",
                                     rows_inserted=copied.rows_written, rows_updated=0))
        return {**copied.as_dict(), "unit": unit, "key_range": list(parsed.key_range), "sync_mode": "full",
                "load_mode": settings.load_mode, "source_schema": spec.schema, "source_table": spec.name,
                "target_schema": target_schema, "target_table": tspec.name}


def finish_ranges(
    table: str, source: Endpoint, target: Endpoint, params: Mapping[str, Any], results: list[Mapping[str, Any]],
    *, run_id: str, attempt: int, label: str,
) -> dict[str, object]:
    """After every key-range unit of ``table``: under the table lock (exclusive) and the run's
    claim, check the loaded rows equal the sum the units wrote, build the primary key and indexes,
    align the identity/sequence, swap the staging copy in (``swap``), release the claim, and write
    the table's audit row (its figures summed over the units), success or failure.

    Args:
        table: the entry (one of :func:`plan_units`'s ``split``).
        results: the copy units' results (any units; those of ``table``'s ranges are used, the
            last one of a unit given more than once).

    Returns:
        A copy result for the whole table (``CopyResult.as_dict()`` summed over its ranges, ``seconds``
        the finish's own) plus ``units``, ``sync_mode``, ``load_mode`` and the source/target names, as
        :func:`copy_one_table` returns.

    Raises:
        ValidationError: no range result for the table, or the count differs.
        TargetError: the claim is another run's; building the keys or the swap failed.
    """
    latest = {str(r["unit"]): r for r in results if r and r.get("key_range") is not None}  # a unit's last result
    ranges = [r for unit, r in latest.items() if parse_unit(unit).table == table]
    settings = CopySettings.from_params(params, run_id=run_id, attempt=attempt, label=label)
    naming = NamingOptions.from_params(params)
    target_ep = endpoint_with_params(target, params)
    started = time.monotonic()
    with opened(source, target_ep) as (src, tgt):
        spec = _spec(src, table, params)
        try:
            if not ranges:
                raise ValidationError("no key-range unit of the table reported its rows", table=table)
            tspec = naming.target_spec(spec, src.dialect.quote)
            expected = sum(int(r["rows_written"]) for r in ranges)
            with _closing_clone(tgt, _where(tgt, naming, table)) as where:
                with where.lock_table(tspec, _holder(label, run_id, attempt, "finish"), settings.lock_wait_s):
                    check_claim(where, tspec.name, run_id)
                    finish_key_ranges(where, tspec, settings.load_mode, expected)
                    release_claim(where, tspec.name, run_id)
                target_schema = where.schema
        except Exception as exc:
            _audit_failure(tgt, target_ep, AuditRecord(run_id, table, "failed", attempt,
                                                       error=f"{type(exc).__name__}: {exc}", mode="full"))
            raise
        figures = {f: sum(int(r[f]) for r in ranges) for f in
                   ("rows_read", "rows_written", "bytes", "batches", "spill_files", "spill_bytes", "high_water_bytes")}
        result = CopyResult(table=spec.name, **figures, peak_rss_bytes=max(int(r["peak_rss_bytes"]) for r in ranges),
                            seconds=time.monotonic() - started)
        write_audit(tgt, AuditRecord(run_id, table, "success", attempt, result=result, mode="full",
                                     rows_inserted=result.rows_written, rows_updated=0))
        log.info("finished %s from %d key-range units: %d rows", table, len(ranges), result.rows_written)
        return {**result.as_dict(), "units": [str(r["unit"]) for r in ranges], "sync_mode": "full",
                "load_mode": settings.load_mode, "source_schema": spec.schema, "source_table": spec.name,
                "target_schema": target_schema, "target_table": tspec.name}


def _merge(src: Source, where: Target, target_ep: Endpoint, spec: TableSpec, settings: CopySettings, table: str,
           params: Mapping[str, Any]) -> SyncResult:
    """:func:`core.merge.merge_table` with the run's merge params; with a ``delete_mode`` other
    than ``ignore``, the target opened as a Source in ``where``'s schema reads its keys."""
    deletes = delete_mode(params)
    cursor = check_cursor(spec, cursor_column(params, table), table=table, deletes=deletes)
    with contextlib.ExitStack() as stack:
        reader = None
        if deletes != "ignore":
            reader = stack.enter_context(open_source(dataclasses.replace(target_ep, schema=where.schema)))
        return merge_table(src, where, spec, settings, table=table, cursor=cursor, lag_s=merge_lag_seconds(params),
                           deletes=deletes, target_reader=reader)


def _audit_failure(target: Target, endpoint: Endpoint, record: AuditRecord) -> None:
    """Write a failed copy's audit row: on the copy's target connection, or, when that one died
    with the copy, on a fresh one. Never raises (the copy's own error is what surfaces)."""
    try:
        write_audit(target, record)
        return
    except Exception:  # noqa: BLE001 - the connection may be what failed
        log.info("audit on the copy's connection failed; writing it on a fresh connection", exc_info=True)
    try:
        with open_target(endpoint) as fresh:
            write_audit(fresh, record)
    except Exception:  # noqa: BLE001 - nothing left to try; the copy's error is raised by the caller
        log.error("could not write the failed audit row of %s", record.table_name, exc_info=True)


def add_foreign_keys(
    source: Endpoint, target: Endpoint, tables: list[str], params: Mapping[str, Any] | None = None
) -> list[str]:
    """After every table of the run is loaded: create the source's foreign keys whose tables are
    both in the run (option ``foreign_keys``, default on), under the target names, validated
    against the loaded rows.

    Returns:
        ``table.constraint`` (target names) of each foreign key created or re-validated.

    Raises:
        TargetError: a foreign key the loaded rows violate (names the constraint; permanent).
    """
    if (params or {}).get("foreign_keys", True) is False:
        log.info("foreign keys: off (option foreign_keys)")
        return []
    done: list[str] = []
    naming = NamingOptions.from_params(params)
    with opened(source, endpoint_with_params(target, params)) as (src, tgt):
        names = {TableRef.parse(e).name for e in tables}
        for entry in tables:
            spec = _spec(src, entry, params)
            tspec = naming.target_spec(spec, src.dialect.quote)
            keys = [tfk for fk, tfk in zip(spec.foreign_keys, tspec.foreign_keys, strict=True) if fk.ref_table in names]
            if keys:
                with _closing_clone(tgt, _where(tgt, naming, entry)) as where:
                    where.add_foreign_keys(tspec, keys)
                done += [f"{tspec.name}.{fk.name}" for fk in keys]
    log.info("foreign keys: %s", ", ".join(done) or "none in this run")
    return done


def validate_tables(
    source: Endpoint,
    target: Endpoint,
    tables: list[str],
    params: Mapping[str, Any] | None = None,
    *,
    raise_on_mismatch: bool = True,
    run_id: str | None = None,
) -> list[dict[str, object]]:
    """Compare exact row counts of every table, source against its target name, and log the
    table; with the option ``validate`` = ``checksum``, also the checksum of every table's rows
    (:mod:`core.checksum`), bisecting a mismatch to its first differing key. With ``run_id``, the
    source digests the run's full copies took while reading (audit ``source_checksum``) stand for
    the source side, so only the target is read again; each table's finding is written into its
    audit row (``validation``) before a mismatch fails.

    Returns:
        ``CountRow.as_dict()`` per table, with ``checksum`` (``ChecksumResult.as_dict()``) when
        checksums ran.

    Raises:
        ValidationError: some count differs; ChecksumMismatch (a ValidationError): some checksum
            differs, naming table, key, column and both values (both when ``raise_on_mismatch``).
        ConfigurationError: an unknown ``validate`` value.
    """
    naming = NamingOptions.from_params(params)
    check = validate_mode(params)
    target_ep = endpoint_with_params(target, params)
    with opened(source, target_ep) as (src, tgt):
        counts = compare_counts(src, tgt, tables, naming=naming, raise_on_mismatch=False)
        rows = [r.as_dict() for r in counts]
        findings = {r.table: r.summary() for r in counts}
        results = []
        if check == "checksum":
            settings = CopySettings.from_params(params or {})
            schema_map = (params or {}).get("schema_map") or None
            # the digests the run's full copies took while reading stand for the source side
            taken = {t: Digest.parse(c) for t, c in source_checksums(tgt, run_id).items()} if run_id else {}
            with open_source(target_ep) as reader:
                results = checksum_tables(
                    src, reader, tgt.dialect, tables, describe=lambda entry: _spec(src, entry, params),
                    schema_map=schema_map, batch_rows=settings.batch_rows, batch_bytes=settings.batch_bytes,
                    raise_on_mismatch=False, source_digests=taken,
                )
            for row, result in zip(rows, results, strict=True):
                row["checksum"] = result.as_dict()
                findings[result.table] += "; " + result.summary()
        if run_id is not None:
            for table, text in findings.items():
                record_validation(tgt, run_id, table, text)
        if raise_on_mismatch:
            raise_if_counts_differ(counts)
            bad = [r for r in results if not r.ok]
            if bad:
                raise ChecksumMismatch(bad[0])
        return rows


def summarise(counts: list[dict[str, Any]], copies: list[dict[str, Any]]) -> str:
    """Log and return the per-table source/target row-count table with each copy's figures (the
    key-range units of one table summed; their seconds the longest unit's, as they ran at once)."""
    text = format_count_table([CountRow(c["table"], c["source_rows"], c["target_rows"]) for c in counts])
    by_table: dict[str, dict[str, Any]] = {}
    for c in (c for c in copies if c):  # the key-range units of one table (partition_as=tasks) add up
        seen = by_table.get(c["table"])
        by_table[c["table"]] = dict(c) if seen is None else {
            **seen, **{f: seen[f] + c[f] for f in ("bytes", "batches", "spill_files", "high_water_bytes")},
            "seconds": max(seen["seconds"], c["seconds"])}
    lines = [text, "", f"{'table':<20} {'MB':>10} {'batches':>8} {'spills':>7} {'high-water MB':>14} {'seconds':>9}"]
    for name in sorted(by_table):
        c = by_table[name]
        lines.append(
            f"{name:<20} {c['bytes'] / 1e6:>10.1f} {c['batches']:>8} {c['spill_files']:>7} "
            f"{c['high_water_bytes'] / 2**20:>14.1f} {c['seconds']:>9.2f}"
        )
    report = "\n".join(lines)
    log.info("replication summary:\n%s", report)
    return report


def sweep(params: Mapping[str, Any], *, run_id: str, label: str) -> list[str]:
    """The run's final step (whatever the copies did): remove every spill directory the run left
    behind (a copy killed by the OS cannot remove its own).

    Returns:
        Names of the directories removed.
    """
    settings = CopySettings.from_params(params, run_id=run_id, label=label)
    return sweep_run(settings.spill_root, label, run_id)
