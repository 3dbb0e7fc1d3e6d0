"""A throwaway local Babelfish for PostgreSQL server: a real TDS / T-SQL endpoint for tests.

Microsoft SQL Server cannot run on the development machines; Babelfish (a PostgreSQL fork that
speaks SQL Server's wire protocol) can. This module unpacks the relocatable build in
``../shared/babelfish/babelfish-4-pg16-bookworm-amd64.tar.zst`` (relative to the repository root,
or the file named by ``$STACKOVERFLOW_BABELFISH_TARBALL``) into a state directory and drives the
tarball's own ``start.sh`` / ``stop.sh``. pymssql connects to the server like to SQL Server
(``tds_version="7.4"``). See ``../shared/babelfish/README.md`` for what differs from SQL Server.

State directory layout (default ``.local/babelfish`` in the repository root)::

    install/4/        the unpacked tarball (bin/ lib/ share/ start.sh stop.sh), unpacked once
    data/             the PostgreSQL cluster, owned by the OS user ``babelfish`` (created by start.sh)
    babelfish.json    host, ports and login of the last start (read by ``status`` / ``uri`` / ``stop``)
    .lock             serializes start/stop on this state directory

Ports: TDS and PostgreSQL get free TCP ports on 127.0.0.1 (bound to port 0) unless given; a
restart keeps the ports of the previous start while they are free, else moves the cluster to new
free ones. The PostgreSQL Unix socket lives in ``data/``, so the server never collides with an
embedded PostgreSQL on the same machine.

Needs root (start.sh creates the OS user ``babelfish`` and runs the server as it), ``tar``,
``zstd``, ``runuser`` and the shared libraries of a Debian 12 image; :func:`babelfish_available`
names what is missing. Only the standard library and pymssql are used.

Command line (``python -m tools.babelfish --help``, or ``scripts/babelfish.sh``)::

    python -m tools.babelfish start [--state-dir DIR] [--database DB]   # prints the mssql:// URI
    python -m tools.babelfish status|uri|stop [--state-dir DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import logging
import os
import platform
import pwd
import re
import shutil
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

__all__ = [
    "DEFAULT_LOGIN",
    "DEFAULT_PASSWORD",
    "OS_USER",
    "REPO_ROOT",
    "TARBALL_ENV",
    "BabelfishError",
    "LocalBabelfish",
    "babelfish_available",
    "default_state_dir",
    "default_tarball",
    "main",
    "pick_free_ports",
    "process_alive",
    "start_local_babelfish",
]

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
TARBALL_NAME = "babelfish-4-pg16-bookworm-amd64.tar.zst"
TARBALL_ENV = "STACKOVERFLOW_BABELFISH_TARBALL"
INSTALL_SUBDIR = "4"  # the top-level directory inside the tarball
OS_USER = "babelfish"  # start.sh's default BBF_OS_USER
DEFAULT_LOGIN = "babelfish_user"  # start.sh's defaults for BBF_LOGIN / BBF_PASSWORD
DEFAULT_PASSWORD = "12345678"
DEFAULT_HOST = "127.0.0.1"
STATE_FILE = "babelfish.json"
ROWVERSION_MODES = ("ignore", "strict")

# Shared libraries the build takes from the OS (ldd of bin/postgres, psql, initdb and the Babelfish
# extension modules, minus what the tarball bundles in lib/: libpq, libantlr4-runtime, libossp-uuid).
SYSTEM_LIBRARIES = (
    "libc.so.6",
    "libm.so.6",
    "libgcc_s.so.1",
    "libstdc++.so.6",
    "libz.so.1",
    "liblzma.so.5",
    "libssl.so.3",
    "libcrypto.so.3",
    "libxml2.so.2",
    "libreadline.so.8",
    "libtinfo.so.6",
    "libicuuc.so.72",
    "libicui18n.so.72",
    "libicudata.so.72",
)
_LIBRARY_DIRS = ("/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib")

# sockaddr_un.sun_path holds 108 bytes including the terminating NUL
_MAX_SOCKET_PATH = 107
_READY_RE = re.compile(
    r"Babelfish ready: TDS (?P<host>\S+):(?P<tds>\d+) \(login (?P<login>[^,]+), rowversion (?P<rv>\w+)\), "
    r"PostgreSQL \S+:(?P<pg>\d+)"
)


class BabelfishError(RuntimeError):
    """Babelfish cannot be started or stopped; the message says why (with start.sh / server log output)."""


# --------------------------------------------------------------------------------------------------
# the server handle
# --------------------------------------------------------------------------------------------------


@dataclass
class LocalBabelfish:
    """A local Babelfish server started by :func:`start_local_babelfish`.

    Attributes:
        install_dir: the unpacked install tree (holds ``bin/``, ``lib/``, ``start.sh``, ``stop.sh``).
        data_dir: the PostgreSQL cluster directory (also holds the Unix socket and ``server.log``).
        host: address the TDS and PostgreSQL ports listen on.
        tds_port: TCP port of the TDS (SQL Server protocol) listener.
        pg_port: TCP port of PostgreSQL itself.
        login: T-SQL login (also a PostgreSQL superuser).
        password: its password.
        start_seconds: wall-clock seconds the last :func:`start_local_babelfish` call took
            (unpack + start.sh + first login); None when the handle was loaded from a state file.
    """

    install_dir: Path
    data_dir: Path
    host: str = DEFAULT_HOST
    tds_port: int = 1433
    pg_port: int = 5432
    login: str = DEFAULT_LOGIN
    password: str = DEFAULT_PASSWORD
    start_seconds: float | None = field(default=None, compare=False)

    @classmethod
    def from_state_dir(cls, state_dir: Path | str) -> LocalBabelfish:
        """The server of a state directory, as last started (``babelfish.json``) or as configured.

        Without ``babelfish.json`` the ports are read from ``data/postgresql.conf`` and the login is
        start.sh's default. Does not check whether the server runs (see :meth:`is_running`).

        Args:
            state_dir: a state directory used by :func:`start_local_babelfish`.

        Returns:
            The handle (not necessarily running).

        Raises:
            FileNotFoundError: the state directory holds no cluster.
        """
        state = Path(state_dir).expanduser().resolve()
        data_dir = state / "data"
        if not (data_dir / "PG_VERSION").is_file():
            raise FileNotFoundError(f"no Babelfish cluster in {data_dir}")
        install_dir = state / "install" / INSTALL_SUBDIR
        state_file = state / STATE_FILE
        if state_file.is_file():
            saved = json.loads(state_file.read_text(encoding="utf-8"))
            return cls(
                install_dir=Path(saved.get("install_dir", install_dir)),
                data_dir=Path(saved.get("data_dir", data_dir)),
                host=saved.get("host", DEFAULT_HOST),
                tds_port=int(saved["tds_port"]),
                pg_port=int(saved["pg_port"]),
                login=saved.get("login", DEFAULT_LOGIN),
                password=saved.get("password", DEFAULT_PASSWORD),
            )
        ports = configured_ports(data_dir)
        return cls(install_dir, data_dir, DEFAULT_HOST, ports.get("tds", 1433), ports.get("pg", 5432))

    def uri(self, database: str = "master") -> str:
        """``mssql://login:password@host:port/database`` with every part percent-encoded.

        The form ``STACKOVERFLOW_MSSQL_TEST_URI`` and the project's endpoint parsing expect.

        Args:
            database: T-SQL database name.

        Returns:
            The URI (contains the password).
        """
        return (
            f"mssql://{quote(self.login, safe='')}:{quote(self.password, safe='')}"
            f"@{self.host}:{self.tds_port}/{quote(database, safe='')}"
        )

    def connect(self, database: str = "master", autocommit: bool = True, **kwargs: Any) -> Any:
        """Open a pymssql connection (TDS 7.4) to ``database``.

        Args:
            database: T-SQL database to open.
            autocommit: pymssql autocommit mode.
            **kwargs: further ``pymssql.connect`` arguments (e.g. ``login_timeout`` in seconds).

        Returns:
            A ``pymssql.Connection``; the caller closes it.

        Raises:
            pymssql.OperationalError: the server does not accept the login (not running, wrong
                database, ...).
        """
        import pymssql

        options: dict[str, Any] = {"tds_version": "7.4", "charset": "UTF-8", "login_timeout": 10}
        options.update(kwargs)
        return pymssql.connect(
            server=self.host,
            port=str(self.tds_port),
            user=self.login,
            password=self.password,
            database=database,
            autocommit=autocommit,
            **options,
        )

    def create_database(self, name: str, drop: bool = False) -> None:
        """Create T-SQL database ``name`` unless it exists; with ``drop``, drop it first.

        Args:
            name: database name (any characters; bracket-quoted).
            drop: drop an existing database of that name first (it must have no open sessions).

        Raises:
            pymssql.Error: the server refused (e.g. the database is in use).
        """
        ident = quote_name(name)
        conn = self.connect("master", autocommit=True)
        try:
            cur = conn.cursor()
            if drop:
                cur.execute(f"DROP DATABASE IF EXISTS {ident}")
            cur.execute("SELECT DB_ID(%s)", (name,))
            row = cur.fetchone()
            if row is None or row[0] is None:
                cur.execute(f"CREATE DATABASE {ident}")
        finally:
            conn.close()

    def version(self) -> str:
        """``SELECT @@VERSION`` (Babelfish reports a SQL Server-style text naming Babelfish and PostgreSQL).

        Raises:
            pymssql.Error: the server is not reachable.
        """
        conn = self.connect("master")
        try:
            cur = conn.cursor()
            cur.execute("SELECT @@VERSION")
            row = cur.fetchone()
            return str(row[0]) if row else ""
        finally:
            conn.close()

    def postmaster_pid(self) -> int | None:
        """PID of the running postmaster of ``data_dir``, or None when the server does not run.

        Reads ``postmaster.pid`` and checks that the process exists and is a ``postgres`` binary
        (so a stale PID file or a recycled PID is not taken for a server).
        """
        try:
            first = (self.data_dir / "postmaster.pid").read_text(encoding="ascii").split("\n", 1)[0]
            pid = int(first.strip())
        except (OSError, ValueError):
            return None
        return pid if _is_postgres_process(pid) else None

    def is_running(self) -> bool:
        """Whether the server of ``data_dir`` runs (its postmaster process exists)."""
        return self.postmaster_pid() is not None

    def server_pids(self) -> list[int]:
        """PIDs of the postmaster and all its child processes (backends, TDS workers, ...); [] when stopped."""
        root = self.postmaster_pid()
        if root is None:
            return []
        children: dict[int, list[int]] = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                # /proc/PID/stat: "pid (comm) state ppid ..."; comm may contain spaces or parentheses
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
        pids, todo = [], [root]
        while todo:
            pid = todo.pop()
            pids.append(pid)
            todo.extend(children.get(pid, []))
        return sorted(pids)

    def stop(self) -> None:
        """Stop the server with the tarball's ``stop.sh`` (fast shutdown); the data stays. Idempotent.

        Open sessions are rolled back. Returns at once when no server runs in ``data_dir``.

        Raises:
            BabelfishError: ``stop.sh`` failed and the server still runs.
        """
        if not (self.data_dir / "PG_VERSION").is_file() or not self.is_running():
            return
        _grant_traverse(self.data_dir.parent, OS_USER)  # pg_ctl runs as the owner: it must reach data_dir
        _grant_traverse(self.install_dir, OS_USER)
        stop_sh = self.install_dir / "stop.sh"
        proc = subprocess.run(
            ["bash", str(stop_sh), str(self.install_dir), str(self.data_dir)],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if proc.returncode != 0 and self.is_running():
            raise BabelfishError(f"stop.sh failed (exit {proc.returncode}): {(proc.stdout + proc.stderr).strip()}")
        log.info("Babelfish in %s stopped", self.data_dir)


# --------------------------------------------------------------------------------------------------
# availability
# --------------------------------------------------------------------------------------------------


def default_tarball() -> Path:
    """The tarball to use: ``$STACKOVERFLOW_BABELFISH_TARBALL`` when set, else ``../shared/babelfish/<name>``
    relative to the repository root."""
    env = os.environ.get(TARBALL_ENV)
    if env:
        return Path(env).expanduser()
    return REPO_ROOT.parent / "shared" / "babelfish" / TARBALL_NAME


def default_state_dir() -> Path:
    """``.local/babelfish`` in the repository root (``.local`` is git-ignored)."""
    return REPO_ROOT / ".local" / "babelfish"


def missing_system_libraries(names: Sequence[str] = SYSTEM_LIBRARIES) -> list[str]:
    """The shared libraries among ``names`` (sonames) that the dynamic linker cannot find.

    Asks ``ldconfig -p`` (the linker cache); without it, looks into the usual library directories.
    """
    found: set[str] = set()
    ldconfig = shutil.which("ldconfig") or ("/sbin/ldconfig" if os.path.exists("/sbin/ldconfig") else None)
    if ldconfig:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run([ldconfig, "-p"], capture_output=True, text=True, timeout=30, check=False).stdout
            found = {line.split()[0] for line in out.splitlines()[1:] if line.strip()}
    missing = [n for n in names if n not in found]
    return [n for n in missing if not any(os.path.exists(os.path.join(d, n)) for d in _LIBRARY_DIRS)]


def babelfish_available(tarball: Path | str | None = None) -> str | None:
    """Whether :func:`start_local_babelfish` can run here.

    Checks, without side effects: Linux x86_64, the tarball, root, ``tar``, ``zstd``, ``runuser``
    (and ``useradd`` while the OS user ``babelfish`` does not exist yet), the system shared libraries.

    Args:
        tarball: tarball to check; default :func:`default_tarball`.

    Returns:
        None when it can run, else the human-readable reason it cannot (for ``pytest.skip``).
    """
    if sys.platform != "linux" or platform.machine() not in {"x86_64", "AMD64"}:
        return f"the Babelfish build is for Linux x86_64, not {sys.platform} {platform.machine()}"
    path = Path(tarball) if tarball is not None else default_tarball()
    if not path.is_file():
        where = f"${TARBALL_ENV}={path}" if tarball is None and os.environ.get(TARBALL_ENV) else str(path)
        return f"Babelfish tarball not found: {where} (set ${TARBALL_ENV} to its path)"
    if not os.access(path, os.R_OK):
        return f"Babelfish tarball not readable: {path}"
    if os.geteuid() != 0:
        return "starting Babelfish needs root (start.sh creates the OS user 'babelfish' and runs the server as it)"
    tools = ["tar", "zstd", "runuser"]
    if not _user_exists(OS_USER):
        tools.append("useradd")
    missing_tools = [t for t in tools if shutil.which(t) is None]
    if missing_tools:
        hint = " (apt-get install zstd)" if "zstd" in missing_tools else ""
        return f"missing commands: {', '.join(missing_tools)}{hint}"
    libs = missing_system_libraries()
    if libs:
        return (
            f"missing shared libraries: {', '.join(libs)} "
            "(Debian 12: apt-get install libicu72 libxml2 libssl3 libreadline8 zlib1g liblzma5)"
        )
    return None


# --------------------------------------------------------------------------------------------------
# helpers (pure ones are unit-tested)
# --------------------------------------------------------------------------------------------------


def quote_name(name: str) -> str:
    """T-SQL bracket-quoted identifier: ``a]b`` -> ``[a]]b]``."""
    return "[" + name.replace("]", "]]") + "]"


def pick_free_ports(count: int = 2, host: str = DEFAULT_HOST) -> list[int]:
    """``count`` distinct TCP ports that are free on ``host`` right now (the OS picks them: bind to port 0).

    All sockets are held open until every port is picked, so the ports differ. Another process may
    still take a port before the server binds it (small race, as with any free-port picking).

    Args:
        count: number of ports.
        host: address to bind.

    Returns:
        The port numbers.

    Raises:
        OSError: ``host`` cannot be bound.
    """
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind((host, 0))
            ports.append(sock.getsockname()[1])
        return ports


def port_is_free(port: int, host: str = DEFAULT_HOST) -> bool:
    """Whether a listener could bind ``host:port`` now (with SO_REUSEADDR, as PostgreSQL does)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


_PORT_LINE = {
    "pg": re.compile(r"^(?P<key>[ \t]*port[ \t]*=[ \t]*)(?P<value>\d+)", re.MULTILINE),
    "tds": re.compile(r"^(?P<key>[ \t]*babelfishpg_tds\.port[ \t]*=[ \t]*)(?P<value>\d+)", re.MULTILINE),
}


def parse_ports(conf_text: str) -> dict[str, int]:
    """Ports set in a ``postgresql.conf`` text: ``{"pg": ..., "tds": ...}`` (last setting wins; absent keys left out)."""
    out = {}
    for key, pattern in _PORT_LINE.items():
        matches = list(pattern.finditer(conf_text))
        if matches:
            out[key] = int(matches[-1].group("value"))
    return out


def set_ports(conf_text: str, *, pg_port: int, tds_port: int) -> str:
    """``conf_text`` with its last ``port`` and ``babelfishpg_tds.port`` settings replaced (appended if absent)."""
    for key, value in (("pg", pg_port), ("tds", tds_port)):
        matches = list(_PORT_LINE[key].finditer(conf_text))
        if matches:
            m = matches[-1]
            conf_text = conf_text[: m.start("value")] + str(value) + conf_text[m.end("value") :]
        else:
            name = "port" if key == "pg" else "babelfishpg_tds.port"
            conf_text = conf_text.rstrip("\n") + f"\n{name} = {value}\n"
    return conf_text


def configured_ports(data_dir: Path) -> dict[str, int]:
    """Ports of the cluster in ``data_dir``: ``postgresql.conf``, overridden by ``postgresql.auto.conf``."""
    ports: dict[str, int] = {}
    for name in ("postgresql.conf", "postgresql.auto.conf"):
        with contextlib.suppress(FileNotFoundError):
            ports.update(parse_ports((data_dir / name).read_text(encoding="utf-8")))
    return ports


def parse_ready_line(output: str) -> dict[str, Any] | None:
    """The ``Babelfish ready: TDS host:port (login L, rowversion R), PostgreSQL host:port`` line of start.sh.

    Returns:
        ``{"host", "tds_port", "pg_port", "login", "rowversion"}`` or None when absent.
    """
    m = _READY_RE.search(output)
    if m is None:
        return None
    return {
        "host": m.group("host"),
        "tds_port": int(m.group("tds")),
        "pg_port": int(m.group("pg")),
        "login": m.group("login"),
        "rowversion": m.group("rv"),
    }


def traverse_fixes(path: Path, uid: int | None, gids: Sequence[int]) -> list[tuple[Path, int]]:
    """Directories on the way to ``path`` (``/`` .. ``path``) that user ``uid`` cannot traverse.

    Follows the POSIX permission classes: the owner bits apply to the owner, the group bits to a
    member of the group, the other bits to everyone else.

    Args:
        path: an existing directory (absolute, symlinks resolved).
        uid: the user's uid, or None for a user that does not exist yet (then the "other" class).
        gids: the user's group ids.

    Returns:
        ``(directory, new_mode)`` pairs that give the missing execute bit of the user's class.
    """
    fixes = []
    for directory in [*reversed(path.parents), path]:
        st = directory.stat()
        if uid is not None and st.st_uid == uid:
            bit = stat.S_IXUSR
        elif st.st_gid in gids:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not st.st_mode & bit:
            fixes.append((directory, stat.S_IMODE(st.st_mode) | bit))
    return fixes


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _grant_traverse(path: Path, user: str) -> None:
    """chmod the directories leading to ``path`` so that ``user`` can traverse them (adds only x bits).

    pytest creates ``/tmp/pytest-of-root`` with mode 0700 (and may reset it at a session start), so
    this runs before every start and stop. Only execute (traverse) bits are added, never read bits:
    other users can reach a known path but cannot list the directories.

    Raises:
        BabelfishError: a directory needs the bit and chmod fails (e.g. a read-only file system).
    """
    try:
        pw = pwd.getpwnam(user)
        uid: int | None = pw.pw_uid
        gids: list[int] = list(os.getgrouplist(user, pw.pw_gid))
    except KeyError:  # start.sh creates the user later: it will own none of these and be in no group of theirs
        uid, gids = None, []
    for directory, mode in traverse_fixes(path.resolve(), uid, gids):
        log.info("chmod %o %s (so that OS user %s can reach the Babelfish state)", mode, directory, user)
        try:
            os.chmod(directory, mode)
        except OSError as exc:
            raise BabelfishError(
                f"OS user {user} cannot traverse {directory} and chmod failed ({exc}); "
                "use a state dir below world-traversable directories"
            ) from exc


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` exists and has not ended (a zombie, not yet reaped by its parent, has ended)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return False
    return fields[0] not in {"Z", "X"}


def _is_postgres_process(pid: int) -> bool:
    if not process_alive(pid):
        return False
    try:
        exe = os.readlink(f"/proc/{pid}/exe")
    except OSError:
        try:
            exe = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            return False
    return os.path.basename(exe.removesuffix(" (deleted)")) == "postgres"


@contextlib.contextmanager
def _locked(state_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``state_dir/.lock`` (concurrent starts/stops of one state dir queue up)."""
    with open(state_dir / ".lock", "a+b") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _unpack(tarball: Path, install_root: Path) -> Path:
    """Unpack ``tarball`` into ``install_root`` once; reuse it while the tarball (size, mtime) is unchanged.

    Unpacks into a temporary sibling and renames it, so an interrupted unpack is never reused.

    Returns:
        The install tree (``install_root/4``).
    """
    stamp_text = f"{tarball.resolve()}\n{tarball.stat().st_size}\n{int(tarball.stat().st_mtime)}\n"
    install_dir = install_root / INSTALL_SUBDIR
    stamp = install_root / ".unpacked"
    if stamp.is_file() and stamp.read_text() == stamp_text and (install_dir / "bin" / "postgres").is_file():
        return install_dir
    partial = install_root.with_name(install_root.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(mode=0o755, parents=True)
    os.chmod(partial, 0o755)
    log.info("unpacking %s into %s", tarball, install_root)
    proc = subprocess.run(
        ["tar", "-I", "zstd", "-xf", str(tarball), "-C", str(partial)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if proc.returncode != 0 or not (partial / INSTALL_SUBDIR / "bin" / "postgres").is_file():
        shutil.rmtree(partial, ignore_errors=True)
        raise BabelfishError(f"unpacking {tarball} failed (exit {proc.returncode}): {proc.stderr.strip()}")
    (partial / ".unpacked").write_text(stamp_text)
    if install_root.exists():
        shutil.rmtree(install_root)
    partial.rename(install_root)
    return install_dir


def _log_tail(data_dir: Path, lines: int = 30) -> str:
    try:
        return "\n".join((data_dir / "server.log").read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no server.log)"


def _choose_ports(data_dir: Path, tds_port: int | None, pg_port: int | None) -> tuple[int, int]:
    """Ports for a (re)start of a stopped cluster: the given ones, else the previous ones while free, else new."""
    previous = configured_ports(data_dir) if (data_dir / "PG_VERSION").is_file() else {}
    tds = tds_port if tds_port is not None else previous.get("tds")
    pg = pg_port if pg_port is not None else previous.get("pg")
    if tds is not None and tds_port is None and not port_is_free(tds):
        tds = None
    if pg is not None and pg_port is None and not port_is_free(pg):
        pg = None
    fresh = iter(p for p in pick_free_ports(4) if p not in {tds, pg})
    tds = tds if tds is not None else next(fresh)
    pg = pg if pg is not None else next(fresh)
    if tds == pg:
        raise ValueError(f"TDS and PostgreSQL port must differ (both {tds})")
    return tds, pg


def _wait_for_login(server: LocalBabelfish, deadline: float) -> None:
    """Poll until pymssql can log in and run ``SELECT 1``.

    Raises:
        BabelfishError: no successful login before ``deadline`` (``time.monotonic()`` seconds).
    """
    import pymssql

    last: Exception | None = None
    while True:
        try:
            conn = server.connect("master", login_timeout=5)
            try:
                cur = conn.cursor()
                cur.execute("SELECT 1")
                cur.fetchall()
                return
            finally:
                conn.close()
        except pymssql.Error as exc:
            last = exc
        if time.monotonic() >= deadline:
            raise BabelfishError(
                f"no pymssql login to {server.host}:{server.tds_port} as {server.login}: {last}\n"
                f"{_log_tail(server.data_dir)}"
            )
        time.sleep(0.25)


# --------------------------------------------------------------------------------------------------
# start
# --------------------------------------------------------------------------------------------------


def start_local_babelfish(
    state_dir: Path | str,
    *,
    rowversion: str | None = "ignore",
    tds_port: int | None = None,
    pg_port: int | None = None,
    wait_s: float = 120,
    tarball: Path | str | None = None,
) -> LocalBabelfish:
    """Start (creating on first use) a Babelfish server whose state lives in ``state_dir``.

    Unpacks the tarball into ``state_dir/install`` (once), makes the path to ``state_dir``
    traversable for the OS user ``babelfish`` (adds x bits only), picks free ports, runs the
    tarball's ``start.sh`` (which creates the OS user, initdb's and initializes ``state_dir/data``
    on first use, and otherwise only starts the existing cluster) and waits until pymssql can log in.
    An already running server of ``state_dir`` is reused.

    Args:
        state_dir: directory for the install tree, the cluster and ``babelfish.json``; created if
            missing. The Unix socket path ``state_dir/data/.s.PGSQL.<port>`` must stay within 107 bytes.
        rowversion: ``"ignore"`` lets the login create rowversion/timestamp columns (Babelfish escape
            hatch; stored in the cluster), ``"strict"`` is stock Babelfish, None keeps the stored setting.
        tds_port: TDS TCP port; default a free one (on a restart: the previous one while it is free).
        pg_port: PostgreSQL TCP port; same default rule.
        wait_s: seconds to wait for start.sh and then for the first successful login, in total.
        tarball: tarball to unpack; default :func:`default_tarball`.

    Returns:
        The running server (``start_seconds`` says how long this call took).

    Raises:
        BabelfishError: Babelfish is not available here (the reason of :func:`babelfish_available`),
            unpacking, the permission fix for OS user babelfish or start.sh failed, or no login succeeded
            within ``wait_s`` (message includes the start.sh output and the tail of ``server.log``).
        ValueError: bad ``rowversion``, equal ports, a too long socket path, or explicit ports that
            differ from those of the already running server.
    """
    started = time.monotonic()
    deadline = started + wait_s
    if rowversion is not None and rowversion not in ROWVERSION_MODES:
        raise ValueError(f"rowversion must be one of {ROWVERSION_MODES} or None, not {rowversion!r}")
    tarball_path = Path(tarball) if tarball is not None else default_tarball()
    reason = babelfish_available(tarball_path)
    if reason is not None:
        raise BabelfishError(reason)

    state = Path(state_dir).expanduser().resolve()
    state.mkdir(parents=True, exist_ok=True)
    data_dir = state / "data"
    if len(str(data_dir / ".s.PGSQL.65535")) > _MAX_SOCKET_PATH:
        raise ValueError(
            f"state dir path too long for PostgreSQL's Unix socket (max {_MAX_SOCKET_PATH} bytes): {data_dir}"
        )

    with _locked(state):
        install_dir = _unpack(tarball_path, state / "install")
        _grant_traverse(state, OS_USER)
        _grant_traverse(install_dir, OS_USER)

        probe = LocalBabelfish(install_dir, data_dir)
        if (data_dir / "PG_VERSION").is_file() and probe.is_running():
            ports = configured_ports(data_dir)
            tds, pg = ports.get("tds", 1433), ports.get("pg", 5432)
            if (tds_port is not None and tds_port != tds) or (pg_port is not None and pg_port != pg):
                raise ValueError(f"the server in {data_dir} already runs on TDS {tds} / PostgreSQL {pg}")
            log.info("Babelfish in %s already runs", data_dir)
        else:
            tds, pg = _choose_ports(data_dir, tds_port, pg_port)
            conf = data_dir / "postgresql.conf"
            if conf.is_file():  # existing cluster: start.sh keeps the ports in its config, so move them here
                text = conf.read_text(encoding="utf-8")
                new = set_ports(text, pg_port=pg, tds_port=tds)
                if new != text:
                    log.info("moving the cluster in %s to TDS port %d, PostgreSQL port %d", data_dir, tds, pg)
                    conf.write_text(new, encoding="utf-8")  # same inode: owner and mode stay

        env = dict(os.environ)
        env.update({"BBF_TDS_PORT": str(tds), "BBF_PG_PORT": str(pg), "BBF_WAIT": str(max(1, int(wait_s)))})
        env.pop("BBF_ROWVERSION", None)
        if rowversion is not None:
            env["BBF_ROWVERSION"] = rowversion
        try:
            proc = subprocess.run(
                ["bash", str(install_dir / "start.sh"), str(install_dir), str(data_dir)],
                env=env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=max(1.0, deadline - time.monotonic()) + 30,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise BabelfishError(f"start.sh did not finish within {wait_s:.0f}s\n{_log_tail(data_dir)}") from exc
        output = (proc.stdout or "") + (proc.stderr or "")
        if proc.returncode != 0:
            raise BabelfishError(f"start.sh failed (exit {proc.returncode}):\n{output.strip()}\n{_log_tail(data_dir)}")
        ready = parse_ready_line(proc.stdout or "")
        if ready is None:
            raise BabelfishError(f"start.sh reported no 'Babelfish ready' line:\n{output.strip()}")
        host = ready["host"] if ready["host"] not in {"*", "0.0.0.0"} else DEFAULT_HOST
        server = LocalBabelfish(
            install_dir, data_dir, host, ready["tds_port"], ready["pg_port"], ready["login"], DEFAULT_PASSWORD
        )
        _wait_for_login(server, deadline)
        saved = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(server).items() if k != "start_seconds"}
        state_file = state / STATE_FILE
        state_file.write_text(json.dumps(saved, indent=2) + "\n", encoding="utf-8")
        os.chmod(state_file, 0o600)
    server.start_seconds = time.monotonic() - started
    log.info(
        "Babelfish ready in %.1fs: TDS %s:%d, PostgreSQL port %d, data %s",
        server.start_seconds,
        server.host,
        server.tds_port,
        server.pg_port,
        data_dir,
    )
    return server


# --------------------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--state-dir",
        type=Path,
        default=default_state_dir(),
        help="install tree, cluster and babelfish.json (default: %(default)s)",
    )
    parser = argparse.ArgumentParser(
        prog="python -m tools.babelfish",
        description="Run a local Babelfish for PostgreSQL server (a TDS / T-SQL endpoint) for tests. Needs root.",
    )
    sub = parser.add_subparsers(dest="command", metavar="{start,stop,status,uri}")
    p = sub.add_parser(
        "start",
        parents=[common],
        help="start (creating on first use); print the mssql:// URI",
        description="Start the server (unpack, initdb and initialize on first use) and print its "
        "mssql:// URI on stdout. Progress goes to stderr.",
    )
    p.add_argument("--tds-port", type=int, help="TDS port (default: previous one if free, else a free one)")
    p.add_argument("--pg-port", type=int, help="PostgreSQL port (default: previous one if free, else a free one)")
    p.add_argument(
        "--rowversion",
        choices=[*ROWVERSION_MODES, "keep"],
        default="ignore",
        help="rowversion escape hatch: ignore (allow rowversion columns), strict, keep the stored "
        "setting (default: %(default)s)",
    )
    p.add_argument("--wait", type=float, default=120, help="seconds to wait for the server (default: %(default)s)")
    p.add_argument(
        "--database",
        default="master",
        help="create this T-SQL database if missing and print its URI (default: %(default)s)",
    )
    sub.add_parser(
        "stop",
        parents=[common],
        help="stop the server (idempotent)",
        description="Stop the server (fast shutdown). Does nothing when it does not run.",
    )
    sub.add_parser(
        "status",
        parents=[common],
        help="say whether the server runs (exit 0) or not (exit 3)",
        description="Print the state of the server; exit code 0 when it runs, 3 when not.",
    )
    p = sub.add_parser(
        "uri",
        parents=[common],
        help="print the mssql:// URI of the server",
        description="Print the mssql:// URI of the last start (also when stopped).",
    )
    p.add_argument("--database", default="master", help="database in the URI (default: %(default)s)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point: ``start``, ``stop``, ``status``, ``uri`` (each with ``--help``).

    Args:
        argv: arguments without the program name; default ``sys.argv[1:]``.

    Returns:
        Process exit code: 0 success, 1 failure, 2 usage error or Babelfish unavailable, 3 not running
        (``status``).
    """
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    state_dir = args.state_dir.expanduser().resolve()

    if args.command == "start":
        reason = babelfish_available()
        if reason is not None:
            print(f"Babelfish not available: {reason}", file=sys.stderr)
            return 2
        try:
            server = start_local_babelfish(
                state_dir,
                rowversion=None if args.rowversion == "keep" else args.rowversion,
                tds_port=args.tds_port,
                pg_port=args.pg_port,
                wait_s=args.wait,
            )
            if args.database != "master":
                server.create_database(args.database)
        except (BabelfishError, ValueError, OSError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(server.uri(args.database))
        return 0

    try:
        server = LocalBabelfish.from_state_dir(state_dir)
    except FileNotFoundError as exc:
        if args.command == "stop":
            return 0
        print(f"{exc} (run: python -m tools.babelfish start --state-dir {state_dir})", file=sys.stderr)
        return 3 if args.command == "status" else 1

    if args.command == "stop":
        try:
            server.stop()
        except BabelfishError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        return 0
    if args.command == "uri":
        print(server.uri(args.database))
        return 0
    pid = server.postmaster_pid()  # status
    if pid is None:
        print(f"stopped (data {server.data_dir})")
        return 3
    print(
        f"running: pid {pid}, TDS {server.host}:{server.tds_port}, PostgreSQL port {server.pg_port}, "
        f"data {server.data_dir}\n{server.uri()}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
