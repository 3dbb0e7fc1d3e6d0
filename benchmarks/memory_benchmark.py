"""Memory benchmark of the bounded copy (issue 3): buffer high-water mark and peak RSS vs table size.

What it measures: the product's own PostgreSQL -> PostgreSQL copy of a synthetic Posts table at
growing sizes (MB of Arrow row data), exactly as a copy task runs it::

    open_source / open_target -> source.describe("Posts") -> target.prepare_table(spec)
    -> pipeline.copy_table(source, target, spec, CopySettings(...))   # default 128 MiB budget

Method:

* **Source**: one embedded PostgreSQL server (``tools.localpg``, PGDATA under
  ``--pg-dir``, kept between runs) holds one source database per size,
  ``membench_posts_<rows>_s<seed>``, filled by ``include.stackoverflow.synthetic.fill_synthetic``
  in a **separate process**. A database whose ``Posts`` already has the expected row count is
  reused, so a re-run does not refill gigabytes.
* **Copy**: every (size, overlap) run is a **fresh child process** (``python -m
  benchmarks.memory_benchmark --child copy``) that only copies, so its peak RSS (``VmHWM``) is the
  copy's own and not the generator's. The target is database ``membench_target``, dropped and
  re-created around every run.
* **Interleaved**: per size, overlap on and overlap off run back to back (the order alternates
  from size to size), so drift on the shared machine hits both alike.
* Per run it records: rows, Arrow bytes, batches, the largest batch, wall time of ``copy_table``
  (``CopyResult.seconds``, includes ``finish_table``: primary key, indexes, ANALYZE) and of
  ``finish_table`` alone, rows/s and MB/s (10^6 bytes) over the wall time, the buffer's
  high-water mark, spill files and bytes, the child's RSS after imports, connecting and
  ``prepare_table`` (the baseline), its ``VmHWM`` when the writer starts (with overlap off that is
  the read phase's peak: reader + full buffer + spilling), its final ``VmHWM`` (peak RSS) and the
  Arrow memory pool's ``max_memory`` (bytes Arrow itself allocated at most; the ADBC driver's own
  ``malloc`` buffers are not in it).

Usage::

    .venv/bin/python -m benchmarks.memory_benchmark                       # 10 MB, 100 MB, 1 GB, 3 GB
    .venv/bin/python -m benchmarks.memory_benchmark --sizes-mb 10 100 --out /tmp/membench

Outputs ``<out>.csv`` (one row per run), ``<out>.md`` (table and checks) and ``<out>.png``
(matplotlib). Disk: the source databases take about 1.3x their Arrow size, the target as much
again while a run lasts, and spill files up to the table's size.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

MIB = 1024 * 1024
MB = 1_000_000
ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SIZES_MB = (10, 100, 1000, 3000)
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "memory_benchmark"
DEFAULT_PG_DIR = ROOT / ".local" / "membench" / "pg"
TARGET_DATABASE = "membench_target"
RSS_GROWTH_BOUND_MIB = 64.0
"""The issue's bound on peak RSS growth from 100 MB to the largest size (MiB)."""

Row = dict[str, Any]


# --------------------------------------------------------------------------------------- sizing


def bytes_per_post_row(seed: int, sample_scale: float = 0.002) -> float:
    """Average Arrow bytes per synthetic Posts row (a sample of ``sample_scale``; about 7,500 rows).

    Returns:
        Bytes per row (the batches' buffer sizes, as the SpillingBuffer accounts them).
    """
    from include.replication.core.batching import batch_nbytes
    from include.stackoverflow.synthetic import generate

    rows = nbytes = 0
    for batch in generate("Posts", sample_scale, seed, 10_000):
        rows += batch.num_rows
        nbytes += batch_nbytes(batch)
    return nbytes / rows


def scale_for_size(size_mb: float, per_row_bytes: float, published_rows: int) -> float:
    """Generator scale that gives about ``size_mb`` MB (10^6 bytes) of Arrow row data.

    Args:
        size_mb: wanted table size in MB of Arrow row data.
        per_row_bytes: Arrow bytes per row (:func:`bytes_per_post_row`).
        published_rows: rows at scale 1.0 (3,729,195 for Posts).

    Returns:
        The scale (1.0 = published row count).

    Raises:
        ValueError: a non-positive argument.
    """
    if size_mb <= 0 or per_row_bytes <= 0 or published_rows <= 0:
        raise ValueError(f"sizes must be positive: {size_mb=} {per_row_bytes=} {published_rows=}")
    return size_mb * MB / per_row_bytes / published_rows


def source_database_name(rows: int, seed: int) -> str:
    """Name of the source database holding exactly ``rows`` synthetic Posts rows of ``seed``."""
    return f"membench_posts_{rows}_s{seed}"


# ------------------------------------------------------------------------------------- analysis


def saturated(row: Row) -> bool:
    """True when the run's buffer reached its own budget (high-water within one batch of it).

    The buffer's budget is the task's memory budget minus the batches in flight
    (``CopySettings.buffer_budget_bytes``); rows written before that column existed use the budget.
    """
    limit = float(row.get("buffer_budget_mib") or row["budget_mib"])
    return float(row["high_water_mib"]) >= limit - float(row["max_batch_mib"])


def summarize(rows: Sequence[Row], reference_mb: int = 100) -> dict[str, Any]:
    """The checks of the issue, computed from the runs.

    Args:
        rows: one dict per run with at least ``size_mb``, ``overlap`` ("on"/"off"),
            ``high_water_ok``, ``high_water_mib``, ``budget_mib``, ``max_batch_mib``,
            ``peak_rss_mib``, ``wall_s``, ``stream_s``.
        reference_mb: the size growth is measured from (the issue: 100 MB); the smallest size is
            used when it was not run.

    Returns:
        ``{"high_water_ok": bool, "modes": {mode: {...}}, "ratios": {size: {...}}}`` where each mode
        has ``reference_mb``, ``largest_mb``, ``growth_mib`` (peak RSS at largest - at reference),
        ``growth_ok`` (< 64 MiB), ``saturated_mb`` (first size whose buffer reached the budget, or
        None), ``growth_from_saturated_mib`` (or None); each size with both modes has
        ``wall_ratio`` and ``stream_ratio`` (overlap on / overlap off seconds).

    Raises:
        ValueError: no runs.
    """
    if not rows:
        raise ValueError("no runs to summarize")
    out: dict[str, Any] = {"high_water_ok": all(bool(r["high_water_ok"]) for r in rows), "modes": {}, "ratios": {}}
    by_mode: dict[str, dict[int, Row]] = {}
    for r in rows:
        by_mode.setdefault(str(r["overlap"]), {})[int(r["size_mb"])] = r
    for mode, runs in by_mode.items():
        sizes = sorted(runs)
        ref = reference_mb if reference_mb in runs else sizes[0]
        largest = sizes[-1]
        growth = float(runs[largest]["peak_rss_mib"]) - float(runs[ref]["peak_rss_mib"])
        sat = next((s for s in sizes if saturated(runs[s])), None)
        out["modes"][mode] = {
            "reference_mb": ref,
            "largest_mb": largest,
            "growth_mib": round(growth, 1),
            "growth_ok": growth < RSS_GROWTH_BOUND_MIB,
            "saturated_mb": sat,
            "growth_from_saturated_mib": (
                None
                if sat is None
                else round(float(runs[largest]["peak_rss_mib"]) - float(runs[sat]["peak_rss_mib"]), 1)
            ),
            "growth_from_saturated_ok": (
                None
                if sat is None
                else float(runs[largest]["peak_rss_mib"]) - float(runs[sat]["peak_rss_mib"]) < RSS_GROWTH_BOUND_MIB
            ),
        }
    on, off = by_mode.get("on", {}), by_mode.get("off", {})
    for size in sorted(set(on) & set(off)):
        out["ratios"][size] = {
            "wall_ratio": round(float(on[size]["wall_s"]) / float(off[size]["wall_s"]), 2),
            "stream_ratio": round(float(on[size]["stream_s"]) / float(off[size]["stream_s"]), 2),
        }
    return out


# ----------------------------------------------------------------------------- child: the copy


class _ObservedSource:
    """Delegates to a Source; records the largest RecordBatch its reader yields (bytes)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.max_batch_bytes = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def read_batches(
        self, spec: Any, *, batch_rows: int, batch_bytes: int, key_range: Any = None, row_filter: Any = None
    ) -> Iterator[Any]:
        from include.replication.core.batching import batch_nbytes

        it = self._inner.read_batches(
            spec, batch_rows=batch_rows, batch_bytes=batch_bytes, key_range=key_range, row_filter=row_filter
        )
        try:
            for batch in it:
                self.max_batch_bytes = max(self.max_batch_bytes, batch_nbytes(batch))
                yield batch
        finally:
            it.close()


class _ObservedTarget:
    """Delegates to a Target; records VmHWM/RSS when the writer starts and times ``finish_table``."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.hwm_at_write_start = 0
        self.rss_at_write_start = 0
        self.finish_seconds = 0.0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def write_batches(self, spec: Any, batches: Iterable[Any]) -> int:
        from include.replication.core.metrics import current_rss_bytes, peak_rss_bytes

        self.hwm_at_write_start = peak_rss_bytes()
        self.rss_at_write_start = current_rss_bytes()
        return int(self._inner.write_batches(spec, batches))

    def finish_table(self, spec: Any) -> None:
        t0 = time.perf_counter()
        self._inner.finish_table(spec)
        self.finish_seconds = time.perf_counter() - t0


def child_copy(args: argparse.Namespace) -> Row:
    """One copy of ``Posts`` from ``args.source_db`` into ``args.target_db`` in this process.

    Returns:
        The run's figures (see the module docstring), sizes in MiB / MB, times in seconds.

    Raises:
        ReplicationError: the copy failed.
    """
    import pyarrow as pa

    from include.replication.core.config import CopySettings
    from include.replication.core.endpoint import Endpoint
    from include.replication.core.metrics import current_rss_bytes, peak_rss_bytes
    from include.replication.core.pipeline import copy_table
    from include.replication.dialects.registry import open_source, open_target

    budget = args.budget_mib * MIB
    batch_bytes = int(args.batch_mib * MIB)
    source = open_source(Endpoint("postgresql", args.socket, None, args.source_db, args.user))
    try:
        target = open_target(Endpoint("postgresql", args.socket, None, args.target_db, args.user))
        try:
            spec = source.describe("Posts")
            target.prepare_table(spec)
            baseline = current_rss_bytes()
            settings = CopySettings(
                memory_budget_bytes=budget,
                batch_rows=args.batch_rows,
                batch_bytes=batch_bytes,
                spill_root=Path(args.spill_root),
                overlap=args.overlap == "on",
                run_id=f"{args.size_mb}MB-overlap-{args.overlap}",
                label="membench",
                load_mode="drop",  # into the prepared table: the buffer's memory is what is measured
            )
            obs_source, obs_target = _ObservedSource(source), _ObservedTarget(target)
            result = copy_table(obs_source, obs_target, spec, settings)  # type: ignore[arg-type]
            peak = peak_rss_bytes()
            rss_end = current_rss_bytes()
        finally:
            target.close()
    finally:
        source.close()
    wall = result.seconds
    stream = wall - obs_target.finish_seconds
    return {
        "size_mb": args.size_mb,
        "overlap": args.overlap,
        "rows": result.rows_written,
        "arrow_mb": round(result.bytes / MB, 1),
        "batches": result.batches,
        "max_batch_mib": round(obs_source.max_batch_bytes / MIB, 2),
        "wall_s": round(wall, 2),
        "stream_s": round(stream, 2),
        "index_s": round(obs_target.finish_seconds, 2),
        "rows_per_s": round(result.rows_written / wall),
        "mb_per_s": round(result.bytes / MB / wall, 1),
        "budget_mib": args.budget_mib,
        "buffer_budget_mib": round(settings.buffer_budget_bytes / MIB, 1),
        "high_water_mib": round(result.high_water_bytes / MIB, 1),
        "hw_bound_mib": round((budget + obs_source.max_batch_bytes) / MIB, 1),
        "high_water_ok": result.high_water_bytes <= budget + obs_source.max_batch_bytes,
        "spill_files": result.spill_files,
        "spill_mb": round(result.spill_bytes / MB, 1),
        "baseline_rss_mib": round(baseline / MIB, 1),
        "hwm_at_write_start_mib": round(obs_target.hwm_at_write_start / MIB, 1),
        "peak_rss_mib": round(peak / MIB, 1),
        "peak_minus_baseline_hw_mib": round((peak - baseline - result.high_water_bytes) / MIB, 1),
        "rss_end_mib": round(rss_end / MIB, 1),
        "arrow_pool_max_mib": round(pa.default_memory_pool().max_memory() / MIB, 1),
        "arrow_pool": pa.default_memory_pool().backend_name,
    }


def child_fill(args: argparse.Namespace) -> Row:
    """Fill ``args.source_db`` with synthetic Posts at ``args.scale`` in this process."""
    from include.replication.core.endpoint import Endpoint
    from include.stackoverflow.synthetic import fill_synthetic

    t0 = time.perf_counter()
    report = fill_synthetic(
        Endpoint("postgresql", args.socket, None, args.source_db, args.user), args.scale, args.seed, tables=["Posts"]
    )
    return {"rows": report.rows["Posts"], "seconds": round(time.perf_counter() - t0, 1)}


# ------------------------------------------------------------------------------- parent: driver


def _run_child(kind: str, options: dict[str, object]) -> Row:
    """Run ``--child kind`` in a fresh interpreter; return the JSON it prints on its last line.

    Raises:
        subprocess.CalledProcessError: the child failed (its stderr went to ours).
    """
    cmd = [sys.executable, "-m", "benchmarks.memory_benchmark", "--child", kind]
    for key, value in options.items():
        cmd += [f"--{key.replace('_', '-')}", str(value)]
    out = subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.PIPE, text=True).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def _posts_rows(server: Any, database: str) -> int | None:
    """Rows of ``public."Posts"`` in ``database``, or None when the database or table is missing."""
    import adbc_driver_postgresql.dbapi as pg

    with pg.connect(server.uri("postgres"), autocommit=True) as conn, conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_database WHERE datname = $1", parameters=(database,))
        if cur.fetchone() is None:
            return None
    with pg.connect(server.uri(database), autocommit=True) as conn, conn.cursor() as cur:
        cur.execute("SELECT to_regclass('public.\"Posts\"') IS NOT NULL")
        row = cur.fetchone()
        if not row or not row[0]:
            return None
        cur.execute('SELECT count(*) FROM public."Posts"')
        count = cur.fetchone()
        return int(count[0]) if count else None


def ensure_source(server: Any, scale: float, seed: int) -> tuple[str, int, float | None]:
    """Make sure a source database with synthetic Posts at ``scale`` exists; fill it if not.

    Returns:
        ``(database, rows, fill_seconds)``; ``fill_seconds`` is None when an existing database
        with the right row count was reused.

    Raises:
        RuntimeError: after filling, the row count is not the expected one.
        subprocess.CalledProcessError: the fill process failed.
    """
    from include.stackoverflow.synthetic import row_count

    rows = row_count("Posts", scale)
    database = source_database_name(rows, seed)
    if _posts_rows(server, database) == rows:
        log.info("reusing source database %s (%d Posts rows)", database, rows)
        return database, rows, None
    log.info("filling source database %s with %d Posts rows (scale %.6f) in a separate process", database, rows, scale)
    server.create_database(database, drop=True)
    report = _run_child(
        "fill",
        {"socket": server.socket_dir, "user": server.user, "source_db": database, "scale": repr(scale), "seed": seed},
    )
    got = _posts_rows(server, database)
    if got != rows:
        raise RuntimeError(f"{database}: expected {rows} Posts rows after the fill, found {got}")
    log.info("filled %s in %s s", database, report["seconds"])
    return database, rows, float(report["seconds"])


def write_csv(rows: Sequence[Row], path: Path) -> None:
    """One CSV line per run, columns in the runs' key order."""
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def render_markdown(rows: Sequence[Row], summary: dict[str, Any], meta: dict[str, Any]) -> str:
    """The results page: method, table of runs, and the issue's checks with their verdicts."""
    cols = [
        "size_mb", "overlap", "rows", "arrow_mb", "batches", "max_batch_mib", "wall_s", "stream_s", "index_s",
        "rows_per_s", "mb_per_s", "buffer_budget_mib", "high_water_mib", "hw_bound_mib", "spill_files", "spill_mb",
        "baseline_rss_mib", "hwm_at_write_start_mib", "peak_rss_mib", "peak_minus_baseline_hw_mib",
        "arrow_pool_max_mib",
    ]  # fmt: skip
    lines = [
        "# Memory benchmark (issue 3)",
        "",
        "PostgreSQL -> PostgreSQL copy of a synthetic Posts table through the product's path "
        "(`open_source` / `open_target`, `prepare_table`, `pipeline.copy_table` with "
        f"`CopySettings(memory_budget_bytes={meta['budget_mib']} MiB, batch_bytes={meta['batch_mib']} MiB, "
        f"batch_rows={meta['batch_rows']})`), one embedded PostgreSQL server for source and target. "
        "The source databases are filled by the synthetic generator in a separate process; every copy "
        "runs in a fresh child process that only copies, so its peak RSS (`VmHWM`) is the copy's own. "
        "Per size, overlap on and off run back to back (order alternating).",
        "",
        f"Machine: {meta['machine']}; Python {meta['python']}; pyarrow {meta['pyarrow']}; "
        f"run {meta['started']} ({meta['total_s']:.0f} s incl. fills). Generated by "
        "`python -m benchmarks.memory_benchmark` (`--help` for options).",
        "",
        "Columns: MB = 10^6 bytes of Arrow row data, MiB = 2^20 bytes. `wall_s` = `CopyResult.seconds` "
        "(whole unit incl. `finish_table`: PK, indexes, ANALYZE), `index_s` = `finish_table` alone, "
        "`stream_s` = wall - index (reading, buffering, COPY, count check, commit); rows/s and MB/s over "
        "`wall_s`. `hw_bound_mib` = budget + the largest batch read. `baseline_rss_mib` = RSS after "
        "imports, connecting and `prepare_table`; `hwm_at_write_start_mib` = VmHWM when the writer "
        "started (overlap off: the whole read phase, reader + full buffer + spilling); "
        "`peak_minus_baseline_hw_mib` = peak RSS - baseline - buffer high-water; `arrow_pool_max_mib` "
        "= most bytes Arrow's (system) memory pool held at once (ADBC's own mallocs are not in it).",
        "",
        "| " + " | ".join(cols) + " |",
        "|" + "---|" * len(cols),
    ]
    lines += ["| " + " | ".join(str(r[c]) for c in cols) + " |" for r in rows]
    lines += ["", "## Checks", ""]
    hw_ok = summary["high_water_ok"]
    worst = max(rows, key=lambda r: float(r["high_water_mib"]))
    lines.append(
        f"- **High-water <= budget + one batch at every size: {'met' if hw_ok else 'NOT met'}.** "
        f"Highest: {worst['high_water_mib']} MiB ({worst['size_mb']} MB, overlap {worst['overlap']}) "
        f"against a bound of {worst['hw_bound_mib']} MiB."
    )
    for mode in ("on", "off"):
        m = summary["modes"].get(mode)
        if m is None:
            continue
        verdict = "met" if m["growth_ok"] else "NOT met"
        line = (
            f"- Overlap {mode}: peak RSS growth {m['reference_mb']} MB -> {m['largest_mb']} MB = "
            f"**{m['growth_mib']} MiB** (issue's bound < {RSS_GROWTH_BOUND_MIB:.0f} MiB: **{verdict}**)"
        )
        if m["saturated_mb"] is None:
            line += "; the buffer never reached its budget at these sizes."
        else:
            sat_verdict = "met" if m["growth_from_saturated_ok"] else "NOT met"
            line += (
                f"; from the first saturated size ({m['saturated_mb']} MB, buffer at its budget) to "
                f"{m['largest_mb']} MB = **{m['growth_from_saturated_mib']} MiB** (< "
                f"{RSS_GROWTH_BOUND_MIB:.0f} MiB: {sat_verdict})."
            )
        lines.append(line)
    for size, ratio in summary["ratios"].items():
        lines.append(
            f"- {size} MB: overlap on / off = **{ratio['wall_ratio']}** in wall time, "
            f"{ratio['stream_ratio']} in streaming time (below 1 = overlapped is faster)."
        )
    return "\n".join(lines) + "\n"


def plot(rows: Sequence[Row], path: Path) -> None:
    """Two panels: memory (peak RSS, baseline + high-water) and wall time vs table size, per mode."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    for mode, marker, color in (("on", "o", "tab:blue"), ("off", "s", "tab:orange")):
        sel = sorted((r for r in rows if r["overlap"] == mode), key=lambda r: float(r["arrow_mb"]))
        if not sel:
            continue
        xs = [float(r["arrow_mb"]) for r in sel]
        ax1.plot(xs, [r["peak_rss_mib"] for r in sel], marker=marker, color=color, label=f"peak RSS, overlap {mode}")
        ax1.plot(
            xs,
            [float(r["baseline_rss_mib"]) + float(r["high_water_mib"]) for r in sel],
            marker=marker,
            color=color,
            linestyle=":",
            label=f"baseline RSS + buffer high-water, overlap {mode}",
        )
        ax1.plot(xs, [r["high_water_mib"] for r in sel], marker=marker, color=color, linestyle="--", alpha=0.6,
                 label=f"buffer high-water, overlap {mode}")  # fmt: skip
        ax2.plot(xs, [r["wall_s"] for r in sel], marker=marker, color=color, label=f"wall time, overlap {mode}")
    budget = float(rows[0]["budget_mib"])
    ax1.axhline(budget, color="grey", linewidth=0.8,
                label=f"row-data budget {budget:.0f} MiB (buffer + batches in flight; not an RSS limit)")
    # what RSS is bounded by: the process's own baseline plus the row data it may hold
    bound = max(float(r["baseline_rss_mib"]) for r in rows) + budget
    ax1.axhline(bound, color="black", linewidth=0.8, linestyle="--",
                label=f"baseline RSS + row-data budget ({bound:.0f} MiB)")
    for ax in (ax1, ax2):
        ax.set_xscale("log")
        ax.set_xlabel("table size (MB of Arrow row data)")
        ax.legend(fontsize=7)
        ax.grid(True, alpha=0.3)
    ax2.set_yscale("log")
    ax1.set_ylabel("MiB")
    ax2.set_ylabel("seconds (log)")
    ax1.set_title("Memory of the copying process")
    ax2.set_title("copy_table wall time: overlap on vs off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.memory_benchmark",
        description="Memory benchmark of the bounded copy (issue 3): high-water mark and peak RSS vs table size.",
    )
    p.add_argument("--sizes-mb", type=int, nargs="+", default=list(DEFAULT_SIZES_MB),
                   help="table sizes in MB of Arrow row data (default: %(default)s)")  # fmt: skip
    p.add_argument("--budget-mib", type=int, default=128, help="buffer budget, MiB (default: %(default)s)")
    p.add_argument("--batch-mib", type=float, default=None,
                   help="batch bytes, MiB (default: the product's, budget/32 = 4 MiB at 128 MiB)")
    p.add_argument("--batch-rows", type=int, default=50_000, help="rows per batch at most (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="generator seed (default: %(default)s)")
    p.add_argument("--pg-dir", type=Path, default=DEFAULT_PG_DIR, help="PGDATA, kept for reuse (default: %(default)s)")
    p.add_argument("--spill-root", type=Path, default=None, help="spill root (default: <pg-dir>/../spill)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output path without suffix (default: %(default)s)")
    # child-process options
    p.add_argument("--child", choices=["copy", "fill"], help=argparse.SUPPRESS)
    p.add_argument("--size-mb", type=int, help=argparse.SUPPRESS)
    p.add_argument("--scale", type=float, help=argparse.SUPPRESS)
    p.add_argument("--overlap", choices=["on", "off"], default="on", help=argparse.SUPPRESS)
    p.add_argument("--socket", help=argparse.SUPPRESS)
    p.add_argument("--user", help=argparse.SUPPRESS)
    p.add_argument("--source-db", help=argparse.SUPPRESS)
    p.add_argument("--target-db", help=argparse.SUPPRESS)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the process exit code (0 ok)."""
    args = _parser().parse_args(argv)
    if args.batch_mib is None:
        from include.replication.core.config import default_batch_bytes

        args.batch_mib = default_batch_bytes(args.budget_mib * MIB) / MIB
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if args.child == "copy":
        print(json.dumps(child_copy(args)))
        return 0
    if args.child == "fill":
        print(json.dumps(child_fill(args)))
        return 0

    import pyarrow as pa

    from include.stackoverflow.synthetic import PUBLISHED_ROW_COUNTS
    from tools.localpg import start_local_postgres

    started = time.time()
    spill_root = args.spill_root or args.pg_dir.parent / "spill"
    spill_root.mkdir(parents=True, exist_ok=True)
    per_row = bytes_per_post_row(args.seed)
    log.info("synthetic Posts: %.0f Arrow bytes per row", per_row)
    server = start_local_postgres(args.pg_dir, keep_running=False)
    rows: list[Row] = []
    try:
        for i, size in enumerate(args.sizes_mb):
            scale = scale_for_size(size, per_row, PUBLISHED_ROW_COUNTS["Posts"])
            source_db, _, _ = ensure_source(server, scale, args.seed)
            for overlap in ("on", "off") if i % 2 == 0 else ("off", "on"):
                server.create_database(TARGET_DATABASE, drop=True)
                log.info("run: %s MB, overlap %s", size, overlap)
                result = _run_child(
                    "copy",
                    {
                        "size_mb": size, "overlap": overlap, "socket": server.socket_dir, "user": server.user,
                        "source_db": source_db, "target_db": TARGET_DATABASE, "budget_mib": args.budget_mib,
                        "batch_mib": args.batch_mib, "batch_rows": args.batch_rows, "spill_root": spill_root,
                    },
                )  # fmt: skip
                log.info("result: %s", result)
                rows.append(result)
            server.create_database(TARGET_DATABASE, drop=True)  # free the target's disk before the next size
    finally:
        server.stop()
    order = {s: i for i, s in enumerate(args.sizes_mb)}
    rows.sort(key=lambda r: (order[r["size_mb"]], r["overlap"] != "on"))
    meta = {
        "budget_mib": args.budget_mib,
        "batch_mib": args.batch_mib,
        "batch_rows": args.batch_rows,
        "machine": f"{os.cpu_count()} CPUs, {platform.machine()}, {platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "pyarrow": pa.__version__,
        "started": time.strftime("%Y-%m-%d %H:%M", time.localtime(started)),
        "total_s": time.time() - started,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_csv(rows, Path(f"{args.out}.csv"))
    Path(f"{args.out}.md").write_text(render_markdown(rows, summarize(rows), meta))
    plot(rows, Path(f"{args.out}.png"))
    print(Path(f"{args.out}.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
