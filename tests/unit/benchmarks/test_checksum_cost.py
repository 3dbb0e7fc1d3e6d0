"""The checksum cost benchmark's summary: per-table medians over rounds and the total ratio."""

from __future__ import annotations

import pytest

from benchmarks.checksum_cost import summarize


def test_summary_takes_medians_per_table_and_the_ratio_of_their_sums():
    runs = [
        {"table": "Posts", "rows": 10, "copy_s": 10.0, "checksum_s": 4.0},
        {"table": "Posts", "rows": 10, "copy_s": 12.0, "checksum_s": 9.0},
        {"table": "Posts", "rows": 10, "copy_s": 11.0, "checksum_s": 5.0},
        {"table": "Votes", "rows": 99, "copy_s": 2.0, "checksum_s": 1.0},
    ]
    summary = summarize(runs)
    assert summary["tables"] == {
        "Posts": {"rows": 10, "copy_s": 11.0, "checksum_s": 5.0, "ratio": 0.455},
        "Votes": {"rows": 99, "copy_s": 2.0, "checksum_s": 1.0, "ratio": 0.5},
    }
    assert (summary["copy_s"], summary["checksum_s"], summary["ratio"]) == (13.0, 6.0, 0.462)
    with pytest.raises(ValueError, match="no runs"):
        summarize([])


def test_summary_with_the_tap_variant_reports_its_ratio():
    runs = [
        {"table": "Posts", "rows": 10, "copy_s": 10.0, "checksum_s": 6.0, "tap_copy_s": 11.0, "tap_checksum_s": 3.0},
        {"table": "Votes", "rows": 99, "copy_s": 2.0, "checksum_s": 1.0, "tap_copy_s": 2.5, "tap_checksum_s": 0.5},
    ]
    summary = summarize(runs)
    assert summary["tables"]["Posts"]["tap_ratio"] == 0.4  # (11 - 10 + 3) / 10
    assert summary["tables"]["Votes"]["tap_ratio"] == 0.5  # (2.5 - 2 + 0.5) / 2
    assert summary["tap_ratio"] == 0.417  # (1 + 3 + 0.5 + 0.5) / 12
