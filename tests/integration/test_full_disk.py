"""A spill directory on a file system that fills up: a real tmpfs of 1 MiB, not a patched write.

A copy that must spill more than the disk holds ends in one retryable ReplicationError naming
the table, the spill file and the OS error (ENOSPC), with the reader stopped and nothing left
on the disk, whichever side (the reader's spill write, the sealing of a file, the writer's read
back) meets the full disk first. The disk is ``tests/conftest.py``'s ``tiny_disk`` (root mounts it).
"""

from __future__ import annotations

import random
import string
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from include.replication.core.errors import ReplicationError
from include.replication.core.transfer import transfer

MIB = 1024 * 1024
SCHEMA = pa.schema([pa.field("Id", pa.int64(), nullable=False), pa.field("Body", pa.string())])


def incompressible(n: int, rows: int = 100, body_len: int = 1000, seed: int = 5) -> list[pa.RecordBatch]:
    """``n`` batches of random text (zstd cannot shrink it below the disk's size)."""
    rnd = random.Random(seed)
    letters = string.ascii_letters + string.digits
    out = []
    for i in range(n):
        bodies = ["".join(rnd.choices(letters, k=body_len)) for _ in range(rows)]
        out.append(pa.RecordBatch.from_pydict({"Id": list(range(i * rows, (i + 1) * rows)), "Body": bodies}, schema=SCHEMA))
    return out


@pytest.mark.parametrize("overlap", [False, True])
@pytest.mark.parametrize("spill_file_mib", [64, 1])
def test_a_full_spill_disk_is_one_retryable_error_naming_table_and_file_and_leaves_the_disk_empty(
    tiny_disk: Path, overlap: bool, spill_file_mib: int
) -> None:
    batches = incompressible(60)  # ~6 MB of random text through a 1 MiB budget onto a 1 MiB disk
    written: list[int] = []

    def slow_writer(stream: Iterator[pa.RecordBatch]) -> int:
        for batch in stream:
            written.append(batch.num_rows)
        return sum(written)

    with pytest.raises(ReplicationError) as info:
        transfer(
            iter(batches), slow_writer, schema=SCHEMA, budget_bytes=MIB, spill_root=tiny_disk, label="dbo.Posts",
            overlap=overlap, spill_file_bytes=spill_file_mib * MIB,
        )
    err = info.value
    assert err.retryable is True and err.table == "dbo.Posts"
    text = str(err)
    assert "No space left on device" in text and str(tiny_disk) in text and "spill" in text
    assert sum(written) < 6000  # the copy stopped; it did not go on without the lost batches
    assert list(tiny_disk.iterdir()) == []
