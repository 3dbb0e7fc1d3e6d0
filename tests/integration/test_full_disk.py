"""Disks that fill up for real (tmpfs mounts, not patched writes): the spill directory's and the
target server's.

A copy that must spill more than its disk holds ends in one retryable ReplicationError naming
the table, the spill file, the OS error (ENOSPC) and what to do, with the reader stopped and
nothing left on the disk, with or without overlap (a full disk while sealing a file's footer:
``tests/unit/core/test_buffer_and_transfer.py``). The disks are ``tests/conftest.py``'s
``tiny_disk`` and ``mounted_tmpfs`` (root mounts them).
"""

from __future__ import annotations

import random
import string
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from include.replication.core.config import CopySettings
from include.replication.core.errors import ReplicationError, TargetError
from include.replication.core.pipeline import copy_table
from include.replication.core.transfer import transfer
from include.replication.dialects.registry import open_source, open_target
from tests.conftest import mounted_tmpfs, run_sql

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
            time.sleep(0.01)  # slower than the reader, so the buffer fills and the rest must spill
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
    assert f"the disk under {tiny_disk} is full" in text and "spill_root" in text  # what to do
    assert sum(written) < 6000  # the copy stopped; it did not go on without the lost batches
    assert list(tiny_disk.iterdir()) == []


@pytest.fixture
def target_on_a_small_disk(server_home: Path):
    """A second embedded PostgreSQL whose data directory sits on a 120 MiB tmpfs (about 95 MiB
    free after initdb) and whose WAL lives elsewhere, so a large COPY fills the table's own
    files (ERROR 53100), not the WAL (which would PANIC the server). Yields (server, mount)."""
    import shutil

    from tools.localpg import start_local_postgres

    mnt = server_home / "small"
    mnt.mkdir()
    with mounted_tmpfs(mnt, "120m", mode="1777"):
        data = mnt / "data"
        start_local_postgres(data, keep_running=False).stop()
        wal = server_home / "wal" / "pg_wal"
        wal.parent.mkdir()
        shutil.move(str(data / "pg_wal"), str(wal))  # a copy across file systems: owned by root now
        subprocess.run(["chown", "-R", f"{data.stat().st_uid}:{data.stat().st_gid}", str(wal.parent)], check=True)
        (data / "pg_wal").symlink_to(wal)
        server = start_local_postgres(data, keep_running=False)
        try:
            yield server, mnt
        finally:
            server.stop()


def test_a_target_disk_filling_up_mid_copy_names_table_row_and_cause_and_the_retry_with_room_succeeds(
    local_pg, fresh_database, target_on_a_small_disk, tmp_path: Path
) -> None:
    server, mnt = target_on_a_small_disk
    src = fresh_database("disk_src")
    server.create_database("small_tgt")
    body = "(SELECT string_agg(md5(g::text || '-' || i), '') FROM generate_series(1, 40) i)"
    run_sql(local_pg.uri(src), 'CREATE TABLE "Posts" ("Id" integer PRIMARY KEY, "Body" text NOT NULL)',
            f'INSERT INTO "Posts" SELECT g, {body} FROM generate_series(1, 200) g')

    def copy(attempt: int):
        with open_source(local_pg.endpoint(src)) as source, open_target(server.endpoint("small_tgt")) as target:
            spec = source.describe("Posts")
            return copy_table(source, target, spec, CopySettings(spill_root=tmp_path / "spill", attempt=attempt))

    assert copy(1).rows_written == 200  # the replica
    # ~190 MB of barely compressible text: more than the ~95 MiB the target's disk has left
    run_sql(local_pg.uri(src), f'INSERT INTO "Posts" SELECT g, {body} FROM generate_series(201, 150000) g')
    with pytest.raises(TargetError) as info:
        copy(2)
    err = info.value
    text = str(err)
    assert err.retryable is True and "Posts" in text and "copy_row" in text
    assert "No space left on device" in text and "53100" in text
    assert run_sql(server.uri("small_tgt"), 'SELECT count(*) FROM "Posts"') == [(200,)]  # the replica stays
    assert run_sql(server.uri("small_tgt"), "SELECT to_regclass('\"Posts__stage\"')") == [(None,)]
    subprocess.run(["mount", "-o", "remount,size=600m", str(mnt)], check=True)  # room again
    assert copy(3).rows_written == 150000
    assert run_sql(server.uri("small_tgt"), 'SELECT count(*), sum(length("Body")) FROM "Posts"') == [(150000, 150000 * 1280)]
