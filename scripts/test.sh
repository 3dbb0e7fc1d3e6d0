#!/usr/bin/env bash
# The second README command: install (if needed), lint (ruff), type-check (mypy on include/ and
# dags/) and run the whole test suite (unit, DAG integrity, integration on embedded PostgreSQL,
# end to end with airflow dags test).
# Extra arguments go to pytest (e.g. -k dump, -x).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
.venv/bin/ruff check include dags tests benchmarks tools
.venv/bin/mypy
exec .venv/bin/python -m pytest "$@"
