"""Key ranges as copy units (``partition_as = tasks``) with SQL Server on either side (the
session's TDS server): SQL Server -> PostgreSQL and PostgreSQL -> SQL Server (swap into a staging
copy, ``sp_getapplock`` shared by the run's ranges), a retried range, another run's claim refused."""

from __future__ import annotations

import threading
from pathlib import Path

import pyarrow as pa
import pytest

from include.replication import engine
from include.replication.core.errors import TargetError
from include.replication.dialects.registry import open_source, open_target
from include.stackoverflow.synthetic import fill_synthetic, row_count

pytestmark = [pytest.mark.mssql, pytest.mark.integration]

SCALE = 0.0005  # Posts 1,865 rows


def _table(endpoint, name: str) -> pa.Table:
    with open_source(endpoint) as src:
        spec = src.describe(name)
        batches = list(src.read_batches(spec, batch_rows=100_000, batch_bytes=1 << 30))
    return pa.Table.from_batches(batches).sort_by("Id")


def _params(tmp_path: Path, **extra: object) -> dict[str, object]:
    return {"tables": ["Posts"], "partition_as": "tasks", "partition_min_rows": 1000, "parallel_ranges": 2,
            "batch_rows": 500, "spill_root": str(tmp_path / "spill"), "foreign_keys": False, **extra}


def _copy_all(s, t, params, run_id: str) -> tuple[list[str], list[dict[str, object]]]:
    """plan_units, then every unit at once (threads standing in for mapped tasks)."""
    units = engine.plan_units(s, t, params, run_id=run_id, label="test")["units"]
    results: list[dict[str, object]] = [{}] * len(units)
    errors: list[BaseException] = []

    def one(i: int, unit: str) -> None:
        try:
            results[i] = engine.copy_unit(unit, s, t, params, run_id=run_id, attempt=1, label="test")
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(i, u)) for i, u in enumerate(units)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    if errors:
        raise errors[0]
    return units, results


def test_sqlserver_source_to_postgres_in_range_units(mssql_server, local_pg, fresh_database, tmp_path):
    mssql_server.create_database("part_src")
    source = mssql_server.database("part_src")
    fill_synthetic(source, SCALE, seed=3, tables=["Posts"])
    target = local_pg.endpoint(fresh_database("part_from_mssql"))
    params = _params(tmp_path)
    units, results = _copy_all(source, target, params, "run-m1")
    assert len(units) == 2 and all(u.startswith("Posts[") for u in units)
    again = engine.copy_unit(units[0], source, target, params, run_id="run-m1", attempt=2, label="test")  # a retry
    assert again["rows_written"] == results[0]["rows_written"]
    done = engine.finish_ranges("Posts", source, target, params, [*results, again], run_id="run-m1", attempt=1,
                                label="test")
    assert done["rows_written"] == row_count("Posts", SCALE) == 1865
    assert _table(target, "Posts").equals(_table(source, "Posts"))


def test_postgres_source_to_sqlserver_in_range_units(local_pg, fresh_database, fresh_mssql_database, tmp_path):
    source = local_pg.endpoint(fresh_database("part_pg_src"))
    fill_synthetic(source, SCALE, seed=3, tables=["Posts"])
    target = fresh_mssql_database("part_to_mssql")
    params = _params(tmp_path)
    units, results = _copy_all(source, target, params, "run-m2")
    # another run claims the table: this run's finish is refused, nothing swapped in
    engine.plan_units(source, target, params, run_id="run-other", label="test")
    with pytest.raises(TargetError) as refused:
        engine.finish_ranges("Posts", source, target, params, results, run_id="run-m2", attempt=1, label="test")
    assert not refused.value.retryable and "claimed by run run-other" in str(refused.value)
    units, results = _copy_all(source, target, params, "run-m3")
    done = engine.finish_ranges("Posts", source, target, params, results, run_id="run-m3", attempt=1, label="test")
    assert done["rows_written"] == 1865
    got, want = _table(target, "Posts"), _table(source, "Posts")
    assert got.num_rows == want.num_rows == 1865
    assert got.column("Id").equals(want.column("Id")) and got.column("Title").equals(want.column("Title"))
    with open_target(target) as tgt:
        key = tgt.execute("SELECT COUNT(*) FROM sys.key_constraints WHERE parent_object_id = OBJECT_ID('dbo.Posts') "
                          "AND type = 'PK'")
        assert key == [(1,)]
        staged = tgt.execute("SELECT OBJECT_ID('dbo.Posts__stage')")
        assert staged == [(None,)]
