"""SQL Server target: database and tables from the mapped T-SQL DDL, rows through chunked
``executemany`` of multi-row ``INSERT ... VALUES`` statements over pymssql.

One copy unit is one transaction on one connection (pymssql with ``autocommit=False``)::

    TRUNCATE TABLE t; SET IDENTITY_INSERT t ON      -- begin_unit
    INSERT INTO t (...) VALUES (...), (...), ...    -- write_batches, chunks of chunk_rows(columns)
    SELECT COUNT_BIG(*) FROM t                      -- commit_unit: count check
    SET IDENTITY_INSERT t OFF; COMMIT
    PK, indexes, DBCC CHECKIDENT (t, RESEED, max)   -- finish_table

``TRUNCATE TABLE`` is transactional in SQL Server, so a failed unit rolls back to the previous rows
and a retry replaces them: the unit is idempotent. pymssql substitutes parameters on the client
(``_mssql._quote_simple_value``), so every value is turned into an exact literal first by
:func:`mssql_convert.batch_to_params` (binary as ``bytearray`` -> ``0x..``). Each statement holds at
most ``min(1000, floor(2099 / columns))`` rows (:func:`mssql_convert.chunk_rows`) and about
``statement_bytes`` bytes of SQL text.

"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from include.replication.core.catalog import ForeignKeySpec, TableSpec
from include.replication.core.checks import check_batch
from include.replication.core.config import MiB
from include.replication.core.ddl import (
    STAGE_SUFFIX,
    build_keys_sql,
    count_sql,
    create_table_sql,
    drop_keys_sql,
    foreign_key_sql,
    primary_key_name,
    primary_key_sql,
    reproducible,
)
from include.replication.core.dialect import Dialect
from include.replication.core.endpoint import Endpoint
from include.replication.core.errors import ConfigurationError, ReplicationError, TargetError, ValidationError
from include.replication.core.keyranges import KeyRange, range_predicate
from include.replication.core.locks import lock_resource
from include.replication.core.protocols import Closing
from include.replication.dialects.base import dialect as dialect_named
from include.replication.dialects.mssql.bulk import bulk_columns, writable, write_rows_bulk
from include.replication.dialects.mssql.connect import connect_mssql, connect_pytds, is_transient, write_method
from include.replication.dialects.mssql.convert import batch_to_params, chunk_rows, param_bytes, plan_chunks, write_plan
from include.replication.dialects.mssql.dialect import MSSQL
from include.replication.dialects.mssql.merge import delete_sql as merge_delete_sql
from include.replication.dialects.mssql.merge import insert_sql as merge_insert_sql
from include.replication.dialects.mssql.merge import merge_batch_sql
from include.replication.dialects.mssql.merge import update_sql as merge_update_sql

__all__ = [
    "MssqlTarget",
    "insert_sql",
    "identity_insert_sql",
    "checkident_sql",
    "create_database_sql",
    "create_schema_sql",
    "drop_table_sql",
    "write_rows",
    "DEFAULT_STATEMENT_BYTES",
]

log = logging.getLogger(__name__)

_GRANTS_SQL = """
SELECT pe.permission_name, pe.state_desc, pr.name
FROM sys.database_permissions AS pe
JOIN sys.database_principals AS pr ON pr.principal_id = pe.grantee_principal_id
WHERE pe.class = 1 AND pe.major_id = OBJECT_ID(%s) AND pe.minor_id = 0
"""
"""Permissions granted or denied on the table (Babelfish returns none: its grants are not visible)."""

_REFERENCING_FKS_SQL = """
SELECT QUOTENAME(OBJECT_SCHEMA_NAME(f.parent_object_id)) + '.' + QUOTENAME(OBJECT_NAME(f.parent_object_id)), f.name,
       pc.name, rc.name
FROM sys.foreign_keys AS f
JOIN sys.foreign_key_columns AS k ON k.constraint_object_id = f.object_id
JOIN sys.columns AS pc ON pc.object_id = k.parent_object_id AND pc.column_id = k.parent_column_id
JOIN sys.columns AS rc ON rc.object_id = k.referenced_object_id AND rc.column_id = k.referenced_column_id
WHERE f.referenced_object_id = OBJECT_ID(%s) AND f.parent_object_id <> f.referenced_object_id
ORDER BY f.name, k.constraint_column_id
"""
"""Foreign keys of other tables referencing the table (table, name, column, referenced column)."""

_DEPENDENT_VIEWS_SQL = """
SELECT DISTINCT QUOTENAME(OBJECT_SCHEMA_NAME(d.referencing_id)) + '.' + QUOTENAME(OBJECT_NAME(d.referencing_id))
FROM sys.sql_expression_dependencies AS d
JOIN sys.views AS v ON v.object_id = d.referencing_id
WHERE d.referenced_id = OBJECT_ID(%s)
"""
"""Views reading the table (refreshed with sp_refreshview after a swap)."""

UNIT_LOCK_WAIT_MS = 3_600_000
"""How long a copy unit waits for another copy of the same unit to commit (milliseconds)."""

DEFAULT_STATEMENT_BYTES = 32 * MiB
"""Budget of SQL text per INSERT statement (bytes); a larger single row is sent alone."""


def _literal(text: str) -> str:
    return "N'" + text.replace("'", "''") + "'"


def _placeholder_safe(sql: str, what: str) -> str:
    # pymssql treats every %s / %d in the statement as a placeholder and has no escape for it
    if "%s" in sql or "%d" in sql:
        raise ConfigurationError(f"{what} contains '%s' or '%d', which pymssql would read as a parameter placeholder")
    return sql


def insert_sql(
    table: str, schema: str, columns: Sequence[str], rows: int, placeholders: Sequence[str] | None = None
) -> str:
    """``INSERT INTO [schema].[table] ([c1], ...) VALUES (%s, ...), ...`` for ``rows`` rows.

    Args:
        table: target table name.
        schema: target schema.
        columns: column names in order.
        rows: rows in the VALUES list (1..1000).
        placeholders: each column's parameter SQL (``%s`` or ``CAST(%s AS datetime2(7))``, from
            :func:`convert.write_plan`); default ``%s`` for every column.

    Raises:
        ConfigurationError: an identifier contains ``%s``/``%d`` (pymssql placeholders), or
            ``rows`` is outside 1..1000.
    """
    if not 1 <= rows <= 1000:
        raise ConfigurationError(f"a VALUES list holds 1..1000 rows, got {rows}", table=f"{schema}.{table}")
    head = f"INSERT INTO {MSSQL.qualified(schema, table)} ({', '.join(MSSQL.quote(c) for c in columns)}) VALUES "
    _placeholder_safe(head, f"table {schema}.{table}")
    marks = list(placeholders) if placeholders is not None else ["%s"] * len(columns)
    if len(marks) != len(columns) or any(m.count("%s") != 1 for m in marks):
        raise ConfigurationError(f"one %s placeholder per column expected, got {marks}", table=f"{schema}.{table}")
    one = "(" + ", ".join(marks) + ")"
    return head + ", ".join([one] * rows)


def identity_insert_sql(table: str, schema: str, on: bool) -> str:
    """``SET IDENTITY_INSERT [schema].[table] ON|OFF``."""
    return f"SET IDENTITY_INSERT {MSSQL.qualified(schema, table)} {'ON' if on else 'OFF'}"


def checkident_sql(table: str, schema: str, value: int) -> str:
    """``DBCC CHECKIDENT ('[schema].[table]', RESEED, value)``: the next identity becomes
    ``value + increment``.

    The name is a plain (not ``N'...'``) literal: Babelfish mis-parses ``N'[dbo].[t]'`` there
    (it reads the N as part of the schema name), and SQL Server accepts both forms.
    """
    name = MSSQL.qualified(schema, table).replace("'", "''")
    return f"DBCC CHECKIDENT ('{name}', RESEED, {int(value)})"


def create_database_sql(database: str) -> str:
    """``IF DB_ID(N'db') IS NULL CREATE DATABASE [db]`` (run in autocommit on ``master``)."""
    return f"IF DB_ID({_literal(database)}) IS NULL CREATE DATABASE {MSSQL.quote(database)}"


def create_schema_sql(schema: str) -> str:
    """``IF SCHEMA_ID(N's') IS NULL EXEC(N'CREATE SCHEMA [s]')`` (CREATE SCHEMA must start a batch)."""
    inner = f"CREATE SCHEMA {MSSQL.quote(schema)}"
    return f"IF SCHEMA_ID({_literal(schema)}) IS NULL EXEC({_literal(inner)})"


def drop_table_sql(table: str, schema: str) -> str:
    """``DROP TABLE IF EXISTS [schema].[table]`` (SQL Server 2016+)."""
    return f"DROP TABLE IF EXISTS {MSSQL.qualified(schema, table)}"


def write_rows(
    cursor: Any,
    spec: TableSpec,
    batch: pa.RecordBatch,
    *,
    schema: str,
    table: str | None = None,
    statement_bytes: int = DEFAULT_STATEMENT_BYTES,
) -> int:
    """Write one RecordBatch through ``cursor.executemany`` in chunks.

    Rows are cut into chunks of at most :func:`chunk_rows` rows and about ``statement_bytes``
    bytes of literal text; consecutive chunks of the same row count share one ``executemany`` call
    whose parameter sequence holds one flattened tuple per chunk (one multi-row INSERT each).

    Args:
        cursor: a DB-API cursor (pymssql) inside the unit's transaction.
        spec: the table.
        batch: RecordBatch with ``arrow_schema(spec)``.
        schema: target schema.
        table: target table name (default ``spec.name``).
        statement_bytes: SQL text budget per statement (bytes).

    Returns:
        Rows written (``batch.num_rows``); 0 rows makes no call.

    Raises:
        DataError: a value SQL Server cannot hold (NUL in text, too long, NaN), naming the key.
        ConfigurationError: identifiers unusable with pymssql placeholders.
    """
    if batch.num_rows == 0:
        return 0
    check_batch(spec, batch, MSSQL)
    spec, narrowed = writable(spec, batch)
    batch = narrowed if narrowed is not None else batch
    plans = write_plan(spec)
    rows = batch_to_params(spec, batch, plans)
    names = spec.column_names
    placeholders = [p.placeholder for p in plans]
    limit = chunk_rows(len(names))
    chunks = plan_chunks([param_bytes(r) for r in rows], limit, statement_bytes)
    i = 0
    while i < len(chunks):
        size = chunks[i][1] - chunks[i][0]
        j = i
        seq = []
        while j < len(chunks) and chunks[j][1] - chunks[j][0] == size:
            start, stop = chunks[j]
            seq.append(tuple(v for row in rows[start:stop] for v in row))
            j += 1
        cursor.executemany(insert_sql(table or spec.name, schema, names, size, placeholders), seq)
        i = j
    return len(rows)


class MssqlTarget(Closing):
    """A SQL Server database written through pymssql (implements :class:`core.protocols.Target`).

    Tables go to the endpoint's schema (default ``dbo``) under the source table's name. Text
    columns of tables copied from a case-sensitive source (PostgreSQL) get the case- and
    accent-sensitive collation ``MSSQL.case_sensitive_collation``.

    Args:
        endpoint: a ``mssql`` endpoint; option ``statement_mib`` (SQL text per INSERT, MiB) is read
            by name besides the driver options of :func:`connect.connect_arguments`.

    Raises:
        TargetError: the connection failed (retryable).
    """

    dialect: Dialect = MSSQL

    def __init__(self, endpoint: Endpoint, *, staging: bool = False, key_suffix: str = "") -> None:
        self.endpoint = endpoint
        self.schema = endpoint.schema or MSSQL.default_schema
        self.staging = staging
        self.suffix = STAGE_SUFFIX if staging else ""
        self.key_suffix = key_suffix
        try:
            statement_mib = float(endpoint.options.get("statement_mib", DEFAULT_STATEMENT_BYTES / MiB))
        except ValueError:
            raise ConfigurationError(f"statement_mib must be a number of MiB, got {endpoint.options['statement_mib']!r}") from None
        if statement_mib <= 0:
            raise ConfigurationError(f"statement_mib must be > 0, got {statement_mib}")
        self.statement_bytes = int(statement_mib * MiB)
        self.write_method = write_method(endpoint)
        self._written_ids: tuple[int, int] | None = None
        self._database_checked = False
        self._identity_on: str | None = None
        self._babelfish: bool | None = None
        self._conn: Any = None

    # -- helpers -------------------------------------------------------------------------------
    def _connection(self) -> Any:
        """The session, opened on first use in autocommit mode with ``SET XACT_ABORT ON``:
        transactions are explicit (``BEGIN``/``COMMIT``/``ROLLBACK TRANSACTION``), and any error
        inside one rolls all of it back, the same on SQL Server and Babelfish (where some errors
        end the transaction by themselves)."""
        if self._conn is None:
            self._ensure_database()
            try:
                if self.write_method == "bulk_copy":
                    conn = connect_pytds(self.endpoint)
                else:
                    conn = connect_mssql(self.endpoint, autocommit=True)
            except Exception as exc:
                raise TargetError(f"cannot connect to {self.endpoint.describe()}: {exc}", retryable=is_transient(exc)) from exc
            try:
                cur = conn.cursor()
                cur.execute("SET XACT_ABORT ON")
                cur.close()
            except Exception as exc:
                conn.close()
                raise TargetError(f"cannot set up the session on {self.endpoint.describe()}: {exc}", retryable=is_transient(exc)) from exc
            self._conn = conn
        return self._conn

    def _ensure_database(self) -> None:
        if self._database_checked:
            return
        try:
            conn = connect_mssql(self.endpoint, autocommit=True, database="master")
        except Exception as exc:
            raise TargetError(f"cannot connect to {self.endpoint.describe()} (master): {exc}", retryable=is_transient(exc)) from exc
        try:
            cur = conn.cursor()
            cur.execute(create_database_sql(self.endpoint.database))
            cur.close()
        except Exception as exc:
            raise TargetError(f"cannot create database {self.endpoint.database}: {exc}", retryable=is_transient(exc)) from exc
        finally:
            conn.close()
        self._database_checked = True

    def _tname(self, spec: TableSpec) -> str:
        """The physical table this target writes for ``spec`` (the staging copy's name when staging)."""
        return spec.name + self.suffix

    def _name(self, spec: TableSpec) -> str:
        return MSSQL.qualified(self.schema, self._tname(spec))

    def _is_babelfish(self) -> bool:
        """Whether the server is Babelfish (``@@VERSION``), which cannot rename constraints or
        indexes: its staging keys then alternate between two suffixes instead."""
        if self._babelfish is None:
            self._babelfish = "babelfish" in str(self._run("SELECT @@VERSION")[0][0]).lower()
        return self._babelfish

    def _run(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one batch; return the rows of its last result set (a batch such as ``DECLARE ...;
        EXEC ...; SELECT @r`` yields several with python-tds)."""
        cur = self._connection().cursor()
        try:
            if params:
                cur.execute(sql, tuple(params))
            else:
                cur.execute(sql)
            rows: list[tuple[Any, ...]] = []
            while True:
                if cur.description:
                    rows = [tuple(r) for r in cur.fetchall()]
                if not cur.nextset():
                    return rows
        finally:
            cur.close()

    @contextlib.contextmanager
    def _transaction(self, what: str, table: str | None = None) -> Iterator[None]:
        """One explicit transaction: committed when the block ends, rolled back on any error
        (a driver error becomes a ``TargetError`` saying ``what`` failed)."""
        self._run("BEGIN TRANSACTION")
        try:
            yield
            self._run("COMMIT TRANSACTION")
        except ReplicationError:
            self.rollback_unit()
            raise
        except Exception as exc:
            self.rollback_unit()
            raise TargetError(f"{what}: {exc}", table=table, retryable=is_transient(exc)) from exc

    def _create_sql(self, spec: TableSpec) -> str:
        return create_table_sql(spec, MSSQL, self.schema, table_name=self._tname(spec), source=dialect_named(spec.dialect))

    def _identity(self, spec: TableSpec, on: bool) -> None:
        if spec.identity is None:
            return
        self._run(identity_insert_sql(self._tname(spec), self.schema, on))
        self._identity_on = self._tname(spec) if on else None

    # -- protocol --------------------------------------------------------------------------------
    def execute(self, sql: str, params: Sequence[object] = ()) -> list[tuple[object, ...]]:
        """Run one statement (``%s`` placeholders) in its own transaction; return its rows.

        Raises:
            TargetError: the statement failed (rolled back).
        """
        with self._transaction("statement failed"):
            return self._run(sql, params)
        raise AssertionError("unreachable")  # pragma: no cover - the context manager re-raises

    def prepare_table(self, spec: TableSpec) -> None:
        """Create the database and schema if missing; drop and re-create the table without
        primary key or indexes (``IDENTITY(seed, increment)`` of the source kept).

        Raises:
            UnsupportedTypeError: a column SQL Server cannot hold exactly.
            TargetError: DDL failed.
        """
        ddl = self._create_sql(spec)
        self._run(create_schema_sql(self.schema))
        with self._transaction("cannot create table", spec.qualified_name):
            self._run(drop_table_sql(self._tname(spec), self.schema))
            self._run(ddl)
        log.info("created %s.%s", self.schema, self._tname(spec))

    def ensure_table(self, spec: TableSpec) -> None:
        """Create the table with its primary key if it does not exist; keep its rows if it does.

        Raises:
            TargetError: DDL failed.
        """
        ddl = self._create_sql(spec)
        pk = primary_key_sql(spec, MSSQL, self.schema)
        body = ddl + (";\n" + pk if pk else "")
        sql = f"IF OBJECT_ID({_literal(self._name(spec))}, N'U') IS NULL EXEC({_literal(body)})"
        self._run(create_schema_sql(self.schema))
        with self._transaction("cannot create table", spec.qualified_name):
            self._run(sql)

    def clone(self, schema: str | None = None) -> MssqlTarget:
        """A second target on its own connection (one per parallel key-range unit), writing into
        ``schema`` when given (a ``schema.table`` entry's target schema)."""
        endpoint = dataclasses.replace(self.endpoint, schema=schema) if schema else self.endpoint
        twin = MssqlTarget(endpoint, staging=self.staging, key_suffix=self.key_suffix)
        twin._database_checked = self._database_checked
        return twin

    def _lock_name(self, spec: TableSpec) -> str:
        return f"{self.endpoint.database}.{self.schema}.{spec.name}"

    def _applock(self, resource: str, owner: str, wait_ms: int, *, shared: bool = False) -> bool:
        """``sp_getapplock`` in exclusive (or ``shared``) mode; True when granted (status >= 0)."""
        mode = "Shared" if shared else "Exclusive"
        sql = (f"DECLARE @r int; EXEC @r = sp_getapplock @Resource = %s, @LockMode = '{mode}', "
               f"@LockOwner = '{owner}', @LockTimeout = {int(wait_ms)}; SELECT @r")
        return int(self._run(sql, (resource,))[0][0]) >= 0

    def _stage_key_suffix(self, spec: TableSpec) -> str:
        """The suffix of the staging copy's key names. SQL Server renames them to the live names at
        the swap; Babelfish cannot rename constraints, so its live keys keep a staging suffix and the
        next staging copy takes the other of two (constraint names are unique in a schema)."""
        if not self._is_babelfish():
            return STAGE_SUFFIX
        names = self._run("SELECT kc.name FROM sys.key_constraints kc WHERE kc.parent_object_id = OBJECT_ID(%s) "
                          "AND kc.type = 'PK'", (MSSQL.qualified(self.schema, spec.name),))
        taken = str(names[0][0]).lower() if names else ""
        return STAGE_SUFFIX + "2" if taken.endswith(STAGE_SUFFIX.lower()) else STAGE_SUFFIX

    def add_foreign_keys(self, spec: TableSpec, keys: Sequence[ForeignKeySpec]) -> None:
        """Create the foreign keys the table lacks (checked as they are added), and re-check the ones
        a swap re-added ``WITH NOCHECK``.

        Raises:
            TargetError: the loaded rows violate one (permanent; names it).
        """
        for fk in keys:
            with self._transaction(f"foreign key {fk.name} -> {fk.ref_table} failed", f"{self.schema}.{spec.name}"):
                state = self._run("SELECT is_not_trusted FROM sys.foreign_keys WHERE parent_object_id = OBJECT_ID(%s) "
                                  "AND name = %s", (self._name(spec), fk.name))
                if not state:
                    self._run(foreign_key_sql(spec, fk, MSSQL, self.schema))
                elif state[0][0]:
                    self._run(f"ALTER TABLE {self._name(spec)} WITH CHECK CHECK CONSTRAINT {MSSQL.quote(fk.name)}")

    def discard(self, spec: TableSpec) -> None:
        """Drop this target's physical table of ``spec`` (a failed staging copy); never raises:
        a broken session is replaced by a fresh one, and a failure is logged."""
        for attempt in range(2):
            try:
                if attempt and self._conn is not None:
                    self._discard()
                self.rollback_unit()
                self._run(drop_table_sql(self._tname(spec), self.schema))
                return
            except Exception:  # noqa: BLE001 - cleanup on a failure path
                log.debug("dropping %s failed", self._name(spec), exc_info=True)
        log.warning("could not drop %s; the next copy of the table replaces it", self._name(spec))

    def stage(self, spec: TableSpec) -> MssqlTarget:
        """A target on its own connection that writes the staging copy of ``spec``:
        ``<table>__stage`` in the same schema, keys named ``<key>__stage`` until :meth:`swap_in`.

        Raises:
            TargetError: the catalog could not be read.
        """
        with self._transaction("cannot read the live table's keys", spec.qualified_name):
            suffix = self._stage_key_suffix(spec)
        staged = MssqlTarget(self.endpoint, staging=True, key_suffix=suffix)
        staged._database_checked = self._database_checked
        return staged

    @contextlib.contextmanager
    def lock_table(self, spec: TableSpec, holder: str, wait_s: float = 60.0, *, shared: bool = False) -> Iterator[None]:
        """Hold the table lock of ``spec`` for the block: ``sp_getapplock`` owned by this session
        (``@LockMode = 'Shared'`` when ``shared``), waiting up to ``wait_s`` seconds.

        Raises:
            TargetError: still held after ``wait_s`` (retryable).
        """
        resource = lock_resource(self._lock_name(spec))
        try:
            granted = self._applock(resource, "Session", int(wait_s * 1000), shared=shared)
        except Exception as exc:
            self.rollback_unit()
            raise TargetError(f"cannot take the table lock: {exc}", table=spec.qualified_name,
                              retryable=is_transient(exc)) from exc
        if not granted:
            raise TargetError(f"the table is being copied by another session; waited {wait_s:.0f} s "
                              f"(sp_getapplock {resource!r}); this copy is {holder!r}",
                              table=f"{self.schema}.{spec.name}", retryable=True)
        try:
            yield
        finally:
            try:
                self._run("EXEC sp_releaseapplock @Resource = %s, @LockOwner = 'Session'", (resource,))
            except Exception:  # noqa: BLE001 - a dead session has released it already
                log.debug("releasing the table lock failed (the session ended?)", exc_info=True)

    def check_table(self, spec: TableSpec) -> None:
        """For the ``truncate`` load mode: the live table must exist with exactly the columns the
        mapped DDL would create (names, order, types, lengths, nullability).

        Raises:
            ConfigurationError: missing, or a column differs (permanent; names the column).
        """
        shape = ("SELECT c.name, t.name, c.max_length, c.precision, c.scale, c.is_nullable FROM sys.columns c "
                 "JOIN sys.types t ON t.user_type_id = c.user_type_id WHERE c.object_id = OBJECT_ID(%s) ORDER BY c.column_id")
        live_name = MSSQL.qualified(self.schema, spec.name)
        probe = MssqlTarget(self.endpoint)
        probe.suffix = "__check"
        try:
            self.rollback_unit()
            if self._run("SELECT OBJECT_ID(%s, 'U')", (live_name,))[0][0] is None:
                raise ConfigurationError("load_mode truncate needs the table to exist in the target; "
                                         "use swap or drop for a first load", table=f"{self.schema}.{spec.name}")
            self._run("BEGIN TRANSACTION")
            live = [tuple(r) for r in self._run(shape, (live_name,))]
            self._run(probe._create_sql(spec))
            want = [tuple(r) for r in self._run(shape, (probe._name(spec),))]
        except ReplicationError:
            self.rollback_unit()
            raise
        except Exception as exc:
            self.rollback_unit()
            raise TargetError(f"cannot compare the table's columns: {exc}", table=spec.qualified_name,
                              retryable=is_transient(exc)) from exc
        self.rollback_unit()  # the probe table never stays
        for i in range(max(len(live), len(want))):
            got = live[i] if i < len(live) else None
            exp = want[i] if i < len(want) else None
            if (got and (str(got[0]).lower(), *got[1:])) != (exp and (str(exp[0]).lower(), *exp[1:])):
                raise ConfigurationError(
                    f"load_mode truncate: the existing table has {got} where the source maps to {exp} "
                    "(name, type, bytes, precision, scale, nullable); use swap or drop, or fix the table",
                    table=f"{self.schema}.{spec.name}", column=str((exp or got or ("?",))[0]),
                )

    def swap_in(self, spec: TableSpec) -> None:
        """Replace the live table with its loaded, keyed and counted staging copy, in one short
        transaction: rename the live table away and the staging copy in, drop the old copy, give
        the keys their live names (not on Babelfish, which cannot rename them), re-grant what was
        granted on the live table, refresh the views reading it. A failure rolls all of it back: the
        previous replica stays as it was.

        Raises:
            TargetError: the swap failed (on Babelfish a view on the table blocks dropping the old
                copy, as it cannot re-point views: permanent; use load_mode truncate).
        """
        live = MSSQL.qualified(self.schema, spec.name)
        old = spec.name + "__old"
        try:
            self.rollback_unit()
            key_suffix = self._stage_key_suffix(spec)
            grants = self._run(_GRANTS_SQL, (live,)) if self._run("SELECT OBJECT_ID(%s, 'U')", (live,))[0][0] else []
            views = self._run(_DEPENDENT_VIEWS_SQL, (live,)) if not self._is_babelfish() else []
            referencing: dict[tuple[str, str], list[tuple[str, str]]] = {}
            for table, name, col, ref_col in self._run(_REFERENCING_FKS_SQL, (live,)):
                referencing.setdefault((str(table), str(name)), []).append((str(col), str(ref_col)))
            self._run("BEGIN TRANSACTION")
            for table, name in referencing:  # re-added WITH NOCHECK on the new table below
                self._run(f"ALTER TABLE {table} DROP CONSTRAINT {MSSQL.quote(name)}")
            if self._run("SELECT OBJECT_ID(%s, 'U')", (live,))[0][0] is not None:
                self._run("EXEC sp_rename %s, %s, 'OBJECT'", (live, old))
            self._run("EXEC sp_rename %s, %s, 'OBJECT'", (MSSQL.qualified(self.schema, spec.name + STAGE_SUFFIX), spec.name))
            self._run(f"DROP TABLE IF EXISTS {MSSQL.qualified(self.schema, old)}")
            if not self._is_babelfish():
                if spec.primary_key:
                    self._run("EXEC sp_rename %s, %s, 'OBJECT'",
                              (MSSQL.qualified(self.schema, primary_key_name(spec, key_suffix)), primary_key_name(spec)))
                for ix in (i for i in spec.indexes if reproducible(spec, i, MSSQL)):
                    self._run("EXEC sp_rename %s, %s, 'INDEX'", (f"{live}.{MSSQL.quote(ix.name + key_suffix)}", ix.name))
            for permission, state, grantee in grants:
                verb = "DENY" if str(state).upper() == "DENY" else "GRANT"
                option = " WITH GRANT OPTION" if str(state).upper() == "GRANT_WITH_GRANT_OPTION" else ""
                self._run(f"{verb} {permission} ON {live} TO {MSSQL.quote(str(grantee))}{option}")
            for (table, name), pairs in referencing.items():
                cols = ", ".join(MSSQL.quote(c) for c, _ in pairs)
                refs = ", ".join(MSSQL.quote(r) for _, r in pairs)
                self._run(f"ALTER TABLE {table} WITH NOCHECK ADD CONSTRAINT {MSSQL.quote(name)} "
                          f"FOREIGN KEY ({cols}) REFERENCES {live} ({refs})")
            for (view,) in views:
                self._run("EXEC sp_refreshview %s", (str(view),))
            self._run("COMMIT TRANSACTION")
        except Exception as exc:
            self.rollback_unit()
            number = getattr(exc, "args", (None,))[0]
            hint = ("; another object (a view on Babelfish, a foreign key) depends on the table: use load_mode truncate"
                    if number == 3726 else "")
            raise TargetError(f"swapping the new copy in failed, the previous one is kept: {exc}{hint}",
                              table=f"{self.schema}.{spec.name}",
                              retryable=is_transient(exc) and number != 3726) from exc
        log.info("swapped %s in (%d grants kept, %d views refreshed)", live, len(grants), len(views))

    def begin_unit(self, spec: TableSpec, key_range: KeyRange | None = None, *, keep_keys: bool = False) -> None:
        """Start the unit's transaction and clear exactly the rows the unit will write; for a table
        with an identity column, ``SET IDENTITY_INSERT ... ON`` on this connection.

        Whole table (``key_range`` None): drop the primary key and secondary indexes if a previous
        attempt built them, then ``TRUNCATE TABLE`` (transactional in SQL Server). A key range:
        ``DELETE`` of that range only.

        Raises:
            TargetError: the table is missing or locked.
        """
        try:
            self.rollback_unit()  # nothing may be left open from an earlier unit on this session
            self._run("BEGIN TRANSACTION")
            self._applock(lock_resource(self._lock_name(spec), key_range, unit=True), "Transaction", UNIT_LOCK_WAIT_MS)
            if key_range is not None:
                self._run(f"DELETE FROM {self._name(spec)} WHERE {range_predicate(spec, key_range, MSSQL)}")
            else:
                if not keep_keys:  # a retry after finish_table; the truncate mode keeps the existing keys
                    for sql in drop_keys_sql(spec, MSSQL, self.schema, table_name=self._tname(spec),
                                             key_suffix=self.key_suffix):
                        self._run(sql)
                self._run(f"TRUNCATE TABLE {self._name(spec)}")
            self._identity(spec, True)
        except Exception as exc:
            self.rollback_unit()
            raise TargetError(f"cannot start copy unit: {exc}", table=spec.qualified_name, retryable=is_transient(exc)) from exc

    def clear_table(self, spec: TableSpec) -> None:
        """Drop the keys an earlier attempt built, ``TRUNCATE``, and commit (before parallel ranges).

        Raises:
            TargetError: the table is missing or locked.
        """
        self.begin_unit(spec)
        self.commit_unit(spec, 0)

    def write_batches(self, spec: TableSpec, batches: Iterable[pa.RecordBatch]) -> int:
        """Write the batches with chunked ``executemany`` inside the open unit.

        Returns:
            Rows written.

        Raises:
            DataError: a value SQL Server cannot hold unchanged (table, column, key).
            ReplicationError: whatever the batch iterator raised.
            TargetError: an INSERT failed for another reason.
        """
        started = time.monotonic()
        rows = 0
        columns = bulk_columns(writable(spec)[0]) if self.write_method == "bulk_copy" else None
        identity = spec.identity.column if spec.identity is not None else None
        lo: int | None = None
        hi: int | None = None
        cur = self._connection().cursor()
        try:
            for batch in batches:
                try:
                    if columns is not None:
                        rows += write_rows_bulk(cur, spec, batch, schema=self.schema, table=self._tname(spec), columns=columns)
                        if identity is not None and batch.num_rows:
                            bounds = pc.min_max(batch.column(identity)).as_py()
                            lo = bounds["min"] if lo is None else min(lo, bounds["min"])
                            hi = bounds["max"] if hi is None else max(hi, bounds["max"])
                    else:
                        rows += write_rows(cur, spec, batch, schema=self.schema, table=self._tname(spec),
                                           statement_bytes=self.statement_bytes)
                except ReplicationError:
                    raise
                except Exception as exc:
                    raise TargetError(f"{'bulk load' if columns else 'INSERT'} failed: {exc}", table=spec.qualified_name, retryable=is_transient(exc)) from exc
        finally:
            cur.close()
        self._written_ids = (lo, hi) if lo is not None and hi is not None else None
        log.info("wrote %s (%s): %d rows, %.2f s", spec.qualified_name, self.write_method, rows, time.monotonic() - started)
        return rows

    def commit_unit(self, spec: TableSpec, expected_rows: int, key_range: KeyRange | None = None) -> None:
        """Check ``COUNT_BIG(*) == expected_rows`` (of the key range, if any) inside the
        transaction, ``SET IDENTITY_INSERT OFF``, then ``COMMIT``.

        Raises:
            ValidationError: the count differs (rolled back; nothing is committed).
            TargetError: commit failed.
        """
        try:
            count = int(self._run(count_sql(MSSQL, self.schema, self._tname(spec), spec, key_range))[0][0])
        except Exception as exc:
            self.rollback_unit()
            raise TargetError(f"count check failed: {exc}", table=spec.qualified_name, retryable=is_transient(exc)) from exc
        if count != expected_rows:
            self.rollback_unit()
            raise ValidationError(
                f"target holds {count} rows after the load, expected {expected_rows}; rolled back",
                table=spec.qualified_name,
            )
        if self.write_method == "bulk_copy" and self._written_ids is not None and spec.identity is not None:
            # INSERT BULK keeps identity values under SET IDENTITY_INSERT ON; check it did
            col = MSSQL.quote(spec.identity.column)
            where = f" WHERE {range_predicate(spec, key_range, MSSQL)}" if key_range is not None else ""
            kept = tuple(self._run(f"SELECT MIN({col}), MAX({col}) FROM {self._name(spec)}{where}")[0])
            if kept != self._written_ids:
                self.rollback_unit()
                raise ValidationError(
                    f"the bulk load stored identity values {kept}, sent {self._written_ids}; rolled back "
                    "(use write_method executemany)", table=spec.qualified_name,
                )
        try:
            self._identity(spec, False)
            self._run("COMMIT TRANSACTION")
        except Exception as exc:
            self.rollback_unit()
            raise TargetError(f"commit failed: {exc}", table=spec.qualified_name, retryable=is_transient(exc)) from exc

    def execute_in_unit(self, sql: str) -> list[tuple[object, ...]]:
        """Run one statement inside the open unit's transaction (no commit); return its rows.

        Raises:
            TargetError: the statement failed (the unit is rolled back).
        """
        try:
            return list(self._run(sql))
        except Exception as exc:
            self.rollback_unit()
            raise TargetError(f"statement in the copy unit failed: {exc}", retryable=is_transient(exc)) from exc

    def merge_from_stage(
        self, spec: TableSpec, stage: TableSpec, *, then: Sequence[str] = (), deletes: TableSpec | None = None
    ) -> tuple[int, int, int]:
        """Upsert ``stage`` into the live table, delete the keys of ``deletes``
        (:func:`mssql.merge.delete_sql`), align the identity past inserted rows, run ``then``,
        commit; one transaction
        (``XACT_ABORT ON``: any error rolls all of it back), ``IDENTITY_INSERT`` on while rows are
        inserted. Microsoft SQL Server runs one ``MERGE`` (:func:`mssql.merge.merge_batch_sql`);
        Babelfish, which refuses ``MERGE``, runs ``UPDATE ... FROM ... JOIN`` of the rows that
        differ, then ``INSERT ... WHERE NOT EXISTS`` (:func:`mssql.merge.update_sql`,
        :func:`mssql.merge.insert_sql`).

        Returns:
            ``(rows inserted, rows updated, rows deleted)``.

        Raises:
            TargetError: a statement failed (rolled back).
        """
        live, staged = self._tname(spec), self._tname(stage)
        babelfish = self._is_babelfish()
        with self._transaction("merge failed", spec.qualified_name):
            self._applock(lock_resource(self._lock_name(spec), None, unit=True), "Transaction", UNIT_LOCK_WAIT_MS)
            if babelfish:
                update = merge_update_sql(spec, self.schema, live, staged)
                updated = int(self._run(update)[0][0]) if update else 0
                self._identity(spec, True)
                inserted = int(self._run(merge_insert_sql(spec, self.schema, live, staged))[0][0])
            else:
                self._identity(spec, True)
                inserted, updated = (int(v) for v in self._run(merge_batch_sql(spec, self.schema, live, staged))[0])
            self._identity(spec, False)
            if inserted:
                self._align_identity(spec)
            deleted = 0
            if deletes is not None:
                deleted = int(self._run(merge_delete_sql(spec, self.schema, live, self._tname(deletes)))[0][0])
            for sql in then:
                self._run(sql)
        log.info("merged %s into %s (%s): %d inserted, %d updated, %d deleted", staged, live,
                 "UPDATE + INSERT on Babelfish" if babelfish else "MERGE", inserted, updated, deleted)
        return inserted, updated, deleted

    def rollback_unit(self) -> None:
        """Roll back the open transaction, if any, and switch IDENTITY_INSERT off; never raises.

        A session that cannot even do that is closed, so the next use opens a fresh one instead
        of running on in a state nobody knows.
        """
        if self._conn is None:
            return
        try:
            self._run("IF @@TRANCOUNT > 0 ROLLBACK TRANSACTION")
            if self._identity_on is not None:
                self._run(identity_insert_sql(self._identity_on, self.schema, False))
                self._identity_on = None
        except Exception:  # connection already broken
            log.debug("rollback on a broken connection; discarding the session", exc_info=True)
            self._discard()

    def _discard(self) -> None:
        conn, self._conn, self._identity_on = self._conn, None, None
        try:
            conn.close()
        except Exception:  # noqa: BLE001 - best effort on a broken session
            log.debug("closing a broken session failed", exc_info=True)

    def finish_table(self, spec: TableSpec, *, build_keys: bool = True) -> None:
        """Primary key, secondary indexes, then ``DBCC CHECKIDENT (..., RESEED, max)`` so the next
        identity is ``max(Id) + increment`` (``min`` for a negative increment; the source's last
        value when it is further, so no Id the source already issued is reused).

        Raises:
            TargetError: a statement failed (e.g. duplicate keys when building the primary key).
        """
        with self._transaction("finishing the table failed", spec.qualified_name):
            if build_keys:
                for sql in build_keys_sql(spec, MSSQL, self.schema, table_name=self._tname(spec), key_suffix=self.key_suffix):
                    self._run(sql)
            self._align_identity(spec)

    def _align_identity(self, spec: TableSpec) -> None:
        """``DBCC CHECKIDENT (..., RESEED, max)`` inside the open transaction (``min`` for a
        negative increment; the source's last value when it is further); nothing without an identity."""
        if spec.identity is None:
            return
        agg = "MAX" if spec.identity.increment > 0 else "MIN"
        col = MSSQL.quote(spec.identity.column)
        current = self._run(f"SELECT {agg}({col}) FROM {self._name(spec)}")[0][0]
        values = [v for v in (current, spec.identity.last_value) if v is not None]
        if values:
            value = max(values) if spec.identity.increment > 0 else min(values)
            self._run(checkident_sql(self._tname(spec), self.schema, int(value)))

    def drop_keys(self, spec: TableSpec) -> None:
        """Drop the primary key and secondary indexes if built, in one committed transaction.

        Raises:
            TargetError: a statement failed (rolled back).
        """
        self.rollback_unit()
        with self._transaction("cannot drop the keys", spec.qualified_name):
            for sql in drop_keys_sql(spec, MSSQL, self.schema, table_name=self._tname(spec), key_suffix=self.key_suffix):
                self._run(sql)

    def count_rows(self, spec: TableSpec) -> int:
        """Exact ``COUNT_BIG(*)`` of the target table (rows).

        Raises:
            TargetError: the query failed.
        """
        try:
            return int(self._run(count_sql(MSSQL, self.schema, self._tname(spec)))[0][0])
        except Exception as exc:
            self.rollback_unit()
            raise TargetError(f"count failed: {exc}", table=spec.qualified_name, retryable=is_transient(exc)) from exc

    def existing_rows(self, spec: TableSpec) -> int | None:
        """Exact ``COUNT_BIG(*)`` of the table, or None when it does not exist (``OBJECT_ID``); reads only.

        Raises:
            TargetError: the query failed.
        """
        try:
            self.rollback_unit()
            if self._run("SELECT OBJECT_ID(%s, 'U')", (self._name(spec),))[0][0] is None:
                return None
            return int(self._run(count_sql(MSSQL, self.schema, self._tname(spec)))[0][0])
        except Exception as exc:
            self.rollback_unit()
            raise TargetError(f"cannot read the existing table: {exc}", table=f"{self.schema}.{spec.name}",
                              retryable=is_transient(exc)) from exc

    def upsert_rows(self, spec: TableSpec, key_columns: Sequence[str], batch: pa.RecordBatch) -> int:
        """Replace the rows whose ``key_columns`` match the batch's, in one transaction (audit).

        Returns:
            Rows written.

        Raises:
            TargetError: a statement failed (rolled back).
        """
        where = " AND ".join(f"{MSSQL.quote(k)} = %s" for k in key_columns)
        with self._transaction("upsert failed", spec.qualified_name):
            for row in batch.select(list(key_columns)).to_pylist():
                self._run(f"DELETE FROM {self._name(spec)} WHERE {where}", [row[k] for k in key_columns])
            cur = self._connection().cursor()
            try:
                self._identity(spec, True)
                if self.write_method == "bulk_copy":
                    write_rows_bulk(cur, spec, batch, schema=self.schema, table=self._tname(spec))
                else:
                    write_rows(cur, spec, batch, schema=self.schema, table=self._tname(spec),
                               statement_bytes=self.statement_bytes)
                self._identity(spec, False)
            finally:
                cur.close()
        return batch.num_rows

    def close(self) -> None:
        """Roll back anything open and close the connection. Idempotent."""
        if self._conn is not None:
            self.rollback_unit()
            if self._conn is not None:
                self._discard()
