#!/usr/bin/env bash
# Run the DAG replicate_stackoverflow_to_postgres on the CeleryExecutor: Redis broker (Debian's
# redis-server, installed with apt-get when missing and root), PostgreSQL metadata DB, two Celery
# workers of concurrency 2; SIGKILL one worker mid-copy (--kill none: no fault) and verify that the
# copies ran on both workers, the killed copy succeeded on a retry on the other, counts and
# checksums equal, one audit row per table. Stops every process at the end.
# Options are passed on: --scale X, --kill auto|none, --kill-after S, --heartbeat-timeout S,
# --results-json FILE, --help.
# The Celery provider lives in its own git-ignored .venv-celery (requirements-dev.lock plus
# requirements-celery.lock), never in .venv.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv-celery/bin/python ] || ! .venv-celery/bin/python -c "import airflow.providers.celery, redis" 2>/dev/null; then
    command -v uv >/dev/null || { echo "uv is needed to build .venv-celery (pip install uv)" >&2; exit 2; }
    uv venv -q -p 3.11 .venv-celery
    uv pip install -q -p .venv-celery/bin/python -r requirements-celery.lock
fi
if ! command -v redis-server >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q redis-server >/dev/null
    else
        echo "redis-server is not installed: sudo apt-get install -y redis-server" >&2; exit 2
    fi
fi
export PYTHONWARNINGS=ignore
exec .venv-celery/bin/python -m tools.celery_check "$@"
