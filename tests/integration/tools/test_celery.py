"""The DAG ``replicate_stackoverflow_to_postgres`` on the CeleryExecutor: Redis broker, PostgreSQL
metadata database, two ``airflow celery worker --concurrency 2`` processes, and one of them
SIGKILLed (its whole process group) while a copy runs on it.

Asserts: the run succeeds; copy tries ran on both workers (the task instances' ``hostname``, set per
worker through ``[core] hostname_callable``); the copy running on the killed worker failed there
(no heartbeat: ``task_instance_heartbeat_timeout``) and succeeded on a retry, try number >= 2, on
the surviving worker; counts and checksums (``validate: checksum``) equal; exactly one success audit
row per table; every process stopped. Needs ``.venv-celery`` (the Celery provider) and
``redis-server``: run ``bash scripts/celery_check.sh`` once to build both, then
``STACKOVERFLOW_CELERY_TEST=1 .venv-celery/bin/python -m pytest tests/integration/tools/test_celery.py``.
"""

from __future__ import annotations

import importlib.util
import os

import pytest

pytestmark = [
    pytest.mark.integration,
    pytest.mark.airflow,
    pytest.mark.skipif(
        os.environ.get("STACKOVERFLOW_CELERY_TEST") != "1",
        reason="starts Redis, an Airflow scheduler and two Celery workers (3-5 min); run "
        "bash scripts/celery_check.sh, or STACKOVERFLOW_CELERY_TEST=1 .venv-celery/bin/python -m pytest "
        "tests/integration/tools/test_celery.py",
    ),
    pytest.mark.skipif(
        importlib.util.find_spec("airflow.providers.celery") is None,
        reason="the Celery provider is not installed in this interpreter: use .venv-celery/bin/python "
        "(built by bash scripts/celery_check.sh)",
    ),
]


RANGES = {"partition_as": "tasks", "parallel_ranges": 2, "partition_min_rows": 20000}
"""Key ranges as mapped tasks: at scale 0.01 Posts (37,292 rows), Comments (38,752) and Votes
(101,434) are each copied as two range units; the other six tables whole."""


def test_two_celery_workers_one_killed_mid_copy(local_pg, tmp_path) -> None:
    from include.replication.core.partition import parse_unit, split_tables, tables_of
    from tools.celery_check import WORKERS, celery_check, format_report

    report = celery_check(local_pg, state_dir=tmp_path, scale=0.01, seed=7, memory_budget_mib=1, kill="auto",
                          kill_after_s=1.0, heartbeat_timeout_s=20, run_timeout_s=900,
                          source_db="ce_src", target_db="ce_tgt", metadata_db="ce_airflow", conf=RANGES)
    text = format_report(report)
    print(text)  # the figures, shown with pytest -s
    assert report.ok, text
    assert report.orphans == [], text
    assert len(report.tables) == 9
    copies = {ti["rendered_map_index"]: ti for ti in report.task_instances if ti["task_id"] == "copy"}
    assert sorted(tables_of(list(copies))) == sorted(report.tables)
    assert sorted(split_tables(list(copies))) == ["Comments", "Posts", "Votes"], sorted(copies)
    assert len(copies) == 9 + 3  # one more unit per split table
    assert {ti["state"] for ti in copies.values()} == {"success"}
    finishes = {ti["rendered_map_index"]: ti["state"] for ti in report.task_instances if ti["task_id"] == "finish"}
    assert finishes == {"Comments": "success", "Posts": "success", "Votes": "success"}, text
    range_hosts = {host for label, tries in report.tries.items() if label.startswith("copy[") and
                   parse_unit(label[5:-1]).key_range is not None for _, _, host, _ in tries}
    assert range_hosts == set(WORKERS), text  # key ranges of the split tables ran on both workers
    hosts = {host for label, tries in report.tries.items() if label.startswith("copy[") for _, _, host, _ in tries}
    assert hosts == set(WORKERS), text
    assert report.kill is not None and report.kill.worker == WORKERS[1], text
    killed = [label for label in report.kill.running if label.startswith("copy[")]
    assert killed, text
    for label in killed:
        tries = report.tries[label]
        assert tries[-1][0] >= 2 and tries[-1][1] == "success" and tries[-1][2] == WORKERS[0], text
        assert any(t[1] == "failed" and t[2] == WORKERS[1] for t in tries[:-1]), text
    assert all(c.source_rows == c.target_rows > 0 for c in report.counts), text
    assert {v["table"] for v in report.validation if v["ok"] and v.get("checksum")} == set(report.tables), text
    tables_audit = [row[0] for row in report.audit if "[" not in str(row[0])]
    assert sorted(tables_audit) == sorted(report.tables), text
    assert sorted(row[0] for row in report.audit if "[" in str(row[0])) == sorted(u for u in copies if "[" in u), text
    assert {row[1] for row in report.audit} == {"success"}, text
