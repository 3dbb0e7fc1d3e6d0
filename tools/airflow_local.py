"""Run this project's DAGs with a local Airflow from pip (``airflow dags test``), for the demo and
the integration tests. Not used inside Airflow itself.

Airflow state (SQLite metadata DB, logs) lives in a git-ignored folder; connections are passed as
``AIRFLOW_CONN_<ID>`` environment variables, never written to disk.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

__all__ = ["PROJECT_ROOT", "airflow_env", "migrate", "dags_test"]

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[1]
"""The repository root (holds ``dags/`` and ``include/``)."""


def airflow_env(airflow_home: Path, connections: Mapping[str, str]) -> dict[str, str]:
    """Environment for an Airflow CLI subprocess.

    Args:
        airflow_home: AIRFLOW_HOME (created if missing).
        connections: connection id -> Airflow connection URI.

    Returns:
        A copy of ``os.environ`` with AIRFLOW_HOME, the DAGs folder, no examples, the project root
        on PYTHONPATH, the venv's ``bin`` on PATH, and one ``AIRFLOW_CONN_<ID>`` per connection.
    """
    airflow_home.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.update(
        {
            "AIRFLOW_HOME": str(airflow_home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": env.get("AIRFLOW__LOGGING__LOGGING_LEVEL", "INFO"),
            "PYTHONPATH": os.pathsep.join(p for p in (str(PROJECT_ROOT), env.get("PYTHONPATH", "")) if p),
            "PATH": os.pathsep.join((str(Path(sys.executable).parent), env.get("PATH", ""))),
            "PYTHONWARNINGS": "ignore",
        }
    )
    for conn_id, uri in connections.items():
        env[f"AIRFLOW_CONN_{conn_id.upper()}"] = uri
    return env


def _airflow() -> str:
    return str(Path(sys.executable).parent / "airflow")


def migrate(env: Mapping[str, str]) -> None:
    """``airflow db migrate`` (idempotent; creates the SQLite metadata DB on first use).

    Raises:
        subprocess.CalledProcessError: migration failed (its output is in the exception).
    """
    subprocess.run([_airflow(), "db", "migrate"], env=dict(env), check=True, capture_output=True, text=True)


def dags_test(dag_id: str, env: Mapping[str, str], *, conf: Mapping[str, object] | None = None,
              log_file: Path | None = None, timeout_s: float = 3600) -> subprocess.CompletedProcess[str]:
    """Run one DAG run in-process with ``airflow dags test`` and return the finished process.

    Args:
        dag_id: the DAG id.
        env: from :func:`airflow_env`.
        conf: DAG run conf (params), passed as JSON.
        log_file: where to write the combined output (task logs included); None = keep in memory.
        timeout_s: kill the run after this many seconds.

    Returns:
        The completed process: ``airflow dags test`` exits 0 only when the DAG run succeeded.
    """
    cmd = [_airflow(), "dags", "test", dag_id]
    if conf:
        cmd += ["--conf", json.dumps(conf)]
    log.info("running %s", " ".join(cmd))
    proc = subprocess.run(cmd, env=dict(env), capture_output=True, text=True, timeout=timeout_s)
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        log_file.write_text(proc.stdout + "\n--- stderr ---\n" + proc.stderr)
    return proc
