"""Harness logic of benchmarks/memory_benchmark.py (sizing, checks, report); no server, no copy."""

from __future__ import annotations

import pytest

from benchmarks.memory_benchmark import (
    render_markdown,
    saturated,
    scale_for_size,
    source_database_name,
    summarize,
)

POSTS_PUBLISHED = 3_729_195


def _run(size: int, overlap: str, *, hw: float, peak: float, wall: float, stream: float | None = None) -> dict:
    return {
        "size_mb": size,
        "overlap": overlap,
        "high_water_mib": hw,
        "budget_mib": 128,
        "buffer_budget_mib": 128,
        "max_batch_mib": 8.0,
        "hw_bound_mib": 136.0,
        "high_water_ok": hw <= 136.0,
        "peak_rss_mib": peak,
        "wall_s": wall,
        "stream_s": wall if stream is None else stream,
    }


RUNS = [
    _run(10, "on", hw=8.0, peak=150.0, wall=0.5),
    _run(10, "off", hw=9.0, peak=150.0, wall=0.5),
    _run(100, "on", hw=70.0, peak=210.0, wall=4.0, stream=3.0),
    _run(100, "off", hw=94.0, peak=220.0, wall=5.0, stream=4.0),
    _run(1000, "on", hw=125.0, peak=340.0, wall=30.0),
    _run(1000, "off", hw=126.0, peak=330.0, wall=40.0),
    _run(3000, "on", hw=126.0, peak=360.0, wall=90.0),
    _run(3000, "off", hw=127.0, peak=335.0, wall=120.0),
]


def test_scale_for_size_gives_the_wanted_bytes() -> None:
    scale = scale_for_size(100, 1442.0, POSTS_PUBLISHED)
    assert scale == pytest.approx(0.018596, rel=1e-3)
    assert scale * POSTS_PUBLISHED * 1442.0 == pytest.approx(100e6)


def test_scale_for_size_rejects_non_positive() -> None:
    with pytest.raises(ValueError):
        scale_for_size(0, 1442.0, POSTS_PUBLISHED)


def test_source_database_name_encodes_rows_and_seed() -> None:
    assert source_database_name(69_207, 0) == "membench_posts_69207_s0"
    assert source_database_name(69_207, 1) != source_database_name(69_207, 0)


def test_saturated_means_within_one_batch_of_the_budget() -> None:
    assert saturated(_run(1000, "on", hw=120.0, peak=0, wall=1))  # 128 - 8 = 120
    assert not saturated(_run(100, "on", hw=119.9, peak=0, wall=1))


def test_saturation_is_judged_against_the_buffers_own_budget() -> None:
    """The buffer gets the task budget minus the batches in flight (80 of 128 MiB at 4 MiB)."""
    row = {**_run(1000, "on", hw=78.5, peak=250.0, wall=20.0), "buffer_budget_mib": 80.0, "max_batch_mib": 4.0}
    assert saturated(row)
    assert not saturated({**row, "high_water_mib": 70.0})
    legacy = {k: v for k, v in row.items() if k != "buffer_budget_mib"}
    assert not saturated(legacy)  # without the column: the task budget (128 MiB)


def test_summarize_growth_from_100mb_and_from_first_saturated_size() -> None:
    s = summarize(RUNS)
    on, off = s["modes"]["on"], s["modes"]["off"]
    assert (on["reference_mb"], on["largest_mb"]) == (100, 3000)
    assert on["growth_mib"] == 150.0 and on["growth_ok"] is False
    assert on["saturated_mb"] == 1000
    assert on["growth_from_saturated_mib"] == 20.0 and on["growth_from_saturated_ok"] is True
    assert off["growth_mib"] == 115.0
    assert off["growth_from_saturated_mib"] == 5.0
    assert s["high_water_ok"] is True


def test_summarize_ratios_are_on_over_off_per_size() -> None:
    ratios = summarize(RUNS)["ratios"]
    assert list(ratios) == [10, 100, 1000, 3000]
    assert ratios[100] == {"wall_ratio": 0.8, "stream_ratio": 0.75}
    assert ratios[3000]["wall_ratio"] == 0.75


def test_summarize_reference_falls_back_to_smallest_size_and_flags_high_water() -> None:
    runs = [_run(10, "on", hw=8.0, peak=150.0, wall=1), _run(300, "on", hw=140.0, peak=200.0, wall=2)]
    s = summarize(runs)
    assert s["modes"]["on"]["reference_mb"] == 10
    assert s["modes"]["on"]["growth_mib"] == 50.0 and s["modes"]["on"]["growth_ok"] is True
    assert s["high_water_ok"] is False
    assert s["ratios"] == {}


def test_summarize_without_runs_raises() -> None:
    with pytest.raises(ValueError):
        summarize([])


def test_markdown_says_not_met_when_a_bound_is_broken() -> None:
    cols = (
        "rows arrow_mb batches index_s rows_per_s mb_per_s spill_files spill_mb baseline_rss_mib "
        "hwm_at_write_start_mib peak_minus_baseline_hw_mib arrow_pool_max_mib"
    ).split()
    rows = [{**r, **dict.fromkeys(cols, 0)} for r in RUNS]
    meta = {"budget_mib": 128, "batch_mib": 8.0, "batch_rows": 50_000, "machine": "m", "python": "3",
            "pyarrow": "26", "started": "now", "total_s": 1.0}  # fmt: skip
    text = render_markdown(rows, summarize(rows), meta)
    assert "High-water <= budget + one batch at every size: met" in text
    assert "peak RSS growth 100 MB -> 3000 MB = **150.0 MiB** (issue's bound < 64 MiB: **NOT met**)" in text
    assert "from the first saturated size (1000 MB" in text
    assert "3000 MB: overlap on / off = **0.75**" in text
