"""Run configuration: DAG params and environment become one frozen, validated object.

This is the only module (with :mod:`connections`) that reads environment variables. Values are
validated once, here, at the edge; everything downstream trusts :class:`CopySettings`.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from include.replication.core.errors import ConfigurationError

__all__ = [
    "MiB",
    "IN_FLIGHT_BATCHES",
    "DEFAULT_MEMORY_BUDGET_MIB",
    "DEFAULT_BATCH_ROWS",
    "MAX_PARALLEL_RANGES",
    "LoadMode",
    "LOAD_MODES",
    "DEFAULT_LOCK_WAIT_S",
    "CopySettings",
    "DEFAULT_SPILL_ROOT_ENV",
    "default_batch_bytes",
    "default_spill_root",
    "TargetCase",
    "TARGET_CASES",
    "DEFAULT_TARGET_CASE",
    "DEFAULT_TABLE_TEMPLATE",
    "RowsCallback",
]

MiB = 1024 * 1024
"""Bytes in a mebibyte."""
DEFAULT_MEMORY_BUDGET_MIB = 128
"""Default memory budget of one copy task: 128 MiB of row data (the product's promise)."""
DEFAULT_BATCH_ROWS = 50_000
"""Default most rows per RecordBatch (bytes usually bound a batch first: :func:`default_batch_bytes`)."""
MAX_PARALLEL_RANGES = 16
"""Most primary-key ranges one table is split into."""
LoadMode = Literal["swap", "truncate", "drop"]
"""How a copy replaces a table's rows (``pipeline.copy_table``): a staging copy swapped in (the
default), TRUNCATE and load in one transaction into the existing table, or into a dropped and
re-created table."""
LOAD_MODES: tuple[str, ...] = get_args(LoadMode)
DEFAULT_LOCK_WAIT_S = 60.0
"""Seconds a copy waits for another copy of the same table to finish before failing (retryable)."""
IN_FLIGHT_BATCHES = 16
"""Batches' worth of memory the copy stages hold outside the buffer (see ``buffer_budget_bytes``).

12 from the stages measured one by one at 8 MiB batches; raised to 16 because a whole copy at the
default 4 MiB batches holds more: synthetic Posts at scale 1 (spilling 1.9 GB), copied as two key
ranges under ``airflow standalone``, grew 194 MiB over its starting RSS at the 128 MiB budget
(budget + 66 MiB; the first ``benchmarks/results/full_scale_scale1_posts.md``, commit f16d488;
with 16 the rerun grew 166 MiB). At scale 0.1, three
interleaved fresh-process copies each: 183-186 MiB with 12, 167-168 MiB with 16, same speed."""
TargetCase = Literal["preserve", "lower"]
"""How target identifiers are spelled (``core.naming``): ``preserve`` keeps the source's spelling
(``"Posts"."CreationDate"``, quoted in PostgreSQL); ``lower`` lower-cases table, column, index and
constraint names (``posts.creationdate``, what a PostgreSQL user types unquoted)."""
TARGET_CASES: tuple[str, ...] = get_args(TargetCase)
DEFAULT_TARGET_CASE: TargetCase = "preserve"
"""Default ``target_case``: keep the source's names (see the README's "Naming" section for why)."""
DEFAULT_TABLE_TEMPLATE = "{table}"
"""Default ``target_table_template``: the target table is named like the source table."""
RowsCallback = Callable[[int], None]
"""Called with the rows of each batch as the writer takes it (a progress bar); from the writer's thread."""
DEFAULT_SPILL_ROOT_ENV = "STACKOVERFLOW_SPILL_ROOT"
"""Environment variable naming the spill root directory (default: ``<tmp>/stackoverflow-spill``)."""


def default_batch_bytes(budget_bytes: int) -> int:
    """Default RecordBatch size for a memory budget: budget / 32, between 64 KiB and 8 MiB (bytes).

    Besides the batches the buffer holds, each stage keeps a few batches of its own in flight
    (the reader's, the spill writer's, the spill read-ahead, the COPY writer's); measured with the
    memory benchmark at 1 GB of Posts, those cost ~99 MiB of RSS at 8 MiB batches and ~57 MiB at
    4 MiB, so the default is 4 MiB at the 128 MiB budget.
    """
    return min(8 * MiB, max(budget_bytes // 32, 64 * 1024))


def default_spill_root() -> Path:
    """``$STACKOVERFLOW_SPILL_ROOT`` if set, else ``<system temp dir>/stackoverflow-spill``."""
    env = os.environ.get(DEFAULT_SPILL_ROOT_ENV)
    return Path(env) if env else Path(tempfile.gettempdir()) / "stackoverflow-spill"


@dataclass(frozen=True)
class CopySettings:
    """How one table is copied.

    Attributes:
        memory_budget_bytes: most bytes of row data the SpillingBuffer holds in memory (bytes).
        batch_rows: most rows per RecordBatch.
        batch_bytes: target bytes per RecordBatch (bytes); one row larger than this travels alone.
        spill_root: directory under which each task attempt gets its own spill directory.
        overlap: True runs the reader on its own thread concurrently with the writer (always in
            the DAGs; False only for the benchmarks' serial variant).
        run_id: the Airflow run id (audit key).
        attempt: the task attempt number, 1-based (audit).
        label: extra words for the spill directory name and logs (e.g. the DAG id).
        parallel_ranges: copy the table as this many primary-key ranges at once, each with its
            own reader, buffer (a share of the budget) and target connection; 1 = one stream.
            Needs a single integer primary key on a source and target that support key ranges;
            otherwise one stream is used.
        load_mode: ``swap``, ``truncate`` or ``drop`` (:data:`LoadMode`).
        lock_wait_s: seconds to wait for another copy of the same table (seconds).
        on_rows: called with each batch's row count as the writer takes it (the CLI's progress
            bar), or None; never part of the DAG params.
    """

    memory_budget_bytes: int = DEFAULT_MEMORY_BUDGET_MIB * MiB
    batch_rows: int = DEFAULT_BATCH_ROWS
    batch_bytes: int = default_batch_bytes(DEFAULT_MEMORY_BUDGET_MIB * MiB)
    spill_root: Path = field(default_factory=default_spill_root)
    overlap: bool = True
    run_id: str = "manual"
    attempt: int = 1
    label: str = "copy"
    parallel_ranges: int = 1
    load_mode: LoadMode = "swap"
    lock_wait_s: float = DEFAULT_LOCK_WAIT_S
    on_rows: RowsCallback | None = field(default=None, compare=False, repr=False)

    @property
    def buffer_budget_bytes(self) -> int:
        """Bytes the SpillingBuffer may hold: the memory budget minus the batches in flight.

        Besides the buffer, the stages of a copy each hold batches of their own: the reader's
        current batch and re-chunking, the Parquet spill writer, the spill read-ahead, the COPY
        writer. Measured one by one in fresh processes (benchmarks/results/memory_benchmark.md),
        they came to about 12 batches' worth of memory at 8 MiB batches (reader 2.3, spill writer
        2.5, spill reader 4.2, COPY writer 3.5); a whole copy at 4 MiB batches needs more, so
        ``IN_FLIGHT_BATCHES`` (16) are reserved (64 MiB at the default). Reserving them keeps
        the whole task, not just the buffer, within ``memory_budget_bytes`` of row data. Never
        less than two batches.
        """
        return max(2 * self.batch_bytes, self.memory_budget_bytes - IN_FLIGHT_BATCHES * self.batch_bytes)

    def __post_init__(self) -> None:
        if self.memory_budget_bytes < 1 * MiB:
            raise ConfigurationError(f"memory budget must be at least 1 MiB, got {self.memory_budget_bytes} bytes")
        if self.batch_rows < 1:
            raise ConfigurationError(f"batch_rows must be positive, got {self.batch_rows}")
        if not 1 <= self.parallel_ranges <= MAX_PARALLEL_RANGES:
            raise ConfigurationError(f"parallel_ranges must be 1..{MAX_PARALLEL_RANGES}, got {self.parallel_ranges}")
        if self.load_mode not in LOAD_MODES:
            raise ConfigurationError(f"load_mode must be one of {list(LOAD_MODES)}, got {self.load_mode!r}")
        if self.batch_bytes < 64 * 1024:
            raise ConfigurationError(f"batch_bytes must be at least 64 KiB, got {self.batch_bytes}")

    @classmethod
    def from_params(cls, params: Mapping[str, Any], *, run_id: str = "manual", attempt: int = 1, label: str = "copy") -> CopySettings:
        """Build settings from DAG params.

        Recognised keys: ``memory_budget_mib`` (int, MiB; default
        :data:`DEFAULT_MEMORY_BUDGET_MIB`), ``batch_rows`` (int; :data:`DEFAULT_BATCH_ROWS`),
        ``batch_mib`` (number, MiB; 0 or absent = :func:`default_batch_bytes`), ``spill_root``
        (str; empty = :func:`default_spill_root`), ``parallel_ranges`` (int, 1..16), ``lock_wait_s``
        (number, seconds; :data:`DEFAULT_LOCK_WAIT_S`; not a DAG param, for tools and tests). Other keys
        are ignored (the DAG's other params).

        Raises:
            ConfigurationError: a value has the wrong type or range.
        """
        try:
            budget = int(params.get("memory_budget_mib", DEFAULT_MEMORY_BUDGET_MIB)) * MiB
            batch_rows = int(params.get("batch_rows", DEFAULT_BATCH_ROWS))
            parallel = int(params.get("parallel_ranges", 1))
            batch_mib = params.get("batch_mib")
            batch_bytes = int(float(batch_mib) * MiB) if batch_mib else default_batch_bytes(budget)
            lock_wait_s = float(params.get("lock_wait_s", DEFAULT_LOCK_WAIT_S))
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(f"bad numeric DAG param: {exc}") from exc
        spill = params.get("spill_root") or None
        load_mode = params.get("load_mode", "swap")
        if load_mode not in LOAD_MODES:
            raise ConfigurationError(f"load_mode must be one of {list(LOAD_MODES)}, got {load_mode!r}")
        return cls(
            memory_budget_bytes=budget,
            batch_rows=batch_rows,
            batch_bytes=batch_bytes,
            spill_root=Path(spill) if spill else default_spill_root(),
            run_id=run_id,
            attempt=attempt,
            label=label,
            parallel_ranges=parallel,
            load_mode=load_mode,
            lock_wait_s=lock_wait_s,
        )
