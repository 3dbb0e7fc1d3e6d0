#!/usr/bin/env bash
# The second README command: install (if needed) and run the whole test suite (unit, DAG
# integrity, integration on embedded PostgreSQL, end to end with airflow dags test). SQL Server
# tests are skipped, with the reason, unless STACKOVERFLOW_MSSQL_TEST_URI names a server.
# Extra arguments go to pytest (e.g. -k dump, -x).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
.venv/bin/ruff check include dags tests benchmarks tools
exec .venv/bin/python -m pytest "$@"
