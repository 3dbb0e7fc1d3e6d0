"""PostgreSQL upsert of a ``merge`` run: the staging table's rows into the live table.

Pure SQL generation (no driver): one statement, ``INSERT ... SELECT ... ON CONFLICT (pk) DO
UPDATE ... WHERE ROW(d.*) IS DISTINCT FROM ROW(EXCLUDED.*)`` inside a CTE whose ``RETURNING
(xmax = 0)`` tells an inserted row (a fresh tuple: ``xmax`` 0) from an updated one, counted by
the outer ``SELECT``. A row whose values are all equal is neither updated nor counted, so a
re-run of the same window changes nothing.
"""

from __future__ import annotations

from include.replication.core.catalog import TableSpec
from include.replication.dialects.postgres.dialect import POSTGRES

__all__ = ["upsert_sql", "delete_sql"]


def upsert_sql(spec: TableSpec, schema: str, table: str, stage: str) -> str:
    """The upsert of ``schema.stage`` into ``schema.table`` (quoted identifiers only).

    Args:
        spec: the live table's catalog (its primary key and written columns; generated columns
            are left to PostgreSQL).
        schema: the target schema of both tables.
        table: the live table's name.
        stage: the staging table's name (same columns, any order of rows, unique keys).

    Returns:
        One statement whose single row is ``(rows inserted, rows updated)`` (bigints).

    Raises:
        ValueError: the table has no primary key (nothing to match rows on).
    """
    if not spec.primary_key:
        raise ValueError(f"{spec.qualified_name} has no primary key to merge on")
    q = POSTGRES.quote
    columns = [c for c in spec.written_columns]
    keys = set(spec.primary_key)
    values = [c for c in columns if c not in keys]
    names = ", ".join(q(c) for c in columns)
    conflict = ", ".join(q(c) for c in spec.primary_key)
    if values:
        sets = ", ".join(f"{q(c)} = EXCLUDED.{q(c)}" for c in values)
        old = ", ".join(f"d.{q(c)}" for c in values)
        new = ", ".join(f"EXCLUDED.{q(c)}" for c in values)
        action = f"DO UPDATE SET {sets} WHERE ROW({old}) IS DISTINCT FROM ROW({new})"
    else:
        action = "DO NOTHING"
    return (
        f"WITH merged AS (INSERT INTO {POSTGRES.qualified(schema, table)} AS d ({names}) "
        f"SELECT {names} FROM {POSTGRES.qualified(schema, stage)} "
        f"ON CONFLICT ({conflict}) {action} RETURNING (xmax = 0) AS inserted) "
        "SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM merged"
    )


def delete_sql(spec: TableSpec, schema: str, table: str, deletes: str) -> str:
    """The delete of the keys listed in ``schema.deletes`` (the primary-key columns only) from
    ``schema.table``: one statement whose single row is the count of rows deleted.

    Raises:
        ValueError: the table has no primary key.
    """
    if not spec.primary_key:
        raise ValueError(f"{spec.qualified_name} has no primary key to merge on")
    q = POSTGRES.quote
    on = " AND ".join(f"d.{q(k)} = x.{q(k)}" for k in spec.primary_key)
    return (
        f"WITH gone AS (DELETE FROM {POSTGRES.qualified(schema, table)} AS d USING {POSTGRES.qualified(schema, deletes)} "
        f"AS x WHERE {on} RETURNING 1) SELECT count(*) FROM gone"
    )
