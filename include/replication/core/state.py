"""The ``replication_state`` table in the target: per table, how it is synced and how far.

One row per table (``table_name`` is the ``tables`` entry): its sync mode, the cursor column, the
high-water mark (text: the largest primary key an ``append`` run copied), the run that set it
and when. It lives in the target, in the schema of the table it describes, so a target restored
from a backup carries its own state, and it is written inside the copy unit's transaction
(:meth:`Target.execute_in_unit`), so a failed run never advances it.

The table is described as a :class:`TableSpec` and created through the target's own DDL path;
statements use quoted identifiers and ``N'...'`` literals that both dialects read.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from include.replication.core.catalog import ColumnSpec, TableSpec
from include.replication.core.ddl import column_names_sql, string_literal
from include.replication.core.protocols import Target

__all__ = ["STATE_TABLE", "STATE_SPEC", "SyncState", "ensure_state_table", "read_state", "state_upsert_sql"]

log = logging.getLogger(__name__)

STATE_TABLE = "replication_state"

_C = ColumnSpec
STATE_SPEC = TableSpec(
    name=STATE_TABLE,
    dialect="postgresql",
    columns=(
        _C("table_name", "character varying", length=250, nullable=False),
        _C("mode", "character varying", length=20, nullable=False),
        _C("cursor_column", "character varying", length=250),
        _C("high_water_mark", "character varying", length=100),
        _C("run_id", "character varying", length=250, nullable=False),
        _C("updated_at", "timestamp with time zone", precision=6, nullable=False),
    ),
    primary_key=("table_name",),
)
"""Columns of the state table (PostgreSQL-dialect catalog; mapped to each target by the type map)."""


@dataclass(frozen=True)
class SyncState:
    """One table's stored state.

    Attributes:
        table_name: the ``tables`` entry.
        mode: the sync mode that wrote it (``append``).
        cursor_column: the column the mark is of (the integer primary key for ``append``).
        high_water_mark: the mark as text (an integer for ``append``), or None.
        run_id: the run that wrote it.
    """

    table_name: str
    mode: str
    cursor_column: str | None
    high_water_mark: str | None
    run_id: str


def ensure_state_table(target: Target) -> None:
    """Create ``replication_state`` in the target's schema if missing (rows kept).

    Raises:
        TargetError: the DDL failed.
    """
    target.ensure_table(STATE_SPEC)


def _where(target: Target, table: str) -> str:
    return f"{target.dialect.quote('table_name')} = {string_literal(table)}"


def read_state(target: Target, table: str) -> SyncState | None:
    """The stored state of ``table``, or None (no state table, or no row for the table).

    Raises:
        TargetError: the query failed.
    """
    if not target.execute(column_names_sql(target.schema, STATE_TABLE)):
        return None
    q = target.dialect.quote
    rows = target.execute(
        f"SELECT {q('mode')}, {q('cursor_column')}, {q('high_water_mark')}, {q('run_id')} FROM "
        f"{target.dialect.qualified(target.schema, STATE_TABLE)} WHERE {_where(target, table)}"
    )
    if not rows:
        return None
    mode, cursor, mark, run_id = rows[0]
    return SyncState(
        table, str(mode), None if cursor is None else str(cursor), None if mark is None else str(mark), str(run_id)
    )


def state_upsert_sql(target: Target, state: SyncState) -> list[str]:
    """Statements replacing the state row of ``state.table_name`` (delete, then insert with the
    server's current time), to run inside the copy unit's transaction."""
    q = target.dialect.quote
    name = target.dialect.qualified(target.schema, STATE_TABLE)

    def lit(value: str | None) -> str:
        return "NULL" if value is None else string_literal(value)

    columns = ", ".join(q(c.name) for c in STATE_SPEC.columns)
    values = ", ".join(
        [
            lit(state.table_name),
            lit(state.mode),
            lit(state.cursor_column),
            lit(state.high_water_mark),
            lit(state.run_id),
            "CURRENT_TIMESTAMP",
        ]
    )
    return [
        f"DELETE FROM {name} WHERE {_where(target, state.table_name)}",
        f"INSERT INTO {name} ({columns}) VALUES ({values})",
    ]
