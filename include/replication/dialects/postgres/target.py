"""PostgreSQL target: tables from the mapped DDL, rows through ADBC bulk ingest (binary COPY).

One copy unit is one transaction on one connection: ``TRUNCATE`` (transactional in PostgreSQL),
``COPY ... FROM STDIN (FORMAT binary)`` of every batch through ``cursor.adbc_ingest``, a
``count(*)`` check, ``COMMIT``. A retry therefore replaces the table's rows, never adds to them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import re
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import pyarrow as pa

from include.replication.core.batching import row_key
from include.replication.core.catalog import ForeignKeySpec, TableSpec
from include.replication.core.checks import check_batch
from include.replication.core.ddl import (
    STAGE_SUFFIX,
    build_keys_sql,
    count_sql,
    create_table_sql,
    drop_keys_sql,
    foreign_key_sql,
    primary_key_name,
    reproducible,
)
from include.replication.core.dialect import Dialect
from include.replication.core.endpoint import Endpoint
from include.replication.core.errors import (
    ConfigurationError,
    DataError,
    ReplicationError,
    TargetError,
    ValidationError,
)
from include.replication.core.keyranges import KeyRange, range_predicate
from include.replication.core.locks import table_lock_key, unit_lock_key
from include.replication.core.protocols import Closing
from include.replication.core.typemap import adapt_batch, target_arrow_schema
from include.replication.dialects.base import dialect as dialect_named
from include.replication.dialects.postgres.connect import close_quietly, connect, is_transient, sqlstate
from include.replication.dialects.postgres.dialect import POSTGRES
from include.replication.dialects.postgres.merge import delete_sql, upsert_sql

__all__ = ["PostgresTarget"]

log = logging.getLogger(__name__)


_DEPENDENT_VIEWS_SQL = """
SELECT DISTINCT v.oid::regclass::text, pg_get_viewdef(v.oid)
FROM pg_depend d
JOIN pg_rewrite r ON r.oid = d.objid AND d.classid = 'pg_rewrite'::regclass
JOIN pg_class v ON v.oid = r.ev_class AND v.relkind = 'v'
WHERE d.refclassid = 'pg_class'::regclass AND d.refobjid = $1::regclass AND v.oid <> $1::regclass
"""
"""Views reading the table (name, definition); run with search_path = pg_catalog so every name in
the definition is schema-qualified."""

_REFERENCING_FKS_SQL = """
SELECT c.conrelid::regclass::text, c.conname, pg_get_constraintdef(c.oid)
FROM pg_constraint c WHERE c.contype = 'f' AND c.confrelid = $1::regclass AND c.conrelid <> $1::regclass
"""
"""Foreign keys of other tables referencing the table (table, name, definition with qualified names)."""

_OWNED_SEQUENCES_SQL = """
SELECT s.relname, a.attname FROM pg_depend d
JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
WHERE d.classid = 'pg_class'::regclass AND d.refobjid = $1::regclass AND d.deptype IN ('a', 'i')
ORDER BY a.attnum
"""
"""(sequence, column) of every sequence a table owns: identity (deptype ``i``) and serial (``a``)."""

_NOT_NULL_CONSTRAINTS_SQL = """
SELECT c.conname, a.attname FROM pg_constraint c
JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
WHERE c.conrelid = $1::regclass AND c.contype = 'n'
ORDER BY a.attnum
"""
"""(constraint, column) of a table's named NOT NULL constraints (PostgreSQL 18; none before)."""

_GRANTS_SQL = """
SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(r.rolname) END, a.privilege_type, a.is_grantable
FROM pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) a
LEFT JOIN pg_roles r ON r.oid = a.grantee
WHERE c.oid = $1::regclass AND a.grantee <> c.relowner
"""
"""Privileges granted on the table to others than its owner (grantee, privilege, grantable)."""

MAX_IDENTIFIER_BYTES = 63
"""PostgreSQL truncates longer identifiers (NAMEDATALEN - 1)."""

SENT_KEYS_KEPT = 16
"""Batches whose key columns the writer keeps while a COPY streams, to name the row a failure
reports by line number (PostgreSQL rejects a row soon after it arrives)."""

_COPY_CONTEXT = re.compile(r"COPY [^,]+, line (\d+)(?:, column ([^:\n]+))?")


def copy_error(spec: TableSpec, exc: BaseException, sent: Sequence[tuple[int, pa.RecordBatch]]) -> ReplicationError:
    """The error of a failed bulk ingest, with its cause: a value PostgreSQL rejected (SQLSTATE
    class 22 data exception or 23 integrity violation) becomes a permanent ``DataError`` naming
    the column and, from the ``CONTEXT: COPY t, line N, column c`` the server reports, the row's
    key; anything else a ``TargetError``, retryable when the SQLSTATE says a retry can help.

    Args:
        spec: the table.
        exc: the driver's exception.
        sent: ``(first row number, key columns)`` of the batches most recently sent.
    """
    text = str(exc)
    state = sqlstate(exc)
    match = _COPY_CONTEXT.search(text)
    column = match.group(2).strip() if match and match.group(2) else None
    key = None
    if match:
        row = int(match.group(1)) - 1  # COPY lines count from 1
        for first, keys in sent:
            if first <= row < first + keys.num_rows and keys.num_columns:
                key = row_key(spec, keys, row - first)
                break
        else:
            key = {"copy_row": row + 1}
    reason = text.split("\n")[0].replace("INVALID_DATA: [libpq] Failed to execute COPY statement: PGRES_FATAL_ERROR ", "")
    if state is not None and state[:2] in ("22", "23"):
        return DataError(f"PostgreSQL rejected the value (SQLSTATE {state}): {reason}", table=spec.qualified_name,
                         column=column, key=key)
    return TargetError(f"bulk ingest (COPY) failed: {text}", table=spec.qualified_name, column=column, key=key,
                       retryable=is_transient(exc))


class PostgresTarget(Closing):
    """A PostgreSQL database written through ADBC (implements :class:`core.protocols.Target`).

    Tables go to the endpoint's schema (default ``public``) under the source table's name.

    Args:
        endpoint: where the database is.

    Raises:
        TargetError: the connection failed (retryable).
    """

    dialect: Dialect = POSTGRES

    def __init__(self, endpoint: Endpoint, *, staging: bool = False) -> None:
        self.endpoint = endpoint
        self.schema = endpoint.schema or POSTGRES.default_schema
        self.staging = staging
        self.suffix = STAGE_SUFFIX if staging else ""
        self._conn: Any = None
        try:
            self._conn = connect(endpoint, autocommit=False)
        except Exception as exc:
            raise TargetError(f"cannot connect to {endpoint.describe()}: {exc}", retryable=is_transient(exc)) from exc

    # -- helpers -------------------------------------------------------------------------------
    def _tname(self, spec: TableSpec) -> str:
        """The physical table this target writes for ``spec`` (the staging copy's name when staging)."""
        name = spec.name + self.suffix
        if len(name.encode()) > MAX_IDENTIFIER_BYTES:
            raise ConfigurationError(
                f"the table name {name!r} is longer than PostgreSQL's {MAX_IDENTIFIER_BYTES}-byte identifiers; "
                "use load_mode truncate or drop", table=spec.qualified_name,
            )
        return name

    def _name(self, spec: TableSpec) -> str:
        return POSTGRES.qualified(self.schema, self._tname(spec))

    def _run(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._conn.cursor() as cur:
            cur.execute(sql, parameters=tuple(params) or None)
            try:
                return list(cur.fetchall())
            except Exception:  # statement without a result set
                return []

    def execute(self, sql: str, params: Sequence[object] = ()) -> list[tuple[object, ...]]:
        """Run one statement (``$1`` placeholders) and commit; return its rows.

        Raises:
            TargetError: the statement failed (the transaction is rolled back).
        """
        try:
            rows = self._run(sql, params)
            self._conn.commit()
            return rows
        except Exception as exc:
            self._conn.rollback()
            raise TargetError(f"statement failed: {exc}", retryable=is_transient(exc)) from exc

    # -- protocol --------------------------------------------------------------------------------
    def prepare_table(self, spec: TableSpec) -> None:
        """Create the schema if missing; drop and re-create the table without PK or indexes.

        Raises:
            UnsupportedTypeError: a column PostgreSQL cannot hold exactly.
            TargetError: DDL failed.
        """
        ddl = create_table_sql(spec, POSTGRES, self.schema, table_name=self._tname(spec), source=dialect_named(spec.dialect))
        try:
            self._run(f"CREATE SCHEMA IF NOT EXISTS {POSTGRES.quote(self.schema)}")
            self._run(f"DROP TABLE IF EXISTS {self._name(spec)}")
            self._run(ddl)
            self._conn.commit()
        except Exception as exc:
            self._conn.rollback()
            raise TargetError(f"cannot create table: {exc}", table=spec.qualified_name, retryable=is_transient(exc)) from exc
        log.info("created %s.%s", self.schema, self._tname(spec))

    def ensure_table(self, spec: TableSpec) -> None:
        """Create the table (with its primary key) if it does not exist; keep its rows if it does.

        Raises:
            TargetError: DDL failed.
        """
        ddl = create_table_sql(spec, POSTGRES, self.schema, table_name=self._tname(spec)).replace(
            "CREATE TABLE", "CREATE TABLE IF NOT EXISTS", 1)
        try:
            self._run(f"CREATE SCHEMA IF NOT EXISTS {POSTGRES.quote(self.schema)}")
            self._run(ddl)
            self._conn.commit()
        except Exception as exc:
            self._conn.rollback()
            raise TargetError(f"cannot create table: {exc}", table=spec.qualified_name, retryable=is_transient(exc)) from exc

    def clone(self, schema: str | None = None) -> PostgresTarget:
        """A second target on its own connection (one per parallel key-range unit), writing into
        ``schema`` when given (a ``schema.table`` entry's target schema)."""
        endpoint = dataclasses.replace(self.endpoint, schema=schema) if schema else self.endpoint
        return PostgresTarget(endpoint, staging=self.staging)

    def _lock_name(self, spec: TableSpec) -> str:
        return f"{self.endpoint.database}.{self.schema}.{spec.name}"

    @contextlib.contextmanager
    def lock_table(self, spec: TableSpec, holder: str, wait_s: float = 60.0, *, shared: bool = False) -> Iterator[None]:
        """Hold the table lock of ``spec`` (:mod:`core.locks`) for the block: a session-level
        ``pg_try_advisory_lock`` (``pg_try_advisory_lock_shared`` when ``shared``) on this target's
        connection, tried every second for ``wait_s`` seconds. The session's ``application_name``
        says who holds it, so a waiting copy can name it.

        Raises:
            TargetError: still held after ``wait_s`` (retryable; names the holder).
        """
        key = table_lock_key(self._lock_name(spec))
        deadline = time.monotonic() + wait_s
        try:
            self._conn.rollback()
            self._run("SELECT set_config('application_name', $1, false)", (holder[:63],))
            self._conn.commit()
            mode = "_shared" if shared else ""
            while not self._run(f"SELECT pg_try_advisory_lock{mode}($1)", (key,))[0][0]:
                self._conn.commit()
                if time.monotonic() >= deadline:
                    who = self._run(
                        "SELECT a.application_name, a.pid, a.backend_start FROM pg_locks l JOIN pg_stat_activity a "
                        "ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted "
                        "AND ((l.classid::bigint << 32) | l.objid::bigint) = $1 LIMIT 1", (key,))
                    self._conn.commit()
                    by = f"{who[0][0]!r} (backend pid {who[0][1]}, connected {who[0][2]})" if who else "another session"
                    raise TargetError(f"the table is being copied by {by}; waited {wait_s:.0f} s",
                                      table=f"{self.schema}.{spec.name}", retryable=True)
                time.sleep(1.0)
            self._conn.commit()
        except ReplicationError:
            raise
        except Exception as exc:
            self._conn.rollback()
            raise TargetError(f"cannot take the table lock: {exc}", table=spec.qualified_name,
                              retryable=is_transient(exc)) from exc
        try:
            yield
        finally:
            try:
                self._conn.rollback()
                self._run(f"SELECT pg_advisory_unlock{'_shared' if shared else ''}($1)", (key,))
                self._conn.commit()
            except Exception:  # noqa: BLE001 - a dead session has released it already
                log.debug("releasing the table lock failed (the session ended?)", exc_info=True)

    def check_table(self, spec: TableSpec) -> None:
        """For the ``truncate`` load mode: the live table must exist with exactly the columns the
        mapped DDL would create (names, order, types, nullability), so nothing is cut or cast.

        Raises:
            ConfigurationError: missing, or a column differs (permanent; names the column).
        """
        probe = f"{spec.name}__check"
        shape = ("SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull FROM pg_attribute a "
                 "WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum")
        try:
            self._conn.rollback()
            exists = self._run("SELECT to_regclass($1)", (self._name(spec),))[0][0]
            if exists is None:
                raise ConfigurationError("load_mode truncate needs the table to exist in the target; "
                                         "use swap or drop for a first load", table=f"{self.schema}.{spec.name}")
            live = self._run(shape, (self._name(spec),))
            self._run(create_table_sql(spec, POSTGRES, self.schema, table_name=probe))
            want = self._run(shape, (POSTGRES.qualified(self.schema, probe),))
        except ReplicationError:
            self._conn.rollback()
            raise
        except Exception as exc:
            self._conn.rollback()
            raise TargetError(f"cannot compare the table's columns: {exc}", table=spec.qualified_name,
                              retryable=is_transient(exc)) from exc
        finally:
            self._conn.rollback()  # the probe table never stays
        for i in range(max(len(live), len(want))):
            got = live[i] if i < len(live) else None
            exp = want[i] if i < len(want) else None
            if got != exp:
                raise ConfigurationError(
                    f"load_mode truncate: the existing table has {got} where the source maps to {exp} "
                    "(name, type, NOT NULL); use swap or drop, or fix the table", table=f"{self.schema}.{spec.name}",
                    column=(exp or got or ("?",))[0],
                )

    def swap_in(self, spec: TableSpec) -> None:
        """Replace the live table with its loaded, keyed and counted staging copy, in one short
        transaction: views on the live table are re-pointed at the new one (their definitions
        replayed with ``CREATE OR REPLACE VIEW``), its grants re-granted, the old copy dropped,
        the staging key names given the live names. A failure rolls all of it back: the previous
        replica, its grants and its views stay as they were.

        Raises:
            TargetError: the swap failed (a materialized view or another table's foreign key on the
                live table blocks dropping it: permanent; use load_mode truncate).
        """
        live, stage = POSTGRES.qualified(self.schema, spec.name), POSTGRES.qualified(self.schema, spec.name + STAGE_SUFFIX)
        old = spec.name + "__old"
        views: list[tuple[str, str]] = []
        grants: list[tuple[str, str, bool]] = []
        referencing: list[tuple[str, str, str]] = []
        try:
            self._conn.rollback()
            if self._run("SELECT to_regclass($1)", (live,))[0][0] is not None:
                self._run(f"LOCK TABLE {live} IN ACCESS EXCLUSIVE MODE")
                self._run("SET LOCAL search_path = pg_catalog")  # view text with every name qualified
                views = [(str(r[0]), str(r[1])) for r in self._run(_DEPENDENT_VIEWS_SQL, (live,))]
                grants = [(str(r[0]), str(r[1]), bool(r[2])) for r in self._run(_GRANTS_SQL, (live,))]
                referencing = [(str(r[0]), str(r[1]), str(r[2])) for r in self._run(_REFERENCING_FKS_SQL, (live,))]
                self._run("RESET search_path")
                for table, name, _ in referencing:  # re-added NOT VALID on the new table below
                    self._run(f"ALTER TABLE {table} DROP CONSTRAINT {POSTGRES.quote(name)}")
                self._run(f"ALTER TABLE {live} RENAME TO {POSTGRES.quote(old)}")
            self._run(f"ALTER TABLE {stage} RENAME TO {POSTGRES.quote(spec.name)}")
            for name, definition in views:
                self._run(f"CREATE OR REPLACE VIEW {name} AS {definition}")
            self._run(f"DROP TABLE IF EXISTS {POSTGRES.qualified(self.schema, old)}")
            if spec.primary_key:
                self._run(f"ALTER TABLE {live} RENAME CONSTRAINT {POSTGRES.quote(primary_key_name(spec, STAGE_SUFFIX))} "
                          f"TO {POSTGRES.quote(primary_key_name(spec))}")
            for ix in (i for i in spec.indexes if reproducible(spec, i, POSTGRES)):
                self._run(f"ALTER INDEX {POSTGRES.qualified(self.schema, ix.name + STAGE_SUFFIX)} "
                          f"RENAME TO {POSTGRES.quote(ix.name)}")
            self._drop_staging_names(spec, live)
            for grantee, privilege, grantable in grants:
                self._run(f"GRANT {privilege} ON {live} TO {grantee}{' WITH GRANT OPTION' if grantable else ''}")
            for table, name, definition in referencing:
                self._run(f"ALTER TABLE {table} ADD CONSTRAINT {POSTGRES.quote(name)} {definition} NOT VALID")
            self._conn.commit()
        except Exception as exc:
            self._conn.rollback()
            hint = "; a materialized view or another table's foreign key on it blocks the swap: use load_mode truncate"
            raise TargetError(f"swapping the new copy in failed, the previous one is kept: {exc}"
                              + (hint if sqlstate(exc) == "2BP01" else ""), table=f"{self.schema}.{spec.name}",
                              retryable=is_transient(exc) and sqlstate(exc) != "2BP01") from exc
        for table, name, _ in referencing:  # checked against the new rows outside the short swap
            try:
                self._run(f"ALTER TABLE {table} VALIDATE CONSTRAINT {POSTGRES.quote(name)}")
                self._conn.commit()
            except Exception as exc:  # noqa: BLE001 - the constraint stays, NOT VALID, and says so
                self._conn.rollback()
                log.warning("foreign key %s of %s on the new %s is not valid for its rows (kept NOT VALID: new rows are "
                            "checked): %s", name, table, live, exc)
        log.info("swapped %s in (%d views re-pointed, %d grants kept, %d foreign keys re-attached)", live, len(views),
                 len(grants), len(referencing))

    def _drop_staging_names(self, spec: TableSpec, live: str) -> None:
        """Inside the swap: give the swapped-in table's identity/serial sequences and NOT NULL
        constraints (PostgreSQL 18 names them) the names PostgreSQL gives a table created under the
        live name, ``<table>_<column>_seq`` and ``<table>_<column>_not_null``, instead of the
        staging table's. A name over 63 bytes (PostgreSQL's identifier limit, NAMEDATALEN - 1), or
        one already taken by another sequence, is left as it is."""
        prefix = spec.name + STAGE_SUFFIX
        sequences = self._run(_OWNED_SEQUENCES_SQL, (live,))
        for name, column in ((str(r[0]), str(r[1])) for r in sequences):
            wanted = f"{spec.name}_{column}_seq"
            if (name.startswith(prefix) and len(wanted.encode()) <= 63
                    and self._run("SELECT to_regclass($1)", (POSTGRES.qualified(self.schema, wanted),))[0][0] is None):
                self._run(f"ALTER SEQUENCE {POSTGRES.qualified(self.schema, name)} RENAME TO {POSTGRES.quote(wanted)}")
        for name, column in ((str(r[0]), str(r[1])) for r in self._run(_NOT_NULL_CONSTRAINTS_SQL, (live,))):
            wanted = f"{spec.name}_{column}_not_null"
            if name.startswith(prefix) and len(wanted.encode()) <= 63:
                self._run(f"ALTER TABLE {live} RENAME CONSTRAINT {POSTGRES.quote(name)} TO {POSTGRES.quote(wanted)}")

    def add_foreign_keys(self, spec: TableSpec, keys: Sequence[ForeignKeySpec]) -> None:
        """Create the foreign keys the table lacks (validated as they are added), and validate the
        ones a swap re-added ``NOT VALID``.

        Raises:
            TargetError: the loaded rows violate one (permanent; names it).
        """
        for fk in keys:
            try:
                self._conn.rollback()
                state = self._run("SELECT convalidated FROM pg_constraint WHERE conrelid = $1::regclass AND conname = $2",
                                  (self._name(spec), fk.name))
                if not state:
                    self._run(foreign_key_sql(spec, fk, POSTGRES, self.schema))
                elif not state[0][0]:
                    self._run(f"ALTER TABLE {self._name(spec)} VALIDATE CONSTRAINT {POSTGRES.quote(fk.name)}")
                self._conn.commit()
            except Exception as exc:
                self._conn.rollback()
                raise TargetError(f"foreign key {fk.name} -> {fk.ref_table} failed: {exc}", table=f"{self.schema}.{spec.name}",
                                  retryable=is_transient(exc)) from exc

    def discard(self, spec: TableSpec) -> None:
        """Drop this target's physical table of ``spec`` (a failed staging copy); never raises:
        a broken session is replaced by a fresh one, and a failure is logged."""
        for attempt in range(2):
            try:
                if attempt:
                    close_quietly(self._conn)
                    self._conn = connect(self.endpoint, autocommit=False)
                self._conn.rollback()
                self._run(f"DROP TABLE IF EXISTS {self._name(spec)}")
                self._conn.commit()
                return
            except Exception:  # noqa: BLE001 - cleanup on a failure path
                log.debug("dropping %s failed", self._name(spec), exc_info=True)
        log.warning("could not drop %s; the next copy of the table replaces it", self._name(spec))

    def stage(self, spec: TableSpec) -> PostgresTarget:
        """A target on its own connection that writes the staging copy of ``spec``:
        ``<table>__stage`` in the same schema, keys named ``<key>__stage`` until :meth:`swap_in`.

        Raises:
            ConfigurationError: the staging name would be longer than PostgreSQL's identifiers.
        """
        staged = PostgresTarget(self.endpoint, staging=True)
        staged._tname(spec)
        return staged

    def begin_unit(self, spec: TableSpec, key_range: KeyRange | None = None, *, keep_keys: bool = False) -> None:
        """Start the unit's transaction and clear exactly the rows the unit will write.

        Whole table (``key_range`` None): drop the primary key and secondary indexes if a previous
        attempt built them (so the load is fast and ``finish_table`` can rebuild them; not with
        ``keep_keys``, the ``truncate`` load mode's existing table), then ``TRUNCATE``, all inside
        the transaction. A key range: ``DELETE`` of that range only. Each unit holds the unit lock
        (:func:`core.locks.unit_lock_key`) until it commits, so two copies of the same unit never
        interleave.

        Raises:
            TargetError: the table is missing or locked.
        """
        try:
            self._conn.rollback()
            self._run("SELECT pg_advisory_xact_lock($1)", unit_lock_key(self._lock_name(spec), key_range))
            if key_range is not None:
                self._run(f"DELETE FROM {self._name(spec)} WHERE {range_predicate(spec, key_range, POSTGRES)}")
                return
            if not keep_keys:
                for sql in drop_keys_sql(spec, POSTGRES, self.schema, table_name=self._tname(spec), key_suffix=self.suffix):
                    self._run(sql)
            self._run(f"TRUNCATE TABLE {self._name(spec)}")
        except Exception as exc:
            self._conn.rollback()
            raise TargetError(f"cannot start copy unit: {exc}", table=spec.qualified_name, retryable=is_transient(exc)) from exc

    def clear_table(self, spec: TableSpec) -> None:
        """Drop the keys an earlier attempt built, ``TRUNCATE``, and commit (before parallel ranges,
        so the range units do not wait on the TRUNCATE's lock).

        Raises:
            TargetError: the table is missing or locked.
        """
        self.begin_unit(spec)
        try:
            self._conn.commit()
        except Exception as exc:
            self.rollback_unit()
            raise TargetError(f"cannot clear the table: {exc}", table=spec.qualified_name, retryable=is_transient(exc)) from exc

    def write_batches(self, spec: TableSpec, batches: Iterable[pa.RecordBatch]) -> int:
        """Bulk-ingest the batches with one binary ``COPY`` inside the open unit.

        Every batch is checked first (:func:`checks.check_batch`: NUL characters, lengths).

        Returns:
            Rows written.

        Raises:
            DataError: a value PostgreSQL cannot hold unchanged (table, column, key).
            ReplicationError: whatever the batch iterator raised (e.g. the reader's SourceError).
            TargetError: COPY failed for another reason.
        """
        written = list(spec.written_columns)  # generated columns are computed by PostgreSQL
        full = target_arrow_schema(spec, POSTGRES)
        schema = pa.schema([full.field(n) for n in written])
        project = len(written) != len(spec.columns)
        failure: list[BaseException] = []
        rows = 0
        sent: deque[tuple[int, pa.RecordBatch]] = deque(maxlen=SENT_KEYS_KEPT)  # (first row, key columns)
        keys = [c for c in spec.primary_key if c in spec.column_names]

        def checked() -> Iterator[pa.RecordBatch]:
            nonlocal rows
            try:
                for batch in batches:
                    check_batch(spec, batch, POSTGRES)
                    sent.append((rows, batch.select(keys)))
                    rows += batch.num_rows
                    adapted = adapt_batch(spec, batch, POSTGRES)
                    yield adapted.select(written) if project else adapted
            except BaseException as exc:  # surfaced below as the real error, not ADBC's
                failure.append(exc)
                raise

        reader = pa.RecordBatchReader.from_batches(schema, checked())
        try:
            with self._conn.cursor() as cur:
                cur.adbc_ingest(self._tname(spec), reader, mode="append", db_schema_name=self.schema)
        except Exception as exc:
            if failure:
                raise failure[0] from None
            if isinstance(exc, ReplicationError):
                raise
            raise copy_error(spec, exc, sent) from exc
        if failure:
            raise failure[0]
        return rows

    def commit_unit(self, spec: TableSpec, expected_rows: int, key_range: KeyRange | None = None) -> None:
        """Check ``count(*) == expected_rows`` (of the key range, if any) inside the transaction,
        then ``COMMIT``.

        Raises:
            ValidationError: the count differs (rolled back; nothing is committed).
            TargetError: commit failed.
        """
        count = int(self._run(count_sql(POSTGRES, self.schema, self._tname(spec), spec, key_range))[0][0])
        if count != expected_rows:
            self._conn.rollback()
            raise ValidationError(
                f"target holds {count} rows after the load, expected {expected_rows}; rolled back",
                table=spec.qualified_name,
            )
        try:
            self._conn.commit()
        except Exception as exc:
            raise TargetError(f"commit failed: {exc}", table=spec.qualified_name, retryable=is_transient(exc)) from exc

    def execute_in_unit(self, sql: str) -> list[tuple[object, ...]]:
        """Run one statement inside the open unit's transaction (no commit); return its rows.

        Raises:
            TargetError: the statement failed (the unit is rolled back).
        """
        try:
            return list(self._run(sql))
        except Exception as exc:
            self._conn.rollback()
            raise TargetError(f"statement in the copy unit failed: {exc}", retryable=is_transient(exc)) from exc

    def merge_from_stage(
        self, spec: TableSpec, stage: TableSpec, *, then: Sequence[str] = (), deletes: TableSpec | None = None
    ) -> tuple[int, int, int]:
        """Upsert ``stage`` into the live table with one ``INSERT ... ON CONFLICT DO UPDATE ... WHERE
        ... IS DISTINCT FROM`` (:func:`postgres.merge.upsert_sql`), delete the keys of ``deletes``
        (:func:`postgres.merge.delete_sql`), align the identity past inserted rows, run ``then``,
        commit; all in one transaction holding the table's unit lock.

        Returns:
            ``(rows inserted, rows updated, rows deleted)``.

        Raises:
            DataError: a value the live table refuses (SQLSTATE class 22 or 23; rolled back).
            TargetError: another failure (rolled back; retryable when the SQLSTATE says so).
        """
        try:
            self._conn.rollback()
            self._run("SELECT pg_advisory_xact_lock($1)", unit_lock_key(self._lock_name(spec), None))
            with self._conn.cursor() as cur:  # not _run: a failure may surface only when the row is fetched
                cur.execute(upsert_sql(spec, self.schema, self._tname(spec), self._tname(stage)))
                inserted, updated = cur.fetchone()
                deleted = 0
                if deletes is not None:
                    cur.execute(delete_sql(spec, self.schema, self._tname(spec), self._tname(deletes)))
                    (deleted,) = cur.fetchone()
            if inserted:
                self._align_identity(spec)
            for sql in then:
                self._run(sql)
            self._conn.commit()
        except Exception as exc:
            self._conn.rollback()
            state = sqlstate(exc)
            if state is not None and state[:2] in ("22", "23"):
                raise DataError(f"the merge was refused (SQLSTATE {state}): {exc}", table=spec.qualified_name) from exc
            raise TargetError(f"merge failed: {exc}", table=spec.qualified_name, retryable=is_transient(exc)) from exc
        return int(inserted), int(updated), int(deleted)

    def rollback_unit(self) -> None:
        """Roll back the open transaction; never raises."""
        try:
            self._conn.rollback()
        except Exception:  # connection already broken
            log.debug("rollback on a broken connection ignored", exc_info=True)

    def finish_table(self, spec: TableSpec, *, build_keys: bool = True) -> None:
        """Primary key and secondary indexes (not with ``build_keys`` False: the ``truncate`` load
        mode keeps the existing ones), identity aligned with ``setval()``, ``ANALYZE``.

        After it, an insert without an Id gets ``max(Id) + increment`` (``min`` for a negative
        increment; the seed when empty).

        Raises:
            TargetError: a statement failed (e.g. duplicate keys when building the primary key).
        """
        try:
            if build_keys:
                for sql in build_keys_sql(spec, POSTGRES, self.schema, table_name=self._tname(spec), key_suffix=self.suffix):
                    self._run(sql)
            self._align_identity(spec)
            self._conn.commit()
            self._run(f"ANALYZE {self._name(spec)}")
            self._conn.commit()
        except Exception as exc:
            self._conn.rollback()
            raise TargetError(f"finishing the table failed: {exc}", table=spec.qualified_name, retryable=is_transient(exc)) from exc

    def drop_keys(self, spec: TableSpec) -> None:
        """Drop the primary key and secondary indexes if built, and commit.

        Raises:
            TargetError: a statement failed (rolled back).
        """
        try:
            self._conn.rollback()
            for sql in drop_keys_sql(spec, POSTGRES, self.schema, table_name=self._tname(spec), key_suffix=self.suffix):
                self._run(sql)
            self._conn.commit()
        except Exception as exc:
            self._conn.rollback()
            raise TargetError(f"cannot drop the keys: {exc}", table=spec.qualified_name, retryable=is_transient(exc)) from exc

    def _align_identity(self, spec: TableSpec) -> None:
        """``setval()`` of the identity's sequence to max(Id) (``min`` for a negative increment; the
        seed when empty), inside the open transaction; nothing without an identity."""
        if spec.identity is None:
            return
        col = POSTGRES.quote(spec.identity.column)
        agg = "max" if spec.identity.increment > 0 else "min"
        self._run(
            f"SELECT setval(pg_get_serial_sequence($1, $2), "
            f"COALESCE((SELECT {agg}({col}) FROM {self._name(spec)}), $3::bigint), "
            f"(SELECT count(*) > 0 FROM {self._name(spec)}))",
            (self._name(spec), spec.identity.column, int(spec.identity.seed)),
        )

    def count_rows(self, spec: TableSpec) -> int:
        """Exact ``count(*)`` of the target table (rows).

        Raises:
            TargetError: the query failed (a missing table: permanent).
        """
        try:
            return int(self._run(count_sql(POSTGRES, self.schema, self._tname(spec)))[0][0])
        except Exception as exc:
            raise TargetError(f"count failed: {exc}", table=f"{self.schema}.{spec.name}",
                              retryable=is_transient(exc)) from exc
        finally:
            self._conn.rollback()

    def existing_rows(self, spec: TableSpec) -> int | None:
        """Exact ``count(*)`` of the table, or None when it does not exist (``to_regclass``);
        reads only, in a transaction that is rolled back.

        Raises:
            TargetError: the query failed.
        """
        try:
            self._conn.rollback()
            if self._run("SELECT to_regclass($1)", (self._name(spec),))[0][0] is None:
                return None
            return int(self._run(count_sql(POSTGRES, self.schema, self._tname(spec)))[0][0])
        except Exception as exc:
            raise TargetError(f"cannot read the existing table: {exc}", table=f"{self.schema}.{spec.name}",
                              retryable=is_transient(exc)) from exc
        finally:
            self._conn.rollback()

    def upsert_rows(self, spec: TableSpec, key_columns: Sequence[str], batch: pa.RecordBatch) -> int:
        """Replace the rows whose ``key_columns`` match the batch's, in one transaction.

        Used for small bookkeeping tables (the audit): delete by key, then bulk ingest.

        Returns:
            Rows written.

        Raises:
            TargetError: the statement failed (rolled back).
        """
        where = " AND ".join(f"{POSTGRES.quote(k)} = ${i + 1}" for i, k in enumerate(key_columns))
        try:
            for row in batch.select(list(key_columns)).to_pylist():
                self._run(f"DELETE FROM {self._name(spec)} WHERE {where}", [row[k] for k in key_columns])
            with self._conn.cursor() as cur:
                cur.adbc_ingest(self._tname(spec), batch, mode="append", db_schema_name=self.schema)
            self._conn.commit()
        except Exception as exc:
            self._conn.rollback()
            raise TargetError(f"upsert failed: {exc}", table=spec.qualified_name, retryable=is_transient(exc)) from exc
        return batch.num_rows

    def read_table(self, spec: TableSpec) -> pa.Table:
        """The whole target table as an Arrow table (for validation and tests; unbounded memory)."""
        with self._conn.cursor() as cur:
            cur.execute(f"SELECT * FROM {self._name(spec)}")
            table = cur.fetch_arrow_table()
        self._conn.rollback()
        return table

    def close(self) -> None:
        """Roll back anything open and close the connection. Idempotent."""
        if self._conn is not None:
            self.rollback_unit()
            self._conn.close()
            self._conn = None
