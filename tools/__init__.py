"""Developer tools, not deployed: local PostgreSQL and Babelfish servers, a local Airflow, the demo
and the scheduler check.
"""
