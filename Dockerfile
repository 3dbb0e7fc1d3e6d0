# Astro project image for the Stack Overflow replication DAGs.
#
# Base: Astro Runtime 3.1-3 (Airflow 3.1.3), its Python 3.11 distribution. Airflow 3 Runtime
# images are published as astrocrpublic.azurecr.io/runtime:<major.minor>-<patch>, and since
# Runtime 9 every version has one distribution per supported Python,
# <runtime-version>-python-<python-version> (Astro docs, "Customize your Astro project
# Dockerfile"). The Python is pinned to 3.11, the version requirements-dev.lock is compiled for and
# every test here runs on, instead of whatever the Runtime's default Python is. The image's
# ONBUILD steps copy this project to /usr/local/airflow and install packages.txt (apt) and
# requirements.txt (pip) before the instructions below run. See docs/astro.md for the sources.
FROM astrocrpublic.azurecr.io/runtime:3.1-3-python-3.11

# Concurrency: 16 task instances across the installation, at most 8 running per DAG and at most
# 2 active runs per DAG. Deployment-level environment variables set on Astro can override these.
ENV AIRFLOW__CORE__PARALLELISM=16 \
    AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG=8 \
    AIRFLOW__CORE__MAX_ACTIVE_RUNS_PER_DAG=2

# Allocators for flat task memory (measured in include/replication/core/allocators.py): Arrow's
# default pool -> the system allocator (ARROW_DEFAULT_MEMORY_POOL, read by Arrow C++ at start) and
# glibc's mmap threshold pinned at 128 KiB (MALLOC_MMAP_THRESHOLD_, mallopt(3); setting it also
# disables the dynamic threshold), so RecordBatch buffers go back to the OS when freed. Local runs
# outside the image get the same settings from tune_allocators() at the start of a copy.
ENV ARROW_DEFAULT_MEMORY_POOL=system \
    MALLOC_MMAP_THRESHOLD_=131072

# Root under which every task attempt gets its own Parquet spill directory
# (read only by include/replication/core/config.py). Container-local, ephemeral storage.
ENV STACKOVERFLOW_SPILL_ROOT=/tmp/stackoverflow-spill

# DAGs and tasks import the package as `include.replication...`, so the project root
# (AIRFLOW_HOME) must be importable in the scheduler, dag-processor, triggerer and task processes.
# Prepend it explicitly instead of relying on the base image; any existing PYTHONPATH is kept.
ENV PYTHONPATH="/usr/local/airflow${PYTHONPATH:+:${PYTHONPATH}}"
