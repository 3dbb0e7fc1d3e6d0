"""Method 2: our pipeline as the DAG runs it: ``include.replication.core.pipeline.copy_table``.

Variants (``ctx.variant``): ``default`` (128 MiB budget, reader and writer overlapped),
``no_overlap`` (read everything into the buffer, then write), ``spill`` (1 MiB budget, so almost
every batch goes through a Parquet spill file) and ``parallel2`` (2 primary-key ranges). For a SQL
Server target (``throughput_tds.py``): ``executemany`` and ``bulk_copy``, the default settings with
the target endpoint's ``write_method`` option set to that writer (:data:`WRITE_METHOD_VARIANTS`).
Source and target may be ``mssql://`` URIs (parsed without Airflow, :mod:`.tds`).

The timed part is what every method does: rows from the source into the prepared, empty target
table, committed after the count check. ``finish_table`` (primary key, ANALYZE, identity) is not
in the timed part because no other method builds a key; its seconds are reported apart as
``extra['finish_s']``.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Any

from benchmarks.methods.base import Outcome, RunContext
from include.replication.core.config import CopySettings
from include.replication.core.endpoint import Endpoint
from include.replication.core.pipeline import copy_table
from include.replication.dialects.registry import open_source, open_target

__all__ = ["run", "settings_for", "endpoint_from_uri", "target_endpoint", "WRITE_METHOD_VARIANTS"]

log = logging.getLogger(__name__)


WRITE_METHOD_VARIANTS = ("executemany", "bulk_copy")
"""Variants that name the SQL Server writer's ``write_method`` (the copy settings are the default)."""


def endpoint_from_uri(uri: str, schema: str) -> Endpoint:
    """The product's :class:`Endpoint` for a libpq URI (``postgresql://user@host:port/db?host=/dir``)
    or an ``mssql://`` URI."""
    from benchmarks.methods.tds import endpoint_for

    return endpoint_for(uri, schema)


def target_endpoint(uri: str, schema: str, variant: str) -> Endpoint:
    """The target's :class:`Endpoint`; for a :data:`WRITE_METHOD_VARIANTS` variant with the
    ``write_method`` option set to it.

    Raises:
        ValueError: a write-method variant on a target that is not SQL Server.
    """
    endpoint = endpoint_from_uri(uri, schema)
    if variant in WRITE_METHOD_VARIANTS:
        if endpoint.dialect != "mssql":
            raise ValueError(f"variant {variant!r} needs a SQL Server target, not {endpoint.dialect}")
        endpoint = dataclasses.replace(endpoint, options={**endpoint.options, "write_method": variant})
    return endpoint


def settings_for(variant: str, spill_root: Path) -> CopySettings:
    """The :class:`CopySettings` of a variant.

    Raises:
        ValueError: unknown variant.
    """
    # load_mode drop: rows go into the prepared, empty table, as every other method's do (the
    # swap mode's staging copy and swap are measured by the full-scale benchmark)
    base = {"spill_root": str(spill_root), "load_mode": "drop"}
    if variant == "default" or variant in WRITE_METHOD_VARIANTS:
        return CopySettings.from_params(base, run_id="bench", label="bench")
    if variant == "no_overlap":
        serial = CopySettings.from_params(base, run_id="bench", label="bench")
        return dataclasses.replace(serial, overlap=False)
    if variant == "parallel2":
        return CopySettings.from_params({**base, "parallel_ranges": 2}, run_id="bench", label="bench")
    if variant == "spill":
        return CopySettings.from_params({**base, "memory_budget_mib": 1}, run_id="bench", label="bench")
    raise ValueError(f"unknown variant of method 2: {variant!r}")


class _DeferFinish:
    """Proxy of a Target whose ``finish_table`` only records the spec (run later, untimed)."""

    def __init__(self, target: Any) -> None:
        self._target = target
        self.deferred: Any = None

    def finish_table(self, spec: Any) -> None:
        self.deferred = spec

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target, name)


def run(ctx: RunContext) -> Outcome:
    """Copy ``ctx.table`` with ``copy_table`` and the variant's settings.

    Returns:
        :class:`Outcome`; ``extra`` holds the pipeline's own figures (batches, spill files and
        bytes, high-water bytes), ``describe_s`` (seconds of the timed catalog ``describe``) and
        ``finish_s`` (seconds of the untimed ``finish_table``).

    Raises:
        ReplicationError: whatever the pipeline raises.
    """
    settings = settings_for(ctx.variant or "default", Path(ctx.work_dir) / "spill")
    source = open_source(endpoint_from_uri(ctx.source_uri, ctx.source_schema))
    target = open_target(target_endpoint(ctx.target_uri, ctx.target_schema, ctx.variant))
    try:
        started = time.monotonic()
        spec = source.describe(ctx.table, ctx.source_schema)
        describe_s = time.monotonic() - started
        proxy = _DeferFinish(target)
        if ctx.profile_path:
            from pyinstrument import Profiler

            profiler = Profiler(interval=0.001)
            profiler.start()
            result = copy_table(source, proxy, spec, settings)  # type: ignore[arg-type]
            profiler.stop()
            Path(ctx.profile_path).write_text(profiler.output_text(unicode=True, color=False, show_all=False))
            Path(ctx.profile_path).with_suffix(".html").write_text(profiler.output_html())
        else:
            result = copy_table(source, proxy, spec, settings)  # type: ignore[arg-type]
        started = time.monotonic()
        target.finish_table(spec)
        finish_s = time.monotonic() - started
    finally:
        source.close()
        target.close()
    return Outcome(
        rows=result.rows_written,
        extra={
            "batches": result.batches,
            "spill_files": result.spill_files,
            "spill_bytes": result.spill_bytes,
            "high_water_bytes": result.high_water_bytes,
            "arrow_bytes": result.bytes,
            "finish_s": round(finish_s, 3),
            "describe_s": round(describe_s, 3),
        },
    )
