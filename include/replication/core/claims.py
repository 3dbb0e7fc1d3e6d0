"""The ``replication_claim`` table: which run owns a table loaded as key-range units.

With ``partition_as = tasks`` one table is loaded by several tasks (one per key range, then a
finish) that may run in different processes and on different workers, so a session-level table
lock cannot span them. Instead:

* the plan takes the table lock *exclusively*, writes the claim row (target table -> run id) and
  prepares the table (the staging copy of the ``swap`` load mode, without keys), then releases it;
* every range unit holds the table lock *shared* (the ranges of one run run together; a whole-table
  copy, another run's plan or a finish, which take it exclusively, wait) and checks the claim is its
  own run's before touching a row;
* the finish holds it exclusively, checks the claim, builds the keys, swaps, and releases the claim.

A second run's plan waits for the first run's range units (exclusive against shared) and, once it
claims the table, the first run's remaining units and its finish fail (``TargetError``, permanent)
instead of writing into a table that is no longer theirs. The row lives in the target schema of the
table it claims; statements use quoted identifiers and ``N'...'`` literals that both dialects read.
"""

from __future__ import annotations

import logging

from include.replication.core.catalog import ColumnSpec, TableSpec
from include.replication.core.ddl import string_literal
from include.replication.core.errors import TargetError
from include.replication.core.protocols import Target

__all__ = ["CLAIM_TABLE", "CLAIM_SPEC", "claim_table", "claimed_by", "check_claim", "release_claim"]

log = logging.getLogger(__name__)

CLAIM_TABLE = "replication_claim"

_C = ColumnSpec
CLAIM_SPEC = TableSpec(
    name=CLAIM_TABLE,
    dialect="postgresql",
    columns=(
        _C("table_name", "character varying", length=250, nullable=False),
        _C("run_id", "character varying", length=250, nullable=False),
        _C("claimed_at", "timestamp with time zone", precision=6, nullable=False),
    ),
    primary_key=("table_name",),
)
"""Columns of the claim table (PostgreSQL-dialect catalog; mapped to each target by the type map)."""


def _name(target: Target) -> str:
    return target.dialect.qualified(target.schema, CLAIM_TABLE)


def _where(target: Target, table: str) -> str:
    return f"{target.dialect.quote('table_name')} = {string_literal(table)}"


def claim_table(target: Target, table: str, run_id: str) -> None:
    """Make ``run_id`` the owner of ``table`` (the target table's name in ``target.schema``),
    replacing any earlier claim. The caller holds the table lock exclusively.

    Raises:
        TargetError: the statements failed.
    """
    target.ensure_table(CLAIM_SPEC)
    q = target.dialect.quote
    target.execute(f"DELETE FROM {_name(target)} WHERE {_where(target, table)}")
    target.execute(f"INSERT INTO {_name(target)} ({q('table_name')}, {q('run_id')}, {q('claimed_at')}) "
                   f"VALUES ({string_literal(table)}, {string_literal(run_id)}, CURRENT_TIMESTAMP)")
    log.info("claim: %s.%s is loaded in key ranges by run %s", target.schema, table, run_id)


def claimed_by(target: Target, table: str) -> str | None:
    """The run id that owns ``table``, or None (no claim).

    Raises:
        TargetError: the query failed (the claim table is missing: no run ever claimed a table here).
    """
    rows = target.execute(f"SELECT {target.dialect.quote('run_id')} FROM {_name(target)} WHERE {_where(target, table)}")
    return str(rows[0][0]) if rows else None


def check_claim(target: Target, table: str, run_id: str) -> None:
    """Fail unless ``run_id`` owns ``table``.

    Raises:
        TargetError: another run (or none) owns it (permanent for this run: its plan must run again).
    """
    try:
        owner = claimed_by(target, table)
    except TargetError:
        owner = None
    if owner != run_id:
        by = f"run {owner}" if owner else "no run (its plan did not claim it, or its finish released it)"
        raise TargetError(f"the table is claimed by {by}, not by this run {run_id}; its key ranges are not "
                          "written by this run", table=f"{target.schema}.{table}", retryable=False)


def release_claim(target: Target, table: str, run_id: str) -> None:
    """Remove ``run_id``'s claim on ``table`` (after its finish); another run's claim is kept.

    Raises:
        TargetError: the statement failed.
    """
    target.execute(f"DELETE FROM {_name(target)} WHERE {_where(target, table)} "
                   f"AND {target.dialect.quote('run_id')} = {string_literal(run_id)}")
