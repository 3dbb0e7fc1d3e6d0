"""
### Report on replicated tables (Airflow DAG scheduled on the replication's Assets)

An example of a downstream DAG: it runs when `replicate_stackoverflow_to_postgres` has replicated
tables. Every copy emits an asset event for the table it wrote, named
`<target connection id>.<schema>.<table>` with the URI `postgres://host:port/database/schema/table`,
through the AssetAlias `replicate_stackoverflow_to_postgres.tables`; this DAG is scheduled on that
alias, which Airflow resolves to the table assets once the first events arrive. Its task logs the
events that triggered it: table, rows, the replication run id, load mode and source table.

Why the alias and not `Asset.ref(name="stackoverflow_postgres_target.public.Posts")`: the table
assets are created at run time (the table list is only known then), and Airflow 3.1 resolves a
name reference only to an asset that some DAG file declares (`AssetModel.active`), so such a
reference never fires. A DAG that must wait for one table declares that table's Asset with its
full name and URI, or filters the events as `describe_events` does.
"""

from datetime import datetime

from airflow.sdk import AssetAlias, dag, get_current_context, task

from include.replication.airflow.assets import describe_events

REPLICATED_TABLES = AssetAlias("replicate_stackoverflow_to_postgres.tables")


@dag(
    dag_id="report_on_replicated_tables",
    schedule=REPLICATED_TABLES,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["stackoverflow", "replication", "example", "assets"],
    doc_md=__doc__,
    default_args={"retries": 2, "owner": "data-engineering"},
)
def report_on_replicated_tables() -> None:
    @task
    def report() -> list[dict[str, object]]:
        """Log each triggering asset event (table, rows, replication run id, mode)."""
        return describe_events(get_current_context()["triggering_asset_events"])

    report()


report_on_replicated_tables()
