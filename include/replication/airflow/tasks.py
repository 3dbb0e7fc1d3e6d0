"""Bodies of the Airflow tasks: plan (or dry run), copy one unit (a table or a key range), finish
a table loaded in key ranges, foreign keys, validate, summarise, sweep.

Each function turns Airflow connection ids into endpoints (:mod:`connections`) and calls the one
engine function of that step (:mod:`include.replication.engine`, which the command line calls
too), returning plain dicts (XCom-serialisable). Permanent errors (``retryable = False``) are
turned into ``AirflowFailException`` at this edge so Airflow does not retry what cannot succeed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Iterator, Mapping
from typing import Any

from include.replication import engine
from include.replication.airflow.assets import table_asset
from include.replication.airflow.connections import endpoint_from_airflow
from include.replication.core.endpoint import Endpoint
from include.replication.core.errors import ReplicationError

__all__ = [
    "plan_tables",
    "plan_units",
    "copy_one_table",
    "copy_unit",
    "finish_ranges",
    "add_foreign_keys",
    "validate_tables",
    "summarise",
    "sweep",
    "fail_fast",
]

log = logging.getLogger(__name__)

summarise = engine.summarise
sweep = engine.sweep


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


def _resolve(conn_or_endpoint: str | Endpoint) -> Endpoint:
    """The endpoint of a connection id (or the endpoint itself)."""
    return conn_or_endpoint if isinstance(conn_or_endpoint, Endpoint) else endpoint_from_airflow(conn_or_endpoint)


def plan_tables(
    source: str | Endpoint, target: str | Endpoint, tables: list[str] | None, load_mode: str = "swap",
    params: Mapping[str, Any] | None = None,
) -> list[str]:
    """The plan task: :func:`engine.plan_tables` (resolve patterns, map every table's DDL, fail
    before anything is touched; ``drop`` re-creates the tables), or with the param ``plan_only``
    :func:`engine.dry_run` (logs the report, touches nothing, returns no table so nothing is copied).

    Args:
        source: source connection id (or endpoint).
        target: target connection id (or endpoint).
        tables: ``tables`` entries and patterns; None or empty = every base table of the source's
            default schema.
        load_mode: ``swap``, ``truncate`` or ``drop`` (:data:`core.config.LoadMode`).
        params: the DAG params (naming, ``generated_columns``, ``plan_only``, ...).

    Returns:
        The entries, largest row estimate first; [] for a dry run.

    Raises:
        AirflowFailException: a permanent error (a pattern matching nothing, a missing table, an
            unsupported type).
    """
    options = {**(params or {}), "tables": list(tables or []), "load_mode": load_mode}
    with fail_fast():
        if options.get("plan_only"):
            log.info("plan_only: nothing is changed and no table is copied\n%s",
                     engine.dry_run(_resolve(source), _resolve(target), options).format())
            return []
        return engine.plan_tables(_resolve(source), _resolve(target), options)


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
    """The copy task: :func:`engine.copy_one_table` (one table, its audit row, success or failure).

    Returns:
        The engine's result dict plus ``source_asset`` and ``target_asset``: the
        :class:`include.replication.airflow.assets.TableAsset` fields of the table read and the
        table written (named by connection id, or ``endpoint`` when given an Endpoint).

    Raises:
        AirflowFailException: a permanent error (bad value, unsupported type, count mismatch).
        ReplicationError: a retryable error (lost connection).
    """
    source_ep, target_ep = _resolve(source), _resolve(target)
    with fail_fast():
        result = engine.copy_one_table(table, source_ep, target_ep, params, run_id=run_id, attempt=attempt, label=label)
    return {**result, **_assets(source, target, source_ep, target_ep, result)}


def plan_units(
    source: str | Endpoint, target: str | Endpoint, params: Mapping[str, Any], *, run_id: str, label: str,
) -> dict[str, list[str]]:
    """The plan task: :func:`engine.plan_units` (the tables, the copy units, the tables loaded in
    key ranges), or with ``plan_only`` the dry run's report (logged) and no unit.

    Returns:
        ``{"tables": [...], "units": [...], "split": [...]}`` (all empty for a dry run).

    Raises:
        AirflowFailException: a permanent error (a pattern matching nothing, a missing table, an
            unsupported type, a bad ``partition_as``).
    """
    options = {**params, "tables": list(params.get("tables") or []), "load_mode": str(params.get("load_mode", "swap"))}
    with fail_fast():
        if options.get("plan_only"):
            log.info("plan_only: nothing is changed and no table is copied\n%s",
                     engine.dry_run(_resolve(source), _resolve(target), options).format())
            return {"tables": [], "units": [], "split": []}
        return engine.plan_units(_resolve(source), _resolve(target), options, run_id=run_id, label=label)


def copy_unit(
    unit: str, source: str | Endpoint, target: str | Endpoint, params: Mapping[str, Any], *, run_id: str,
    attempt: int, label: str,
) -> dict[str, object]:
    """The copy task: one unit of :func:`plan_units` through :func:`engine.copy_unit`.

    Returns:
        The engine's result plus ``source_asset`` / ``target_asset`` (as :func:`copy_one_table`).

    Raises:
        AirflowFailException: a permanent error (bad value, count mismatch, the table claimed by
            another run).
        ReplicationError: a retryable error (lost connection, the table lock held too long).
    """
    source_ep, target_ep = _resolve(source), _resolve(target)
    with fail_fast():
        result = engine.copy_unit(unit, source_ep, target_ep, params, run_id=run_id, attempt=attempt, label=label)
    return {**result, **_assets(source, target, source_ep, target_ep, result)}


def finish_ranges(
    table: str, source: str | Endpoint, target: str | Endpoint, params: Mapping[str, Any],
    results: list[Mapping[str, Any]], *, run_id: str, attempt: int, label: str,
) -> dict[str, object]:
    """The finish task of a table loaded in key ranges: :func:`engine.finish_ranges`.

    Returns:
        The table's result plus ``source_asset`` / ``target_asset``.

    Raises:
        AirflowFailException: a permanent error (count mismatch, duplicate keys, claimed by another run).
        ReplicationError: a retryable error.
    """
    source_ep, target_ep = _resolve(source), _resolve(target)
    with fail_fast():
        result = engine.finish_ranges(table, source_ep, target_ep, params, results, run_id=run_id, attempt=attempt,
                                      label=label)
    return {**result, **_assets(source, target, source_ep, target_ep, result)}


def _assets(source: str | Endpoint, target: str | Endpoint, source_ep: Endpoint, target_ep: Endpoint,
            result: Mapping[str, object]) -> dict[str, dict[str, object]]:
    """``source_asset`` / ``target_asset``: the ``TableAsset`` fields of the tables read and written."""
    return {
        "source_asset": dataclasses.asdict(table_asset(_conn_name(source), source_ep, str(result["source_schema"]),
                                                       str(result["source_table"]))),
        "target_asset": dataclasses.asdict(table_asset(_conn_name(target), target_ep, str(result["target_schema"]),
                                                       str(result["target_table"]))),
    }


def _conn_name(conn_or_endpoint: str | Endpoint) -> str:
    """The connection id, or ``endpoint`` for an Endpoint given directly (tools, tests)."""
    return conn_or_endpoint if isinstance(conn_or_endpoint, str) else "endpoint"


def add_foreign_keys(source: str | Endpoint, target: str | Endpoint, tables: list[str],
                     params: Mapping[str, Any] | None = None) -> list[str]:
    """The foreign_keys task: :func:`engine.add_foreign_keys`.

    Returns:
        ``table.constraint`` of each foreign key created or re-validated.

    Raises:
        AirflowFailException: a foreign key the loaded rows violate (names the constraint).
    """
    with fail_fast():
        return engine.add_foreign_keys(_resolve(source), _resolve(target), tables, params)


def validate_tables(source: str | Endpoint, target: str | Endpoint, tables: list[str],
                    params: Mapping[str, Any] | None = None, *, run_id: str | None = None) -> list[dict[str, object]]:
    """The validate task: :func:`engine.validate_tables` (exact counts, source vs target names;
    with ``validate=checksum`` also row checksums; each finding into the run's audit rows).

    Returns:
        ``CountRow.as_dict()`` per table (with ``checksum`` when checksums ran).

    Raises:
        AirflowFailException: some count or checksum differs (names table, key, column, values).
    """
    with fail_fast():
        return engine.validate_tables(_resolve(source), _resolve(target), tables, params, run_id=run_id)
