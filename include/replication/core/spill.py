"""Spill directory names, and the removal of spill directories left by earlier attempts.

Every copy unit's SpillingBuffer spills into a fresh directory under the spill root named
``<prefix>-try<N><unit>-<random>`` (see :func:`attempt_id`), where the prefix identifies the task
(DAG or label, run, table) without the try. A copy process killed by the operating system (out of
memory, a lost worker) cannot remove its directory, so:

* each copy removes, when it starts, the directories of the *earlier tries of the same task*
  (:func:`remove_earlier_attempts`): never its own, never another task's or another run's;
* the DAG's final task removes whatever the run left (:func:`sweep_run`).
"""

from __future__ import annotations

import hashlib
import logging
import re
import shutil
from pathlib import Path

__all__ = ["spill_prefix", "attempt_id", "remove_earlier_attempts", "sweep_run"]

log = logging.getLogger(__name__)

_SAFE = re.compile(r"[^A-Za-z0-9_.]+")


def _part(text: str, limit: int) -> str:
    return _SAFE.sub("_", text)[:limit] or "_"


def run_tag(label: str, run_id: str) -> str:
    """``<label>-<8 hex of the run id>``: names every spill directory of one run (run ids are long
    and full of ``:+``, so a digest keeps the name short and whole)."""
    return f"{_part(label, 40)}-{hashlib.blake2b(run_id.encode(), digest_size=4).hexdigest()}"


def spill_prefix(label: str, run_id: str, table: str) -> str:
    """The part of a spill directory name that identifies the task: run tag and table."""
    return f"{run_tag(label, run_id)}-{_part(table, 60)}"


def attempt_id(label: str, run_id: str, table: str, attempt: int, unit: str = "") -> str:
    """``<prefix>-try<N><unit>``: the try number is never cut (the prefix parts are bounded)."""
    return f"{spill_prefix(label, run_id, table)}-try{int(attempt)}{unit}"


_TRY = re.compile(r"-try(\d+)")


def remove_earlier_attempts(root: Path, label: str, run_id: str, table: str, attempt: int) -> int:
    """Remove the spill directories of tries before ``attempt`` of the same task.

    Returns:
        Directories removed.
    """
    prefix = spill_prefix(label, run_id, table) + "-try"
    removed = 0
    if not root.is_dir():
        return 0
    for path in root.iterdir():
        if not path.is_dir() or not path.name.startswith(prefix):
            continue
        match = _TRY.match(path.name[len(prefix) - 4:])
        if match and int(match.group(1)) < attempt:
            shutil.rmtree(path, ignore_errors=True)
            removed += 1
            log.warning("removed spill directory %s left by try %s of this task", path, match.group(1))
    return removed


def sweep_run(root: Path, label: str, run_id: str) -> list[str]:
    """Remove every spill directory of one run (its final task calls this).

    Returns:
        Names of the directories removed.
    """
    if not root.is_dir():
        return []
    tag = run_tag(label, run_id) + "-"
    gone = []
    for path in root.iterdir():
        if path.is_dir() and path.name.startswith(tag):
            shutil.rmtree(path, ignore_errors=True)
            gone.append(path.name)
    if gone:
        log.warning("removed %d spill directories left by this run: %s", len(gone), ", ".join(sorted(gone)))
    return gone
