"""The full-scale benchmark's pure parts: the disk check's refusal, totals and ratios, the page."""

from __future__ import annotations

import shutil

import pytest

from benchmarks.full_scale import (
    DiskSpaceError,
    TableFigures,
    audit_by_table,
    check_disk,
    dags_test_task_starts,
    render_markdown,
    summarize,
    table_walls,
)


def test_check_disk_refuses_with_both_figures_and_what_to_do(tmp_path):
    free = shutil.disk_usage(tmp_path).free
    assert check_disk(tmp_path / "state", 0.001, need_per_scale=1000) > 0 and (tmp_path / "state").is_dir()
    with pytest.raises(DiskSpaceError) as info:
        check_disk(tmp_path / "state", 2.0, need_per_scale=free)
    text = str(info.value)
    assert f"{free / 1e9:.1f} GB free" in text and f"about {2 * free / 1e9:.1f} GB" in text
    assert "--state-dir" in text and "--scale" in text and str(tmp_path / "state") in text


def _figures() -> list[TableFigures]:
    return [
        TableFigures("Posts", 1000, 8_000_000, 2.0, 1.0, 3.6, 1000, 1000, 0, 1),
        TableFigures("Votes", 5000, 2_000_000, 0.5, 0.5, 1.5, 5000, 4999, 10_000_000, 1),
    ]


def test_summarize_totals_ratios_and_exactness():
    s = summarize(_figures(), dag_wall_s=8.0)
    assert s["rows"] == 6000 and s["pipe_s"] == pytest.approx(4.0) and s["dag_tasks_s"] == pytest.approx(5.1)
    assert s["wall_x_pipe"] == pytest.approx(2.0)
    assert s["x_pipe"] == {"Posts": pytest.approx(1.2), "Votes": pytest.approx(1.5)}
    assert s["exact"] is False  # Votes lost a row
    missing = summarize([TableFigures("Posts", 1, 1)], dag_wall_s=None)
    assert missing["pipe_s"] is None and missing["wall_x_pipe"] is None and missing["exact"] is False


def test_render_markdown_names_the_command_the_ratios_and_a_lost_row():
    figs = _figures()
    meta = {
        "scale": 1.0, "command": "python -m benchmarks.full_scale --scale 1.0", "started": "t0", "finished": "t1",
        "machine": {"cores_logical": 2, "cpu_model": "cpu", "memory_bytes": 24 * 2**30}, "load_avg_before": [0.1],
        "fill": {"seconds": 108.0, "peak_rss_bytes": 200 * 2**20}, "memory_budget_mib": 128, "conf": {},
        "dags_test_peak_rss_bytes": 400 * 2**20, "standalone": None,
    }
    page = render_markdown(meta, figs, summarize(figs, 8.0))
    assert "`python -m benchmarks.full_scale --scale 1.0`" in page
    assert "| Posts | 1,000 | 8 | 2.00 | 1.00 | 3.00 | 3 | 3.60 | 2 | 278 | 1.20 | 0 | yes |" in page
    assert "`x pipe` = `DAG s` / `pipe s`" in page and "fixed costs" not in page  # scale 1: no small-scale note
    assert "NO (4999)" in page and "**2.00x** the summed pipe" in page and "Fill: 108.0 s" in page


def test_audit_by_table_adds_a_split_table_s_ranges_to_its_finish():
    rows = [
        ("Posts[1:501)", 500, 10.0, 7, 300), ("Posts[501:1001)", 500, 12.5, 3, 310), ("Posts", 1000, 2.0, 10, 310),
        ("Votes", 42, 1.5, None, 200),
    ]
    assert audit_by_table(rows) == {"Posts": (1000, 24.5, 10, 310), "Votes": (42, 1.5, 0, 200)}


def _ti(task_id: str, unit: str | None, start: str, end: str | None) -> dict:
    return {"task_id": task_id, "map_index": 0 if unit else -1, "rendered_map_index": unit,
            "start_date": f"2026-12-04T10:{start}Z", "end_date": end and f"2026-12-04T10:{end}Z"}


def test_table_walls_run_from_the_first_range_start_to_the_finish_end():
    tis = [
        _ti("plan", None, "00:00", "00:05"),
        _ti("copy", "Posts[1:501)", "00:10", "03:00"),
        _ti("copy", "Posts[501:1001)", "00:12", "03:20"),
        _ti("finish", "Posts", "03:25", "03:55"),
        _ti("copy", "Votes", "00:11", "00:41"),
        _ti("copy", "Users", "00:30", None),  # still running: no wall
        _ti("validate", None, "04:00", "04:10"),
    ]
    assert table_walls(tis) == {"Posts": 225.0, "Votes": 30.0}


def test_render_markdown_gives_each_table_s_standalone_wall_against_its_pipe():
    figs = _figures()
    figs[0].standalone = {"seconds": 3.0, "table_s": 2.4, "first_bytes": 0, "peak_bytes": 0}
    meta = {
        "scale": 1.0, "command": "c", "started": "t0", "finished": "t1",
        "machine": {"cores_logical": 2, "cpu_model": "cpu", "memory_bytes": 24 * 2**30}, "load_avg_before": [0.1],
        "fill": {"seconds": 1.0, "peak_rss_bytes": 1}, "memory_budget_mib": 128, "conf": {},
        "dags_test_peak_rss_bytes": 1,
        "standalone": {"parallelism": 16, "conf": {"partition_as": "tasks"}, "state": "finished", "ok": True,
                       "run_s": 9.0, "memory": {"total_bytes": 2**30, "tasks_at_once": 2},
                       "task_memory": {"copy[Posts[1:501)]": {"seconds": 3.0, "first_bytes": 2**20,
                                                              "peak_bytes": 3 * 2**20}},
                       "copy_growth_bytes": {"Posts": 5 * 2**20}},
    }
    page = render_markdown(meta, figs, summarize(figs, 8.0))
    assert "| Posts | 3.0 | 2.4 | 0.80 |" in page
    assert "| copy[Posts[1:501)] | 3.0 | 1 | 3 | 2 | 5 |" in page


# Lines of a real `airflow dags test` log (full scale 1.0, 2026-12-04), shortened after the logger.
DAGS_TEST_LOG = """\
2026-12-04T19:52:25.195549Z [info     ] Filling up the DagBag from /work/main/dags [airflow.models.dagbag.DagBag]
2026-12-04T19:52:26.255391Z [info     ] [DAG TEST] starting task_id=plan map_index=-1 [airflow.sdk.definitions.dag]
2026-12-04T19:52:26.255762Z [info     ] [DAG TEST] running task <TaskInstance: replicate_stackoverflow_to_postgres.plan>
2026-12-04T19:52:28.421074Z [info     ] Task started                   [airflow.api_fastapi.execution_api.routes.task_instances]
Traceback lines and other untimed output are skipped
2026-12-04T19:52:28.876736Z [info     ] [DAG TEST] end task task_id=plan map_index=-1 [airflow.sdk.definitions.dag]
2026-12-04T19:52:31.922098Z [info     ] [DAG TEST] running task <TaskInstance: replicate_stackoverflow_to_postgres.ranged>
2026-12-04T19:52:33.871079Z [info     ] Task started                   [airflow.api_fastapi.execution_api.routes.task_instances]
2026-12-04T19:52:33.967376Z [info     ] [DAG TEST] end task task_id=ranged map_index=-1 [airflow.sdk.definitions.dag]
"""


def test_dags_test_task_starts_sums_airflow_s_own_start_of_each_task_instance():
    starts = dags_test_task_starts(DAGS_TEST_LOG.splitlines())
    assert starts["tasks"] == 2
    assert starts["start_s"] == pytest.approx(2.165312 + 1.948981)
    assert starts["mean_start_s"] == pytest.approx((2.165312 + 1.948981) / 2)
    assert starts["run_span_s"] == pytest.approx(7.711614)
    assert dags_test_task_starts(["no timestamps here"]) == {
        "tasks": 0, "start_s": 0.0, "mean_start_s": 0.0, "run_span_s": 0.0,
    }


def test_render_markdown_gives_the_wall_without_airflow_s_task_starts():
    figs = _figures()
    meta = {
        "scale": 1.0, "command": "c", "started": "t0", "finished": "t1",
        "machine": {"cores_logical": 2, "cpu_model": "cpu", "memory_bytes": 24 * 2**30}, "load_avg_before": [0.1],
        "fill": {}, "memory_budget_mib": 128, "conf": {}, "standalone": None,
        "dags_test_task_starts": {"tasks": 2, "start_s": 1.0, "mean_start_s": 0.5, "run_span_s": 7.0},
    }
    summary = summarize(figs, 8.0, airflow_start_s=1.0)
    assert summary["wall_less_starts_x_pipe"] == pytest.approx(7.0 / 4.0)
    page = render_markdown(meta, figs, summary)
    assert "**2.00x** the summed pipe" in page
    assert "1.0 s (2 task instances, 0.50 s each)" in page and "**1.75x** the summed pipe" in page
    # 8.0 s wall, 7.0 s from the first task's start to the last's end, 1.0 s of starts, 5.1 s of copies
    assert "1.0 s outside the tasks" in page and "0.9 s in the tasks" in page
    small = render_markdown({**meta, "scale": 0.002}, figs, summary)
    assert "At scale 0.002 the run's fixed costs" in small
