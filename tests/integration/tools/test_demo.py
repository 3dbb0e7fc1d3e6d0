"""``scripts/demo.sh --stop`` stops the demo's PostgreSQL server and does nothing else."""

from __future__ import annotations

import pytest

from tools.demo import main
from tools.localpg import start_local_postgres

pytestmark = [pytest.mark.integration]


def test_regression_stop_used_to_rerun_the_whole_demo_before_stopping(server_home, capsys):
    server = start_local_postgres(server_home / "pg" / "data")
    assert (server.data_dir / "postmaster.pid").exists()
    assert main(["--stop", "--state-dir", str(server_home)]) == 0
    assert not (server.data_dir / "postmaster.pid").exists()  # stopped
    assert not (server_home / "airflow").exists() and not (server_home / "logs").exists()  # no DAG run, no fill
    assert "stopped" in capsys.readouterr().out
    assert main(["--stop", "--state-dir", str(server_home)]) == 0  # idempotent: nothing running
    assert "not running" in capsys.readouterr().out
