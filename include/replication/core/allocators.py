"""Process allocator settings that keep a copy task's resident memory flat in table size.

Measured on this project's copy (PostgreSQL -> PostgreSQL, synthetic Posts, 1 MiB budget, the
benchmark in ``benchmarks/memory_benchmark.py``): with Arrow's default mimalloc pool and glibc's
dynamic mmap threshold, the copying process's peak RSS sat about 60 MiB above what the buffer and
the batches in flight need, and grew with the number of batches moved. Two settings remove that:

* Arrow's memory pool -> the system allocator (``pyarrow.system_memory_pool()``), so Arrow
  buffers (Parquet spill write/read, concatenation) and the ADBC driver's buffers (plain
  ``malloc``) share one allocator instead of two that each keep freed pages;
* glibc ``mallopt(M_MMAP_THRESHOLD, 128 KiB)``: large blocks (every RecordBatch buffer) are
  mmap-ed and returned to the OS on free. Without it glibc raises the threshold dynamically after
  the first large free (up to 32 MiB on 64-bit), and later batch buffers come from heap arenas
  that fragment and are not trimmed. (glibc ``mallopt(3)``: M_MMAP_THRESHOLD = -3; setting it
  disables the dynamic adjustment.)

Both are process-wide and idempotent; they change no result, only where memory comes from.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

import pyarrow as pa

__all__ = ["MMAP_THRESHOLD_BYTES", "tune_allocators"]

log = logging.getLogger(__name__)

MMAP_THRESHOLD_BYTES = 128 * 1024
"""glibc's default static mmap threshold (128 KiB, ``mallopt(3)``), pinned so it no longer grows."""

_M_MMAP_THRESHOLD = -3  # from glibc <malloc.h>
_done = False


def tune_allocators() -> dict[str, object]:
    """Switch Arrow to the system allocator and pin glibc's mmap threshold (once per process).

    Returns:
        What was applied: ``{"arrow_pool": backend name, "mmap_threshold": bytes or None}``
        (None when the C library is not glibc).

    Never raises: a platform without ``mallopt`` keeps its defaults (logged at DEBUG).
    """
    global _done
    applied: dict[str, object] = {"arrow_pool": pa.default_memory_pool().backend_name, "mmap_threshold": None}
    if _done:
        return applied
    _done = True
    if pa.default_memory_pool().backend_name != "system":
        pa.set_memory_pool(pa.system_memory_pool())
        applied["arrow_pool"] = "system"
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        if libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1:
            applied["mmap_threshold"] = MMAP_THRESHOLD_BYTES
    except (OSError, AttributeError):
        log.debug("mallopt not available; allocator defaults kept", exc_info=True)
    log.info("allocators: Arrow pool %s, malloc mmap threshold %s", applied["arrow_pool"], applied["mmap_threshold"])
    return applied
