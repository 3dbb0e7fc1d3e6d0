"""Fast checks of the throughput benchmark's harness logic: run order, statistics, results files.

No database: records are built in the test with known numbers, so every figure is checked exactly.
"""

from __future__ import annotations

import json

import pytest

# a development package (requirements-dev.txt): `astro dev pytest` in the image skips this module
pytest.importorskip("psycopg")
pytest.importorskip("matplotlib")

from benchmarks.methods import METHODS, PIPE_KEY
from benchmarks.methods.base import Deadline
from benchmarks.methods.insert_chunks import values_chunk_rows
from benchmarks.methods.report import RunRecord, markdown_table, plan_runs, summarize, write_results


def test_plan_interleaves_methods_within_each_table() -> None:
    plan = plan_runs(["Posts", "Votes"], ["A", "B", "C"], 2)
    assert [m for _, _, m in plan] == ["A", "B", "C"] * 4
    assert [t for t, _, _ in plan] == ["Posts"] * 6 + ["Votes"] * 6
    assert [r for _, r, _ in plan[:6]] == [0, 0, 0, 1, 1, 1]


def test_plan_rejects_zero_repeats_and_duplicates() -> None:
    with pytest.raises(ValueError):
        plan_runs(["Posts"], ["A"], 0)
    with pytest.raises(ValueError):
        plan_runs(["Posts"], ["A", "A"], 1)


def _rec(method: str, seconds: float | None, rows: int = 1000, *, table: str = "Posts", capped: bool = False, rss: int = 0) -> RunRecord:
    return RunRecord(table, method, 0, 0, seconds, rows=rows, capped=capped, peak_rss_bytes=rss, error=None if seconds else "boom")


def test_summary_median_min_max_rates_and_ratio() -> None:
    records = [
        _rec("pipe", 1.0), _rec("pipe", 3.0), _rec("pipe", 2.0),
        _rec("ours", 2.0, rss=100), _rec("ours", 2.5, rss=300), _rec("ours", 6.0, rss=200),
    ]
    out = {s.method: s for s in summarize(records, {"Posts": 1000}, {"Posts": 4_000_000})}
    pipe, ours = out["pipe"], out["ours"]
    assert (pipe.seconds_median, pipe.seconds_min, pipe.seconds_max) == (2.0, 1.0, 3.0)
    assert pipe.rows_per_s == pytest.approx(500.0)  # median of 1000, 333.3, 500
    assert pipe.mb_per_s == pytest.approx(2.0)  # 4 MB / 2 s
    assert ours.seconds_median == 2.5
    assert ours.ratio_to_pipe == pytest.approx(1.25)
    assert ours.peak_rss_bytes == 300  # the highest peak over the runs
    assert pipe.ratio_to_pipe == pytest.approx(1.0)


def test_capped_method_ratio_uses_time_per_row() -> None:
    # the pipe copies 1000 rows in 1 s; the capped method managed 100 rows in 2 s: 20x slower per row
    records = [_rec("pipe", 1.0), _rec("values", 2.0, rows=100, capped=True)]
    out = {s.method: s for s in summarize(records, {"Posts": 1000}, {"Posts": 1_000_000})}
    assert out["values"].capped is True
    assert out["values"].rows_per_s == pytest.approx(50.0)
    assert out["values"].mb_per_s == pytest.approx(0.05)  # 100 rows x 1000 bytes / 2 s
    assert out["values"].ratio_to_pipe == pytest.approx(20.0)


def test_failed_runs_are_counted_not_averaged() -> None:
    records = [_rec("pipe", 1.0), _rec("dlt", None, rows=0), _rec("dlt", 4.0)]
    out = {s.method: s for s in summarize(records, {"Posts": 1000}, {"Posts": 1000})}
    assert (out["dlt"].runs, out["dlt"].failed, out["dlt"].seconds_median) == (2, 1, 4.0)
    assert out["dlt"].ratio_to_pipe == pytest.approx(4.0)


def test_ratio_is_taken_per_table() -> None:
    records = [
        _rec("pipe", 1.0, table="Posts"), _rec("ours", 1.1, table="Posts"),
        _rec("pipe", 0.5, table="Votes"), _rec("ours", 1.0, table="Votes"),
    ]
    out = {(s.table, s.method): s for s in summarize(records, {"Posts": 1000, "Votes": 1000}, {"Posts": 1, "Votes": 1})}
    assert out[("Posts", "ours")].ratio_to_pipe == pytest.approx(1.1)
    assert out[("Votes", "ours")].ratio_to_pipe == pytest.approx(2.0)


def test_without_a_pipe_run_there_is_no_ratio() -> None:
    out = summarize([_rec("pipe", None, rows=0), _rec("ours", 1.0)], {"Posts": 1000}, {"Posts": 1})
    assert {s.method: s.ratio_to_pipe for s in out} == {"pipe": None, "ours": None}


def test_results_files_hold_the_figures(tmp_path) -> None:
    records = [_rec("pipe", 1.0, rss=50 * 2**20), _rec("ours", 1.5, rss=120 * 2**20)]
    summaries = summarize(records, {"Posts": 1000}, {"Posts": 2_000_000})
    meta = {"title": "t", "scale": 0.001, "tables": {"Posts": {"rows": 1000, "copy_binary_bytes": 2_000_000}}}
    paths = write_results(tmp_path, "throughput_test", meta=meta, records=records, summaries=summaries, labels={"pipe": "1 pipe"}, chart=True)
    data = json.loads(paths["json"].read_text())
    assert data["meta"]["scale"] == 0.001
    assert [r["method"] for r in data["runs"]] == ["pipe", "ours"]
    assert data["summaries"][1]["ratio_to_pipe"] == pytest.approx(1.5)
    md = paths["md"].read_text()
    assert "| Posts | 1 pipe | 1,000 | 1.00 [1.00-1.00] | n/a | 1,000 | 2.0 | 50 | 1.00 |" in md
    assert "| Posts | ours | 1,000 | 1.50 [1.50-1.50] | n/a | 667 | 1.3 | 120 | 1.50 |" in md
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_markdown_marks_capped_and_failed() -> None:
    s = summarize([_rec("pipe", 1.0), _rec("values", 2.0, rows=10, capped=True), _rec("values", None, rows=0)], {"Posts": 1000}, {"Posts": 1000})
    md = markdown_table(s, {})
    assert "values (time-capped) (1 of 2 runs failed)" in md


def test_values_chunk_stays_under_the_parameter_limit() -> None:
    assert values_chunk_rows(20) == 104  # 104 x 20 = 2080 <= 2099
    assert values_chunk_rows(5) == 419
    assert values_chunk_rows(3000) == 1
    with pytest.raises(ValueError):
        values_chunk_rows(0)


def test_deadline_expires_after_the_cap() -> None:
    now = [100.0]
    d = Deadline(2.0, clock=lambda: now[0])
    assert not d.expired()
    now[0] = 101.9
    assert not d.expired()
    now[0] = 102.0
    assert d.expired()


def test_registry_has_every_issue_method_and_the_pipe() -> None:
    assert METHODS[PIPE_KEY].number == 1
    assert {m.number for m in METHODS.values()} == {1, 2, 3, 4, 5, 6, 7}
    assert {m.variant for m in METHODS.values() if m.module == "ours"} == {"default", "no_overlap", "spill", "parallel2"}


def test_cpu_seconds_are_the_median_of_the_runs_that_measured_them():
    recs = [_rec("ours", 2.0), _rec("ours", 3.0), _rec("ours", 4.0), _rec("ours", None)]
    for rec, cpu in zip(recs, (1.25, 0.5, None, 9.0), strict=True):
        rec.cpu_s = cpu
    (s,) = summarize(recs, {"Posts": 1000}, {"Posts": 2_000_000})
    assert s.cpu_s == pytest.approx(0.875)  # the failed run's 9.0 and the unmeasured run are left out
    assert "| 3.00 [2.00-4.00] | 0.88 |" in markdown_table([s], {})
