"""
### Replicate Stack Overflow into SQL Server (Airflow DAG)

Copies every table of the `stackoverflow_source` connection into the SQL Server database of
`stackoverflow_target` (chunked `executemany` with `IDENTITY_INSERT`), one mapped task per table,
then validates row counts and writes one `replication_audit` row per table.
"""

from include.replication.airflow.dag_factory import build_replication_dag

replicate_stackoverflow_to_target = build_replication_dag(
    dag_id="replicate_stackoverflow_to_target",
    source_conn_id="stackoverflow_source",
    target_conn_id="stackoverflow_target",
    tags=["stackoverflow", "replication", "sqlserver"],
    doc_md=__doc__,
)
