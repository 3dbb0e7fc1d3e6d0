"""Bodies of the Airflow tasks: plan, copy one table, validate, summarise.

Each function opens what it needs from Airflow connection ids, closes it on every path, and
returns plain dicts (XCom-serialisable). Permanent errors (``retryable = False``) are turned into
``AirflowFailException`` at this edge so Airflow does not retry what cannot succeed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Iterator, Mapping
from typing import Any

from include.replication.airflow.connections import endpoint_from_airflow
from include.replication.core.audit import (
    AuditRecord,
    ensure_audit_table,
    record_validation,
    source_checksums,
    write_audit,
)
from include.replication.core.catalog import TableSpec
from include.replication.core.checksum import ChecksumMismatch, DigestingSource, checksum_tables
from include.replication.core.config import CopySettings
from include.replication.core.ddl import create_table_sql
from include.replication.core.endpoint import Endpoint
from include.replication.core.errors import ConfigurationError, ReplicationError
from include.replication.core.incremental import append_table, table_mode
from include.replication.core.keyranges import integer_key
from include.replication.core.naming import TableRef, target_schema
from include.replication.core.pipeline import copy_table
from include.replication.core.protocols import Source, Target
from include.replication.core.rowhash import Digest
from include.replication.core.spill import sweep_run
from include.replication.core.validate import compare_counts, format_count_table, raise_if_counts_differ, validate_mode
from include.replication.dialects.base import dialect
from include.replication.dialects.registry import open_source, open_target

__all__ = ["plan_tables", "copy_one_table", "add_foreign_keys", "validate_tables", "summarise", "sweep", "fail_fast"]

log = logging.getLogger(__name__)


@contextlib.contextmanager
def _opened(source_ep: Endpoint, target_ep: Endpoint) -> Iterator[tuple[Source, Target]]:
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
def fail_fast() -> Iterator[None]:
    """Turn a permanent :class:`ReplicationError` into ``AirflowFailException`` (no retry)."""
    try:
        yield
    except ReplicationError as exc:
        if exc.retryable:
            raise
        from airflow.exceptions import AirflowFailException

        raise AirflowFailException(f"{type(exc).__name__}: {exc}") from exc


PARAM_OPTIONS = {"sqlserver_write_method": "write_method"}
"""DAG param -> the connection option it sets on every endpoint whose dialect takes that option."""


def _resolve(conn_or_endpoint: str | Endpoint, params: Mapping[str, Any] | None = None) -> Endpoint:
    """The endpoint of a connection id (or the endpoint itself), with the DAG params that are
    connection options of its dialect (``write_method`` for SQL Server) applied by name."""
    endpoint = conn_or_endpoint if isinstance(conn_or_endpoint, Endpoint) else endpoint_from_airflow(conn_or_endpoint)
    chosen = {name: str(params[key]) for key, name in PARAM_OPTIONS.items()
              if params and params.get(key) and name in dialect(endpoint.dialect).option_names}
    return dataclasses.replace(endpoint, options={**endpoint.options, **chosen}) if chosen else endpoint



def _spec(src: Source, entry: str, params: Mapping[str, Any] | None) -> TableSpec:
    """The catalog of a ``tables`` entry, with the run's ``generated_columns`` choice applied."""
    ref = TableRef.parse(entry)
    spec = src.describe(ref.name, ref.schema)
    return spec.as_plain() if (params or {}).get("generated_columns") == "plain" else spec


def _target_for(tgt: Target, entry: str, params: Mapping[str, Any] | None) -> Target:
    """The target writing ``entry``: ``tgt``, or a clone on the entry's target schema."""
    schema = target_schema(TableRef.parse(entry), (params or {}).get("schema_map") or None)
    return tgt.clone(schema=schema) if schema is not None and schema != tgt.schema else tgt


def plan_tables(
    source: str | Endpoint, target: str | Endpoint, tables: list[str] | None, load_mode: str = "swap",
    params: Mapping[str, Any] | None = None,
) -> list[str]:
    """Read every source table's catalog and map its DDL to the target, failing now, before any
    table is touched, on a type or generated column the target cannot hold exactly; create the
    audit table. Only the ``drop`` load mode drops and re-creates the target tables here; ``swap``
    and ``truncate`` leave them as they are until each copy has its new rows ready.

    Args:
        source: source connection id (or endpoint).
        target: target connection id (or endpoint).
        tables: ``Table`` or ``schema.Table`` entries (:class:`core.naming.TableRef`); None or
            empty = every base table of the source's default schema.
        load_mode: ``swap``, ``truncate`` or ``drop`` (:data:`core.config.LoadMode`).
        params: the DAG params (``generated_columns``, ``schema_map``).

    Returns:
        The entries, largest row estimate first (so the long copies start first).

    Raises:
        ConfigurationError: a named table does not exist; a bad ``mode`` / ``table_modes`` value, or
            an ``append`` table without a single integer primary key.
        UnsupportedTypeError: a column type is not in the type map, or the target cannot hold it.
    """
    with fail_fast(), _opened(_resolve(source), _resolve(target)) as (src, tgt):
        entries = list(tables) if tables else src.list_tables()
        specs = {entry: _spec(src, entry, params) for entry in entries}
        for spec in specs.values():
            create_table_sql(spec, tgt.dialect, tgt.schema, source=src.dialect)  # raises before anything is touched
        for entry, spec in specs.items():
            if table_mode(params, entry) == "append" and integer_key(spec) is None:
                raise ConfigurationError("append mode needs a single integer primary key", table=entry)
        if load_mode == "drop":
            for entry, spec in specs.items():
                with _closing_clone(tgt, _target_for(tgt, entry, params)) as where:
                    where.prepare_table(spec)
        ensure_audit_table(tgt)
        ordered = sorted(specs, key=lambda e: (-specs[e].row_estimate, e))
        log.info("planned %d tables: %s", len(ordered), ", ".join(f"{e} (~{specs[e].row_estimate:,} rows)" for e in ordered))
        return ordered


@contextlib.contextmanager
def _closing_clone(tgt: Target, where: Target) -> Iterator[Target]:
    """``where``, closed at the end when it is a clone of ``tgt``."""
    try:
        yield where
    finally:
        if where is not tgt:
            where.close()


def copy_one_table(
    table: str,
    source: str | Endpoint,
    target: str | Endpoint,
    params: Mapping[str, Any],
    *,
    run_id: str,
    attempt: int,
    label: str,
) -> dict[str, object]:
    """Copy one table (a ``tables`` entry) in its sync mode (params ``mode`` / ``table_modes``:
    ``full`` or ``append``, :mod:`core.incremental`) and write its audit row, success or failure.

    Returns:
        ``CopyResult.as_dict()`` (``append``: ``SyncResult.as_dict()``, with the mode, rows
        inserted and the high-water marks).

    Raises:
        AirflowFailException: a permanent error (bad value, unsupported type, count mismatch).
        ReplicationError: a retryable error (lost connection).
    """
    settings = CopySettings.from_params(params, run_id=run_id, attempt=attempt, label=label)
    target_ep = _resolve(target, params)
    with fail_fast(), _opened(_resolve(source), target_ep) as (src, tgt):
        spec = _spec(src, table, params)
        mode = table_mode(params, table)
        # a full copy validated by checksum digests the source rows as it reads them
        tap = DigestingSource(src, tgt.dialect) if mode == "full" and validate_mode(params) == "checksum" else None
        try:
            with _closing_clone(tgt, _target_for(tgt, table, params)) as where:
                if mode == "append":
                    synced = append_table(src, where, spec, settings, table=table)
                else:
                    copied = copy_table(tap or src, where, spec, settings)
        except Exception as exc:
            _audit_failure(tgt, target_ep, AuditRecord(run_id, table, "failed", attempt, error=f"{type(exc).__name__}: {exc}",
                                                                 mode=mode))
            raise
        if mode == "append":
            write_audit(tgt, AuditRecord(
                run_id, table, "success", attempt, result=synced.copy, mode=mode, rows_inserted=synced.rows_inserted,
                rows_updated=0, rows_deleted=None if synced.first_load else 0,
                high_water_mark_before=synced.high_water_mark_before, high_water_mark_after=synced.high_water_mark_after,
            ))
            return synced.as_dict()
        write_audit(tgt, AuditRecord(run_id, table, "success", attempt, result=copied, mode="full",
                                     rows_inserted=copied.rows_written, rows_updated=0,
                                     source_checksum=tap.digest.hex if tap else None))
        return copied.as_dict()


def add_foreign_keys(source: str | Endpoint, target: str | Endpoint, tables: list[str],
                     params: Mapping[str, Any] | None = None) -> list[str]:
    """After every table of the run is loaded: create the source's foreign keys whose tables are
    both in the run (param ``foreign_keys``, default on), validated against the loaded rows.

    Returns:
        ``table.constraint`` of each foreign key created or re-validated.

    Raises:
        AirflowFailException: a foreign key the loaded rows violate (names the constraint).
    """
    if (params or {}).get("foreign_keys", True) is False:
        log.info("foreign keys: off (param foreign_keys)")
        return []
    done: list[str] = []
    with fail_fast(), _opened(_resolve(source), _resolve(target)) as (src, tgt):
        specs = {entry: _spec(src, entry, params) for entry in tables}
        names = {TableRef.parse(e).name for e in tables}
        for entry, spec in specs.items():
            keys = [fk for fk in spec.foreign_keys if fk.ref_table in names]
            if keys:
                with _closing_clone(tgt, _target_for(tgt, entry, params)) as where:
                    where.add_foreign_keys(spec, keys)
                done += [f"{spec.name}.{fk.name}" for fk in keys]
    log.info("foreign keys: %s", ", ".join(done) or "none in this run")
    return done


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


def sweep(params: Mapping[str, Any], *, run_id: str, label: str) -> list[str]:
    """The DAG's final task (runs whatever the copies did): remove every spill directory the run
    left behind (a copy killed by the OS cannot remove its own).

    Returns:
        Names of the directories removed.
    """
    settings = CopySettings.from_params(params, run_id=run_id, label=label)
    return sweep_run(settings.spill_root, label, run_id)


def validate_tables(source: str | Endpoint, target: str | Endpoint, tables: list[str],
                    params: Mapping[str, Any] | None = None, *, run_id: str | None = None) -> list[dict[str, object]]:
    """Compare exact row counts of every table and log the table; with the param ``validate`` =
    ``checksum``, also the checksum of every table's rows (:mod:`core.checksum`), bisecting a
    mismatch to its first differing key. With ``run_id``, the source digests the run's full copies
    took while reading (audit ``source_checksum``) stand for the source side, so only the target is
    read again; each table's finding is written into its audit row (``validation``) before a
    mismatch fails the task.

    Returns:
        ``CountRow.as_dict()`` per table, with ``checksum`` (``ChecksumResult.as_dict()``) when
        checksums ran.

    Raises:
        AirflowFailException: some count or checksum differs (names table, key, column, values).
        ConfigurationError: an unknown ``validate`` value.
    """
    mode = validate_mode(params)
    target_ep = _resolve(target)
    with fail_fast(), _opened(_resolve(source), target_ep) as (src, tgt):
        schema_map = (params or {}).get("schema_map") or None
        counts = compare_counts(src, tgt, tables, schema_map=schema_map, raise_on_mismatch=False)
        rows = [r.as_dict() for r in counts]
        findings = {r.table: r.summary() for r in counts}
        results = []
        if mode == "checksum":
            settings = CopySettings.from_params(params or {})
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
        raise_if_counts_differ(counts)
        bad = [r for r in results if not r.ok]
        if bad:
            raise ChecksumMismatch(bad[0])
        return rows


def summarise(counts: list[dict[str, Any]], copies: list[dict[str, Any]]) -> str:
    """Log and return the per-table source/target row-count table with each copy's figures."""
    from include.replication.core.validate import CountRow

    text = format_count_table([CountRow(c["table"], c["source_rows"], c["target_rows"]) for c in counts])
    by_table = {c["table"]: c for c in copies if c}
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
