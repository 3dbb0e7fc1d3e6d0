# Astro project image for the Stack Overflow replication DAGs.
#
# Base: Astro Runtime 3.1-3 (Airflow 3 line). Airflow 3 Runtime images are published as
# astrocrpublic.azurecr.io/runtime:<major.minor>-<patch>; Airflow 2 Runtime images stay at
# quay.io/astronomer/astro-runtime. The image's ONBUILD steps copy this project to
# /usr/local/airflow and install packages.txt (apt) and requirements.txt (pip) before the
# instructions below run. See docs/astro.md for the sources.
FROM astrocrpublic.azurecr.io/runtime:3.1-3

# Concurrency: 16 task instances across the installation, at most 8 running per DAG and at most
# 2 active runs per DAG. Deployment-level environment variables set on Astro can override these.
ENV AIRFLOW__CORE__PARALLELISM=16 \
    AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG=8 \
    AIRFLOW__CORE__MAX_ACTIVE_RUNS_PER_DAG=2

# Root under which every task attempt gets its own Parquet spill directory
# (read only by include/replication/core/config.py). Container-local, ephemeral storage.
ENV STACKOVERFLOW_SPILL_ROOT=/tmp/stackoverflow-spill

# DAGs and tasks import the package as `include.replication...`, so the project root
# (AIRFLOW_HOME) must be importable in the scheduler, dag-processor, triggerer and task processes.
# Prepend it explicitly instead of relying on the base image; any existing PYTHONPATH is kept.
ENV PYTHONPATH="/usr/local/airflow${PYTHONPATH:+:${PYTHONPATH}}"
