"""Unit tests of include/replication/core/metrics.py: RSS figures and the progress logger."""

from __future__ import annotations

import logging
import sys

import pytest

from include.replication.core.metrics import (
    Progress,
    current_rss_bytes,
    format_bytes,
    format_seconds,
    peak_rss_bytes,
    reset_peak_rss,
)

MIB = 1024 * 1024


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_peak_rss_is_in_bytes_and_sees_a_64_mib_allocation() -> None:
    before = peak_rss_bytes()
    assert before >= current_rss_bytes() > 10 * MIB  # bytes, not kilobytes
    block = bytearray(64 * MIB)
    block[:: 4096] = b"x" * len(block[:: 4096])  # touch every page so it is resident
    assert peak_rss_bytes() >= current_rss_bytes() >= 60 * MIB
    assert peak_rss_bytes() >= before
    del block


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="clear_refs is Linux only")
def test_reset_peak_rss_brings_the_peak_back_to_the_current_rss() -> None:
    block = bytearray(64 * MIB)
    block[:: 4096] = b"x" * len(block[:: 4096])
    del block
    assert reset_peak_rss() is True
    assert peak_rss_bytes() - current_rss_bytes() < 32 * MIB


def test_progress_logs_at_most_every_interval_with_rate_and_eta(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    p = Progress("dbo.Posts", estimated_rows=1000, interval_s=10, clock=clock)
    with caplog.at_level(logging.INFO, logger="include.replication.core.metrics"):
        clock.now += 5
        p.add(100, 2_000_000)  # 5 s: no line yet
        assert caplog.records == []
        clock.now += 5
        p.add(150, 3_000_000)  # 10 s: 250 rows, 5 MB -> 25 rows/s, 0.5 MB/s, 750 rows left -> 30 s
        clock.now += 3
        p.add(10, 0)  # 13 s: too soon after the last line
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["dbo.Posts: 250 of ~1000 rows (25.0%), 4.8 MiB, 25 rows/s, 0.5 MB/s, ETA 30s"]
    assert p.lines == 1 and p.rows == 260 and p.bytes == 5_000_000
    assert p.rate() == pytest.approx((20.0, 5_000_000 / 13))
    assert p.eta_seconds() == pytest.approx(740 / 20.0)


def test_progress_without_estimate_has_no_eta(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    p = Progress("t", None, interval_s=10, clock=clock)
    clock.now += 2
    p.add(10, 1024)
    with caplog.at_level(logging.INFO, logger="include.replication.core.metrics"):
        assert p.maybe_log(force=True) is True
    assert p.eta_seconds() is None
    assert caplog.records[0].getMessage() == "t: 10 rows, 1.0 KiB, 5 rows/s, 0.0 MB/s (no row estimate, no ETA)"


def test_progress_rate_is_zero_before_time_passes() -> None:
    p = Progress("t", 10, clock=FakeClock())
    assert p.rate() == (0.0, 0.0) and p.eta_seconds() is None


@pytest.mark.parametrize(
    ("n", "text"),
    [(0, "0 B"), (1023, "1023 B"), (1536, "1.5 KiB"), (128 * MIB, "128.0 MiB"), (3 * 1024 * MIB, "3.0 GiB")],
)
def test_format_bytes(n: int, text: str) -> None:
    assert format_bytes(n) == text


@pytest.mark.parametrize(("s", "text"), [(None, "?"), (0, "0s"), (59.4, "59s"), (61, "1m01s"), (3725, "1h02m05s")])
def test_format_seconds(s: float | None, text: str) -> None:
    assert format_seconds(s) == text
