"""Memory benchmark of the bounded copy (issue 3): buffer high-water mark and peak RSS vs table size.

A synthetic Posts table (``include.stackoverflow.synthetic.generate``, deterministic) of growing
size in Arrow bytes is copied through the product's path: ``rebatch`` (byte-bounded batches) ->
``transfer`` (SpillingBuffer, reader thread) -> ``PostgresTarget.write_batches`` (ADBC bulk ingest
into an embedded PostgreSQL), once with reading and writing overlapped and once read-all-then-write.
The reader is the generator rather than a database, so the source side costs no I/O; the buffer,
the spill files and the writer are the real ones.

Each (size, overlap) run is a fresh child process, so its peak RSS (``VmHWM``) is its own. Per run
it records wall time, rows/s, MB/s (Arrow bytes), the buffer high-water mark, spill files and bytes,
the RSS after imports (baseline) and the peak RSS of the copying process.

Usage (the issue's sizes take several minutes on a small machine; default sizes are smaller)::

    .venv/bin/python -m benchmarks.memory_benchmark --sizes-mb 10 100 1000 3000
    .venv/bin/python -m benchmarks.memory_benchmark --sizes-mb 10 100 300 --out benchmarks/results/memory_benchmark

Outputs ``<out>.csv``, ``<out>.md`` (a table, with the checks) and ``<out>.png`` (matplotlib).
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import subprocess
import sys
import tempfile
import time
from pathlib import Path

log = logging.getLogger(__name__)

MIB = 1024 * 1024
ROOT = Path(__file__).resolve().parents[1]


def _bytes_per_post_row(seed: int) -> float:
    from include.replication.batching import batch_nbytes
    from include.stackoverflow.synthetic import generate

    rows = nbytes = 0
    for b in generate("Posts", 0.002, seed, 10_000):
        rows += b.num_rows
        nbytes += batch_nbytes(b)
    return nbytes / rows


def child(args: argparse.Namespace) -> dict[str, object]:
    """One copy in this process; returns its figures (printed as one JSON line)."""
    from include.replication.batching import rebatch
    from include.replication.buffer import transfer
    from include.replication.endpoints import Endpoint, open_target
    from include.replication.metrics import current_rss_bytes, peak_rss_bytes
    from include.replication.typemap import arrow_schema
    from include.stackoverflow.schema import TABLES
    from include.stackoverflow.synthetic import generate, row_count

    spec = TABLES["Posts"]
    schema = arrow_schema(spec)
    baseline = current_rss_bytes()
    target = open_target(Endpoint("postgresql", args.socket, None, args.database, args.user))
    try:
        target.prepare_table(spec)
        target.begin_unit(spec)
        batches = rebatch(
            generate("Posts", args.scale, args.seed, args.batch_rows),
            max_rows=args.batch_rows,
            max_bytes=args.batch_mib * MIB,
            table=spec.name,
        )
        t0 = time.perf_counter()
        stats = transfer(
            batches,
            lambda it: target.write_batches(spec, it),
            schema=schema,
            budget_bytes=args.budget_mib * MIB,
            spill_root=args.spill_root,
            label=f"Posts-{args.size_mb}MB",
            overlap=args.overlap == "on",
            estimated_rows=row_count("Posts", args.scale),
        )
        target.commit_unit(spec, stats.rows)
        wall = time.perf_counter() - t0
    finally:
        target.close()
    largest_batch = args.batch_mib * MIB
    return {
        "size_mb": args.size_mb,
        "overlap": args.overlap,
        "rows": stats.rows,
        "arrow_mb": round(stats.bytes / 1e6, 1),
        "batches": stats.batches,
        "wall_s": round(wall, 2),
        "read_s": round(stats.read_seconds, 2),
        "write_s": round(stats.write_seconds, 2),
        "rows_per_s": round(stats.rows / wall),
        "mb_per_s": round(stats.bytes / 1e6 / wall, 1),
        "budget_mib": args.budget_mib,
        "high_water_mib": round(stats.high_water_bytes / MIB, 1),
        "high_water_ok": stats.high_water_bytes <= args.budget_mib * MIB + largest_batch,
        "spill_files": stats.spill_files,
        "spill_mb": round(stats.spill_bytes / 1e6, 1),
        "baseline_rss_mib": round(baseline / MIB, 1),
        "peak_rss_mib": round(peak_rss_bytes() / MIB, 1),
    }


def _plot(rows: list[dict[str, object]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for mode, marker in (("on", "o"), ("off", "s")):
        sel = [r for r in rows if r["overlap"] == mode]
        xs = [r["arrow_mb"] for r in sel]
        ax1.plot(xs, [r["peak_rss_mib"] for r in sel], marker=marker, label=f"peak RSS, overlap {mode}")
        ax1.plot(xs, [r["high_water_mib"] for r in sel], marker=marker, linestyle="--", label=f"buffer high-water, overlap {mode}")
        ax2.plot(xs, [r["wall_s"] for r in sel], marker=marker, label=f"wall time, overlap {mode}")
    budget = rows[0]["budget_mib"]
    ax1.axhline(budget, color="grey", linewidth=0.8, label=f"budget {budget} MiB")
    for ax in (ax1, ax2):
        ax.set_xscale("log")
        ax.set_xlabel("table size (MB of Arrow row data)")
        ax.legend(fontsize=7)
        ax.grid(True, alpha=0.3)
    ax1.set_ylabel("MiB")
    ax2.set_ylabel("seconds")
    ax1.set_title("Memory of the copying process")
    ax2.set_title("Copy time: overlapped vs read-then-write")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _markdown(rows: list[dict[str, object]], args: argparse.Namespace) -> str:
    cols = list(rows[0])
    lines = [
        "# Memory benchmark (issue 3)",
        "",
        f"Synthetic Posts -> rebatch ({args.batch_rows} rows / {args.batch_mib} MiB) -> SpillingBuffer "
        f"(budget {args.budget_mib} MiB) -> PostgresTarget (ADBC bulk ingest, embedded PostgreSQL). "
        "One child process per run; peak RSS is that process's VmHWM.",
        "",
        "| " + " | ".join(cols) + " |",
        "|" + "---|" * len(cols),
    ]
    lines += ["| " + " | ".join(str(r[c]) for c in cols) + " |" for r in rows]
    on = {r["size_mb"]: r for r in rows if r["overlap"] == "on"}
    off = {r["size_mb"]: r for r in rows if r["overlap"] == "off"}
    lines += ["", "## Checks", ""]
    lines.append(f"- high-water <= budget + one batch in every run: {all(r['high_water_ok'] for r in rows)}")
    sizes = sorted(on)
    if len(sizes) >= 2:
        growth = {m: on[sizes[-1]]["peak_rss_mib"] - on[sizes[1 if len(sizes) > 2 else 0]]["peak_rss_mib"] for m in ["on"]}
        lines.append(
            f"- peak RSS growth (overlap on) from {sizes[1 if len(sizes) > 2 else 0]} MB to {sizes[-1]} MB: "
            f"{growth['on']:.1f} MiB (bound: < 64 MiB)"
        )
    for s in sizes:
        if s in off:
            lines.append(
                f"- {s} MB: overlapped {on[s]['wall_s']} s vs read-then-write {off[s]['wall_s']} s "
                f"(ratio {on[s]['wall_s'] / off[s]['wall_s']:.2f})"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the process exit code."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes-mb", type=int, nargs="+", default=[10, 100, 300])
    p.add_argument("--budget-mib", type=int, default=128)
    p.add_argument("--batch-rows", type=int, default=50_000)
    p.add_argument("--batch-mib", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "memory_benchmark")
    p.add_argument("--spill-root", type=Path, default=None)
    # child-process options
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--size-mb", type=int, help=argparse.SUPPRESS)
    p.add_argument("--scale", type=float, help=argparse.SUPPRESS)
    p.add_argument("--overlap", choices=["on", "off"], default="on", help=argparse.SUPPRESS)
    p.add_argument("--socket", help=argparse.SUPPRESS)
    p.add_argument("--database", help=argparse.SUPPRESS)
    p.add_argument("--user", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if args.child:
        print(json.dumps(child(args)))
        return 0

    from include.replication.localpg import start_local_postgres
    from include.stackoverflow.synthetic import PUBLISHED_ROW_COUNTS

    per_row = _bytes_per_post_row(args.seed)
    log.info("synthetic Posts: %.0f Arrow bytes per row", per_row)
    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="membench-") as tmp:
        server = start_local_postgres(Path(tmp) / "pg", keep_running=False)
        try:
            for size in args.sizes_mb:
                scale = size * 1e6 / per_row / PUBLISHED_ROW_COUNTS["Posts"]
                for overlap in ("on", "off"):
                    database = f"membench_{size}_{overlap}"
                    server.create_database(database, drop=True)
                    cmd = [
                        sys.executable, "-m", "benchmarks.memory_benchmark", "--child",
                        "--size-mb", str(size), "--scale", repr(scale), "--overlap", overlap,
                        "--socket", server.socket_dir, "--database", database, "--user", server.user,
                        "--budget-mib", str(args.budget_mib), "--batch-rows", str(args.batch_rows),
                        "--batch-mib", str(args.batch_mib), "--seed", str(args.seed),
                    ]  # fmt: skip
                    if args.spill_root is not None:
                        cmd += ["--spill-root", str(args.spill_root)]
                    log.info("run: %s MB, overlap %s", size, overlap)
                    out = subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.PIPE, text=True).stdout
                    result = json.loads(out.strip().splitlines()[-1])
                    log.info("result: %s", result)
                    rows.append(result)
                    server.create_database(database, drop=True)  # free the disk before the next size
        finally:
            server.stop()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{args.out}.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    Path(f"{args.out}.md").write_text(_markdown(rows, args))
    _plot(rows, Path(f"{args.out}.png"))
    print(Path(f"{args.out}.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
