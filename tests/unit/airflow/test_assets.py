"""Asset and OpenLineage naming of a table (include/replication/airflow/assets.py), checked against
Airflow's own providers: the URI must survive the postgres/mssql providers' ``sanitize_uri``
unchanged (what ``Asset(...)`` applies), and their OpenLineage converters must give the same
namespace and dataset name as the lineage the copy task reports."""

from __future__ import annotations

import datetime as dt
import logging
from types import SimpleNamespace

import pytest

from include.replication.airflow.assets import describe_events, table_asset
from include.replication.core.endpoint import Endpoint

PG = Endpoint("postgresql", "db.example.com", 6432, "so_replica", "replicator", "secret", "public")
SOCKET = Endpoint("postgresql", "/var/run/postgresql", None, "stackoverflow", "postgres")
MSSQL = Endpoint("mssql", "sql01", None, "StackOverflow2010", "sa", "pw", "dbo")


class _Events:
    """Stands in for Airflow's TriggeringAssetEventsAccessor (a Mapping whose keys are Asset and
    AssetAlias objects, which do not hash); only ``items()`` is used."""

    def __init__(self, pairs):
        self._pairs = pairs

    def items(self):
        return list(self._pairs)


@pytest.mark.parametrize(("endpoint", "schema", "table", "uri", "namespace", "dataset"), [
    (PG, "public", "Posts", "postgres://db.example.com:6432/so_replica/public/Posts",
     "postgres://db.example.com:6432", "so_replica.public.Posts"),
    (SOCKET, "archive", "Votes", "postgres://localhost:5432/stackoverflow/archive/Votes",
     "postgres://localhost:5432", "stackoverflow.archive.Votes"),
    (MSSQL, "dbo", "Users", "mssql://sql01:1433/StackOverflow2010/dbo/Users",
     "mssql://sql01:1433", "StackOverflow2010.dbo.Users"),
])
def test_table_assets_use_the_providers_naming(endpoint, schema, table, uri, namespace, dataset):
    from airflow.providers_manager import ProvidersManager
    from airflow.sdk import Asset

    asset = table_asset("stackoverflow_target", endpoint, schema, table)
    assert (asset.name, asset.uri, asset.namespace, asset.dataset) == (
        f"stackoverflow_target.{schema}.{table}", uri, namespace, dataset)
    assert Asset(name=asset.name, uri=asset.uri).uri == uri  # the provider's sanitize_uri keeps it as is
    converter = ProvidersManager().asset_to_openlineage_converters[uri.split(":", 1)[0]]
    ol = converter(Asset(uri=uri), None)
    assert (ol.namespace, ol.name) == (namespace, dataset)


def test_names_with_spaces_and_slashes_are_quoted_in_the_uri():
    asset = table_asset("t", PG, "my schema", "a/b")
    assert asset.uri == "postgres://db.example.com:6432/so_replica/my%20schema/a%2Fb"
    assert asset.dataset == "so_replica.my schema.a/b"


def test_describe_events_lists_every_triggering_event(caplog):
    from airflow.sdk import Asset, AssetAlias

    asset = Asset(name="stackoverflow_postgres_target.public.Posts", uri="postgres://h:5432/d/public/Posts")
    event = SimpleNamespace(extra={"rows": 1200, "run_id": "manual__1", "mode": "swap", "source": "postgres://s:5432/d/public/Posts"},
                            source_dag_id="replicate_stackoverflow_to_postgres",
                            timestamp=dt.datetime(2026, 12, 3, 6, 0, tzinfo=dt.UTC))
    with caplog.at_level(logging.INFO):
        # Airflow's accessor lists an event emitted through an alias under the asset and the alias
        rows = describe_events(_Events([(asset, [event]), (AssetAlias("replicate_stackoverflow_to_postgres.tables"), [event])]))
    assert rows == [{"asset": asset.name, "uri": asset.uri, "rows": 1200, "run_id": "manual__1", "mode": "swap",
                     "source": "postgres://s:5432/d/public/Posts", "source_dag_id": "replicate_stackoverflow_to_postgres",
                     "timestamp": "2026-12-03T06:00:00+00:00"}]
    assert "replicated: stackoverflow_postgres_target.public.Posts" in caplog.text and "rows=1200" in caplog.text
    with pytest.raises(ValueError, match="no triggering asset event"):
        describe_events({})
