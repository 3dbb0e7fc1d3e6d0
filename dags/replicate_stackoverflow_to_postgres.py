"""
### Replicate Stack Overflow into PostgreSQL (Airflow DAG)

Copies every table of the `stackoverflow_source` connection (SQL Server or PostgreSQL) into the
PostgreSQL database of `stackoverflow_postgres_target` through bounded Arrow RecordBatches
(ADBC bulk ingest / binary COPY), one mapped task per table, then validates row counts and writes
one `replication_audit` row per table. Re-running replaces the target tables: exactly one copy
of every row.
"""

from include.replication.airflow.dag_factory import build_replication_dag

replicate_stackoverflow_to_postgres = build_replication_dag(
    dag_id="replicate_stackoverflow_to_postgres",
    source_conn_id="stackoverflow_source",
    target_conn_id="stackoverflow_postgres_target",
    tags=["stackoverflow", "replication", "postgres"],
    doc_md=__doc__,
)
