#!/usr/bin/env bash
# Start / stop a local Babelfish for PostgreSQL server (a real TDS / T-SQL endpoint) for the SQL
# Server tests: python -m tools.babelfish start|stop|status|uri [--state-dir DIR] (each has --help).
# Needs root and ../shared/babelfish (or $STACKOVERFLOW_BABELFISH_TARBALL). Example:
#   export STACKOVERFLOW_MSSQL_TEST_URI=$(bash scripts/babelfish.sh start --database replication_test)
#   .venv/bin/python -m pytest tests/integration/test_mssql_roundtrip.py -ra
#   bash scripts/babelfish.sh stop
# Runs in the caller's directory (a relative --state-dir is relative to it).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
if [ ! -x "$ROOT/.venv/bin/python" ]; then bash "$ROOT/scripts/bootstrap.sh" >&2; fi
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
exec "$ROOT/.venv/bin/python" -m tools.babelfish "$@"
