"""Process memory figures and a progress logger for long copies.

Memory:

* :func:`current_rss_bytes`: resident set size of this process now (psutil), in bytes.
* :func:`peak_rss_bytes`: the highest resident set size of this process so far, in bytes. On
  Linux it is ``VmHWM`` of ``/proc/self/status`` (kB there, converted), which
  :func:`reset_peak_rss` can reset so one process can measure several runs; elsewhere it is
  ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` (kilobytes on Linux, bytes on macOS, converted to
  bytes here), and psutil's current RSS when neither exists.

Progress: :class:`Progress` counts rows and bytes from any thread and logs one INFO line at most
every ``interval_s`` seconds (rows done of the estimate, rows/s, MB/s, ETA).
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psutil

__all__ = [
    "current_rss_bytes",
    "peak_rss_bytes",
    "reset_peak_rss",
    "format_bytes",
    "format_seconds",
    "Progress",
]

log = logging.getLogger(__name__)

_PROC_STATUS = Path("/proc/self/status")
_PROC_CLEAR_REFS = Path("/proc/self/clear_refs")


def current_rss_bytes() -> int:
    """Resident set size of this process now, in bytes (psutil)."""
    return int(psutil.Process().memory_info().rss)


def _vm_hwm_bytes() -> int | None:
    try:
        with _PROC_STATUS.open() as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024  # the kernel reports kB
    except (OSError, ValueError, IndexError):
        return None
    return None


def peak_rss_bytes() -> int:
    """Highest resident set size of this process so far (since start or :func:`reset_peak_rss`), in bytes.

    Returns:
        Bytes. Linux: ``VmHWM``. Other Unix: ``ru_maxrss`` (kilobytes on Linux/BSD, bytes on macOS)
        converted to bytes. Without either: the current RSS (a lower bound of the peak).
    """
    hwm = _vm_hwm_bytes()
    if hwm is not None:
        return hwm
    try:
        import resource

        maxrss = int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
        return maxrss if sys.platform == "darwin" else maxrss * 1024
    except (ImportError, OSError):
        return current_rss_bytes()


def reset_peak_rss() -> bool:
    """Reset this process's peak RSS to its current RSS (Linux >= 4.0: ``5`` into ``clear_refs``).

    Returns:
        True when the reset happened, False where it is not supported (the peak then keeps
        counting from the process start).
    """
    try:
        _PROC_CLEAR_REFS.write_text("5")
        return True
    except OSError:
        return False


def format_bytes(n: float) -> str:
    """``1536`` -> ``'1.5 KiB'``: bytes in binary units, one decimal."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"  # pragma: no cover


def format_seconds(s: float | None) -> str:
    """``3725`` -> ``'1h02m05s'``; None -> ``'?'``."""
    if s is None:
        return "?"
    s = max(0, int(round(s)))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    if h:
        return f"{h}h{m:02d}m{sec:02d}s"
    if m:
        return f"{m}m{sec:02d}s"
    return f"{sec}s"


class Progress:
    """Thread-safe row/byte counter that logs a progress line at most every ``interval_s`` seconds.

    Args:
        label: what is being copied (a table name), first word of every line.
        estimated_rows: expected total rows (catalog estimate or COUNT), or None if unknown.
        interval_s: minimum seconds between two progress lines (default 10).
        clock: monotonic clock in seconds (injectable for tests).
        logger: where lines go (default this module's logger).
    """

    def __init__(
        self,
        label: str,
        estimated_rows: int | None = None,
        *,
        interval_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        logger: logging.Logger | None = None,
    ) -> None:
        self.label = label
        self.estimated_rows = estimated_rows if estimated_rows and estimated_rows > 0 else None
        self.interval_s = interval_s
        self._clock = clock
        self._log = logger or log
        self._lock = threading.Lock()
        self.started = clock()
        self._last_line = self.started
        self.rows = 0
        self.bytes = 0
        self.lines = 0

    def add(self, rows: int, nbytes: int) -> None:
        """Count ``rows`` rows and ``nbytes`` bytes done, then log a line if one is due."""
        with self._lock:
            self.rows += rows
            self.bytes += nbytes
        self.maybe_log()

    def elapsed(self) -> float:
        """Seconds since the Progress was created."""
        return self._clock() - self.started

    def rate(self) -> tuple[float, float]:
        """``(rows per second, bytes per second)`` since the start; (0, 0) before any time passed."""
        elapsed = self.elapsed()
        if elapsed <= 0:
            return 0.0, 0.0
        return self.rows / elapsed, self.bytes / elapsed

    def eta_seconds(self) -> float | None:
        """Seconds left at the current row rate, or None without an estimate or a rate."""
        rows_s, _ = self.rate()
        if self.estimated_rows is None or rows_s <= 0:
            return None
        return max(0.0, (self.estimated_rows - self.rows) / rows_s)

    def maybe_log(self, *, force: bool = False) -> bool:
        """Log one progress line if ``interval_s`` has passed since the last one (or ``force``).

        Returns:
            True when a line was logged.
        """
        now = self._clock()
        with self._lock:
            if not force and now - self._last_line < self.interval_s:
                return False
            self._last_line = now
            self.lines += 1
            rows, nbytes = self.rows, self.bytes
        rows_s, bytes_s = self.rate()
        if self.estimated_rows is not None:
            self._log.info(
                "%s: %s of ~%s rows (%.1f%%), %s, %.0f rows/s, %.1f MB/s, ETA %s",
                self.label,
                rows,
                self.estimated_rows,
                100.0 * rows / self.estimated_rows,
                format_bytes(nbytes),
                rows_s,
                bytes_s / 1e6,
                format_seconds(self.eta_seconds()),
            )
        else:
            self._log.info(
                "%s: %s rows, %s, %.0f rows/s, %.1f MB/s (no row estimate, no ETA)",
                self.label,
                rows,
                format_bytes(nbytes),
                rows_s,
                bytes_s / 1e6,
            )
        return True
