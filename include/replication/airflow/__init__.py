"""The Airflow edge: the DAG factory, the task bodies and the connection lookup. The only code that
imports Airflow.
"""
