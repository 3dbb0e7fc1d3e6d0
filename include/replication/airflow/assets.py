"""Airflow Assets and OpenLineage datasets of a replicated table.

Every successful copy emits one asset event for the table it wrote, through the DAG's
:class:`AssetAlias` (the table list is only known at run time), and reports the source table as
its input and the target table as its output to OpenLineage, with row counts as facets.

Naming follows what Airflow's own providers register for these schemes (the ``asset-uris`` entries
of apache-airflow-providers-postgres and -microsoft-mssql, whose ``sanitize_uri`` validates the
URI when an :class:`Asset` is created) and OpenLineage's dataset naming for PostgreSQL and SQL
Server (namespace ``postgres://host:port`` / ``mssql://host:port``, name
``database.schema.table``, produced by the same providers' ``convert_asset_to_openlineage``):

* asset URI ``postgres://host:port/database/schema/table`` or ``mssql://host:port/database/schema/table``;
* asset name ``<target connection id>.<schema>.<table>``: stable across environments.

A downstream DAG is scheduled on the alias (``dags/report_on_replicated_tables.py``), which Airflow
resolves to these assets once their first events arrive. ``Asset.ref(name=...)`` to one of them
does not fire in Airflow 3.1: assets created through an alias stay inactive unless a DAG file
declares them, and a name reference resolves only to active assets (``resolve_ref_to_asset``).

A PostgreSQL endpoint that connects through a Unix socket (host is a directory, or no host) is
named ``localhost``: the server is on the machine the task runs on, and an asset URI needs a host.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from include.replication.core.endpoint import Endpoint

__all__ = ["ASSET_SCHEMES", "DEFAULT_PORTS", "TableAsset", "describe_events", "publish_copy", "replication_alias", "table_asset"]

log = logging.getLogger(__name__)

ASSET_SCHEMES: dict[str, str] = {"postgresql": "postgres", "mssql": "mssql"}
"""Dialect -> asset URI scheme (the schemes the postgres and mssql providers register)."""

DEFAULT_PORTS: dict[str, int] = {"postgresql": 5432, "mssql": 1433}
"""Dialect -> port the URI names when the endpoint names none (the providers' ``sanitize_uri`` defaults)."""


@dataclass(frozen=True)
class TableAsset:
    """One table as an Airflow asset and an OpenLineage dataset.

    Attributes:
        name: asset name, ``<connection id>.<schema>.<table>``.
        uri: asset URI, ``postgres://host:port/database/schema/table`` (or ``mssql://...``).
        namespace: OpenLineage namespace, ``postgres://host:port``.
        dataset: OpenLineage dataset name, ``database.schema.table``.
    """

    name: str
    uri: str
    namespace: str
    dataset: str


def table_asset(conn_id: str, endpoint: Endpoint, schema: str, table: str) -> TableAsset:
    """The asset naming of ``schema.table`` on ``endpoint``.

    Args:
        conn_id: the Airflow connection id of the endpoint (first part of the asset name).
        endpoint: where the table lives (host, port, database).
        schema: the table's schema, resolved (``public``, ``dbo``, ...).
        table: the table name as it is in that database (case kept).

    Raises:
        KeyError: a dialect without an asset scheme (only ``postgresql`` and ``mssql`` exist).
    """
    scheme = ASSET_SCHEMES[endpoint.dialect]
    host = endpoint.host if endpoint.host and not endpoint.host.startswith("/") else "localhost"
    netloc = f"{host}:{endpoint.port or DEFAULT_PORTS[endpoint.dialect]}"
    path = "/".join(quote(part, safe="") for part in (endpoint.database, schema, table))
    return TableAsset(
        name=f"{conn_id}.{schema}.{table}",
        uri=f"{scheme}://{netloc}/{path}",
        namespace=f"{scheme}://{netloc}",
        dataset=f"{endpoint.database}.{schema}.{table}",
    )


def replication_alias(dag_id: str) -> Any:
    """The :class:`airflow.sdk.AssetAlias` a DAG's copy tasks emit their table events through
    (named after the DAG: ``<dag_id>.tables``)."""
    from airflow.sdk import AssetAlias

    return AssetAlias(f"{dag_id}.tables")


def _dataset(asset: TableAsset, facet_key: str, facet: Any) -> Any:
    from openlineage.client.event_v2 import InputDataset, OutputDataset

    if facet_key == "outputStatistics":
        return OutputDataset(namespace=asset.namespace, name=asset.dataset, outputFacets={facet_key: facet})
    return InputDataset(namespace=asset.namespace, name=asset.dataset, inputFacets={facet_key: facet})


def _lineage(source: TableAsset, target: TableAsset, rows: int, size_bytes: int) -> Any:
    """OpenLineage ``OperatorLineage``: the source table in, the target table out, with
    ``inputStatistics`` / ``outputStatistics`` facets (rows, bytes of Arrow row data)."""
    from airflow.providers.openlineage.extractors import OperatorLineage
    from openlineage.client.facet_v2 import input_statistics_input_dataset, output_statistics_output_dataset

    return OperatorLineage(
        inputs=[_dataset(source, "inputStatistics",
                         input_statistics_input_dataset.InputStatisticsInputDatasetFacet(rowCount=rows, size=size_bytes))],
        outputs=[_dataset(target, "outputStatistics",
                          output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(rowCount=rows, size=size_bytes))],
    )


def publish_copy(context: Mapping[str, Any], dag_id: str, result: Mapping[str, Any]) -> TableAsset:
    """After a successful copy: add the target table's asset event to the DAG's alias and give the
    task its OpenLineage input/output datasets.

    The event's ``extra`` holds ``rows`` (int), ``run_id``, ``mode`` (the load mode), ``sync_mode`` (``full``, ``append`` or ``merge``) and
    ``source`` (the source asset URI). Lineage: the OpenLineage listener (Astro ships the provider)
    asks a finished task for ``get_openlineage_facets_on_complete``; this sets it on the running
    task instance's operator (the object the listener is handed, not the DAG's definition), so the
    COMPLETE event carries the datasets and their row counts. Without the OpenLineage provider
    only the asset event is emitted.

    Args:
        context: the task's Airflow context (``outlet_events``, ``run_id``, ``task``).
        dag_id: the DAG id (names the alias).
        result: the copy's result dict with ``source_asset`` / ``target_asset`` (``TableAsset``
            fields), ``rows_written``, ``bytes``, ``load_mode`` and ``sync_mode``.

    Returns:
        The target's :class:`TableAsset`.
    """
    from airflow.sdk import Asset

    source, target = TableAsset(**result["source_asset"]), TableAsset(**result["target_asset"])
    rows, size = int(result["rows_written"]), int(result["bytes"])
    extra = {"rows": rows, "run_id": str(context["run_id"]), "mode": str(result["load_mode"]),
             "sync_mode": str(result["sync_mode"]), "source": source.uri}
    context["outlet_events"][replication_alias(dag_id)].add(Asset(name=target.name, uri=target.uri), extra=extra)
    try:
        lineage = _lineage(source, target, rows, size)
    except ImportError:
        log.info("asset event %s (%s); OpenLineage provider not installed, no lineage", target.name, target.uri)
        return target
    context["task"].get_openlineage_facets_on_complete = lambda task_instance: lineage
    log.info("asset event %s (%s) rows=%d; lineage %s.%s -> %s.%s", target.name, target.uri, rows,
             source.namespace, source.dataset, target.namespace, target.dataset)
    return target


def describe_events(triggering_asset_events: Mapping[Any, Any]) -> list[dict[str, object]]:
    """Log and return the asset events that triggered a downstream DAG run.

    Args:
        triggering_asset_events: the context's ``triggering_asset_events`` (asset or alias ->
            events). An event emitted through an alias is listed under its asset and again under
            the alias (Airflow 3.1 ``TriggeringAssetEventsAccessor``); only the asset entries count.

    Returns:
        One dict per event: ``asset`` (name), ``uri``, ``rows``, ``run_id``, ``mode``, ``source``,
        ``source_dag_id``, ``timestamp`` (ISO 8601).

    Raises:
        ValueError: no event triggered the run (the DAG was started by hand, not by an asset).
    """
    described: list[dict[str, object]] = []
    for asset, events in triggering_asset_events.items():
        if not getattr(asset, "uri", None):  # an AssetAlias entry repeats its assets' events
            continue
        for event in events:
            extra = dict(event.extra or {})
            row = {"asset": asset.name, "uri": asset.uri,
                   "rows": extra.get("rows"), "run_id": extra.get("run_id"), "mode": extra.get("mode"),
                   "source": extra.get("source"), "source_dag_id": event.source_dag_id,
                   "timestamp": event.timestamp.isoformat()}
            log.info("replicated: %(asset)s (%(uri)s) rows=%(rows)s run_id=%(run_id)s mode=%(mode)s source=%(source)s", row)
            described.append(row)
    if not described:
        raise ValueError("no triggering asset event: this DAG runs when the replication DAG emits one")
    return described
