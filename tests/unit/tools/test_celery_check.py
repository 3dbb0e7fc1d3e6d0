"""Unit tests of the Celery check's pieces that need no server: the worker name callable, the
environment, the kill record's relabelling and the verdict (``verify_run`` with expected retries,
the worker checks). The run itself is tests/integration/tools/test_celery.py (opt-in)."""

from __future__ import annotations

from include.replication.core.validate import CountRow
from tools.celery_check import WORKERS, KillRecord, _check_workers, celery_env
from tools.standalone_check import CheckResult, verify_run
from tools.worker_name import HOSTNAME_CALLABLE, WORKER_NAME_ENV, worker_hostname

TABLES = ["Badges", "Posts", "Votes"]
A, B = WORKERS


def _ti(task_id: str, map_index: int = -1, name: str | None = None, tries: int = 1, host: str = A) -> dict:
    return {"task_id": task_id, "state": "success", "map_index": map_index, "rendered_map_index": name,
            "try_number": tries, "hostname": host}


def _run(posts_tries: int = 2) -> tuple[dict, list[dict], list[tuple], list[CountRow]]:
    tis = [_ti("plan"), _ti("validate"), _ti("summary"), _ti("copy", 0, "Badges", host=B),
           _ti("copy", 1, "Posts", tries=posts_tries), _ti("copy", 2, "Votes")]
    return ({"dag_run_id": "r1", "state": "success"}, tis, [(t, "success", 1, 5, 0) for t in TABLES],
            [CountRow(t, 5, 5) for t in TABLES])


def test_worker_hostname_reads_the_per_worker_env_and_falls_back_to_the_fqdn(monkeypatch) -> None:
    monkeypatch.setenv(WORKER_NAME_ENV, "celery-worker-b")
    assert worker_hostname() == "celery-worker-b"
    monkeypatch.setenv(WORKER_NAME_ENV, "")
    assert worker_hostname()  # the machine's name, like Airflow's default
    from airflow.configuration import conf  # the dotted path resolves the way Airflow resolves it

    monkeypatch.setenv("AIRFLOW__CORE__HOSTNAME_CALLABLE", HOSTNAME_CALLABLE)
    monkeypatch.setenv(WORKER_NAME_ENV, "celery-worker-a")
    assert conf.getimport("core", "hostname_callable")() == "celery-worker-a"


def test_celery_env_switches_executor_metadata_db_broker_and_heartbeat(tmp_path) -> None:
    env = celery_env(tmp_path, {"src": "postgres://u@h/db"}, 8080, metadata_uri="postgresql+psycopg://u@/m",
                     broker_url="redis://127.0.0.1:1/0", result_backend="db+postgresql+psycopg://u@/m",
                     heartbeat_timeout_s=17)
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == "postgresql+psycopg://u@/m"
    assert env["AIRFLOW__CELERY__BROKER_URL"] == "redis://127.0.0.1:1/0"
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql+psycopg://")
    assert env["AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT"] == "17"
    assert env["AIRFLOW__CORE__HOSTNAME_CALLABLE"] == HOSTNAME_CALLABLE
    assert env["AIRFLOW_CONN_SRC"] == "postgres://u@h/db"


def test_kill_record_relabels_mapped_indexes_with_the_rendered_table_names() -> None:
    record = KillRecord(B, 20.0, [1, 2], ["copy[1]", "cleanup"], {"copy[1]": 1, "cleanup": 1},
                        [("copy", 1), ("cleanup", -1)])
    record.relabel(_run()[1])
    assert record.running == ["copy[Posts]", "cleanup"]
    assert record.tries == {"copy[Posts]": 1, "cleanup": 1}


def test_verify_run_requires_the_killed_copy_retried_and_only_it() -> None:
    assert verify_run(*_run()[:2], TABLES, *_run()[2:], retried=["Posts"]).ok
    not_retried = verify_run(*_run(posts_tries=1)[:2], TABLES, *_run(posts_tries=1)[2:], retried=["Posts"])
    assert [f for f in not_retried.failures if "succeeded on a retry" in f]
    unexpected = verify_run(*_run()[:2], TABLES, *_run()[2:])
    assert [f for f in unexpected.failures if "first try" in f]


def test_worker_checks_pass_a_kill_retried_on_the_survivor_and_fail_otherwise() -> None:
    tis = _run()[1]
    tries = {"copy[Badges]": [(1, "success", B, 1.0)], "copy[Posts]": [(1, "failed", B, 9.0), (2, "success", A, 5.0)],
             "copy[Votes]": [(1, "success", A, 2.0)]}
    validation = [{"table": t, "ok": True, "checksum": "abc"} for t in TABLES]
    record = KillRecord(B, 20.0, [1], ["copy[Posts]"], {"copy[Posts]": 1}, [("copy", 1)])
    good = CheckResult("r1")
    _check_workers(good, tis, tries, TABLES, record, validation, WORKERS)
    assert good.ok, good.failures
    bad = CheckResult("r1")
    retried_on_victim = {**tries, "copy[Posts]": [(1, "failed", B, 9.0), (2, "success", B, 5.0)]}
    one_worker = {k: [(n, s, A, x) for n, s, _, x in v] for k, v in tries.items()}
    _check_workers(bad, tis, retried_on_victim, TABLES, record, validation[:2], WORKERS)
    _check_workers(bad, tis, one_worker, TABLES, None, validation, WORKERS)
    assert any("copy[Posts]" in f for f in bad.failures)
    assert any("checksummed" in f for f in bad.failures)
    assert any("both workers" in f for f in bad.failures)


def test_leftover_processes_finds_a_child_by_its_airflow_home_until_it_ends(tmp_path) -> None:
    import os
    import subprocess
    import sys

    from tools.celery_check import leftover_processes

    home = tmp_path / "airflow"
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"],
                             env={**os.environ, "AIRFLOW_HOME": str(home)})
    try:
        assert leftover_processes(home) == [child.pid]
    finally:
        child.kill()
        child.wait()
    assert leftover_processes(home) == []
