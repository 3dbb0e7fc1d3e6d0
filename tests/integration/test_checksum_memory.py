"""The checksum streams: checksumming a table of ~19 MB and one of ~76 MB (256 KiB batches) grows
the peak RSS of a fresh process by the same amount (within 8 MiB), and numpy's peak (tracemalloc,
which numpy reports to) stays a few hashing slices."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import adbc_driver_postgresql.dbapi as pg
import pytest

from include.replication.core.config import CopySettings, MiB
from include.replication.core.pipeline import copy_table
from include.replication.dialects.registry import open_source, open_target

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
BATCH_BYTES = 256 * 1024

PROBE = """
import json, resource, sys, tracemalloc
sys.path.insert(0, {root!r})
from include.replication.core.checksum import compare_checksum
from include.replication.core.endpoint import Endpoint
from include.replication.dialects.postgres.dialect import POSTGRES
from include.replication.dialects.registry import open_source
src_ep, tgt_ep = Endpoint(**json.loads(sys.argv[1])), Endpoint(**json.loads(sys.argv[2]))
with open_source(src_ep) as src, open_source(tgt_ep) as reader:
    spec, there = src.describe("Posts"), reader.describe("Posts")
    tracemalloc.start()
    base = int(open("/proc/self/statm").read().split()[1]) * resource.getpagesize()  # RSS now
    result = compare_checksum(src, spec, reader, there, POSTGRES, batch_rows=50_000, batch_bytes={batch})
    numpy_peak = tracemalloc.get_traced_memory()[1]
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({{"ok": result.ok, "rows": result.source.rows, "rss_growth": peak - base, "numpy_peak": numpy_peak}}))
"""


def _growth(local_pg, fresh_database, tmp_path, rows: int) -> dict[str, int]:
    """Fill a source with ``rows`` rows of ~1.1 kB, copy it, checksum it in a fresh process."""
    src, tgt = fresh_database("cks_mem_src"), fresh_database("cks_mem_tgt")
    with pg.connect(local_pg.uri(src), autocommit=True) as conn, conn.cursor() as cur:
        cur.execute('CREATE TABLE "Posts" ("Id" int PRIMARY KEY, "Body" text NOT NULL, "Score" int)')
        cur.execute(f"""INSERT INTO "Posts" SELECT i, repeat(md5(i::text), 10 + i % 60), i % 11
                        FROM generate_series(1, {rows}) i""")
        cur.execute('SELECT sum(octet_length("Body")) FROM "Posts"')
        (table_bytes,) = cur.fetchone()
    with open_source(local_pg.endpoint(src)) as source, open_target(local_pg.endpoint(tgt)) as target:
        spec = source.describe("Posts")
        target.prepare_table(spec)
        copy_table(
            source,
            target,
            spec,
            CopySettings(spill_root=tmp_path, memory_budget_bytes=4 * MiB, batch_bytes=BATCH_BYTES),
        )

    def ep(name: str) -> str:
        e = local_pg.endpoint(name)
        return json.dumps(
            {"dialect": e.dialect, "host": e.host, "port": e.port, "database": e.database, "user": e.user}
        )

    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(root=str(ROOT), batch=BATCH_BYTES), ep(src), ep(tgt)],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    assert figures["ok"] is True and figures["rows"] == rows
    return {**figures, "table_bytes": int(table_bytes)}


def test_checksum_memory_does_not_grow_with_the_table(local_pg, fresh_database, tmp_path):
    small = _growth(local_pg, fresh_database, tmp_path, 15_000)
    large = _growth(local_pg, fresh_database, tmp_path, 60_000)
    assert large["table_bytes"] >= 4 * small["table_bytes"] > 60 * MiB  # ~19 MB and ~76 MB of text
    # four times the rows, the same memory within a few batches (256 KiB) of noise. The growth both
    # runs share is a fixed cost, not the table: measured 40-47 MiB in a fresh session and ~150 MiB
    # after the other checksum tests ran on the server (unexplained so far; it never scaled with
    # the table), so only the scaling is asserted
    assert large["rss_growth"] < small["rss_growth"] + 8 * MiB, (small, large)
    assert large["numpy_peak"] < 16 * MiB, large  # a few hashing slices (1 MiB of text each)
