"""Source and target interfaces, and the factory that opens one from an :class:`Endpoint`.

Every database dialect provides one ``Source`` (catalog + RecordBatch reader) and one ``Target``
(DDL + bulk writer). The pipeline, the buffer and the Airflow tasks only see these protocols and
never branch on the dialect (../shared/STYLE.md rule 3).

Copy unit protocol on a target (one target transaction per unit, so a retry is idempotent)::

    target.prepare_table(spec)              # once per run: drop + create, no PK / indexes yet
    target.begin_unit(spec)                 # opens the transaction, clears the unit's rows
    rows = target.write_batches(spec, it)   # bulk ingest of an iterator of RecordBatches
    target.commit_unit(spec, expected_rows) # count check, then COMMIT (ROLLBACK on mismatch)
    target.finish_table(spec)               # PK, secondary indexes, identity alignment
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import pyarrow as pa

from include.replication.core.catalog import Dialect, TableSpec
from include.replication.core.errors import ConfigurationError

__all__ = ["Endpoint", "Source", "Target", "open_source", "open_target"]


@dataclass(frozen=True)
class Endpoint:
    """Where a database is and how to reach it; built by :mod:`connections` only.

    Attributes:
        dialect: ``postgresql`` or ``mssql``.
        host: host name, or a Unix-socket directory for PostgreSQL.
        port: TCP port, or None for the driver default.
        database: database name.
        user: login, or None.
        password: password, or None. Never logged (``repr`` hides it).
        schema: default schema (``public`` / ``dbo``).
        options: extra driver options read by name from the connection extras.
    """

    dialect: Dialect
    host: str | None
    port: int | None
    database: str
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    schema: str | None = None
    options: dict[str, str] = field(default_factory=dict)

    @property
    def default_schema(self) -> str:
        """The schema to use when none is given: the endpoint's, else ``public`` / ``dbo``."""
        return self.schema or ("dbo" if self.dialect == "mssql" else "public")

    def describe(self) -> str:
        """``dialect://user@host:port/database`` without the password, for logs."""
        return f"{self.dialect}://{self.user or ''}@{self.host or ''}:{self.port or ''}/{self.database}"

    def with_database(self, database: str) -> Endpoint:
        """Return a copy pointing at another database on the same server."""
        return Endpoint(self.dialect, self.host, self.port, database, self.user, self.password, self.schema, dict(self.options))


@runtime_checkable
class Source(Protocol):
    """A database read by the pipeline. Opened by :func:`open_source`, closed by ``close()``."""

    dialect: Dialect

    def list_tables(self, schema: str | None = None) -> list[str]:
        """Names of the base tables in ``schema`` (default schema if None), sorted."""
        ...

    def describe(self, table: str, schema: str | None = None) -> TableSpec:
        """Read the catalog of one table. Raises ``ConfigurationError`` if it does not exist."""
        ...

    def count_rows(self, spec: TableSpec) -> int:
        """Exact ``COUNT(*)`` of the table (rows)."""
        ...

    def read_batches(self, spec: TableSpec, *, batch_rows: int, batch_bytes: int) -> Iterator[pa.RecordBatch]:
        """Stream the table ordered by primary key as RecordBatches with ``arrow_schema(spec)``.

        Each batch holds at most ``batch_rows`` rows and about ``batch_bytes`` bytes (one row
        larger than ``batch_bytes`` travels alone). Raises ``SourceError`` / ``DataError``.
        """
        ...

    def close(self) -> None:
        """Close the connection. Idempotent."""
        ...


@runtime_checkable
class Target(Protocol):
    """A database written by the pipeline. Opened by :func:`open_target`, closed by ``close()``."""

    dialect: Dialect

    def prepare_table(self, spec: TableSpec) -> None:
        """Create the database/schema if missing, drop and re-create the table from the mapped DDL
        without primary key or secondary indexes (they are built by ``finish_table``)."""
        ...

    def begin_unit(self, spec: TableSpec) -> None:
        """Open the unit's transaction and remove every row the unit will write."""
        ...

    def write_batches(self, spec: TableSpec, batches: Iterable[pa.RecordBatch]) -> int:
        """Bulk-write the batches inside the open unit; return rows written.

        Raises ``DataError`` naming table, column and key for a value the target cannot hold.
        """
        ...

    def commit_unit(self, spec: TableSpec, expected_rows: int) -> None:
        """Check the unit's row count equals ``expected_rows``, then commit; else roll back and
        raise ``ValidationError``."""
        ...

    def rollback_unit(self) -> None:
        """Roll back the open unit, if any. Never raises for a closed connection."""
        ...

    def finish_table(self, spec: TableSpec) -> None:
        """Build the primary key and secondary indexes, align the identity / sequence to max(Id)."""
        ...

    def count_rows(self, spec: TableSpec) -> int:
        """Exact ``COUNT(*)`` of the target table (rows)."""
        ...

    def execute(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        """Run one statement in autocommit mode and return its rows (empty for no result)."""
        ...

    def ensure_table(self, spec: TableSpec) -> None:
        """Create the table if it does not exist (keeping its rows if it does); used for the audit."""
        ...

    def upsert_rows(self, spec: TableSpec, key_columns: Sequence[str], batch: pa.RecordBatch) -> int:
        """In one transaction, delete the rows whose ``key_columns`` equal the batch's, then append
        the batch; return rows written. For small bookkeeping tables (the audit)."""
        ...

    def close(self) -> None:
        """Close the connection. Idempotent."""
        ...


def open_source(endpoint: Endpoint) -> Source:
    """Open a :class:`Source` for the endpoint's dialect.

    Raises:
        ConfigurationError: unknown dialect.
        SourceError: the connection failed.
    """
    if endpoint.dialect == "postgresql":
        from include.replication.dialects.postgres.source import PostgresSource

        return PostgresSource(endpoint)
    if endpoint.dialect == "mssql":
        from include.replication.dialects.mssql.source import MssqlSource

        return MssqlSource(endpoint)
    raise ConfigurationError(f"unknown source dialect {endpoint.dialect!r}")


def open_target(endpoint: Endpoint) -> Target:
    """Open a :class:`Target` for the endpoint's dialect.

    Raises:
        ConfigurationError: unknown dialect.
        TargetError: the connection failed.
    """
    if endpoint.dialect == "postgresql":
        from include.replication.dialects.postgres.target import PostgresTarget

        return PostgresTarget(endpoint)
    if endpoint.dialect == "mssql":
        from include.replication.dialects.mssql.target import MssqlTarget

        return MssqlTarget(endpoint)
    raise ConfigurationError(f"unknown target dialect {endpoint.dialect!r}")
