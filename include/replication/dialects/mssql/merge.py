"""SQL Server upsert of a ``merge`` run: the staging table's rows into the live table.

Pure SQL generation (no driver). Microsoft SQL Server gets one ``MERGE`` statement
(:func:`merge_sql`; ``WITH (HOLDLOCK)`` so no concurrent insert slips between match and
insert), its ``OUTPUT $action`` collected in a table variable and counted. Babelfish 4.4 refuses
``MERGE`` ("'MERGE' is not currently supported in Babelfish") and ``UPDATE ... OUTPUT``, so the
target runs the equivalent pair in the same transaction there (:func:`update_sql`, then
:func:`insert_sql`), each counted with ``@@ROWCOUNT``.

Both forms update a matched row only when some column differs, NULL-safely
(:func:`differs_sql`), so a re-run of the same window updates nothing. Text compares under the
column's collation: a change of case only is seen when the column is case-sensitive (the target
gives text copied from PostgreSQL a case-sensitive collation); SQL Server's ``=`` ignores
trailing spaces, so a change of trailing spaces only is not seen.
"""

from __future__ import annotations

from include.replication.core.catalog import TableSpec
from include.replication.dialects.mssql.dialect import MSSQL

__all__ = ["differs_sql", "merge_sql", "merge_batch_sql", "update_sql", "insert_sql", "delete_sql"]


def _columns(spec: TableSpec) -> tuple[list[str], list[str]]:
    """(written columns, written columns outside the primary key).

    Raises:
        ValueError: the table has no primary key.
    """
    if not spec.primary_key:
        raise ValueError(f"{spec.qualified_name} has no primary key to merge on")
    columns = list(spec.written_columns)
    return columns, [c for c in columns if c not in set(spec.primary_key)]


def _on(spec: TableSpec) -> str:
    return " AND ".join(f"d.{MSSQL.quote(k)} = x.{MSSQL.quote(k)}" for k in spec.primary_key)


def differs_sql(columns: list[str], old: str = "d", new: str = "x") -> str:
    """``(d.[a] <> x.[a] OR (d.[a] IS NULL AND x.[a] IS NOT NULL) OR (d.[a] IS NOT NULL AND x.[a]
    IS NULL)) OR ...``: true when any of ``columns`` differs between the aliases, NULL-safely;
    ``1 = 0`` for no columns."""
    if not columns:
        return "1 = 0"
    parts = []
    for c in columns:
        a, b = f"{old}.{MSSQL.quote(c)}", f"{new}.{MSSQL.quote(c)}"
        parts.append(f"({a} <> {b} OR ({a} IS NULL AND {b} IS NOT NULL) OR ({a} IS NOT NULL AND {b} IS NULL))")
    return " OR ".join(parts)


def merge_sql(spec: TableSpec, schema: str, table: str, stage: str, output: str | None = None) -> str:
    """The ``MERGE`` statement of ``schema.stage`` into ``schema.table`` (Microsoft SQL Server).

    Args:
        spec: the live table's catalog (primary key, written columns).
        schema: the schema of both tables.
        table: the live table's name.
        stage: the staging table's name (same columns, unique keys).
        output: a table variable (``@merged``) that ``OUTPUT $action INTO`` fills, or None for
            ``OUTPUT $action`` as a result set.

    Returns:
        One statement ending in ``;`` (``MERGE`` requires it); identity values are inserted as
        they are, so the caller switches ``IDENTITY_INSERT`` on around it.

    Raises:
        ValueError: the table has no primary key.
    """
    columns, values = _columns(spec)
    q = MSSQL.quote
    names = ", ".join(q(c) for c in columns)
    matched = (
        f" WHEN MATCHED AND ({differs_sql(values)}) THEN UPDATE SET {', '.join(f'{q(c)} = x.{q(c)}' for c in values)}"
        if values
        else ""
    )
    into = f" INTO {output}" if output else ""
    return (
        f"MERGE INTO {MSSQL.qualified(schema, table)} WITH (HOLDLOCK) AS d USING {MSSQL.qualified(schema, stage)} AS x "
        f"ON {_on(spec)}{matched} WHEN NOT MATCHED BY TARGET THEN INSERT ({names}) "
        f"VALUES ({', '.join(f'x.{q(c)}' for c in columns)}) OUTPUT $action{into};"
    )


def merge_batch_sql(spec: TableSpec, schema: str, table: str, stage: str) -> str:
    """:func:`merge_sql` in a batch whose last result set is ``(rows inserted, rows updated)``:
    ``DECLARE @merged TABLE (...); MERGE ... OUTPUT $action INTO @merged; SELECT ...``."""
    return (
        "DECLARE @merged TABLE ([action] nvarchar(10)); "
        + merge_sql(spec, schema, table, stage, output="@merged")
        + " SELECT COUNT(CASE WHEN [action] = N'INSERT' THEN 1 END), "
        "COUNT(CASE WHEN [action] = N'UPDATE' THEN 1 END) FROM @merged"
    )


def update_sql(spec: TableSpec, schema: str, table: str, stage: str) -> str | None:
    """Babelfish's first half: ``UPDATE d SET ... FROM table AS d INNER JOIN stage AS x ON <keys>
    WHERE <some column differs>; SELECT @@ROWCOUNT`` (rows updated), or None when every column
    is in the primary key (nothing to update).

    Raises:
        ValueError: the table has no primary key.
    """
    _, values = _columns(spec)
    if not values:
        return None
    q = MSSQL.quote
    sets = ", ".join(f"{q(c)} = x.{q(c)}" for c in values)
    return (
        f"UPDATE d SET {sets} FROM {MSSQL.qualified(schema, table)} AS d INNER JOIN {MSSQL.qualified(schema, stage)} "
        f"AS x ON {_on(spec)} WHERE {differs_sql(values)}; SELECT @@ROWCOUNT"
    )


def insert_sql(spec: TableSpec, schema: str, table: str, stage: str) -> str:
    """Babelfish's second half: ``INSERT INTO table (...) SELECT ... FROM stage AS x WHERE NOT
    EXISTS (SELECT 1 FROM table AS d WHERE <keys>); SELECT @@ROWCOUNT`` (rows inserted; the
    caller switches ``IDENTITY_INSERT`` on around it).

    Raises:
        ValueError: the table has no primary key.
    """
    columns, _ = _columns(spec)
    q = MSSQL.quote
    live = MSSQL.qualified(schema, table)
    return (
        f"INSERT INTO {live} ({', '.join(q(c) for c in columns)}) SELECT {', '.join(f'x.{q(c)}' for c in columns)} "
        f"FROM {MSSQL.qualified(schema, stage)} AS x WHERE NOT EXISTS (SELECT 1 FROM {live} AS d WHERE {_on(spec)}); "
        "SELECT @@ROWCOUNT"
    )


def delete_sql(spec: TableSpec, schema: str, table: str, deletes: str) -> str:
    """The delete of the keys listed in ``schema.deletes`` (the primary-key columns only):
    ``DELETE d FROM table AS d INNER JOIN deletes AS x ON <keys>; SELECT @@ROWCOUNT`` (rows
    deleted; the same on SQL Server and Babelfish).

    Raises:
        ValueError: the table has no primary key.
    """
    _columns(spec)
    return (
        f"DELETE d FROM {MSSQL.qualified(schema, table)} AS d INNER JOIN {MSSQL.qualified(schema, deletes)} AS x "
        f"ON {_on(spec)}; SELECT @@ROWCOUNT"
    )
