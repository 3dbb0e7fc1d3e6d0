"""The synthetic source's batches pin at most one generator chunk each, so the rows a copy buffers
(counted by their slice size) cannot hold much more memory than they count: the fill of a full-scale
Posts table peaked at 1.1 GiB when each 4 MiB slice kept a combined 50,000-row parent alive."""

from __future__ import annotations

from include.replication.core.config import DEFAULT_BATCH_ROWS
from include.stackoverflow.synthetic import CHUNK_ROWS, SyntheticSource


def test_posts_batches_pin_no_more_than_one_generator_chunk():
    with SyntheticSource(0.01, 7, ["Posts"]) as source:
        spec = source.describe("Posts")
        batches = list(source.read_batches(spec, batch_rows=DEFAULT_BATCH_ROWS, batch_bytes=4 << 20))
    assert sum(b.num_rows for b in batches) == 37292
    biggest_pinned = max(b.get_total_buffer_size() for b in batches)  # whole parent buffers of a slice
    biggest_counted = max(b.nbytes for b in batches)
    assert biggest_counted <= 5 << 20
    # one chunk of CHUNK_ROWS Posts rows is ~24 MB of text; a 50,000-row parent would be ~3x that
    assert biggest_pinned <= CHUNK_ROWS * 2500, f"a batch pins {biggest_pinned / 2**20:.0f} MiB"
