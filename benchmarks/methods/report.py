"""Pure harness logic: the interleaved run plan, per-method statistics, and the results files.

No database driver is imported here, so the unit tests exercise it with numbers made in the test.

Figures per (table, method) over its repetitions:

* ``seconds``: median / min / max wall seconds of the timed copy (seconds).
* ``rows_per_s``: median of each run's rows / seconds.
* ``mb_per_s``: median of each run's row-data bytes / seconds / 1e6, where a run's row-data bytes
  are the table's ``COPY ... (FORMAT binary)`` bytes x rows copied / table rows (MB = 10^6 bytes).
* ``peak_rss_bytes``: the highest peak RSS of the copying process over the runs (bytes).
* ``cpu_s``: median CPU seconds (user + system, all threads) of the copying process during the
  timed copy (seconds); the database servers' CPU is not in it. On a machine with few cores, a
  method's wall time is bounded below by its CPU plus the servers' CPU over the cores.
* ``ratio_to_pipe``: median seconds per row of the method / median seconds per row of method 1 in
  the same run of the benchmark: the time the method would need for the whole table, as a
  multiple of the pipe's. For uncapped methods it is the ratio of median wall seconds.
"""

from __future__ import annotations

import json
import logging
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["RunRecord", "Summary", "plan_runs", "summarize", "markdown_table", "write_results", "plot_chart"]

log = logging.getLogger(__name__)


@dataclass
class RunRecord:
    """One timed copy.

    Attributes:
        table: table name.
        method: method key.
        repeat: repetition index, 0-based.
        order: position in the whole run plan, 0-based.
        seconds: wall seconds of the copy (seconds); None when it failed.
        rows: rows found in the target after the copy.
        capped: True when the time cap stopped the method early.
        peak_rss_bytes: peak RSS of the copying process (bytes).
        baseline_rss_bytes: RSS of that process after imports, before the copy (bytes).
        extra: the method's own figures.
        error: the failure text, or None.
        cpu_s: CPU seconds (user + system) of the copying process during the copy (seconds).
    """

    table: str
    method: str
    repeat: int
    order: int
    seconds: float | None
    rows: int = 0
    capped: bool = False
    peak_rss_bytes: int = 0
    baseline_rss_bytes: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    cpu_s: float | None = None


@dataclass
class Summary:
    """Statistics of one (table, method) pair; see the module docstring for each figure."""

    table: str
    method: str
    runs: int
    failed: int
    capped: bool
    rows: int
    seconds_median: float | None
    seconds_min: float | None
    seconds_max: float | None
    rows_per_s: float | None
    mb_per_s: float | None
    peak_rss_bytes: int
    ratio_to_pipe: float | None
    cpu_s: float | None = None


def plan_runs(tables: Sequence[str], methods: Sequence[str], repeats: int) -> list[tuple[str, int, str]]:
    """The run order: per table, ``repeats`` rounds of every method in the given order.

    ``plan_runs(["Posts"], ["A", "B", "C"], 2)`` is ``A B C A B C`` on Posts, so machine drift
    during a table's runs hits every method alike.

    Returns:
        ``(table, repeat, method)`` tuples in execution order; ``len = tables x repeats x methods``.

    Raises:
        ValueError: ``repeats`` < 1 or a name listed twice.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    if len(set(methods)) != len(methods) or len(set(tables)) != len(tables):
        raise ValueError("a table or method is listed twice")
    return [(t, r, m) for t in tables for r in range(repeats) for m in methods]


def _per_row_seconds(rec: RunRecord) -> float | None:
    if rec.seconds is None or rec.rows <= 0:
        return None
    return rec.seconds / rec.rows


def summarize(
    records: Sequence[RunRecord], table_rows: dict[str, int], table_bytes: dict[str, int], pipe_key: str = "pipe"
) -> list[Summary]:
    """Per (table, method) statistics, in first-run order.

    Args:
        records: every run, failed ones included (``seconds`` None).
        table_rows: rows of each source table.
        table_bytes: ``COPY ... (FORMAT binary)`` bytes of each source table.
        pipe_key: the method every ratio is taken against.

    Returns:
        One :class:`Summary` per (table, method); figures are None when no run succeeded.
    """
    groups: dict[tuple[str, str], list[RunRecord]] = {}
    for rec in records:
        groups.setdefault((rec.table, rec.method), []).append(rec)
    pipe_per_row: dict[str, float] = {}
    for (table, method), recs in groups.items():
        per_row = [p for p in map(_per_row_seconds, recs) if p is not None]
        if method == pipe_key and per_row:
            pipe_per_row[table] = statistics.median(per_row)
    out = []
    for (table, method), recs in groups.items():
        ok = [r for r in recs if r.seconds is not None and r.error is None and r.rows > 0]
        secs = [r.seconds for r in ok if r.seconds is not None]
        bytes_per_row = table_bytes.get(table, 0) / table_rows[table] if table_rows.get(table) else 0.0
        rates = [r.rows / r.seconds for r in ok if r.seconds]
        mbs = [r.rows * bytes_per_row / r.seconds / 1e6 for r in ok if r.seconds]
        per_row = [p for p in map(_per_row_seconds, ok) if p is not None]
        ratio = None
        if per_row and pipe_per_row.get(table):
            ratio = statistics.median(per_row) / pipe_per_row[table]
        out.append(
            Summary(
                table=table,
                method=method,
                runs=len(recs),
                failed=len(recs) - len(ok),
                capped=any(r.capped for r in ok),
                rows=int(statistics.median([r.rows for r in ok])) if ok else 0,
                seconds_median=statistics.median(secs) if secs else None,
                seconds_min=min(secs) if secs else None,
                seconds_max=max(secs) if secs else None,
                rows_per_s=statistics.median(rates) if rates else None,
                mb_per_s=statistics.median(mbs) if mbs else None,
                peak_rss_bytes=max((r.peak_rss_bytes for r in ok), default=0),
                ratio_to_pipe=ratio,
                cpu_s=statistics.median(cpus) if (cpus := [r.cpu_s for r in ok if r.cpu_s is not None]) else None,
            )
        )
    return out


def _fmt(v: float | None, spec: str) -> str:
    return "n/a" if v is None else format(v, spec)


def markdown_table(summaries: Sequence[Summary], labels: dict[str, str], ratio_header: str = "x pipe") -> str:
    """A Markdown table, one row per (table, method): median [min-max] s, the copying process's
    median CPU s, rows/s, MB/s, peak RSS (MiB), ratio to the reference method (column
    ``ratio_header``); capped methods are marked and report the rate they reached."""
    lines = [
        f"| table | method | rows copied | median s [min-max] | CPU s | rows/s | MB/s | peak RSS MiB | {ratio_header} |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in summaries:
        label = labels.get(s.method, s.method) + (" (time-capped)" if s.capped else "")
        if s.failed:
            label += f" ({s.failed} of {s.runs} runs failed)"
        span = (
            f"{s.seconds_median:.2f} [{s.seconds_min:.2f}-{s.seconds_max:.2f}]" if s.seconds_median is not None else "n/a"
        )
        lines.append(
            f"| {s.table} | {label} | {s.rows:,} | {span} | {_fmt(s.cpu_s, '.2f')} | {_fmt(s.rows_per_s, ',.0f')} | "
            f"{_fmt(s.mb_per_s, '.1f')} | {s.peak_rss_bytes / 2**20:.0f} | {_fmt(s.ratio_to_pipe, '.2f')} |"
        )
    return "\n".join(lines) + "\n"


RATIO_TICKS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0)
"""Ratio axis ticks (x the reference): one label per factor of about 2, never minor labels."""


def _ratio_axis(ax: Any, ratios: Sequence[float]) -> None:
    """Log-scaled ratio axis labelled ``0.5x 1x 2x ...`` only (matplotlib's minor log labels
    ``1.05x10^0 1.1x10^0 ...`` overlap on a narrow span), with 1x always in range."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter, NullLocator

    shown = [r for r in ratios if r > 0] or [1.0]
    lo, hi = min(min(shown), 1.0) / 1.25, max(max(shown), 1.0) * 1.35
    ax.set_xscale("log")
    ax.set_xlim(lo, hi)
    ticks = [t for t in RATIO_TICKS if lo <= t <= hi]
    if len(ticks) < 2:  # a narrow span: add its ends, rounded
        ticks = sorted({round(lo * 1.1, 2), 1.0, round(hi / 1.1, 2)})
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}x"))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_minor_formatter(NullFormatter())


def plot_chart(
    summaries: Sequence[Summary], labels: dict[str, str], path: Path, title: str, reference: str = "COPY pipe"
) -> None:
    """A PNG with two horizontal bar panels per table: ratio to the reference method (time, log
    scale; ``reference`` names it) and peak RSS (MiB). Uses matplotlib's Agg backend (no display
    needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tables = list(dict.fromkeys(s.table for s in summaries))
    fig, axes = plt.subplots(len(tables), 2, figsize=(13, 0.45 * len(summaries) + 2.5), squeeze=False)
    for row, table in enumerate(tables):
        items = [s for s in summaries if s.table == table]
        names = [labels.get(s.method, s.method) + (" *" if s.capped else "") for s in items]
        ratios = [s.ratio_to_pipe or 0.0 for s in items]
        rss = [s.peak_rss_bytes / 2**20 for s in items]
        ax = axes[row][0]
        ax.barh(names, ratios, color=["#4c72b0" if s.method.startswith("ours") else "#999999" for s in items])
        ax.axvline(1.0, color="black", lw=0.8)
        _ratio_axis(ax, ratios)
        ax.invert_yaxis()
        ax.set_title(f"{table}: time for the table, x {reference} (lower is better)", fontsize=10)
        for y, v in enumerate(ratios):
            ax.text(v, y, f" {v:.2f}x", va="center", fontsize=8)
        ax2 = axes[row][1]
        ax2.barh(names, rss, color="#dd8452")
        ax2.invert_yaxis()
        ax2.set_yticklabels([])
        ax2.set_title(f"{table}: peak RSS of the copying process (MiB)", fontsize=10)
        for y, v in enumerate(rss):
            ax2.text(v, y, f" {v:.0f}", va="center", fontsize=8)
    fig.suptitle(title + "   (* = time-capped, rate reached)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_results(
    out_dir: Path,
    stem: str,
    *,
    meta: dict[str, Any],
    records: Sequence[RunRecord],
    summaries: Sequence[Summary],
    labels: dict[str, str],
    chart: bool = True,
    preamble: Sequence[str] = (),
    ratio_header: str = "x pipe",
    reference: str = "COPY pipe",
) -> dict[str, Path]:
    """Write ``<stem>.json`` (meta, summaries, every run), ``<stem>.md`` and ``<stem>.png``.

    Args:
        preamble: paragraphs printed in the Markdown between the title and the meta list (caveats).
        ratio_header: heading of the ratio column of the Markdown table.
        reference: name of the method every ratio is taken against, for the chart.

    Returns:
        ``{"json": path, "md": path, "png": path}`` (``png`` only when ``chart``).

    Raises:
        OSError: the directory is not writable.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / f"{stem}.json", "md": out_dir / f"{stem}.md"}
    payload = {
        "meta": meta,
        "summaries": [asdict(s) for s in summaries],
        "runs": [asdict(r) for r in records],
    }
    paths["json"].write_text(json.dumps(payload, indent=1, default=str) + "\n")
    head = [f"# Loader throughput: {meta.get('title', stem)}", ""]
    for paragraph in preamble:
        head += [paragraph, ""]
    for key in ("started", "scale", "repeats", "time_cap_s", "machine", "note"):
        if key in meta:
            head.append(f"- {key}: {meta[key]}")
    if "tables" in meta:
        for t, info in meta["tables"].items():
            head.append(f"- {t}: {info['rows']:,} rows, {info['copy_binary_bytes'] / 1e6:.1f} MB as COPY binary")
    if "versions" in meta:
        head.append("- versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()))
    head.append("")
    paths["md"].write_text("\n".join(head) + "\n" + markdown_table(summaries, labels, ratio_header))
    if chart:
        paths["png"] = out_dir / f"{stem}.png"
        plot_chart(summaries, labels, paths["png"], meta.get("title", stem), reference)
    return paths
