"""Delete detection: the merge-join of sorted key streams finds exactly the target keys the source
lacks, at edge sizes (no rows, one row, batches that do not line up, every key gone), holding one
batch per side; its param and its SQL in both dialects."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from include.replication.core.catalog import ColumnSpec, IdentitySpec, TableSpec
from include.replication.core.deletes import delete_mode, key_batches, key_spec, missing_keys
from include.replication.core.errors import ConfigurationError
from include.replication.core.merge import check_cursor
from include.replication.dialects.mssql.merge import delete_sql as mssql_delete_sql
from include.replication.dialects.postgres.merge import delete_sql as postgres_delete_sql

SPEC = TableSpec(
    "Posts",
    (ColumnSpec("Id", "integer", nullable=False, identity=True), ColumnSpec("Title", "text"),
     ColumnSpec("LastActivityDate", "timestamp without time zone")),
    primary_key=("Id",),
    identity=IdentitySpec("Id", 1, 1),
)


def _batches(keys: list[int], size: int) -> list[pa.RecordBatch]:
    return [pa.record_batch([pa.array(keys[i:i + size], pa.int32())], names=["Id"]) for i in range(0, len(keys), size)]


def _missing(source: list[int], target: list[int], s_size: int = 3, t_size: int = 4) -> list[int]:
    found = list(missing_keys(_batches(source, s_size), _batches(target, t_size), "Id"))
    assert all(a.size for a in found)
    return [int(k) for a in found for k in a]


@pytest.mark.parametrize(("source", "target", "gone"), [
    ([], [], []),
    ([], [1], [1]),
    ([1], [], []),
    ([1], [1], []),
    ([1, 2, 3], [1, 2, 3], []),
    ([2], [1, 2, 3], [1, 3]),
    ([1, 3, 5, 7, 9, 11], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], [2, 4, 6, 8, 10, 12]),
    ([10, 20, 30, 40], [5, 10, 15, 40, 45], [5, 15, 45]),
    ([100, 200], [1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 2, 3, 4, 5, 6, 7, 8, 9]),  # every key gone
    ([1, 2, 3, 4, 5, 6, 7, 8, 9, 50], [50], []),  # new source keys only
])
def test_missing_keys_are_exactly_the_target_keys_the_source_lacks(source, target, gone):
    assert _missing(source, target) == gone
    assert _missing(source, target, 1, 1) == gone
    assert _missing(source, target, 100, 2) == gone


def test_missing_keys_match_a_set_difference_on_random_keys():
    rng = np.random.default_rng(7)
    target = np.unique(rng.integers(0, 100_000, 20_000))
    source = np.setdiff1d(target, rng.choice(target, 500, replace=False))
    source = np.union1d(source, rng.integers(100_000, 120_000, 300))  # rows new in the source
    assert _missing(source.tolist(), target.tolist(), 997, 1_024) == np.setdiff1d(target, source).tolist()


def test_missing_keys_refuse_keys_out_of_order():
    with pytest.raises(ValueError, match="target's keys are not strictly ascending"):
        _missing([1, 2, 3], [1, 3, 2])
    with pytest.raises(ValueError, match="source's keys are not strictly ascending"):
        _missing([1, 2, 3, 4, 3], [1, 10], s_size=2)


def test_key_batches_and_key_spec():
    (batch,) = key_batches([np.array([4, 9])], "Id", pa.int32())
    assert batch.schema == pa.schema([pa.field("Id", pa.int32(), nullable=False)])
    assert batch.column(0).to_pylist() == [4, 9]
    keys = key_spec(SPEC, "Posts__merge_del")
    assert (keys.name, keys.column_names, keys.identity, keys.primary_key) == ("Posts__merge_del", ("Id",), None, ("Id",))
    assert not keys.columns[0].identity


def test_delete_mode_param_and_the_integer_key_it_needs():
    assert delete_mode({}) == "ignore"
    assert delete_mode({"delete_mode": "apply"}) == "apply"
    with pytest.raises(ConfigurationError, match="delete_mode must be one of"):
        delete_mode({"delete_mode": "purge"})
    tags = TableSpec("Tags", (ColumnSpec("Name", "text", nullable=False), ColumnSpec("At", "timestamp without time zone")),
                     primary_key=("Name",))
    assert check_cursor(tags, "At") == "At"
    with pytest.raises(ConfigurationError, match="delete_mode report needs a single integer primary key") as info:
        check_cursor(tags, "At", table="Tags", deletes="report")
    assert info.value.table == "Tags"


def test_delete_sql_of_both_dialects():
    assert postgres_delete_sql(SPEC, "public", "Posts", "Posts__merge_del") == (
        'WITH gone AS (DELETE FROM "public"."Posts" AS d USING "public"."Posts__merge_del" AS x '
        'WHERE d."Id" = x."Id" RETURNING 1) SELECT count(*) FROM gone'
    )
    sql = mssql_delete_sql(SPEC, "dbo", "Posts", "Posts__merge_del")
    assert sql == ("DELETE d FROM [dbo].[Posts] AS d INNER JOIN [dbo].[Posts__merge_del] AS x ON d.[Id] = x.[Id]; "
                   "SELECT @@ROWCOUNT")
    sqlglot = pytest.importorskip("sqlglot")
    assert [type(s).__name__ for s in sqlglot.parse(sql, read="tsql") if s is not None] == ["Delete", "Select"]
