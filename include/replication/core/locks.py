"""Lock keys: one lock per target table for a whole copy, and one per copy unit.

A copy holds the *table lock* (a session-level lock taken by the coordinating target connection,
``pg_try_advisory_lock`` / ``sp_getapplock @LockOwner = 'Session'``) from the start of the copy
to the end of its swap, so a second copy of the same table (another deployment, or a task try
Airflow wrongly believes dead) waits, then fails with a clear error, instead of interleaving with
it. Every copy unit's transaction also holds a *unit lock* on (table, key range), so two copies of
the same unit can never both delete-then-insert the same rows: the second waits for the first to
commit, then replaces its rows. Keys are derived from the qualified target table name and are
stable across processes and machines (BLAKE2b, not Python's salted ``hash``).
"""

from __future__ import annotations

import hashlib

from include.replication.core.keyranges import KeyRange

__all__ = ["table_lock_key", "unit_lock_key", "lock_resource"]


def _int64(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big", signed=True)


def table_lock_key(table: str) -> int:
    """Signed 64-bit key of the table lock of ``table`` (qualified target name, e.g. ``public.Posts``)."""
    return _int64(f"replication-table:{table}")


def unit_lock_key(table: str, key_range: KeyRange | None) -> tuple[int]:
    """``(key,)``: the signed 64-bit key of the unit lock of one copy unit (the whole table when
    ``key_range`` is None), as the parameters of ``pg_advisory_xact_lock(bigint)``."""
    unit = "all" if key_range is None else f"{int(key_range[0])}:{int(key_range[1])}"
    return (_int64(f"replication-unit:{table}:{unit}"),)


def lock_resource(table: str, key_range: KeyRange | None = None, *, unit: bool = False) -> str:
    """An ``sp_getapplock`` resource name (at most 255 characters) for the table or unit lock."""
    text = f"replication-{'unit' if unit else 'table'}:{table}"
    if unit:
        text += ":all" if key_range is None else f":{int(key_range[0])}:{int(key_range[1])}"
    return text if len(text) <= 255 else f"replication-{'unit' if unit else 'table'}:{_int64(text):x}"
