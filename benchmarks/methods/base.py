"""What the harness hands a method (:class:`RunContext`) and what it gets back (:class:`Outcome`).

Both are plain picklable dataclasses: they cross the boundary to the spawned child process.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

__all__ = ["RunContext", "Outcome", "Deadline", "DLT_DATASET"]

DLT_DATASET = "dlt_bench"
"""Target schema dlt loads into (dropped by the harness before every dlt run)."""


@dataclass(frozen=True)
class RunContext:
    """Everything one copy needs; built by the harness, read-only in the method.

    Attributes:
        table: source (and target) table name, e.g. ``Posts``.
        source_uri: libpq URI of the source database.
        target_uri: libpq URI of the target database.
        source_schema: schema of the source table.
        target_schema: schema of the prepared, empty target table.
        select_sql: the ``SELECT`` every query-based method reads (our reader's: catalog
            columns, ordered by primary key), so all read the same rows in the same order.
        columns: column names in order.
        total_rows: rows in the source table.
        variant: method variant (``MethodInfo.variant``).
        time_cap_s: capped methods stop taking new rows after this many seconds (seconds).
        chunk_rows: rows per fetch / INSERT chunk of the row-based methods.
        airflow_conn_ids: (source, target) Airflow connection ids, defined as
            ``AIRFLOW_CONN_<ID>`` in the child's environment.
        work_dir: scratch directory for spill files, dlt pipelines and profiles.
        profile_path: when set, the method's copy runs under pyinstrument and the HTML/text
            profile is written there (method 2 only).
        prepared: what the method module's optional ``prepare(ctx)`` returned; the child calls
            it before the timer (the driver floors read their input there).
    """

    table: str
    source_uri: str
    target_uri: str
    source_schema: str
    target_schema: str
    select_sql: str
    columns: tuple[str, ...]
    total_rows: int
    variant: str = ""
    time_cap_s: float = 10.0
    chunk_rows: int = 5_000
    airflow_conn_ids: tuple[str, str] = ("bench_source", "bench_target")
    work_dir: str = "/tmp"
    profile_path: str | None = None
    prepared: Any = None


@dataclass
class Outcome:
    """What a method reports about its own copy.

    Attributes:
        rows: rows the method sent (the harness also counts the target table itself).
        capped: True when the time cap stopped it before the last row.
        extra: method-specific figures (spill files, high-water bytes, phase seconds).
    """

    rows: int
    capped: bool = False
    extra: dict[str, float | int | str] = field(default_factory=dict)


class Deadline:
    """A time cap: ``expired()`` turns True ``cap_s`` seconds after construction.

    Args:
        cap_s: seconds allowed (<= 0 or inf: never expires).
        clock: monotonic clock in seconds (injectable for tests).
    """

    def __init__(self, cap_s: float, clock=time.monotonic) -> None:  # noqa: ANN001 - a callable
        self._clock = clock
        self._end = clock() + cap_s if cap_s > 0 else float("inf")

    def expired(self) -> bool:
        """True once the cap has passed."""
        return self._clock() >= self._end
