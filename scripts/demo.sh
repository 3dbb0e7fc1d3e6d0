#!/usr/bin/env bash
# The first README command: install, start an embedded PostgreSQL, fill the source, run the real
# Airflow DAG replicate_stackoverflow_to_postgres (airflow dags test) and print verified counts.
# Options are passed on: --scale X | --dump DIR, --seed N, --memory-budget-mib N, --skip-fill, --stop (stop the server only), --stop-after, --help.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
export PYTHONWARNINGS=ignore
exec .venv/bin/python -m tools.demo "$@"
