#!/usr/bin/env bash
# Create .venv and install the project's development requirements (Airflow, drivers, test tools)
# from the locked versions. Idempotent: a second run only checks that everything is installed.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
if ! command -v uv >/dev/null 2>&1; then
  "$PYTHON" -m pip install --quiet --disable-pip-version-check uv
fi
if [ ! -x .venv/bin/python ]; then
  # .venv is this project's own, git-ignored: a broken one (dangling link, half-made) is rebuilt
  if [ -e .venv ] || [ -L .venv ]; then
    echo "rebuilding the broken virtual environment .venv" >&2
    rm -rf .venv
  fi
  uv venv --quiet --python "$PYTHON" .venv
fi
uv pip install --quiet --python .venv/bin/python -r requirements-dev.lock
echo "environment ready: $(.venv/bin/python --version), $(.venv/bin/airflow version 2>/dev/null | tail -1 | sed 's/^/Airflow /')"
