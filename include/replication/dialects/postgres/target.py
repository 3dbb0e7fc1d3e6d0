"""PostgreSQL target: tables from the mapped DDL, rows through ADBC bulk ingest (binary COPY).

One copy unit is one transaction on one connection: ``TRUNCATE`` (transactional in PostgreSQL),
``COPY ... FROM STDIN (FORMAT binary)`` of every batch through ``cursor.adbc_ingest``, a
``count(*)`` check, ``COMMIT``. A retry therefore replaces the table's rows, never adds to them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import pyarrow as pa

from include.replication.core.catalog import TableSpec
from include.replication.core.checks import check_batch
from include.replication.core.ddl import build_keys_sql, count_sql, create_table_sql, drop_keys_sql
from include.replication.core.dialect import Dialect
from include.replication.core.endpoint import Endpoint
from include.replication.core.errors import ReplicationError, TargetError, ValidationError
from include.replication.core.keyranges import KeyRange, range_predicate
from include.replication.core.protocols import Closing
from include.replication.core.typemap import adapt_batch, target_arrow_schema
from include.replication.dialects.base import dialect as dialect_named
from include.replication.dialects.postgres.connect import connect
from include.replication.dialects.postgres.dialect import POSTGRES

__all__ = ["PostgresTarget"]

log = logging.getLogger(__name__)


class PostgresTarget(Closing):
    """A PostgreSQL database written through ADBC (implements :class:`core.protocols.Target`).

    Tables go to the endpoint's schema (default ``public``) under the source table's name.

    Args:
        endpoint: where the database is.

    Raises:
        TargetError: the connection failed (retryable).
    """

    dialect: Dialect = POSTGRES

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self.schema = endpoint.schema or POSTGRES.default_schema
        self._conn: Any = None
        try:
            self._conn = connect(endpoint, autocommit=False)
        except Exception as exc:
            raise TargetError(f"cannot connect to {endpoint.describe()}: {exc}") from exc

    # -- helpers -------------------------------------------------------------------------------
    def _name(self, spec: TableSpec) -> str:
        return POSTGRES.qualified(self.schema, spec.name)

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
            raise TargetError(f"statement failed: {exc}") from exc

    # -- protocol --------------------------------------------------------------------------------
    def prepare_table(self, spec: TableSpec) -> None:
        """Create the schema if missing; drop and re-create the table without PK or indexes.

        Raises:
            UnsupportedTypeError: a column PostgreSQL cannot hold exactly.
            TargetError: DDL failed.
        """
        ddl = create_table_sql(spec, POSTGRES, self.schema, source=dialect_named(spec.dialect))
        try:
            self._run(f"CREATE SCHEMA IF NOT EXISTS {POSTGRES.quote(self.schema)}")
            self._run(f"DROP TABLE IF EXISTS {self._name(spec)} CASCADE")
            self._run(ddl)
            self._conn.commit()
        except Exception as exc:
            self._conn.rollback()
            raise TargetError(f"cannot create table: {exc}", table=spec.qualified_name) from exc
        log.info("created %s.%s", self.schema, spec.name)

    def ensure_table(self, spec: TableSpec) -> None:
        """Create the table (with its primary key) if it does not exist; keep its rows if it does.

        Raises:
            TargetError: DDL failed.
        """
        ddl = create_table_sql(spec, POSTGRES, self.schema).replace("CREATE TABLE", "CREATE TABLE IF NOT EXISTS", 1)
        try:
            self._run(f"CREATE SCHEMA IF NOT EXISTS {POSTGRES.quote(self.schema)}")
            self._run(ddl)
            self._conn.commit()
        except Exception as exc:
            self._conn.rollback()
            raise TargetError(f"cannot create table: {exc}", table=spec.qualified_name) from exc

    def clone(self) -> PostgresTarget:
        """A second target on its own connection (one per parallel key-range unit)."""
        return PostgresTarget(self.endpoint)

    def begin_unit(self, spec: TableSpec, key_range: KeyRange | None = None) -> None:
        """Start the unit's transaction and clear exactly the rows the unit will write.

        Whole table (``key_range`` None): drop the primary key and secondary indexes if a previous
        attempt built them (so the load is fast and ``finish_table`` can rebuild them), then
        ``TRUNCATE``, all inside the transaction. A key range: ``DELETE`` of that range only.

        Raises:
            TargetError: the table is missing or locked.
        """
        try:
            self._conn.rollback()
            if key_range is not None:
                self._run(f"DELETE FROM {self._name(spec)} WHERE {range_predicate(spec, key_range, POSTGRES)}")
                return
            for sql in drop_keys_sql(spec, POSTGRES, self.schema):
                self._run(sql)
            self._run(f"TRUNCATE TABLE {self._name(spec)}")
        except Exception as exc:
            self._conn.rollback()
            raise TargetError(f"cannot start copy unit: {exc}", table=spec.qualified_name) from exc

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
            raise TargetError(f"cannot clear the table: {exc}", table=spec.qualified_name) from exc

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
        schema = target_arrow_schema(spec, POSTGRES)
        failure: list[BaseException] = []
        rows = 0

        def checked() -> Iterator[pa.RecordBatch]:
            nonlocal rows
            try:
                for batch in batches:
                    check_batch(spec, batch, POSTGRES)
                    rows += batch.num_rows
                    yield adapt_batch(spec, batch, POSTGRES)
            except BaseException as exc:  # surfaced below as the real error, not ADBC's
                failure.append(exc)
                raise

        reader = pa.RecordBatchReader.from_batches(schema, checked())
        try:
            with self._conn.cursor() as cur:
                cur.adbc_ingest(spec.name, reader, mode="append", db_schema_name=self.schema)
        except Exception as exc:
            if failure:
                raise failure[0] from None
            if isinstance(exc, ReplicationError):
                raise
            raise TargetError(f"bulk ingest (COPY) failed: {exc}", table=spec.qualified_name) from exc
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
        count = int(self._run(count_sql(POSTGRES, self.schema, spec.name, spec, key_range))[0][0])
        if count != expected_rows:
            self._conn.rollback()
            raise ValidationError(
                f"target holds {count} rows after the load, expected {expected_rows}; rolled back",
                table=spec.qualified_name,
            )
        try:
            self._conn.commit()
        except Exception as exc:
            raise TargetError(f"commit failed: {exc}", table=spec.qualified_name) from exc

    def rollback_unit(self) -> None:
        """Roll back the open transaction; never raises."""
        try:
            self._conn.rollback()
        except Exception:  # connection already broken
            log.debug("rollback on a broken connection ignored", exc_info=True)

    def finish_table(self, spec: TableSpec) -> None:
        """Primary key, secondary indexes, identity aligned with ``setval()``, ``ANALYZE``.

        After it, an insert without an Id gets ``max(Id) + increment`` (or the seed when empty).

        Raises:
            TargetError: a statement failed (e.g. duplicate keys when building the primary key).
        """
        try:
            for sql in build_keys_sql(spec, POSTGRES, self.schema):
                self._run(sql)
            if spec.identity is not None:
                col = POSTGRES.quote(spec.identity.column)
                self._run(
                    f"SELECT setval(pg_get_serial_sequence($1, $2), "
                    f"COALESCE((SELECT max({col}) FROM {self._name(spec)}), $3::bigint), "
                    f"(SELECT count(*) > 0 FROM {self._name(spec)}))",
                    (self._name(spec), spec.identity.column, int(spec.identity.seed)),
                )
            self._conn.commit()
            self._run(f"ANALYZE {self._name(spec)}")
            self._conn.commit()
        except Exception as exc:
            self._conn.rollback()
            raise TargetError(f"finishing the table failed: {exc}", table=spec.qualified_name) from exc

    def count_rows(self, spec: TableSpec) -> int:
        """Exact ``count(*)`` of the target table (rows)."""
        rows = self._run(count_sql(POSTGRES, self.schema, spec.name))
        self._conn.rollback()
        return int(rows[0][0])

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
                cur.adbc_ingest(spec.name, batch, mode="append", db_schema_name=self.schema)
            self._conn.commit()
        except Exception as exc:
            self._conn.rollback()
            raise TargetError(f"upsert failed: {exc}", table=spec.qualified_name) from exc
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
