"""Method 7, dlt: the ``sql_database`` source's ``sql_table`` with the ``pyarrow`` backend, into
PostgreSQL with dlt's own defaults (extract -> normalize -> load, files in a local pipelines dir).

dlt creates its own table (plus ``_dlt_load_id`` / ``_dlt_id`` columns) in the dataset schema
:data:`base.DLT_DATASET`, which the harness drops before every run. The time cap is dlt's own
``add_limit(max_time=...)`` on the extract step; normalize and load of what was extracted still
run and are timed, so the rate reached includes them.
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")

import dlt  # noqa: E402
import sqlalchemy as sa  # noqa: E402
from dlt.sources.sql_database import sql_table  # noqa: E402

from benchmarks.methods.base import DLT_DATASET, Outcome, RunContext  # noqa: E402

__all__ = ["run", "sqlalchemy_url", "dlt_credentials"]


def sqlalchemy_url(libpq_uri: str) -> str:
    """``postgresql://...`` -> ``postgresql+psycopg2://...`` (the driver dlt's source uses)."""
    scheme, rest = libpq_uri.split("://", 1)
    return f"postgresql+psycopg2://{rest}" if scheme in ("postgresql", "postgres") else libpq_uri


def dlt_credentials(libpq_uri: str) -> dict[str, object]:
    """dlt ``PostgresCredentials`` fields for a libpq URI; a Unix-socket directory goes to ``host``
    (dlt requires a host and a password and does not read libpq's ``?host=``)."""
    from include.replication.airflow.connections import endpoint_from_uri

    ep = endpoint_from_uri(libpq_uri)
    creds: dict[str, object] = {"database": ep.database, "username": ep.user or "postgres", "host": ep.host or "localhost"}
    if ep.host and ep.host.startswith("/"):
        # a socket directory: dlt renders host into a URL netloc, where a path cannot go; libpq's
        # ?host= query parameter overrides the placeholder
        creds["host"] = "localhost"
        creds["query"] = {"host": ep.host}
    if ep.port:
        creds["port"] = ep.port
    # dlt insists on a password; a trust-authenticated server (the embedded one) ignores it
    creds["password"] = ep.password or "unused"
    return creds


def run(ctx: RunContext) -> Outcome:
    """Run one dlt pipeline that loads ``ctx.table`` into the dataset schema.

    Returns:
        :class:`Outcome`; ``rows`` = rows dlt reports loaded (the harness recounts them), ``capped``
        when the extract step hit the time cap; ``extra['file_format']`` = loader file format.

    Raises:
        dlt.pipeline.exceptions.PipelineStepFailed: any dlt step failed.
    """
    engine = sa.create_engine(sqlalchemy_url(ctx.source_uri))
    resource = sql_table(
        credentials=engine,
        table=ctx.table,
        schema=ctx.source_schema,
        backend="pyarrow",
        chunk_size=max(ctx.chunk_rows, 10_000),
        reflection_level="full_with_precision",
    )
    resource = resource.add_limit(max_time=ctx.time_cap_s)
    pipeline = dlt.pipeline(
        pipeline_name=f"bench_{ctx.table.lower()}",
        destination=dlt.destinations.postgres(credentials=dlt_credentials(ctx.target_uri)),
        dataset_name=DLT_DATASET,
        pipelines_dir=str(Path(ctx.work_dir) / "dlt"),
    )
    try:
        pipeline.run(resource, write_disposition="append")
        with pipeline.sql_client() as client:
            rows = int(client.execute_sql(f'SELECT count(*) FROM "{DLT_DATASET}"."{ctx.table.lower()}"')[0][0])
        fmt = ""
        trace = pipeline.last_trace
        if trace is not None and trace.last_normalize_info is not None:
            fmt = ",".join(sorted({j.job_file_info.file_format for p in trace.last_load_info.load_packages for j in p.jobs.get("completed_jobs", [])})) if trace.last_load_info else ""
    finally:
        engine.dispose()
    return Outcome(rows=rows, capped=rows < ctx.total_rows, extra={"file_format": fmt})
