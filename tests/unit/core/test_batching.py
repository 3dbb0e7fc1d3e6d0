"""Unit tests of include/replication/core/batching.py: byte accounting and byte/row-bounded re-batching."""

from __future__ import annotations

import logging
import random

import pyarrow as pa
import pytest

from include.replication.core.batching import batch_nbytes, concat_batches, rebatch
from include.replication.core.errors import ConfigurationError, ReplicationError

SCHEMA = pa.schema([pa.field("Id", pa.int64(), nullable=False), pa.field("Body", pa.string())])


def posts(ids: list[int], body_len: int | list[int]) -> pa.RecordBatch:
    lens = body_len if isinstance(body_len, list) else [body_len] * len(ids)
    return pa.RecordBatch.from_pydict({"Id": ids, "Body": ["b" * n for n in lens]}, schema=SCHEMA)


def joined(batches: list[pa.RecordBatch]) -> pa.Table:
    return pa.Table.from_batches(batches, schema=SCHEMA).combine_chunks()


def test_batch_nbytes_counts_own_buffers_and_slices_proportionally() -> None:
    b = posts(list(range(100)), 1000)
    # int64 ids (800) + string offsets (100 * 4 as pyarrow counts them) + 100 * 1000 body bytes, no bitmaps
    assert batch_nbytes(b) == 800 + 400 + 100_000
    part = b.slice(10, 10)
    assert batch_nbytes(part) == 80 + 40 + 10_000  # not the parent's whole buffers
    assert batch_nbytes(b.slice(0, 0)) < 10


def test_rebatch_splits_by_rows() -> None:
    b = posts(list(range(1000)), 3)
    out = list(rebatch([b], max_rows=300, max_bytes=10**9))
    assert [x.num_rows for x in out] == [300, 300, 300, 100]
    assert joined(out).equals(joined([b]))


def test_rebatch_splits_by_bytes_3mb_bodies_do_not_blow_the_budget() -> None:
    # 40 rows of 3 MB bodies = 120 MB in one source batch; limit 8 MB -> at most 2 rows per batch
    b = posts(list(range(40)), 3_000_000)
    out = list(rebatch([b], max_rows=10_000, max_bytes=8_000_000))
    assert all(batch_nbytes(x) <= 8_000_000 for x in out)
    assert [x.num_rows for x in out] == [2] * 20
    assert joined(out).equals(joined([b]))


def test_rebatch_combines_small_batches_up_to_the_limits() -> None:
    small = [posts(list(range(i * 5, i * 5 + 5)), 10) for i in range(10)]
    out = list(rebatch(small, max_rows=20, max_bytes=10**9))
    assert [x.num_rows for x in out] == [20, 20, 10]
    assert joined(out).equals(joined(small))
    per_row = batch_nbytes(small[0]) // 5
    out_b = list(rebatch(small, max_rows=10**6, max_bytes=12 * per_row))
    assert all(batch_nbytes(x) <= 12 * per_row for x in out_b)
    assert sum(x.num_rows for x in out_b) == 50
    assert joined(out_b).equals(joined(small))


def test_rebatch_single_oversized_row_travels_alone_and_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    b = posts([1, 2, 3, 4, 5], [100, 100, 50_000, 100, 100])
    with caplog.at_level(logging.WARNING, logger="include.replication.core.batching"):
        out = list(rebatch([b], max_rows=100, max_bytes=10_000, table="dbo.Posts"))
    assert [x.num_rows for x in out] == [2, 1, 2]
    assert out[1].column("Id").to_pylist() == [3]
    assert batch_nbytes(out[1]) > 10_000
    assert all(batch_nbytes(x) <= 10_000 for x in (out[0], out[2]))
    assert joined(out).equals(joined([b]))
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "dbo.Posts" in warnings[0].getMessage()


def test_rebatch_edge_sizes_zero_and_one_row() -> None:
    assert list(rebatch([], max_rows=10, max_bytes=100)) == []
    assert list(rebatch([posts([], 1), posts([], 1)], max_rows=10, max_bytes=100)) == []
    one = posts([7], 10)
    out = list(rebatch([one], max_rows=1, max_bytes=batch_nbytes(one)))
    assert len(out) == 1 and out[0].equals(one)


def test_rebatch_exactly_the_byte_limit_fits_and_one_byte_less_splits() -> None:
    b = posts(list(range(10)), 100)
    size = batch_nbytes(b)
    assert [x.num_rows for x in rebatch([b], max_rows=100, max_bytes=size)] == [10]
    out = list(rebatch([b], max_rows=100, max_bytes=size - 1))
    assert [x.num_rows for x in out] == [9, 1]


def test_rebatch_random_streams_keep_rows_and_limits() -> None:
    rng = random.Random(3)
    batches, next_id = [], 0
    for _ in range(60):
        n = rng.randint(0, 40)
        batches.append(posts(list(range(next_id, next_id + n)), [rng.randint(0, 400) for _ in range(n)]))
        next_id += n
    for max_rows, max_bytes in [(1, 10**6), (7, 2_000), (50, 5_000), (1000, 700)]:
        out = list(rebatch(batches, max_rows=max_rows, max_bytes=max_bytes))
        assert all(1 <= x.num_rows <= max_rows for x in out)
        assert all(batch_nbytes(x) <= max_bytes or x.num_rows == 1 for x in out)
        assert joined(out).equals(joined(batches))


def test_rebatch_rejects_bad_limits_and_schema_changes() -> None:
    with pytest.raises(ConfigurationError):
        list(rebatch([], max_rows=0, max_bytes=10))
    with pytest.raises(ConfigurationError):
        list(rebatch([], max_rows=10, max_bytes=0))
    other = pa.RecordBatch.from_pydict({"Id": [1]})
    with pytest.raises(ReplicationError) as ei:
        list(rebatch([posts([1], 1), other], max_rows=10, max_bytes=100, table="dbo.Posts"))
    assert ei.value.table == "dbo.Posts"


def test_concat_batches_one_and_many() -> None:
    a, b = posts([1], 2), posts([2, 3], 2)
    assert concat_batches([a]) is a
    assert concat_batches([a, b]).column("Id").to_pylist() == [1, 2, 3]
    with pytest.raises(ValueError):
        concat_batches([])
