"""Dialect-free core of the pipeline: catalog, type map, DDL, batching, buffer, transfer, pipeline,
checks, audit, validation, configuration, errors, metrics, key ranges. Imports no dialect and no Airflow.
"""
