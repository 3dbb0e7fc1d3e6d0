"""The host name Airflow records for a task instance, per worker (``[core] hostname_callable``).

Several Celery workers on one machine share its host name, so the task instances' ``hostname`` field
could not tell them apart. :func:`worker_hostname` returns the name in ``STACKOVERFLOW_WORKER_NAME``
(set differently for each worker by ``tools/celery_check.py``) and falls back to the fully qualified
domain name, Airflow's default. Imported by every task supervisor: keep it free of heavy imports.
"""

from __future__ import annotations

import os
import socket

__all__ = ["WORKER_NAME_ENV", "HOSTNAME_CALLABLE", "worker_hostname"]

WORKER_NAME_ENV = "STACKOVERFLOW_WORKER_NAME"
HOSTNAME_CALLABLE = "tools.worker_name.worker_hostname"
"""The value for ``AIRFLOW__CORE__HOSTNAME_CALLABLE``."""


def worker_hostname() -> str:
    """``$STACKOVERFLOW_WORKER_NAME`` when set and not empty, else :func:`socket.getfqdn`."""
    return os.environ.get(WORKER_NAME_ENV) or socket.getfqdn()
