"""Unit tests of include/replication/core/buffer.py: SpillingBuffer and the overlapped transfer.

In-memory Arrow batches and tiny budgets (1 MiB and less); spill files go to pytest's tmp_path.
"""

from __future__ import annotations

import decimal
import logging
import random
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from datetime import time as dtime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from include.replication.core.batching import batch_nbytes
from include.replication.core.buffer import BufferAborted, SpillingBuffer
from include.replication.core.errors import ReplicationError, SourceError, TargetError, ValidationError
from include.replication.core.transfer import transfer

MIB = 1024 * 1024
SCHEMA = pa.schema([pa.field("Id", pa.int64(), nullable=False), pa.field("Body", pa.string())])


def posts(first_id: int, rows: int, body_len: int = 1000) -> pa.RecordBatch:
    return pa.RecordBatch.from_pydict(
        {"Id": list(range(first_id, first_id + rows)), "Body": [f"{first_id:08d}" + "x" * body_len] * rows},
        schema=SCHEMA,
    )


def stream(n: int, rows: int = 100, body_len: int = 1000) -> list[pa.RecordBatch]:
    return [posts(i * rows, rows, body_len) for i in range(n)]


def drain(buf: SpillingBuffer) -> list[pa.RecordBatch]:
    return list(buf)


def reader_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("reader-")]


def assert_same(got: list[pa.RecordBatch], expected: list[pa.RecordBatch]) -> None:
    assert len(got) == len(expected)
    for i, (g, e) in enumerate(zip(got, expected, strict=True)):
        assert g.schema.equals(e.schema, check_metadata=True), i
        assert g.equals(e), f"batch {i} differs"


# ----------------------------------------------------------------------------- SpillingBuffer


def test_buffer_spills_past_budget_and_returns_same_batches_in_order(tmp_path: Path) -> None:
    batches = stream(40)  # 40 x ~101 KB = ~4 MB through a 1 MiB budget
    per = batch_nbytes(batches[0])
    with SpillingBuffer(SCHEMA, budget_bytes=MIB, spill_root=tmp_path, label="dbo.Posts") as buf:
        for b in batches:
            buf.put(b)
        held = MIB // per
        s = buf.stats
        assert s.high_water_bytes == held * per <= MIB
        assert s.spill_batches == 40 - held and s.spill_rows == (40 - held) * 100
        assert s.spill_files == 1 and s.spill_bytes == 0  # not sealed yet
        assert [p.name for p in buf.spill_dir.iterdir()] == [".spill-000001.parquet.tmp"]
        buf.close()
        assert [p.name for p in buf.spill_dir.iterdir()] == ["spill-000001.parquet"]
        assert buf.stats.spill_bytes == (buf.spill_dir / "spill-000001.parquet").stat().st_size
        got = drain(buf)
        assert_same(got, batches)
        s = buf.stats
        assert (s.batches_in, s.rows_in, s.bytes_in) == (s.batches_out, s.rows_out, s.bytes_out) == (40, 4000, 40 * per)
        assert list(buf.spill_dir.iterdir()) == []  # a consumed spill file is deleted at once
    assert not buf.spill_dir.exists()


def test_buffer_many_spill_files_keep_order_and_interleave_with_memory(tmp_path: Path) -> None:
    batches = stream(60, rows=50, body_len=500)
    per = batch_nbytes(batches[0])
    got: list[pa.RecordBatch] = []
    with SpillingBuffer(SCHEMA, budget_bytes=4 * per, spill_root=tmp_path, spill_file_bytes=3 * per) as buf:
        it = iter(buf)
        for i, b in enumerate(batches):
            buf.put(b)
            if i % 3 == 2:  # a slow consumer: takes one batch for every three put
                got.append(next(it))
        buf.close()
        got.extend(it)
        s = buf.stats
    assert_same(got, batches)
    assert s.spill_files >= 10
    assert s.high_water_bytes <= 4 * per
    assert 0 < s.spill_batches < 60 and s.batches_out == 60


def test_consumer_reaching_an_open_spill_file_seals_it_and_never_reads_a_tmp_file(tmp_path: Path) -> None:
    batches = stream(6)
    per = batch_nbytes(batches[0])
    with SpillingBuffer(SCHEMA, budget_bytes=per, spill_root=tmp_path) as buf:
        for b in batches[:3]:  # 1 in memory, 2 in an open (unsealed) spill file
            buf.put(b)
        assert sorted(p.name for p in buf.spill_dir.iterdir()) == [".spill-000001.parquet.tmp"]
        it = iter(buf)
        first_three = [next(it) for _ in range(3)]  # the consumer seals file 1 and reads it
        assert_same(first_three, batches[:3])
        for b in batches[3:]:  # file 1 is sealed: the producer goes back to memory, then spills to file 2
            buf.put(b)
        buf.close()
        rest = list(it)
        assert_same(rest, batches[3:])
        assert buf.stats.spill_files == 2


@pytest.mark.parametrize(
    ("field", "values"),
    [
        (pa.field("s", pa.string()), ["a", None, "ü"]),
        (pa.field("ls", pa.large_string()), ["a", None, "b" * 10]),
        (pa.field("lb", pa.large_binary()), [b"\x00", None, b"z"]),
        (pa.field("ts_s", pa.timestamp("s")), [datetime(2008, 7, 31, 21, 42, 52), None, datetime(1900, 1, 1)]),
        (pa.field("ts_ms", pa.timestamp("ms")), [datetime(2008, 7, 31, 21, 42, 52, 667000), None, None]),
        (pa.field("ts_ns", pa.timestamp("ns")), [datetime(2010, 1, 1, 0, 0, 0, 1), None, None]),
        (pa.field("tz", pa.timestamp("us", tz="UTC")), [datetime(2010, 1, 1, tzinfo=UTC), None, None]),
        (pa.field("tz_paris", pa.timestamp("us", tz="Europe/Paris")), [datetime(2010, 1, 1, tzinfo=UTC), None, None]),
        (pa.field("money", pa.decimal128(19, 4)), [decimal.Decimal("922337203685477.5807"), None, decimal.Decimal("-1.0001")]),
        (pa.field("d256", pa.decimal256(50, 10)), [decimal.Decimal("1" * 40 + ".0123456789"), None, None]),
        (pa.field("u", pa.uuid()), [uuid.UUID(int=1).bytes, None, uuid.uuid4().bytes]),
        (pa.field("all_null_text", pa.string()), [None, None, None]),
        (pa.field("null_type", pa.null()), [None, None, None]),
        (pa.field("required", pa.int32(), nullable=False), [1, 2, 3]),
        (pa.field("tiny", pa.int16()), [255, None, 0]),
        (pa.field("bit", pa.bool_()), [True, None, False]),
        (pa.field("rowversion", pa.binary(8)), [b"\x00" * 8, None, b"\xff" * 8]),
        (pa.field("t", pa.time64("ns")), [dtime(12, 0, 0, 1), None, None]),
        (pa.field("d", pa.date32()), [date(1, 1, 1), None, date(9999, 12, 31)]),
        (pa.field("f4", pa.float32()), [1.5, None, float("inf")]),
    ],
    ids=lambda v: v.name if isinstance(v, pa.Field) else None,
)
def test_schema_and_values_survive_the_parquet_round_trip(tmp_path: Path, field: pa.Field, values: list[object]) -> None:
    schema = pa.schema([pa.field("Id", pa.int64(), nullable=False), field], metadata={b"table": b"dbo.T"})
    batch = pa.RecordBatch.from_arrays([pa.array([1, 2, 3], pa.int64()), pa.array(values, field.type)], schema=schema)
    with SpillingBuffer(schema, budget_bytes=1, spill_root=tmp_path) as buf:
        buf.put(batch)  # memory is empty: held in memory
        buf.put(batch)  # over budget: spilled
        buf.close()
        assert buf.stats.spill_batches == 1
        got = drain(buf)
    assert got[1].schema.equals(schema, check_metadata=True)
    assert got[1].equals(batch)
    expected = [uuid.UUID(bytes=v) if isinstance(v, bytes) else v for v in values] if field.type == pa.uuid() else values
    assert got[1].column(1).to_pylist() == expected


def test_a_buffered_slice_does_not_pin_its_larger_parent_batch(tmp_path: Path) -> None:
    """A source that yields 4 MB slices of 40 MB batches (the synthetic generator's chunks) made
    every slice held in memory keep its whole parent alive: the buffer counted 4 MB and the process
    held 40 MB (the scale 1 Posts fill peaked at 470 MiB at a 128 MiB budget). Held slices are
    compacted: once the source drops its parent, only the slice's own bytes stay allocated."""
    pool = pa.default_memory_pool()
    before = pool.bytes_allocated()  # what other tests left allocated is not this test's
    parent = posts(0, 40_000, body_len=1000)  # ~40 MB
    with SpillingBuffer(SCHEMA, budget_bytes=64 * MIB, spill_root=tmp_path, label="dbo.Posts") as buf:
        slices = [parent.slice(i * 4000, 4000) for i in range(2)]  # 2 x ~4 MB, held in memory
        for piece in slices:
            buf.put(piece)
        assert buf.stats.spill_batches == 0
        expected = [pa.record_batch(s.to_pydict(), schema=SCHEMA) for s in slices]
        held = sum(batch_nbytes(s) for s in slices)
        del parent, slices, piece
        assert pool.bytes_allocated() - before < held + 4 * MIB + sum(batch_nbytes(e) for e in expected)
        buf.close()
        assert_same(drain(buf), expected)


def test_edge_sizes_exactly_the_budget_and_budget_plus_one(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    batches = stream(4)
    per = batch_nbytes(batches[0])
    with SpillingBuffer(SCHEMA, budget_bytes=3 * per, spill_root=tmp_path) as buf:  # exactly 3 batches
        for b in batches[:3]:
            buf.put(b)
        assert buf.stats.spill_batches == 0 and buf.memory_bytes == 3 * per
        buf.put(batches[3])
        assert buf.stats.spill_batches == 1
    with SpillingBuffer(SCHEMA, budget_bytes=3 * per - 1, spill_root=tmp_path) as buf:  # one byte short
        for b in batches[:3]:
            buf.put(b)
        assert buf.stats.spill_batches == 1 and buf.stats.high_water_bytes == 2 * per
    big = posts(0, 1, body_len=MIB)  # one row of budget + 1 byte and more
    with caplog.at_level(logging.WARNING, logger="include.replication.core.buffer"):
        with SpillingBuffer(SCHEMA, budget_bytes=MIB, spill_root=tmp_path) as buf:
            buf.put(big)  # memory empty: held alone, logged
            buf.put(posts(1, 1, 10))  # anything more spills
            buf.close()
            s = buf.stats
            assert_same(drain(buf), [big, posts(1, 1, 10)])
    assert s.high_water_bytes == batch_nbytes(big) > MIB and s.spill_batches == 1
    assert any("exceeds the buffer budget" in r.getMessage() for r in caplog.records)
    assert list(tmp_path.iterdir()) == []


def test_zero_row_batches_are_dropped_and_an_empty_stream_ends(tmp_path: Path) -> None:
    with SpillingBuffer(SCHEMA, budget_bytes=MIB, spill_root=tmp_path) as buf:
        buf.put(posts(0, 0))
        buf.close()
        assert drain(buf) == []
        s = buf.stats
    assert (s.batches_in, s.empty_batches, s.spill_files) == (0, 1, 0)


def test_high_water_never_exceeds_budget_plus_one_batch_with_concurrent_consumer(tmp_path: Path) -> None:
    rng = random.Random(11)
    batches = [posts(i * 10, rng.randint(1, 40), rng.randint(10, 3000)) for i in range(300)]
    budget = 256 * 1024
    got: list[pa.RecordBatch] = []

    def slow_writer(it: Iterator[pa.RecordBatch]) -> int:
        rows = 0
        for b in it:
            got.append(b)
            rows += b.num_rows
            if len(got) % 20 == 0:
                time.sleep(0.002)
        return rows

    stats = transfer(iter(batches), slow_writer, schema=SCHEMA, budget_bytes=budget, spill_root=tmp_path, label="t")
    assert_same(got, batches)
    assert stats.high_water_bytes <= budget + max(batch_nbytes(b) for b in batches)
    assert stats.rows == stats.rows_written == sum(b.num_rows for b in batches)
    assert list(tmp_path.iterdir()) == []


def test_abort_makes_the_next_put_raise_and_put_after_close_raises(tmp_path: Path) -> None:
    cause = TargetError("disk full", table="dbo.Posts")
    with SpillingBuffer(SCHEMA, budget_bytes=MIB, spill_root=tmp_path, label="dbo.Posts") as buf:
        buf.put(posts(0, 1))
        buf.abort(cause)
        with pytest.raises(BufferAborted) as ei:
            buf.put(posts(1, 1))
        assert ei.value.__cause__ is cause and ei.value.table == "dbo.Posts"
        assert buf.first_error is cause
    with SpillingBuffer(SCHEMA, budget_bytes=MIB, spill_root=tmp_path) as buf:
        buf.close()
        with pytest.raises(BufferAborted):
            buf.put(posts(0, 1))


def test_put_rejects_a_batch_of_another_schema(tmp_path: Path) -> None:
    with SpillingBuffer(SCHEMA, budget_bytes=MIB, spill_root=tmp_path, label="dbo.Posts") as buf:
        with pytest.raises(ReplicationError) as ei:
            buf.put(pa.RecordBatch.from_pydict({"Id": [1]}))
        assert ei.value.table == "dbo.Posts"


def test_each_buffer_gets_a_fresh_directory_and_ignores_an_earlier_attempts_files(tmp_path: Path) -> None:
    stale = tmp_path / "dag_run_task_1-old"
    stale.mkdir()
    pq.write_table(pa.Table.from_batches([posts(999_000, 5)]), stale / "spill-000001.parquet")
    a = SpillingBuffer(SCHEMA, budget_bytes=1, spill_root=tmp_path, attempt_id="dag/run/task/1")
    b = SpillingBuffer(SCHEMA, budget_bytes=1, spill_root=tmp_path, attempt_id="dag/run/task/1")
    try:
        assert a.spill_dir != b.spill_dir and a.spill_dir.parent == b.spill_dir.parent == tmp_path
        assert a.spill_dir.name.startswith("dag_run_task_1-") and list(a.spill_dir.iterdir()) == []
        batches = stream(3, rows=5)
        for x in batches:
            a.put(x)
        a.close()
        assert_same(drain(a), batches)
    finally:
        a.cleanup()
        b.cleanup()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dag_run_task_1-old"]  # not ours: left alone


# ----------------------------------------------------------------------------- transfer


def collect(into: list[pa.RecordBatch]):
    def consume(it: Iterator[pa.RecordBatch]) -> int:
        rows = 0
        for b in it:
            into.append(b)
            rows += b.num_rows
        return rows

    return consume


@pytest.mark.parametrize("overlap", [True, False])
def test_transfer_spills_delivers_in_order_and_leaves_no_directory(tmp_path: Path, overlap: bool) -> None:
    batches = stream(30)
    got: list[pa.RecordBatch] = []
    stats = transfer(
        iter(batches), collect(got), schema=SCHEMA, budget_bytes=MIB, spill_root=tmp_path, label="dbo.Posts", overlap=overlap
    )
    assert_same(got, batches)
    assert (stats.rows, stats.batches, stats.bytes) == (3000, 30, sum(batch_nbytes(b) for b in batches))
    assert stats.high_water_bytes <= MIB and stats.overlap is overlap
    if not overlap:  # read-all-then-write must spill everything past 1 MiB
        assert stats.spill_batches == 30 - MIB // batch_nbytes(batches[0]) and stats.spill_bytes > 0
    assert stats.peak_rss_bytes > 10 * MIB
    assert list(tmp_path.iterdir()) == []
    assert reader_threads() == []


@pytest.mark.parametrize("n", [0, 1])
def test_transfer_zero_and_one_row(tmp_path: Path, n: int) -> None:
    batches = [posts(0, n)]
    got: list[pa.RecordBatch] = []
    stats = transfer(iter(batches), collect(got), schema=SCHEMA, budget_bytes=MIB, spill_root=tmp_path)
    assert stats.rows == n and stats.batches == n
    assert_same(got, batches[:n])
    assert list(tmp_path.iterdir()) == []


def test_producer_error_surfaces_as_the_same_exception_and_cleans_up(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    err = SourceError("connection reset", table="dbo.Posts")

    def failing_reader() -> Iterator[pa.RecordBatch]:
        yield from stream(20)  # 2 MB: spills past the 1 MiB budget before failing
        raise err

    def writer(it: Iterator[pa.RecordBatch]) -> int:
        rows = 0
        for b in it:
            time.sleep(0.01)  # slower than the reader, so the reader spills
            rows += b.num_rows
        return rows

    with pytest.raises(SourceError) as ei, caplog.at_level(logging.INFO, logger="include.replication.core.buffer"):
        transfer(failing_reader(), writer, schema=SCHEMA, budget_bytes=MIB, spill_root=tmp_path, label="dbo.Posts")
    assert ei.value is err and ei.value.table == "dbo.Posts"
    assert any("spilling to" in r.getMessage() for r in caplog.records)  # it had spilled before failing
    assert list(tmp_path.iterdir()) == []
    assert reader_threads() == []


def test_consumer_error_stops_the_producer_closes_the_reader_and_cleans_up(tmp_path: Path) -> None:
    err = TargetError("value too long", table="dbo.Posts", column="Body", key=42)
    state = {"produced": 0, "closed": False}

    def endless_reader() -> Iterator[pa.RecordBatch]:
        try:
            i = 0
            while True:
                state["produced"] += 1
                yield posts(i * 100, 100)
                i += 1
        finally:
            state["closed"] = True

    def writer(it: Iterator[pa.RecordBatch]) -> int:
        for n, _ in enumerate(it):
            if n == 3:
                time.sleep(0.05)  # let the reader run ahead and spill
                raise err
        return 0

    started = time.monotonic()
    with pytest.raises(TargetError) as ei:
        transfer(endless_reader(), writer, schema=SCHEMA, budget_bytes=MIB, spill_root=tmp_path, label="dbo.Posts")
    assert time.monotonic() - started < 5  # stopped by the abort, not by the 60 s join timeout
    assert ei.value is err and (ei.value.column, ei.value.key) == ("Body", 42)
    assert state["closed"] is True and state["produced"] > 10  # it had spilled past 1 MiB, then stopped
    assert reader_threads() == []
    assert list(tmp_path.iterdir()) == []


def test_writer_that_stops_early_fails_and_a_wrong_row_count_is_a_validation_error(tmp_path: Path) -> None:
    def lazy_writer(it: Iterator[pa.RecordBatch]) -> int:
        return next(it).num_rows

    with pytest.raises(ReplicationError, match="before the end") as ei:
        transfer(iter(stream(5)), lazy_writer, schema=SCHEMA, budget_bytes=MIB, spill_root=tmp_path, label="t")
    assert ei.value.table == "t"

    def miscounting_writer(it: Iterator[pa.RecordBatch]) -> int:
        return sum(b.num_rows for b in it) - 1

    with pytest.raises(ValidationError) as ev:
        transfer(iter(stream(5)), miscounting_writer, schema=SCHEMA, budget_bytes=MIB, spill_root=tmp_path, label="t")
    assert ev.value.table == "t"
    assert reader_threads() == []
    assert list(tmp_path.iterdir()) == []


def test_transfer_logs_progress_with_eta_and_one_summary(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        transfer(
            iter(stream(5)),
            collect([]),
            schema=SCHEMA,
            budget_bytes=MIB,
            spill_root=tmp_path,
            label="dbo.Posts",
            estimated_rows=500,
            progress_interval_s=0.0,
        )
    progress = [r.getMessage() for r in caplog.records if r.name == "include.replication.core.metrics"]
    assert len(progress) == 5 and progress[-1].startswith("dbo.Posts: 500 of ~500 rows (100.0%)")
    assert "ETA 0s" in progress[-1]
    summary = [r.getMessage() for r in caplog.records if r.name == "include.replication.core.transfer" and "high-water" in r.getMessage()]
    assert len(summary) == 1 and summary[0].startswith("dbo.Posts: 500 rows")
    assert "peak RSS" in summary[0] and "spilled 0 files" in summary[0]


@pytest.mark.parametrize("overlap", [False, True])
def test_a_full_disk_while_sealing_a_spill_file_names_the_table_and_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, overlap: bool
) -> None:
    """Closing a spill file writes its Parquet footer: a full disk there (the producer's close, or
    the writer sealing a file it reached) must be the same retryable error as a failing write,
    not a bare OSError without the table."""
    from include.replication.core import buffer as buffer_module

    def footer_fails(self: object) -> None:
        raise OSError(28, "No space left on device")

    def slow(it: Iterator[pa.RecordBatch]) -> int:  # slower than the reader: the buffer fills and spills
        return sum(time.sleep(0.01) or b.num_rows for b in it)

    monkeypatch.setattr(buffer_module._SpillFile, "seal", footer_fails)
    with pytest.raises(ReplicationError) as ei:
        transfer(iter(stream(30)), slow, schema=SCHEMA, budget_bytes=MIB, spill_root=tmp_path, label="dbo.Posts",
                 overlap=overlap)
    assert ei.value.retryable is True and ei.value.table == "dbo.Posts"
    text = str(ei.value)
    assert "sealing spill file" in text and "No space left on device" in text
    assert "spill_root" in text and "memory_budget_mib" in text  # what to do about it
    assert list(tmp_path.iterdir()) == []


def test_a_failing_spill_write_is_a_retryable_replication_error_and_cleans_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from include.replication.core import buffer as buffer_module

    def disk_full(self: object, batch: pa.RecordBatch) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(buffer_module._SpillFile, "write", disk_full)
    with pytest.raises(ReplicationError) as ei:
        transfer(iter(stream(30)), collect([]), schema=SCHEMA, budget_bytes=MIB, spill_root=tmp_path, label="dbo.Posts", overlap=False)
    assert ei.value.retryable is True and ei.value.table == "dbo.Posts"
    assert isinstance(ei.value.__cause__, OSError)
    assert list(tmp_path.iterdir()) == []
