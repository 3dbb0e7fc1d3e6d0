"""Row hashes of Arrow RecordBatches: one 64-bit hash per row of its canonical serialisation,
vectorised with numpy (no per-value Python), and an order-independent digest of many rows.

The canonical serialisation of a value is its Arrow representation: the little-endian bytes of a
fixed-width value (integers, floats, decimals, dates, times, timestamps, UUIDs, fixed binaries;
booleans as one byte), the bytes of a string or binary value (UTF-8 for strings), and a separate
tag for NULL, so NULL and an empty string differ. A row's hash mixes its column hashes in
column order (swapping two values changes it). Two batches with the same schema and the same
values give the same row hashes whatever their chunking or their buffers' offsets.

A variable-length value is cut into 8-byte words; each word goes through a multiply-xorshift
bijection, the results are summed as a polynomial in an odd base mod 2^64 (so word order counts)
and mixed (``splitmix64``) with the length: a good checksum of accidental differences (a changed word always changes its term),
not a cryptographic one. Transient memory of a string column is about 6 bytes per byte of text
in the slice being hashed (at most :data:`SLICE_BYTES`, or one larger value alone).

Pure logic: numpy and pyarrow only (and the allocator constant), no database driver.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from include.replication.core.allocators import MMAP_THRESHOLD_BYTES

__all__ = ["SLICE_BYTES", "Digest", "row_hashes", "column_hashes", "digest_batch"]

SLICE_BYTES = MMAP_THRESHOLD_BYTES * 3 // 4
"""Most bytes of text hashed at once (bytes, 96 KiB); a batch with more is hashed in row slices.

Below glibc's mmap threshold as the copy pins it (:data:`.allocators.MMAP_THRESHOLD_BYTES`): every temporary of
a slice (the slice's bytes, one index and one word per 8 bytes, one entry per row) is then a heap
block reused by the next slice. At 1 MiB each temporary was a fresh mmap, page-faulted in and
unmapped again: measured on synthetic Posts read from PostgreSQL (507 MB), 594,000 minor page
faults and 1.7 s per pass, against none and 0.85 s at 96 KiB."""

_U = np.uint64
_GOLDEN = _U(0x9E3779B97F4A7C15)
_NULL = _U(0x6A09E667F3BCC909)
_M1 = _U(0xBF58476D1CE4E5B9)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser, element-wise on a uint64 array (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        x = x ^ (x >> _U(30))
        x = x * _U(0xBF58476D1CE4E5B9)
        x = x ^ (x >> _U(27))
        x = x * _U(0x94D049BB133111EB)
        return x ^ (x >> _U(31))


def _fixed_bytes(arr: pa.Array, width: int) -> np.ndarray:
    """The values of a fixed-width array as an (n, width) uint8 matrix (NULL slots undefined)."""
    data = np.frombuffer(arr.buffers()[1], dtype=np.uint8)
    start = arr.offset * width
    return data[start : start + len(arr) * width].reshape(len(arr), width)


def _hash_fixed(arr: pa.Array, width: int) -> np.ndarray:
    """uint64 hash per value of a fixed-width array (NULLs not yet tagged)."""
    raw = _fixed_bytes(arr, width)
    if width in (1, 2, 4, 8):
        words = raw.copy().view({1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}[width])[:, 0]
        return _mix(words.astype(np.uint64) ^ _U(width))
    pad = (-width) % 8
    if pad:
        raw = np.concatenate([raw, np.zeros((len(arr), pad), dtype=np.uint8)], axis=1)
    words = np.ascontiguousarray(raw).view(np.uint64)
    h = np.full(len(arr), _U(width), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for k in range(words.shape[1]):
            h = _mix(h * _GOLDEN + words[:, k])
    return h


def _hash_varlen(arr: pa.Array) -> np.ndarray:
    """uint64 hash per value of a string/binary array (NULLs not yet tagged), in row slices of at
    most :data:`SLICE_BYTES` bytes of data."""
    large = pa.types.is_large_string(arr.type) or pa.types.is_large_binary(arr.type)
    raw = np.frombuffer(arr.buffers()[1], dtype=np.int64 if large else np.int32)
    offsets: np.ndarray = raw[arr.offset : arr.offset + len(arr) + 1].astype(np.int64)
    data_buf = arr.buffers()[2]
    data = np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.zeros(0, dtype=np.uint8)
    out = np.empty(len(arr), dtype=np.uint64)
    padded = offsets + 8 * np.arange(len(offsets), dtype=np.int64)  # bounds the words of a run of rows
    first = 0
    while first < len(arr):
        # the longest run of rows whose words fit in one slice (at least one row)
        last = int(np.searchsorted(padded, padded[first] + SLICE_BYTES, side="right")) - 1
        last = min(max(last, first + 1), len(arr))
        out[first:last] = _hash_slice(data, offsets[first : last + 1])
        first = last
    return out


def _hash_slice(data: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Hash of each value ``data[offsets[i]:offsets[i+1]]``: the value is cut into 8-byte
    little-endian words ``w_k`` (the last one zero-padded); the hash is ``sum_k f(w_k) * B**k``
    mod 2^64, with ``f`` a multiply-xorshift bijection and ``B`` odd (computed over the slice's
    word positions and shifted back by ``B**-first``), mixed with the value's length."""
    lengths = np.diff(offsets)
    base = int(offsets[0])
    total = int(offsets[-1]) - base
    sums = np.zeros(len(lengths), dtype=np.uint64)
    if total:
        buf = np.zeros(total + 8, dtype=np.uint8)
        buf[:total] = data[base : base + total]
        at_byte = np.ndarray((total + 1,), dtype="<u8", buffer=buf, strides=(1,))  # the 8 bytes from each byte
        nwords = (lengths + 7) // 8
        first = np.cumsum(nwords) - nwords  # each value's first word
        count = int(first[-1] + nwords[-1])
        at = np.arange(0, 8 * count, 8, dtype=np.int64)
        at += np.repeat(offsets[:-1] - base - 8 * first, nwords)
        words = at_byte[at]
        nonempty = nwords > 0
        rem = (lengths - 8 * (nwords - 1))[nonempty].astype(np.uint64)  # bytes in the last word: 1..8
        keep = np.where(rem == 8, _U(0xFFFFFFFFFFFFFFFF), (_U(1) << (_U(8) * (rem % _U(8)))) - _U(1))
        words[(first + nwords - 1)[nonempty]] &= keep  # drop the next value's bytes
        powers, inverses = _powers(count)
        with np.errstate(over="ignore"):
            words *= _M1
            words ^= words >> _U(32)
            words *= _M1
            words *= powers[:count]
            starts = first[nonempty]
            sums[nonempty] = np.add.reduceat(words, starts) * inverses[starts]
    with np.errstate(over="ignore"):
        return _mix(sums + (lengths.astype(np.uint64) + _U(1)) * _GOLDEN)


_BASE = 0x100000001B3  # odd: invertible mod 2^64
_TABLE_WORDS = SLICE_BYTES // 8 + 1
_POWERS: tuple[np.ndarray, np.ndarray] | None = None
_POWERS_LOCK = threading.Lock()


def _power_tables(size: int) -> tuple[np.ndarray, np.ndarray]:
    """``B**k`` and ``B**-k`` mod 2^64 for ``k < size``."""
    one = np.ones(1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        up = np.cumprod(np.full(size - 1, _U(_BASE), dtype=np.uint64))
        down = np.cumprod(np.full(size - 1, _U(pow(_BASE, -1, 2**64)), dtype=np.uint64))
    return np.concatenate([one, up]), np.concatenate([one, down])


def _powers(count: int) -> tuple[np.ndarray, np.ndarray]:
    """Power tables covering ``count`` words: the shared ones for a slice (2 MiB, built once under a
    lock: the two sides hash on two threads), fresh ones for one larger value."""
    global _POWERS
    if count > _TABLE_WORDS:
        return _power_tables(count)
    with _POWERS_LOCK:
        if _POWERS is None:
            _POWERS = _power_tables(_TABLE_WORDS)
        return _POWERS


def column_hashes(arr: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """One uint64 hash per value of an Arrow array, NULLs as a tag of their own.

    Args:
        arr: any array of a fixed-width, boolean, string/binary (also large and extension over
            those, e.g. ``arrow.json``) or fixed-size binary type.

    Returns:
        ``np.ndarray`` of ``uint64``, ``len(arr)`` values.

    Raises:
        TypeError: a type with no canonical serialisation here (nested types).
    """
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if isinstance(arr.type, pa.ExtensionType):
        arr = arr.storage
    t = arr.type
    if len(arr) == 0:
        return np.zeros(0, dtype=np.uint64)
    if pa.types.is_nested(t) or pa.types.is_dictionary(t):
        raise TypeError(f"no canonical row hash for Arrow type {t}")
    if pa.types.is_null(t):
        return np.full(len(arr), _NULL, dtype=np.uint64)
    if pa.types.is_boolean(t):
        h = _hash_fixed(pc.fill_null(arr, False).cast(pa.uint8()), 1)
    elif pa.types.is_string(t) or pa.types.is_binary(t) or pa.types.is_large_string(t) or pa.types.is_large_binary(t):
        h = _hash_varlen(arr)
    elif pa.types.is_fixed_size_binary(t) or pa.types.is_decimal(t):
        h = _hash_fixed(arr, t.byte_width)
    elif not pa.types.is_nested(t) and t.bit_width % 8 == 0:
        h = _hash_fixed(arr, t.bit_width // 8)
    else:
        raise TypeError(f"no canonical row hash for Arrow type {t}")
    if arr.null_count:
        valid = np.asarray(arr.is_valid(), dtype=bool)
        h = np.where(valid, h, _NULL)
    return h


def row_hashes(batch: pa.RecordBatch | pa.Table) -> np.ndarray:
    """One uint64 hash per row: the column hashes mixed in column order.

    Returns:
        ``np.ndarray`` of ``uint64``, ``batch.num_rows`` values.

    Raises:
        TypeError: a column type :func:`column_hashes` does not serialise.
    """
    h = np.full(batch.num_rows, _U(batch.num_columns), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for i in range(batch.num_columns):
            h = _mix(h * _GOLDEN + column_hashes(batch.column(i)) + _U(i))
    return h


@dataclass(frozen=True)
class Digest:
    """Order-independent digest of a multiset of rows.

    Attributes:
        rows: number of rows.
        total: sum of the row hashes mod 2^64.
        xor: XOR of the row hashes.
    """

    rows: int = 0
    total: int = 0
    xor: int = 0

    def __add__(self, other: Digest) -> Digest:
        """The digest of both multisets of rows together."""
        return Digest(self.rows + other.rows, (self.total + other.total) % 2**64, self.xor ^ other.xor)

    @property
    def hex(self) -> str:
        """``rows:total:xor`` with the two hashes in hex, for logs and the audit."""
        return f"{self.rows}:{self.total:016x}:{self.xor:016x}"

    @classmethod
    def parse(cls, text: str) -> Digest:
        """The digest written by :attr:`hex`.

        Raises:
            ValueError: not ``rows:total:xor``.
        """
        rows, total, xor = text.split(":")
        return cls(int(rows), int(total, 16), int(xor, 16))


def digest_batch(batch: pa.RecordBatch | pa.Table) -> Digest:
    """The :class:`Digest` of the rows of one batch.

    Raises:
        TypeError: a column type :func:`column_hashes` does not serialise.
    """
    h = row_hashes(batch)
    if not len(h):
        return Digest()
    with np.errstate(over="ignore"):
        total = int(np.add.reduce(h, dtype=np.uint64))
    return Digest(len(h), total, int(np.bitwise_xor.reduce(h)))
