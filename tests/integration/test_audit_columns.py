"""Audit rows on a real embedded PostgreSQL: an audit table of the previous version gains the new
columns and keeps its rows; a copy records its mode and inserted rows; the validate task writes
its count and checksum findings into the run's audit rows, also when a mismatch fails it."""

from __future__ import annotations

import dataclasses

import adbc_driver_postgresql.dbapi as pg
import pytest

from include.replication.airflow import tasks
from include.replication.core.audit import AUDIT_SPEC, ensure_audit_table
from include.replication.dialects.registry import open_target

pytestmark = pytest.mark.integration

NEW_COLUMNS = [
    "mode",
    "rows_inserted",
    "rows_updated",
    "rows_deleted",
    "high_water_mark_before",
    "high_water_mark_after",
    "validation",
    "source_checksum",
    "deletes",
    "rss_growth_bytes",
]
OLD_SPEC = dataclasses.replace(AUDIT_SPEC, columns=tuple(c for c in AUDIT_SPEC.columns if c.name not in NEW_COLUMNS))
"""The audit table as the previous version created it (15 columns)."""


def _psql(uri: str, *statements: str) -> None:
    with pg.connect(uri, autocommit=True) as conn, conn.cursor() as cur:
        for s in statements:
            cur.execute(s)


@pytest.fixture
def pair(local_pg, fresh_database):
    src, tgt = fresh_database("audit_src"), fresh_database("audit_tgt")
    _psql(
        local_pg.uri(src),
        'CREATE TABLE "Votes" ("Id" int PRIMARY KEY, "PostId" int NOT NULL, "Note" varchar(20))',
        """INSERT INTO "Votes" SELECT i, i % 7, CASE WHEN i % 3 = 0 THEN NULL ELSE 'n' || i END
           FROM generate_series(1, 2500) i""",
    )
    return local_pg.endpoint(src), local_pg.endpoint(tgt)


def test_old_audit_table_gains_the_new_columns_and_keeps_its_rows(pair):
    _, tgt_ep = pair
    with open_target(tgt_ep) as target:
        target.ensure_table(OLD_SPEC)
        target.execute(
            "INSERT INTO replication_audit (run_id, table_name, status, attempt, rows_written, finished_at) "
            "VALUES ('old_run', 'Votes', 'success', 1, 42, now())"
        )
        assert len(OLD_SPEC.columns) == 15
        assert ensure_audit_table(target) == NEW_COLUMNS
        assert ensure_audit_table(target) == []  # current now: nothing to add
        columns = target.execute(
            "SELECT column_name, data_type, character_maximum_length FROM information_schema.columns "
            "WHERE table_name = 'replication_audit' ORDER BY ordinal_position"
        )
        assert [c[0] for c in columns] == [c.name for c in AUDIT_SPEC.columns]
        assert columns[-10:] == [
            ("mode", "character varying", 20),
            ("rows_inserted", "bigint", None),
            ("rows_updated", "bigint", None),
            ("rows_deleted", "bigint", None),
            ("high_water_mark_before", "character varying", 100),
            ("high_water_mark_after", "character varying", 100),
            ("validation", "character varying", 4000),
            ("source_checksum", "character varying", 60),
            ("deletes", "character varying", 4000),
            ("rss_growth_bytes", "bigint", None),
        ]
        old = target.execute("SELECT run_id, rows_written, mode, rows_inserted, validation FROM replication_audit")
        assert old == [("old_run", 42, None, None, None)]


def test_copy_and_validate_fill_the_new_columns(pair, local_pg, tmp_path):
    src_ep, tgt_ep = pair
    run_id = "manual__2026-12-03T05:00:00+00:00 o'clock"  # a quote in the run id
    params = {"spill_root": str(tmp_path), "validate": "checksum"}
    with open_target(tgt_ep) as target:
        target.ensure_table(OLD_SPEC)  # an existing audit table of the previous version
    names = tasks.plan_tables(src_ep, tgt_ep, None)
    assert names == ["Votes"]
    tasks.copy_one_table("Votes", src_ep, tgt_ep, params, run_id=run_id, attempt=1, label="test")
    counts = tasks.validate_tables(src_ep, tgt_ep, names, params, run_id=run_id)
    assert counts[0]["ok"] is True and counts[0]["checksum"]["ok"] is True
    select = (
        "SELECT status, mode, rows_written, rows_inserted, rows_updated, rows_deleted, high_water_mark_before, "
        "high_water_mark_after, validation FROM replication_audit WHERE run_id = $1"
    )
    with open_target(tgt_ep) as target:
        (row,) = target.execute(select, (run_id,))
    assert row[:8] == ("success", "full", 2500, 2500, 0, None, None, None)
    assert row[8].startswith("count ok 2500; checksum ok 2500:")

    # one value changed by hand: the task fails, and the audit row says where
    _psql(local_pg.uri(tgt_ep.database), """UPDATE "Votes" SET "Note" = 'it''s changed' WHERE "Id" = 1234""")
    from airflow.exceptions import AirflowFailException

    with pytest.raises(AirflowFailException, match="key 1234, column Note"):
        tasks.validate_tables(src_ep, tgt_ep, names, params, run_id=run_id)
    with open_target(tgt_ep) as target:
        (row,) = target.execute(select, (run_id,))
    assert row[8].startswith("count ok 2500; checksum DIFF source 2500:")
    assert row[8].endswith("key 1234, column Note: source 'n1234' != target \"it's changed\"")


@pytest.mark.parametrize("budget_mib", [16, 64])
def test_rss_growth_of_a_copy_larger_than_its_budget_stays_within_budget_plus_64_mib(
    local_pg, fresh_database, tmp_path, budget_mib
):
    """~130 MB of text (twice the larger budget) through copy_one_table: the audit row
    records how far the process's RSS rose during the copy, and it stays within the budget plus
    the documented 64 MiB (drivers' and allocator's working memory; README "Memory")."""
    src, tgt = fresh_database("growth_src"), fresh_database("growth_tgt")
    _psql(
        local_pg.uri(src),
        'CREATE TABLE "Posts" ("Id" int PRIMARY KEY, "Body" text NOT NULL)',
        """INSERT INTO "Posts" SELECT i, repeat(md5(i::text), 64) FROM generate_series(1, 64000) i""",
    )
    src_ep, tgt_ep = local_pg.endpoint(src), local_pg.endpoint(tgt)
    run_id = f"growth_{budget_mib}"
    params = {"spill_root": str(tmp_path), "memory_budget_mib": budget_mib}
    assert tasks.plan_tables(src_ep, tgt_ep, None) == ["Posts"]  # as the DAG's plan task: audit table made
    result = tasks.copy_one_table("Posts", src_ep, tgt_ep, params, run_id=run_id, attempt=1, label="test")
    with open_target(tgt_ep) as target:
        (row,) = target.execute(
            "SELECT rows_written, bytes, rss_growth_bytes, spill_bytes FROM replication_audit WHERE run_id = $1",
            (run_id,),
        )
    rows, nbytes, growth, spilled = row
    assert rows == 64000 and nbytes > 3 * 2**20 * budget_mib // 2  # far more data than the budget holds
    assert growth is not None and growth == result["rss_growth_bytes"]
    assert 0 <= growth <= (budget_mib + 64) * 2**20, f"RSS grew {growth / 2**20:.0f} MiB at a {budget_mib} MiB budget"
