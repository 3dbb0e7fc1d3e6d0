#!/usr/bin/env bash
# Run the DAG replicate_stackoverflow_to_postgres under a real Airflow scheduler (airflow standalone,
# LocalExecutor) on a synthetic source and verify it: run state, one successful mapped copy per
# table, one audit row per table, equal source/target counts. Stops every Airflow process at the end.
# Options are passed on: --scale X, --memory-budget-mib N, --run-timeout S, --keep-pg, --help.
# See docs/standalone.md.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then bash scripts/bootstrap.sh; fi
export PYTHONWARNINGS=ignore
exec .venv/bin/python -m tools.standalone_check "$@"
