"""Unit tests of the standalone check's verdict (``verify_run``) and environment: the check must
fail on each kind of broken run, not only pass on a good one. No server, no Airflow process."""

from __future__ import annotations

from include.replication.core.validate import CountRow
from tools.standalone_check import free_port, standalone_env, verify_run

TABLES = ["Badges", "Posts", "Votes"]


def _ti(task_id: str, state: str = "success", map_index: int = -1, name: str | None = None, tries: int = 1) -> dict:
    return {"task_id": task_id, "state": state, "map_index": map_index, "rendered_map_index": name,
            "try_number": tries}


def _good() -> tuple[dict, list[dict], list[tuple], list[CountRow]]:
    run = {"dag_run_id": "manual__1", "state": "success"}
    tis = [_ti("plan"), _ti("validate"), _ti("summary")] + [
        _ti("copy", map_index=i, name=t) for i, t in enumerate(TABLES)
    ]
    audit = [(t, "success", 1, 10, 1 if t == "Posts" else 0) for t in TABLES]
    counts = [CountRow(t, 10, 10) for t in TABLES]
    return run, tis, audit, counts


def test_verify_run_passes_a_complete_run() -> None:
    result = verify_run(*_good()[:2], TABLES, *_good()[2:])
    assert result.ok, result.failures
    assert result.run_id == "manual__1"
    assert sum(line.startswith("  PASS") for line in result.lines) == 11
    assert result.lines[-1] == "  info  1 spill files written over the run (audit spill_files)"


def test_verify_run_fails_on_failed_copy_and_missing_audit_row() -> None:
    run, tis, audit, counts = _good()
    run["state"] = "failed"
    tis[4]["state"] = "failed"
    audit = [r for r in audit if r[0] != "Posts"]
    result = verify_run(run, tis, TABLES, audit, counts)
    assert not result.ok
    assert any("DAG run state is success (got failed)" in f for f in result.failures)
    assert any("not success: ['1:failed']" in f for f in result.failures)
    assert any("{'Posts': []}" in f for f in result.failures)
    assert len(result.failures) == 3


def test_verify_run_fails_on_unnamed_map_index_retry_and_count_mismatch() -> None:
    run, tis, audit, counts = _good()
    tis[3]["rendered_map_index"] = None  # map_index_template not rendered
    tis[5]["try_number"] = 2
    counts[2] = CountRow("Votes", 10, 9)
    result = verify_run(run, tis, TABLES, audit, counts)
    assert [f.split(" (")[0] for f in result.failures] == [
        "copy map indexes named by table or key range",
        "every copy succeeded on its first try",
        "source and target COUNT(*) equal for 3 tables",
    ]
    assert "Votes 10!=9" in result.failures[2]


def test_verify_run_fails_on_missing_copy_and_extra_audit_row() -> None:
    run, tis, audit, counts = _good()
    tis = tis[:-1]  # Votes never mapped
    audit = audit + [("Users", "success", 1, 5, 0)]
    result = verify_run(run, tis, TABLES, audit, counts)
    assert any(f.startswith("3 mapped copy task instances (got 2)") for f in result.failures)
    assert any("extra: ['Users']" in f for f in result.failures)


def test_standalone_env_points_the_execution_api_at_the_api_port(tmp_path) -> None:
    port = free_port()
    env = standalone_env(tmp_path / "home", {"stackoverflow_source": "postgres://u@%2Ftmp/db"}, port, parallelism=3)
    assert 1024 <= port <= 65535
    assert env["AIRFLOW__API__PORT"] == str(port)
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == f"http://127.0.0.1:{port}/execution/"
    assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert env["AIRFLOW__CORE__PARALLELISM"] == "3"
    assert env["AIRFLOW_CONN_STACKOVERFLOW_SOURCE"] == "postgres://u@%2Ftmp/db"
    assert env["AIRFLOW__API_AUTH__JWT_ISSUER"]  # PyJWT >= 2.11 refuses tokens without a string issuer
    assert len(env["AIRFLOW__API_AUTH__JWT_SECRET"]) >= 32
    assert env["AIRFLOW_HOME"] == str(tmp_path / "home") and (tmp_path / "home").is_dir()


def test_process_tree_rss_tells_tasks_from_supervisors_by_airflow_s_titles():
    from tools.standalone_check import ProcessTreeRss

    kind = ProcessTreeRss.kind
    assert kind(["airflow worker -- LocalExecutor: 01a23a73-7f27-7181-bcc5-47091a1af97a"]) == "supervisor"
    assert kind(["airflow worker -- LocalExecutor: <idle>"]) == "supervisor"
    assert kind(["airflow worker -- 01a23a73-7f27-7181-bcc5-47091a1af97a"]) == "task"
    assert kind(["/venv/bin/python", "/venv/bin/airflow", "scheduler"]) == "other"
    assert kind([]) == "other"


def test_process_tree_rss_samples_a_real_process_tree():
    import subprocess
    import sys

    from tools.standalone_check import ProcessTreeRss

    child = subprocess.Popen([sys.executable, "-c", "import time; b = bytearray(64 << 20); time.sleep(30)"])
    try:
        sampler = ProcessTreeRss(child.pid)
        import time

        deadline = time.monotonic() + 10
        while sampler.peak_total_bytes < 64 << 20 and time.monotonic() < deadline:
            sampler.sample()
            time.sleep(0.1)
        assert sampler.peak_total_bytes >= 64 << 20  # the child's 64 MiB bytearray is resident
        assert sampler.peak_other_bytes == sampler.peak_total_bytes and sampler.peak_tasks_at_once == 0
    finally:
        child.kill()
        child.wait()


def test_process_tree_rss_records_each_task_process_start_and_peak():
    """A process titled like Airflow's task process (setproctitle) that grows by 96 MiB after its
    start: its first and peak RSS are kept under its task instance id, and the label maps the id
    to the UI name."""
    import subprocess
    import sys
    import time

    from tools.standalone_check import ProcessTreeRss, _task_memory

    ti_id = "01a23a73-7f27-7181-bcc5-47091a1af97a"
    script = (
        "import setproctitle, time\n"
        f"setproctitle.setproctitle('airflow worker -- {ti_id}')\n"
        "time.sleep(1.0)\n"
        "b = bytearray(96 << 20)\n"
        "time.sleep(30)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", f"import subprocess, sys; subprocess.run([sys.executable, '-c', {script!r}])"])
    try:
        sampler = ProcessTreeRss(parent.pid)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            sampler.sample()
            seen = sampler.task_processes.get(ti_id)
            if seen and seen["peak_bytes"] - seen["first_bytes"] >= 90 << 20:
                break
            time.sleep(0.05)
        seen = sampler.task_processes[ti_id]
        assert seen["first_bytes"] < 64 << 20  # an interpreter before the bytearray
        assert seen["peak_bytes"] - seen["first_bytes"] >= 90 << 20
        assert sampler.peak_tasks_at_once == 1
        named = _task_memory(sampler.task_processes, [{"id": ti_id, "task_id": "copy", "map_index": 2,
                                                       "rendered_map_index": "Posts"}])
        assert list(named) == ["copy[Posts]"] and named["copy[Posts]"]["pid"] == seen["pid"]
    finally:
        for proc in __import__("psutil").Process(parent.pid).children(recursive=True):
            proc.kill()
        parent.kill()
        parent.wait()


def _ranged() -> tuple[dict, list[dict], list[tuple], list[CountRow]]:
    """A run with partition_as=tasks: Posts copied as two key ranges, then finished."""
    run, tis, audit, counts = _good()
    units = ["Badges", "Posts[1:501)", "Posts[501:1001)", "Votes"]
    tis = [ti for ti in tis if ti["task_id"] != "copy"] + [_ti("copy", map_index=i, name=u) for i, u in enumerate(units)]
    tis.append(_ti("finish", map_index=0, name="Posts"))
    audit = audit + [("Posts[1:501)", "success", 1, 5, 0), ("Posts[501:1001)", "success", 1, 5, 0)]
    return run, tis, audit, counts


def test_verify_run_passes_a_run_with_key_ranges_as_tasks() -> None:
    result = verify_run(*_ranged()[:2], TABLES, *_ranged()[2:])
    assert result.ok, result.failures
    assert any("4 mapped copy task instances (got 4)" in line and "split: ['Posts']" in line for line in result.lines)
    assert any("one successful finish per split table" in line and line.startswith("  PASS") for line in result.lines)


def test_verify_run_fails_a_ranged_run_without_finish_or_with_a_failed_range() -> None:
    run, tis, audit, counts = _ranged()
    tis = [ti for ti in tis if ti["task_id"] != "finish"]
    audit = [r if r[0] != "Posts[501:1001)" else (r[0], "failed", 1, 0, 0) for r in audit]
    result = verify_run(run, tis, TABLES, audit, counts)
    assert [f.split(" (")[0] for f in result.failures] == [
        "one successful finish per split table",
        "replication_audit: exactly one success row per table for the run, and a success row per key range",
    ]
    assert "'Posts[501:1001)': ['failed']" in result.failures[1]
