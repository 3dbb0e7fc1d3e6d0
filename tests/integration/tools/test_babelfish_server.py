"""tools/babelfish.py against the real Babelfish build: start in a pytest tmp dir, T-SQL through
pymssql, stop (every server process gone), restart on the existing cluster with its old TDS port
taken (moves to a free one, data kept).

Skipped, with the reason of ``babelfish_available()``, where the build cannot run (no tarball at
``../shared/babelfish`` or ``$STACKOVERFLOW_BABELFISH_TARBALL``, not root, no zstd, missing libraries).
"""

from __future__ import annotations

import socket

import pytest

from tools.babelfish import LocalBabelfish, babelfish_available, process_alive, start_local_babelfish

REASON = babelfish_available()

pytestmark = [pytest.mark.babelfish, pytest.mark.skipif(REASON is not None, reason=f"Babelfish: {REASON}")]


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return True
    except OSError:
        return False


def _stop_and_check(server: LocalBabelfish) -> None:
    pids = server.server_pids()
    assert pids and server.postmaster_pid() in pids  # PIDs wrap around: the postmaster need not be the lowest
    server.stop()
    alive = [p for p in pids if process_alive(p)]  # a zombie (exited, not yet reaped by init) counts as ended
    assert alive == [], f"server processes still alive after stop: {alive}"
    assert not server.is_running() and not (server.data_dir / "postmaster.pid").exists()
    assert not _accepts(server.tds_port) and not _accepts(server.pg_port)
    server.stop()  # idempotent


def test_start_query_stop_restart(tmp_path_factory, record_property):
    # a pytest tmp dir: /tmp/pytest-of-root is 0700, so the tool must open the path for OS user babelfish
    state = tmp_path_factory.mktemp("bbf") / "state"
    server = start_local_babelfish(state, wait_s=120)
    try:
        record_property("babelfish_first_start_s", round(server.start_seconds, 2))
        print(f"first start: {server.start_seconds:.2f}s")
        assert server.is_running() and server.tds_port != server.pg_port
        assert LocalBabelfish.from_state_dir(state) == server
        version = server.version()
        assert "Babelfish" in version and "PostgreSQL" in version

        server.create_database("bbf_tool_test")
        server.create_database("bbf_tool_test")  # exists: no-op
        conn = server.connect("bbf_tool_test")
        try:
            cur = conn.cursor()
            cur.execute("SELECT DB_NAME()")
            assert cur.fetchone()[0] == "bbf_tool_test"
            cur.execute(
                "CREATE TABLE [dbo].[Widgets] ([Id] int IDENTITY(1,1) NOT NULL PRIMARY KEY, [Name] nvarchar(50) NOT NULL)"
            )
            cur.executemany("INSERT INTO [dbo].[Widgets] ([Name]) VALUES (%s)", [("ä",), ("b",), ("😀",)])
            cur.execute("SELECT [Id], [Name] FROM [dbo].[Widgets] ORDER BY [Id]")
            assert cur.fetchall() == [(1, "ä"), (2, "b"), (3, "😀")]
            cur.execute("SELECT IDENT_CURRENT('dbo.Widgets')")
            assert int(cur.fetchone()[0]) == 3
        finally:
            conn.close()
        _stop_and_check(server)

        # restart on the existing cluster while another process holds its old TDS port
        with socket.socket() as squatter:
            squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            squatter.bind(("127.0.0.1", server.tds_port))
            squatter.listen()
            again = start_local_babelfish(state, wait_s=120)
        try:
            record_property("babelfish_restart_s", round(again.start_seconds, 2))
            print(f"restart: {again.start_seconds:.2f}s")
            assert again.tds_port != server.tds_port and again.data_dir == server.data_dir
            assert start_local_babelfish(state).tds_port == again.tds_port  # already running: reused
            conn = again.connect("bbf_tool_test")
            try:
                cur = conn.cursor()
                cur.execute("INSERT INTO [dbo].[Widgets] ([Name]) VALUES (N'd')")
                cur.execute("SELECT [Id], [Name] FROM [dbo].[Widgets] ORDER BY [Id]")
                rows = cur.fetchall()
            finally:
                conn.close()
            # Babelfish (PostgreSQL sequence, cache 1): a clean restart keeps the identity at 3
            assert rows == [(1, "ä"), (2, "b"), (3, "😀"), (4, "d")]
            _stop_and_check(again)
        finally:
            again.stop()
    finally:
        server.stop()
