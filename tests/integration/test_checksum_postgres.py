"""Checksum validation PostgreSQL -> PostgreSQL on a real embedded server with a real dump: equal
tables pass; one value changed by hand in the target (text, numeric, timestamp, NULL vs empty
text), a deleted and an extra row are each named by key, column and both values."""

from __future__ import annotations

import datetime as dt

import adbc_driver_postgresql.dbapi as pg
import pytest

from include.replication.airflow import tasks
from include.replication.core.checksum import ChecksumMismatch, checksum_tables, compare_checksum
from include.replication.core.config import CopySettings
from include.replication.core.errors import ConfigurationError
from include.replication.core.pipeline import copy_table
from include.replication.dialects.postgres.dialect import POSTGRES
from include.replication.dialects.registry import open_source, open_target
from include.stackoverflow.dump import import_dump
from tests.conftest import dump_folders

pytestmark = pytest.mark.integration

CONLANG = next((p for p in dump_folders() if p.name == "conlang.meta"), None)
TABLES = ["Posts", "Users", "Comments", "Votes"]


def _psql(uri: str, *statements: str) -> None:
    with pg.connect(uri, autocommit=True) as conn, conn.cursor() as cur:
        for s in statements:
            cur.execute(s)


@pytest.fixture(scope="module")
def dump_source(local_pg):
    """conlang.meta imported once into a PostgreSQL source (the product's own importer)."""
    if CONLANG is None:
        pytest.skip("conlang.meta dump not present")
    local_pg.create_database("checksum_src", drop=True)
    endpoint = local_pg.endpoint("checksum_src")
    import_dump(CONLANG, endpoint, tables=TABLES)
    return endpoint


@pytest.fixture
def copied(dump_source, local_pg, fresh_database, tmp_path):
    """A fresh target holding a copy of TABLES, made by the pipeline."""
    target = local_pg.endpoint(fresh_database("checksum_tgt"))
    with open_source(dump_source) as src, open_target(target) as tgt:
        for name in TABLES:
            spec = src.describe(name)
            tgt.prepare_table(spec)
            copy_table(src, tgt, spec, CopySettings(spill_root=tmp_path))
    return dump_source, target


def _check(source_ep, target_ep, table: str, **kw):
    with open_source(source_ep) as src, open_source(target_ep) as reader:
        return compare_checksum(src, src.describe(table), reader, reader.describe(table), POSTGRES, **kw)


def test_equal_tables_pass_with_equal_digests(copied):
    source, target = copied
    with open_source(source) as src, open_source(target) as reader:
        results = checksum_tables(src, reader, POSTGRES, TABLES, batch_rows=500, batch_bytes=64 * 1024)
        counts = {name: src.count_rows(src.describe(name)) for name in TABLES}
    assert [r.table for r in results] == TABLES
    assert all(r.ok and r.difference is None for r in results)
    assert {r.table: r.source.rows for r in results} == counts
    assert counts["Posts"] == 177 and counts["Votes"] > 0  # the real dump's rows, not an empty table
    # the digest does not depend on the batch size
    assert _check(source, target, "Posts", batch_rows=7, batch_bytes=64 * 1024).source == results[0].source


@pytest.mark.parametrize(
    ("column", "sql_value", "expected"),
    [
        ("Title", "'Are questions asked in conlangs accepted here?'", "Are questions asked in conlangs accepted here?"),
        ("Score", '"Score" + 1', None),
        ("CreationDate", "TIMESTAMP '2018-02-06 20:19:50.958'", dt.datetime(2018, 2, 6, 20, 19, 50, 958000)),
        ("Tags", "''", ""),
    ],
    ids=["text", "numeric", "timestamp", "null-vs-empty"],
)
def test_one_changed_value_is_named_by_key_column_and_both_values(copied, local_pg, column, sql_value, expected):
    source, target = copied
    present = "IS NULL" if column == "Tags" else "IS NOT NULL"  # answers have no Tags: NULL becomes ''
    with open_target(source) as s:
        key = s.execute(f'SELECT min("Id") FROM "Posts" WHERE "{column}" {present} AND "Id" > 100')[0][0]
        before = s.execute(f'SELECT "{column}" FROM "Posts" WHERE "Id" = $1', (key,))[0][0]
    _psql(local_pg.uri(target.database), f'UPDATE "Posts" SET "{column}" = {sql_value} WHERE "Id" = {key}')
    result = _check(source, target, "Posts", leaf_keys=8)
    assert not result.ok
    assert result.source.rows == result.target.rows == 177
    diff = result.difference
    assert diff is not None and diff.kind == "value"
    assert (diff.key, diff.column, diff.source_value) == (key, column, before)
    assert diff.target_value == (before + 1 if column == "Score" else expected)
    if column == "Tags":
        assert before is None  # NULL in the source, empty text in the target


def test_missing_and_extra_rows_are_named_and_the_task_fails(copied, local_pg):
    source, target = copied
    uri = local_pg.uri(target.database)
    with open_target(target) as t:
        votes = [k for (k,) in t.execute('SELECT "Id" FROM "Votes" ORDER BY "Id"')]
    missing, extra = votes[len(votes) // 2], votes[-1] + 5
    with open_target(source) as s:
        (row,) = s.execute('SELECT "PostId", "VoteTypeId", "CreationDate" FROM "Votes" WHERE "Id" = $1', (missing,))
    _psql(uri, f'DELETE FROM "Votes" WHERE "Id" = {missing}')
    result = _check(source, target, "Votes")
    assert result.difference is not None
    assert (result.difference.kind, result.difference.key) == ("missing", missing)
    assert result.target.rows == result.source.rows - 1

    # a row the source does not have, too: equal counts, the smaller key (the missing one) is named first
    _psql(uri, f'INSERT INTO "Votes" ("Id", "PostId", "VoteTypeId", "CreationDate") VALUES ({extra}, 1, 2, now())')
    result = _check(source, target, "Votes")
    assert result.source.rows == result.target.rows
    assert (result.difference.kind, result.difference.key) == ("missing", missing)
    # put the missing row back: only the extra one is left
    with open_target(target) as t:
        t.execute(
            'INSERT INTO "Votes" ("Id", "PostId", "VoteTypeId", "CreationDate") VALUES ($1, $2, $3, $4)',
            (missing, *row),
        )
    result = _check(source, target, "Votes")
    assert (result.difference.kind, result.difference.key) == ("extra", extra)

    # through the DAG's task, with equal counts (the extra row gone, one value changed): the count
    # check passes, the checksum names the changed row
    _psql(
        uri,
        f'DELETE FROM "Votes" WHERE "Id" = {extra}',
        f'UPDATE "Votes" SET "VoteTypeId" = "VoteTypeId" + 100 WHERE "Id" = {missing}',
    )
    counts = tasks.validate_tables(source, target, ["Votes"], {"validate": "count"})
    assert counts[0]["ok"] is True and "checksum" not in counts[0]
    from airflow.exceptions import AirflowFailException

    with pytest.raises(AirflowFailException) as failed:
        tasks.validate_tables(source, target, ["Posts", "Votes"], {"validate": "checksum"})
    cause = failed.value.__cause__
    assert isinstance(cause, ChecksumMismatch)
    assert (cause.table, cause.key, cause.column, cause.kind) == ("Votes", missing, "VoteTypeId", "value")
    assert cause.target_value == cause.source_value + 100 == row[1] + 100
    assert f"key {missing}, column VoteTypeId" in str(failed.value)


def test_unknown_validate_value_is_refused(copied):
    from airflow.exceptions import AirflowFailException

    source, target = copied
    with pytest.raises(AirflowFailException) as info:  # permanent: the task fails without a retry
        tasks.validate_tables(source, target, ["Votes"], {"validate": "sha"})
    assert isinstance(info.value.__cause__, ConfigurationError)
    assert "validate must be one of ['count', 'checksum'], got 'sha'" in str(info.value)
    with pytest.raises(AirflowFailException, match="validate must be one of"):  # and plan refuses it first
        tasks.plan_tables(source, target, ["Votes"], "swap", {"validate": "sha"})


def test_the_copy_digests_the_source_as_it_reads_so_validation_reads_only_the_target(
    dump_source, local_pg, fresh_database, tmp_path
):
    from include.replication.core.checksum import DigestingSource

    target = local_pg.endpoint(fresh_database("checksum_tap"))
    with open_source(dump_source) as src, open_target(target) as tgt, open_source(target) as reader:
        for name, ranges in (("Posts", 1), ("Votes", 3)):  # one stream, and three key ranges on three threads
            spec = src.describe(name)
            tap = DigestingSource(src, tgt.dialect)
            tgt.prepare_table(spec)
            copy_table(tap, tgt, spec, CopySettings(spill_root=tmp_path, parallel_ranges=ranges))
            full = compare_checksum(src, spec, reader, reader.describe(name), POSTGRES)
            assert full.ok and tap.digest == full.source  # the same digest as a separate read
            quick = compare_checksum(src, spec, reader, reader.describe(name), POSTGRES, source_digest=tap.digest)
            assert quick.ok and quick.target == full.target
        # a digest that does not match the target still bisects against the live source
        _psql(
            local_pg.uri(target.database),
            'UPDATE "Votes" SET "VoteTypeId" = 99 WHERE "Id" = (SELECT max("Id") FROM "Votes")',
        )
        result = compare_checksum(src, spec, reader, reader.describe("Votes"), POSTGRES, source_digest=tap.digest)
        (top,) = src.key_bounds(spec)[1:]
        assert (result.ok, result.difference.key, result.difference.column) == (False, top, "VoteTypeId")
