"""Parallel primary-key ranges with SQL Server on either side (the session's TDS server): each range
its own reader, buffer share and target transaction that deletes exactly its range; the copy equals
the source, also when it spills and when it is retried after a failing range."""

from __future__ import annotations

import dataclasses
import threading

import pyarrow as pa
import pytest

from include.replication.core.config import CopySettings, MiB
from include.replication.core.errors import SourceError
from include.replication.core.pipeline import copy_table
from include.replication.dialects.registry import open_source, open_target
from include.stackoverflow.synthetic import fill_synthetic, row_count

pytestmark = [pytest.mark.mssql, pytest.mark.integration]

SCALE = 0.0005  # Votes 5,072 rows, Posts 1,865 rows


def _table(endpoint, name: str) -> pa.Table:
    with open_source(endpoint) as src:
        spec = src.describe(name)
        batches = list(src.read_batches(spec, batch_rows=100_000, batch_bytes=1 << 30))
    return pa.Table.from_batches(batches).sort_by("Id")


@pytest.fixture(scope="module")
def synthetic_mssql(mssql_server):
    mssql_server.create_database("ranges_src")
    endpoint = mssql_server.database("ranges_src")
    fill_synthetic(endpoint, SCALE, seed=3, tables=["Posts", "Votes"])
    return endpoint


@pytest.mark.parametrize(("budget_mib", "write_method"), [(128, "executemany"), (2, "executemany"), (2, "bulk_copy")])
def test_sqlserver_to_sqlserver_in_three_key_ranges(synthetic_mssql, fresh_mssql_database, tmp_path, caplog, budget_mib,
                                                    write_method):
    target = fresh_mssql_database("ranges_tgt")
    target = dataclasses.replace(target, options={"write_method": write_method})
    settings = CopySettings(spill_root=tmp_path, parallel_ranges=3, memory_budget_bytes=budget_mib * MiB,
                            batch_bytes=64 * 1024)
    with open_source(synthetic_mssql) as src, open_target(target) as tgt, caplog.at_level("INFO"):
        for name in ("Posts", "Votes"):
            spec = src.describe(name)
            tgt.prepare_table(spec)
            result = copy_table(src, tgt, spec, settings)
            assert result.rows_written == row_count(name, SCALE)
            if budget_mib == 2 and name == "Posts":
                assert result.spill_files > 0  # the small budget spilled
    assert "Posts: 3 key ranges" in caplog.text and "Votes: 3 key ranges" in caplog.text
    for name in ("Posts", "Votes"):
        assert _table(target, name).equals(_table(synthetic_mssql, name)), name
    assert not [t for t in threading.enumerate() if t.name.startswith(("range-", "reader-"))]


def test_sqlserver_to_postgres_and_back_in_key_ranges(synthetic_mssql, local_pg, fresh_database, fresh_mssql_database,
                                                      tmp_path):
    pg = local_pg.endpoint(fresh_database("ranges_pg"))
    settings = CopySettings(spill_root=tmp_path, parallel_ranges=2)
    with open_source(synthetic_mssql) as src, open_target(pg) as tgt:
        spec = src.describe("Votes")
        tgt.prepare_table(spec)
        assert copy_table(src, tgt, spec, settings).rows_written == row_count("Votes", SCALE)
    assert _table(pg, "Votes").equals(_table(synthetic_mssql, "Votes"))
    back = fresh_mssql_database("ranges_back")
    with open_source(pg) as src, open_target(back) as tgt:
        spec = src.describe("Votes")
        tgt.prepare_table(spec)
        assert copy_table(src, tgt, spec, settings).rows_written == row_count("Votes", SCALE)
    got, want = _table(back, "Votes"), _table(pg, "Votes")
    assert got.column_names == want.column_names and got.num_rows == want.num_rows
    for name in ("Id", "PostId", "UserId", "BountyAmount", "VoteTypeId"):
        assert got.column(name).equals(want.column(name)), name


def test_a_failing_range_fails_the_copy_and_the_retry_loads_each_row_once(synthetic_mssql, fresh_mssql_database, tmp_path):
    target = fresh_mssql_database("ranges_fail")
    with open_source(synthetic_mssql) as src, open_target(target) as tgt:
        spec = src.describe("Votes")
        tgt.prepare_table(spec)
        real_read = src.read_batches
        lo, hi = src.key_bounds(spec)
        middle = (lo + hi) // 2

        def failing_read(s, **kw):
            for batch in real_read(s, **kw):
                key_range = kw.get("key_range")
                if key_range and key_range[0] <= middle < key_range[1]:
                    raise SourceError("simulated lost source connection", table=s.qualified_name)
                yield batch

        src.read_batches = failing_read  # type: ignore[method-assign]
        settings = CopySettings(spill_root=tmp_path, parallel_ranges=3)
        with pytest.raises(SourceError, match="simulated"):
            copy_table(src, tgt, spec, settings)
        src.read_batches = real_read  # type: ignore[method-assign]
        assert copy_table(src, tgt, spec, settings).rows_written == row_count("Votes", SCALE)
        assert tgt.execute("SELECT COUNT_BIG(*), COUNT(DISTINCT [Id]) FROM [dbo].[Votes]") == [
            (row_count("Votes", SCALE), row_count("Votes", SCALE))]
    assert _table(target, "Votes").equals(_table(synthetic_mssql, "Votes"))
