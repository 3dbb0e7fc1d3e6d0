"""tools/babelfish.py without a server: URIs, free ports, availability reasons, config and output parsing, CLI."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from tools import babelfish
from tools.babelfish import (
    BabelfishError,
    LocalBabelfish,
    babelfish_available,
    parse_ports,
    parse_ready_line,
    pick_free_ports,
    port_is_free,
    quote_name,
    set_ports,
    start_local_babelfish,
    traverse_fixes,
)

# the block start.sh appends to postgresql.conf (after initdb's commented defaults)
CONF = """\
#port = 5432                            # (change requires restart)
max_connections = 100
#------------------------------------------------------------------------------
# BABELFISH (written by start.sh)
#------------------------------------------------------------------------------
listen_addresses = '127.0.0.1'
port = 40001
unix_socket_directories = '/tmp/x/data'
shared_preload_libraries = 'babelfishpg_tds'
babelfishpg_tds.listen_addresses = '127.0.0.1'
babelfishpg_tds.port = 40002
"""


def _server(**kw) -> LocalBabelfish:
    return LocalBabelfish(Path("/nowhere/install/4"), Path("/nowhere/data"), **kw)


def test_uri_percent_encodes_every_part():
    server = _server(tds_port=14330, login="us@r:x", password="p/ss w%rd#?")
    uri = server.uri("my db/ä")
    assert uri == "mssql://us%40r%3Ax:p%2Fss%20w%25rd%23%3F@127.0.0.1:14330/my%20db%2F%C3%A4"
    u = urlparse(uri)  # parsed back the way tests/integration/test_mssql_roundtrip.py does
    assert (u.scheme, u.hostname, u.port) == ("mssql", "127.0.0.1", 14330)
    assert (unquote(u.username), unquote(u.password), unquote(u.path.lstrip("/"))) == (
        "us@r:x",
        "p/ss w%rd#?",
        "my db/ä",
    )


def test_uri_defaults():
    assert _server(tds_port=1433).uri() == "mssql://babelfish_user:12345678@127.0.0.1:1433/master"


def test_quote_name_doubles_closing_brackets():
    assert quote_name("a]b[c") == "[a]]b[c]"


def test_pick_free_ports_gives_distinct_bindable_ports():
    ports = pick_free_ports(3)
    assert len(set(ports)) == 3 and all(1024 <= p <= 65535 for p in ports)
    assert all(port_is_free(p) for p in ports)


def test_port_is_free_sees_a_listener():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        assert not port_is_free(sock.getsockname()[1])


def test_available_reason_for_a_missing_tarball(tmp_path):
    missing = tmp_path / "nope" / "babelfish.tar.zst"
    reason = babelfish_available(missing)
    assert reason is not None and "tarball not found" in reason and str(missing) in reason


def test_available_reason_names_the_environment_variable(tmp_path, monkeypatch):
    missing = tmp_path / "elsewhere.tar.zst"
    monkeypatch.setenv(babelfish.TARBALL_ENV, str(missing))
    assert babelfish.default_tarball() == missing
    reason = babelfish_available()
    assert reason is not None and f"${babelfish.TARBALL_ENV}={missing}" in reason


def test_default_tarball_is_beside_the_repository(monkeypatch):
    monkeypatch.delenv(babelfish.TARBALL_ENV, raising=False)
    assert babelfish.default_tarball() == babelfish.REPO_ROOT.parent / "shared" / "babelfish" / babelfish.TARBALL_NAME


@pytest.fixture
def fake_tarball(tmp_path, monkeypatch):
    """An existing (fake) tarball, root, all tools and libraries present: each test breaks one thing."""
    path = tmp_path / "fake.tar.zst"
    path.write_bytes(b"not really zstd")
    monkeypatch.setattr(babelfish.os, "geteuid", lambda: 0)
    monkeypatch.setattr(babelfish.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(babelfish, "missing_system_libraries", lambda: [])
    return path


def test_available_when_everything_is_there(fake_tarball):
    assert babelfish_available(fake_tarball) is None


def test_available_reason_not_root(fake_tarball, monkeypatch):
    monkeypatch.setattr(babelfish.os, "geteuid", lambda: 1000)
    assert "needs root" in babelfish_available(fake_tarball)


def test_available_reason_zstd_missing(fake_tarball, monkeypatch):
    monkeypatch.setattr(babelfish.shutil, "which", lambda name: None if name == "zstd" else f"/usr/bin/{name}")
    assert babelfish_available(fake_tarball) == "missing commands: zstd (apt-get install zstd)"


def test_available_reason_missing_shared_libraries(fake_tarball, monkeypatch):
    monkeypatch.setattr(babelfish, "missing_system_libraries", lambda: ["libicuuc.so.72", "libxml2.so.2"])
    reason = babelfish_available(fake_tarball)
    assert reason.startswith("missing shared libraries: libicuuc.so.72, libxml2.so.2") and "libicu72" in reason


def test_available_reason_wrong_platform(fake_tarball, monkeypatch):
    monkeypatch.setattr(babelfish.platform, "machine", lambda: "aarch64")
    assert "Linux x86_64" in babelfish_available(fake_tarball)


def test_missing_system_libraries_finds_libc_and_not_a_made_up_one():
    assert babelfish.missing_system_libraries(["libc.so.6", "libno-such-thing.so.99"]) == ["libno-such-thing.so.99"]


def test_start_raises_the_availability_reason(tmp_path):
    with pytest.raises(BabelfishError, match="tarball not found"):
        start_local_babelfish(tmp_path / "state", tarball=tmp_path / "missing.tar.zst")
    assert not (tmp_path / "state").exists()


def test_start_rejects_a_bad_rowversion_mode(tmp_path):
    with pytest.raises(ValueError, match="rowversion"):
        start_local_babelfish(tmp_path, rowversion="maybe")


def test_parse_and_set_ports():
    assert parse_ports(CONF) == {"pg": 40001, "tds": 40002}
    moved = set_ports(CONF, pg_port=50001, tds_port=50002)
    assert parse_ports(moved) == {"pg": 50001, "tds": 50002}
    assert moved.replace("50001", "40001").replace("50002", "40002") == CONF  # nothing else changed
    assert "#port = 5432" in moved
    assert parse_ports(set_ports("max_connections = 10\n", pg_port=1, tds_port=2)) == {"pg": 1, "tds": 2}


def test_parse_ready_line():
    out = (
        "starting server (log: /s/data/server.log)\n"
        "Babelfish ready: TDS 127.0.0.1:40002 (login babelfish_user, rowversion ignore), "
        "PostgreSQL 127.0.0.1:40001, socket dir /s/data\n"
    )
    assert parse_ready_line(out) == {
        "host": "127.0.0.1",
        "tds_port": 40002,
        "pg_port": 40001,
        "login": "babelfish_user",
        "rowversion": "ignore",
    }
    assert parse_ready_line("server already running in /s/data\n") is None


def test_traverse_fixes_adds_only_the_missing_execute_bit(tmp_path):
    a = tmp_path / "a"
    b = a / "b"
    b.mkdir(parents=True)
    os.chmod(a, 0o700)
    os.chmod(b, 0o750)
    stranger = 2_000_000_000  # owns nothing, is in no group
    fixes = {p: mode for p, mode in traverse_fixes(b, stranger, []) if tmp_path in p.parents}
    assert fixes == {a: 0o701, b: 0o751}
    # a member of b's group uses the group bits (already x on b); a's group has none
    fixes = {p: mode for p, mode in traverse_fixes(b, stranger, [b.stat().st_gid]) if tmp_path in p.parents}
    assert fixes == {a: 0o710}
    # the owner uses the owner bits
    assert [p for p, _ in traverse_fixes(b, os.getuid(), []) if tmp_path in p.parents] == []


def test_from_state_dir(tmp_path):
    with pytest.raises(FileNotFoundError):
        LocalBabelfish.from_state_dir(tmp_path)
    data = tmp_path / "data"
    data.mkdir()
    (data / "PG_VERSION").write_text("16\n")
    (data / "postgresql.conf").write_text(CONF)
    server = LocalBabelfish.from_state_dir(tmp_path)
    assert (server.data_dir, server.install_dir) == (data, tmp_path / "install" / "4")
    assert (server.tds_port, server.pg_port, server.login) == (40002, 40001, "babelfish_user")
    saved = {
        "install_dir": "/i/4",
        "data_dir": str(data),
        "host": "127.0.0.1",
        "tds_port": 1,
        "pg_port": 2,
        "login": "l",
        "password": "p",
    }
    (tmp_path / "babelfish.json").write_text(json.dumps(saved))
    assert LocalBabelfish.from_state_dir(tmp_path) == LocalBabelfish(Path("/i/4"), data, "127.0.0.1", 1, 2, "l", "p")


def test_stale_pid_file_is_not_a_running_server(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "PG_VERSION").write_text("16\n")
    (data / "postmaster.pid").write_text(f"{os.getpid()}\n{data}\n")  # alive, but python, not postgres
    server = LocalBabelfish(tmp_path / "install" / "4", data)
    assert server.postmaster_pid() is None and not server.is_running() and server.server_pids() == []
    server.stop()  # nothing runs: a no-op, stop.sh is not even looked for


@pytest.mark.parametrize(
    "argv", [["--help"], ["start", "--help"], ["stop", "--help"], ["status", "--help"], ["uri", "--help"]]
)
def test_cli_help(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        babelfish.main(argv)
    assert exc.value.code == 0 and "usage:" in capsys.readouterr().out


def test_cli_without_a_cluster(tmp_path, capsys):
    state = str(tmp_path / "state")
    assert babelfish.main([]) == 2
    assert babelfish.main(["status", "--state-dir", state]) == 3
    assert babelfish.main(["uri", "--state-dir", state]) == 1
    assert babelfish.main(["stop", "--state-dir", state]) == 0
    assert "no Babelfish cluster" in capsys.readouterr().err


def test_cli_uri_of_a_stopped_cluster(tmp_path, capsys):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "PG_VERSION").write_text("16\n")
    (tmp_path / "data" / "postgresql.conf").write_text(CONF)
    assert babelfish.main(["uri", "--state-dir", str(tmp_path), "--database", "replication_test"]) == 0
    assert capsys.readouterr().out == "mssql://babelfish_user:12345678@127.0.0.1:40002/replication_test\n"
    assert babelfish.main(["status", "--state-dir", str(tmp_path)]) == 3


def test_process_alive():
    assert babelfish.process_alive(os.getpid())
    assert not babelfish.process_alive(2**22 + 12345)  # above the default pid_max


def test_grant_traverse_reports_a_failing_chmod(tmp_path, monkeypatch):
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o700)
    os.chmod(closed, 0o700)

    def refuse(path, mode):
        raise PermissionError(1, "Operation not permitted", str(path))

    monkeypatch.setattr(babelfish.os, "chmod", refuse)
    with pytest.raises(BabelfishError, match="cannot traverse"):
        babelfish._grant_traverse(closed, "no-such-user-bbf-test")
