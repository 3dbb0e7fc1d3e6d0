"""Byte-bounded RecordBatches: the accounting function and the re-batcher.

Every part of the pipeline that counts memory counts it with :func:`batch_nbytes`: the bytes of
the Arrow buffer ranges a batch references (validity bitmaps, offsets, data), taking slice offsets
into account. It is never ``pyarrow.total_allocated_bytes()``, which reads 0 under some memory
pools and counts every batch of the process, not the one at hand.

:func:`rebatch` turns any stream of batches into one whose batches stay under a row limit and a
byte limit, slicing large batches (zero-copy) and combining small ones (one copy). A Posts batch
of 3 MB bodies is therefore cut by bytes, not only by a row count. One row larger than the byte
limit cannot be cut: it travels alone and is logged with a warning.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator

import pyarrow as pa

from include.replication.core.catalog import TableSpec
from include.replication.core.errors import ConfigurationError, ReplicationError

__all__ = ["batch_nbytes", "rebatch", "concat_batches", "row_key", "unpinned_batch", "PIN_SLACK_BYTES"]

log = logging.getLogger(__name__)


def batch_nbytes(batch: pa.RecordBatch) -> int:
    """Return the bytes of row data a RecordBatch references (the pipeline's accounting unit).

    This is ``RecordBatch.nbytes``: the sum over all columns of the buffer ranges the batch
    references, offsets of a slice included (a 10-row slice of a 1,000-row batch counts about
    1/100 of it). ``get_total_buffer_size()`` would count the whole parent buffers of every slice
    and so over-count slices of one batch many times.

    Args:
        batch: any RecordBatch.

    Returns:
        Bytes (>= 0). 0-row batches may still count a few bytes of offsets.
    """
    return int(batch.nbytes)


PIN_SLACK_BYTES = 64 * 1024
"""A batch whose buffers exceed twice its own bytes plus this is a slice pinning a larger parent."""


def unpinned_batch(batch: pa.RecordBatch, nbytes: int) -> pa.RecordBatch:
    """``batch``, or a compact copy of it when it is a slice of a much larger parent batch.

    The buffer accounts a batch by the bytes it references (:func:`batch_nbytes`), but a
    zero-copy slice keeps its parent's whole buffers alive: a source yielding 4 MB slices of
    40 MB batches (the synthetic generator's fixed chunks) made the process hold ten times what
    the buffer counted (the scale 1 Posts fill peaked at 470 MiB at a 128 MiB budget). The copy
    costs one pass over the slice's bytes and happens only for such slices.

    Args:
        batch: any RecordBatch.
        nbytes: its :func:`batch_nbytes` (bytes).

    Returns:
        ``batch`` itself, or a RecordBatch with the same schema and values whose buffers are its own.
    """
    if batch.get_total_buffer_size() <= 2 * nbytes + PIN_SLACK_BYTES:
        return batch
    return pa.RecordBatch.from_arrays([pa.concat_arrays([column]) for column in batch.columns], schema=batch.schema)


def concat_batches(batches: list[pa.RecordBatch]) -> pa.RecordBatch:
    """Combine batches of one schema into one contiguous RecordBatch (copies the data once).

    Args:
        batches: at least one batch, all with the same schema.

    Returns:
        One RecordBatch with ``sum(num_rows)`` rows and the first batch's schema.

    Raises:
        ValueError: ``batches`` is empty.
        pyarrow.ArrowInvalid: the schemas differ.
    """
    if not batches:
        raise ValueError("concat_batches needs at least one batch")
    if len(batches) == 1:
        return batches[0]
    return pa.concat_batches(batches)


def _fitting_rows(batch: pa.RecordBatch, start: int, max_rows: int, max_bytes: int) -> int:
    """Largest k in [1, max_rows] with ``batch_nbytes(batch.slice(start, k)) <= max_bytes``, or 1.

    Slices are zero-copy and their byte count is monotone in k, so a binary search over k costs
    O(log max_rows) slices of O(columns) each.
    """
    hi = min(max_rows, batch.num_rows - start)
    if batch_nbytes(batch.slice(start, hi)) <= max_bytes:
        return hi
    lo = 1  # the answer is >= 1 (a single oversized row still travels alone)
    if batch_nbytes(batch.slice(start, 1)) > max_bytes:
        return 1
    # invariant: slice(start, lo) fits, slice(start, hi) does not
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if batch_nbytes(batch.slice(start, mid)) <= max_bytes:
            lo = mid
        else:
            hi = mid
    return lo


def rebatch(
    batches: Iterable[pa.RecordBatch],
    *,
    max_rows: int,
    max_bytes: int,
    table: str | None = None,
) -> Iterator[pa.RecordBatch]:
    """Re-cut a stream of RecordBatches so each holds at most ``max_rows`` rows and ``max_bytes`` bytes.

    Rows keep their order. Batches over a limit are sliced (zero-copy); consecutive small batches
    are combined (one copy) until the next one would cross a limit. 0-row batches are dropped.
    A single row whose own size exceeds ``max_bytes`` is yielded alone, as a 1-row batch, and a
    warning names the table and the size.

    Args:
        batches: input RecordBatches, all with the same schema.
        max_rows: row limit of an output batch (>= 1).
        max_bytes: byte limit of an output batch, as counted by :func:`batch_nbytes` (>= 1).
        table: table name for log lines and errors, or None.

    Yields:
        RecordBatches with the input schema, 1 <= num_rows <= max_rows and
        ``batch_nbytes <= max_bytes`` except for a 1-row batch holding an oversized row.

    Raises:
        ConfigurationError: ``max_rows`` or ``max_bytes`` < 1.
        ReplicationError: an input batch's schema differs from the first one's.
    """
    if max_rows < 1 or max_bytes < 1:
        raise ConfigurationError(f"rebatch needs max_rows >= 1 and max_bytes >= 1, got {max_rows}, {max_bytes}", table=table)
    schema: pa.Schema | None = None
    pending: list[pa.RecordBatch] = []
    pending_rows = 0
    pending_bytes = 0

    def flush() -> Iterator[pa.RecordBatch]:
        nonlocal pending, pending_rows, pending_bytes
        if pending:
            parts = pending
            pending, pending_rows, pending_bytes = [], 0, 0
            out = concat_batches(parts)
            if len(parts) > 1 and batch_nbytes(out) > max_bytes:
                # combining can add a validity bitmap the parts did not have; keep them apart
                yield from parts
            else:
                yield out

    for batch in batches:
        if schema is None:
            schema = batch.schema
        elif not batch.schema.equals(schema):
            raise ReplicationError(f"batch schema changed mid-stream: {batch.schema} != {schema}", table=table)
        start = 0
        while start < batch.num_rows:
            k = _fitting_rows(batch, start, max_rows, max_bytes)
            piece = batch.slice(start, k)
            size = batch_nbytes(piece)
            start += k
            if k == 1 and size > max_bytes:
                log.warning(
                    "%s: one row of %s bytes exceeds the batch limit of %s bytes; it travels alone",
                    table or "?",
                    size,
                    max_bytes,
                )
                yield from flush()
                yield piece
                continue
            if pending and (pending_rows + k > max_rows or pending_bytes + size > max_bytes):
                yield from flush()
            if k == max_rows or size * 2 > max_bytes:
                # a full-size piece: pass it on without a copy (after anything pending, for order)
                yield from flush()
                yield piece
                continue
            pending.append(piece)
            pending_rows += k
            pending_bytes += size
    yield from flush()


def row_key(spec: TableSpec, batch: pa.RecordBatch, index: int) -> object:
    """Primary-key value of row ``index`` of ``batch``: a scalar for a one-column key, a tuple for
    a composite key, the row number within the batch when the table has no key."""
    if not spec.primary_key:
        return {"row_in_batch": index}
    names = batch.schema.names
    values = tuple(batch.column(names.index(c))[index].as_py() for c in spec.primary_key if c in names)
    return values[0] if len(values) == 1 else values
