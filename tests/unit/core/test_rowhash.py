"""Row hashes and digests on Arrow batches built here: independent of chunking and buffer offsets,
sensitive to every value (NULL vs empty, a swapped pair of columns, one byte of a value larger than
a hashing slice), and the first difference of two small tables named by key and column."""

from __future__ import annotations

import datetime as dt
import decimal
import uuid

import numpy as np
import pyarrow as pa
import pytest

from include.replication.core.catalog import ColumnSpec, TableSpec
from include.replication.core.checksum import canonical_target_batch, first_difference
from include.replication.core.errors import ValidationError
from include.replication.core.rowhash import SLICE_BYTES, Digest, column_hashes, digest_batch, row_hashes


def _batch(n: int = 6) -> pa.RecordBatch:
    ids = list(range(1, n + 1))
    return pa.record_batch(
        {
            "Id": pa.array(ids, pa.int32()),
            "Small": pa.array([i % 3 for i in ids], pa.int16()),
            "Flag": pa.array([None if i % 4 == 0 else i % 2 == 0 for i in ids]),
            "Money": pa.array(
                [(decimal.Decimal(i) / 7).quantize(decimal.Decimal("0.0001")) if i % 5 else None for i in ids],
                pa.decimal128(19, 4),
            ),
            "F8": pa.array([i / 3 for i in ids]),
            "Ts": pa.array([dt.datetime(2010, 1, 1) + dt.timedelta(seconds=i) for i in ids], pa.timestamp("us")),
            "D": pa.array([dt.date(2010, 1, 1) + dt.timedelta(days=i) for i in ids], pa.date32()),
            "G": pa.array([uuid.UUID(int=i).bytes for i in ids], pa.binary(16)),
            "Body": pa.array([None if i % 3 == 0 else "ü" * i for i in ids]),
            "Raw": pa.array([bytes([i]) * i for i in ids], pa.binary()),
        }
    )


def test_zero_and_one_row():
    empty = _batch(0)
    assert row_hashes(empty).shape == (0,)
    assert digest_batch(empty) == Digest(0, 0, 0)
    one = digest_batch(_batch(1))
    assert one.rows == 1 and one.total == one.xor != 0


def test_digest_is_independent_of_chunking_order_and_offsets():
    batch = _batch(50)
    whole = digest_batch(batch)
    parts = [batch.slice(i, 7) for i in range(0, 50, 7)]
    assert sum((digest_batch(p) for p in parts), Digest()) == whole
    assert digest_batch(pa.Table.from_batches(parts[::-1])) == whole  # order-independent
    sliced = row_hashes(batch.slice(13, 20))
    assert (sliced == row_hashes(batch)[13:33]).all()  # buffers with an offset


def test_null_and_empty_text_and_zero_and_false_all_differ():
    text = column_hashes(pa.array(["", None, "a"]))
    assert len(set(text.tolist())) == 3
    ints = column_hashes(pa.array([0, None], pa.int64()))
    assert ints[0] != ints[1]
    flags = column_hashes(pa.array([False, None, True]))
    assert len(set(flags.tolist())) == 3


def test_swapped_values_between_columns_change_the_row_hash():
    a = pa.record_batch({"x": pa.array([1], pa.int32()), "y": pa.array([2], pa.int32())})
    b = pa.record_batch({"x": pa.array([2], pa.int32()), "y": pa.array([1], pa.int32())})
    assert row_hashes(a)[0] != row_hashes(b)[0]


def test_every_byte_of_a_value_larger_than_a_slice_counts():
    big = "x" * (SLICE_BYTES + 10)
    values = pa.array(["before", big, big[:-1] + "y", big, "after"])
    h = column_hashes(values)
    assert h[1] == h[3] and h[1] != h[2]
    assert (column_hashes(values.slice(1, 1)) == h[1:2]).all()  # alone or among others: the same hash
    np.testing.assert_array_equal(column_hashes(pa.array(["before", "after"])), h[[0, 4]])


def test_nested_types_are_refused():
    with pytest.raises(TypeError, match="no canonical row hash"):
        column_hashes(pa.array([[1]]))


def test_first_difference_names_the_smallest_key():
    source = pa.Table.from_batches([_batch(10)])
    target = source.set_column(
        8, "Body", pa.array([r if i != 6 else "changed" for i, r in enumerate(source["Body"].to_pylist())])
    )
    diff = first_difference(source, target, "Id")
    assert (diff.kind, diff.key, diff.column, diff.source_value, diff.target_value) == (
        "value",
        7,
        "Body",
        "ü" * 7,
        "changed",
    )
    assert first_difference(source, source, "Id") is None
    assert first_difference(source, source.slice(1), "Id").kind == "missing"
    assert (
        first_difference(source.slice(1), source, "Id").kind,
        first_difference(source.slice(1), source, "Id").key,
    ) == ("extra", 1)
    duplicated = pa.concat_tables([source, source.slice(4, 1)])
    assert (first_difference(source, duplicated, "Id").kind, first_difference(source, duplicated, "Id").key) == (
        "extra",
        5,
    )


def test_sqlserver_datetime2_text_in_the_target_compares_as_a_timestamp():
    spec = TableSpec(
        name="T",
        dialect="mssql",
        columns=(ColumnSpec("Id", "int", nullable=False), ColumnSpec("At", "datetime2", precision=7)),
        primary_key=("Id",),
    )
    read = pa.record_batch({"Id": pa.array([1, 2], pa.int32()), "At": pa.array(["2010-01-02 03:04:05.1234567", None])})
    want = pa.schema([pa.field("Id", pa.int32(), nullable=False), pa.field("At", pa.timestamp("us"))])
    got = canonical_target_batch(read, spec, want)
    assert got.column(1).to_pylist() == [dt.datetime(2010, 1, 2, 3, 4, 5, 123456), None]
    with pytest.raises(ValidationError) as info:
        canonical_target_batch(read.drop_columns(["At"]), spec, want)
    assert (info.value.table, info.value.column) == ("public.T", "At")


@pytest.mark.parametrize("length", [1, 7, 8, 9, 16, 17, 63])
def test_every_single_bit_flip_changes_the_hash_whatever_the_neighbours(length):
    value = bytes((i * 37 + 11) % 256 for i in range(length))
    alone = column_hashes(pa.array([value], pa.binary()))[0]
    assert column_hashes(pa.array([b"zz", value, b"q" * 9], pa.binary()))[1] == alone  # neighbours never leak in
    for i in range(length):
        for bit in (0, 7):
            flipped = bytearray(value)
            flipped[i] ^= 1 << bit
            assert column_hashes(pa.array([bytes(flipped)], pa.binary()))[0] != alone, (i, bit)
    assert column_hashes(pa.array([value + b"\0"], pa.binary()))[0] != alone  # a trailing NUL byte counts


def test_many_tiny_values_spanning_several_slices_hash_as_each_alone():
    values = pa.array([chr(97 + i % 26) * (i % 3) for i in range(300_000)])  # '', 'b', 'cc', ...: 3 slices
    h = column_hashes(values)
    for i in (0, 1, 2, 116_507, 116_508, 233_016, 299_999):
        assert h[i] == column_hashes(values.slice(i, 1))[0], i
    assert h[3] == h[0] and h[1] != h[4]  # equal values hash equal: '' and ''; 'b' and 'e' differ


def test_hashing_text_does_not_fault_in_fresh_pages_per_slice():
    """With the copy's allocator settings (glibc's mmap threshold pinned at 128 KiB), a slice's
    temporaries above the threshold were fresh mmaps, page-faulted in and unmapped every slice:
    Posts' Body hashed at about a third of its speed (5 bytes faulted in per byte hashed). Slices
    are sized so their temporaries stay on the heap: a second pass over synthetic Posts bodies
    takes few minor page faults, not one per 4 KiB hashed."""
    import resource

    from include.replication.core.allocators import tune_allocators
    from include.stackoverflow.synthetic import generate

    tune_allocators()
    body = pa.concat_arrays([b.column("Body") for b in generate("Posts", scale=0.005)])
    assert body.nbytes > 20_000_000
    first = column_hashes(body)  # warm: the heap grows to its working size once
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    again = column_hashes(body)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    np.testing.assert_array_equal(first, again)
    assert faults < body.nbytes // 4096 // 10, f"{faults} minor page faults hashing {body.nbytes} bytes"
