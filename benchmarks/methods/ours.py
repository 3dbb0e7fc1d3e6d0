"""Method 2: our pipeline as the DAG runs it: ``include.replication.core.pipeline.copy_table``.

Variants (``ctx.variant``): ``default`` (128 MiB budget, reader and writer overlapped),
``no_overlap`` (read everything into the buffer, then write) and ``spill`` (1 MiB budget, so almost
every batch goes through a Parquet spill file). There is no range-parallel copy unit in the
pipeline yet, so no "N parallel ranges" variant.

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

__all__ = ["run", "settings_for", "endpoint_from_uri"]

log = logging.getLogger(__name__)


def endpoint_from_uri(uri: str, schema: str) -> Endpoint:
    """The product's :class:`Endpoint` for a libpq URI (``postgresql://user@host:port/db?host=/dir``)."""
    from include.replication.airflow.connections import endpoint_from_uri as parse

    return parse(uri, schema=schema)


def settings_for(variant: str, spill_root: Path) -> CopySettings:
    """The :class:`CopySettings` of a variant.

    Raises:
        ValueError: unknown variant.
    """
    # load_mode drop: rows go into the prepared, empty table, as every other method's do (the
    # swap mode's staging copy and swap are measured by the full-scale benchmark)
    base = {"spill_root": str(spill_root), "load_mode": "drop"}
    if variant == "default":
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
        bytes, high-water bytes) and ``finish_s`` (seconds of the untimed ``finish_table``).

    Raises:
        ReplicationError: whatever the pipeline raises.
    """
    settings = settings_for(ctx.variant or "default", Path(ctx.work_dir) / "spill")
    source = open_source(endpoint_from_uri(ctx.source_uri, ctx.source_schema))
    target = open_target(endpoint_from_uri(ctx.target_uri, ctx.target_schema))
    try:
        spec = source.describe(ctx.table, ctx.source_schema)
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
        },
    )
