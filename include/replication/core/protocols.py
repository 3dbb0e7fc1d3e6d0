"""The Source and Target protocols: every method the pipeline, the tasks and the tools call.

Every database dialect provides one ``Source`` (catalog + RecordBatch reader) and one ``Target``
(DDL + bulk writer); the data producers of ``include/stackoverflow`` (dump, synthetic) are Sources
too. The pipeline, the buffer and the Airflow tasks only see these protocols and the
:class:`~include.replication.core.dialect.Dialect` record each one carries; they never branch on
the dialect.

Copy unit protocol on a target (one target transaction per unit, so a retry is idempotent)::

    target.prepare_table(spec)                          # once per run: drop + create, no keys
    target.begin_unit(spec, key_range)                  # open the transaction, clear the unit's rows
    rows = target.write_batches(spec, batches)          # bulk ingest of RecordBatches
    target.commit_unit(spec, expected_rows, key_range)  # count check, then COMMIT
    target.finish_table(spec)                           # PK, secondary indexes, identity alignment

``key_range`` is ``None`` for the whole table; a :data:`KeyRange` only when both dialect records
say ``key_ranges``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from types import TracebackType
from typing import Protocol, Self

import pyarrow as pa

from include.replication.core.catalog import ForeignKeySpec, TableSpec
from include.replication.core.dialect import Dialect
from include.replication.core.keyranges import KeyRange
from include.replication.core.rowfilter import RowFilter

__all__ = ["Source", "Target", "Closing"]


class Closing:
    """Context-manager support for anything with ``close()``: ``with open_source(ep) as src: ...``
    closes on every path. Sources and targets inherit it."""

    def close(self) -> None:
        """Release what the object holds. Idempotent."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class Source(Protocol):
    """A database (or a data producer) read by the pipeline; closed by ``close()`` or ``with``.

    Attributes:
        dialect: the record of the dialect whose type names its catalogs use.
    """

    dialect: Dialect

    def list_tables(self, schema: str | None = None) -> list[str]:
        """Names of the base tables in ``schema`` (the source's default schema if None), sorted."""
        ...

    def describe(self, table: str, schema: str | None = None) -> TableSpec:
        """Read the catalog of one table.

        Raises:
            ConfigurationError: the table does not exist.
            UnsupportedTypeError: a column type the type map does not cover.
        """
        ...

    def count_rows(self, spec: TableSpec) -> int:
        """Exact ``COUNT(*)`` of the table (rows)."""
        ...

    def key_bounds(self, spec: TableSpec) -> tuple[int, int] | None:
        """``(min, max)`` of the table's single integer primary key; None when the table is
        empty, has no such key, or this source cannot read key ranges."""
        ...

    def read_batches(
        self,
        spec: TableSpec,
        *,
        batch_rows: int,
        batch_bytes: int,
        key_range: KeyRange | None = None,
        row_filter: RowFilter | None = None,
    ) -> Iterator[pa.RecordBatch]:
        """Stream the table (or one half-open primary-key range of it, and / or only the rows at or
        past a cursor bound: ``row_filter``, the ``merge`` mode's window) ordered by primary key.

        Yields:
            ``pa.RecordBatch`` with ``arrow_schema(spec)``, at most ``batch_rows`` rows and about
            ``batch_bytes`` bytes each (one larger row travels alone).

        Raises:
            SourceError: the connection or the query failed (retryable).
            DataError: a value its Arrow type cannot hold exactly (table, column, key).
        """
        ...

    def close(self) -> None:
        """Close every connection. Idempotent."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...


class Target(Protocol):
    """A database written by the pipeline; closed by ``close()`` or ``with``.

    Attributes:
        dialect: the record of the target's dialect.
        schema: the schema the target writes tables into.
    """

    dialect: Dialect
    schema: str

    def prepare_table(self, spec: TableSpec) -> None:
        """Create the database/schema if missing, drop and re-create the table from the mapped DDL
        without primary key or secondary indexes (``finish_table`` builds them)."""
        ...

    def ensure_table(self, spec: TableSpec) -> None:
        """Create the table with its primary key if it does not exist, keeping its rows if it does."""
        ...

    def clear_table(self, spec: TableSpec) -> None:
        """Drop the table's keys and indexes if built, empty it, and commit (before parallel ranges)."""
        ...

    def begin_unit(self, spec: TableSpec, key_range: KeyRange | None = None, *, keep_keys: bool = False) -> None:
        """Open the unit's transaction, take the unit lock, and remove every row the unit will
        write (the whole table, or exactly ``key_range``). Keys an earlier attempt built are dropped
        first unless ``keep_keys`` (the ``truncate`` load mode keeps the existing table's)."""
        ...

    def write_batches(self, spec: TableSpec, batches: Iterable[pa.RecordBatch]) -> int:
        """Bulk-write the batches inside the open unit; return rows written.

        Raises:
            DataError: a value the target cannot hold unchanged (table, column, key).
        """
        ...

    def commit_unit(self, spec: TableSpec, expected_rows: int, key_range: KeyRange | None = None) -> None:
        """Check the unit's row count equals ``expected_rows``, then commit; else roll back and
        raise ``ValidationError``."""
        ...

    def rollback_unit(self) -> None:
        """Roll back the open unit, if any. Never raises for a broken connection."""
        ...

    def execute_in_unit(self, sql: str) -> list[tuple[object, ...]]:
        """Run one statement (no parameters) inside the open unit's transaction, without
        committing, so it commits or rolls back with the unit's rows (the incremental state);
        return its rows.

        Raises:
            TargetError: the statement failed (the unit is rolled back).
        """
        ...

    def merge_from_stage(
        self, spec: TableSpec, stage: TableSpec, *, then: Sequence[str] = (), deletes: TableSpec | None = None
    ) -> tuple[int, int, int]:
        """In one transaction: upsert the rows of the staging table ``stage`` (same columns, this
        target's schema, unique keys) into the live table of ``spec`` by primary key, updating a
        matched row only when some column differs; delete the rows whose keys the staging table
        ``deletes`` lists (primary-key columns only), if given; align the identity past inserted
        rows (as ``finish_table`` does); then run the statements ``then``
        (the state row); commit. On any error everything is rolled back (live rows and state as
        before).

        Returns:
            ``(rows inserted, rows updated, rows deleted)``.

        Raises:
            TargetError: a statement failed (rolled back). DataError: a value the live table refuses.
        """
        ...

    def finish_table(self, spec: TableSpec, *, build_keys: bool = True) -> None:
        """Build the primary key and secondary indexes (unless ``build_keys`` is False), align the
        identity / sequence to max(Id)."""
        ...

    def drop_keys(self, spec: TableSpec) -> None:
        """Drop the primary key and secondary indexes of this target's table of ``spec`` if built,
        and commit (a retried finish of a table loaded in key ranges rebuilds them)."""
        ...

    def add_foreign_keys(self, spec: TableSpec, keys: Sequence[ForeignKeySpec]) -> None:
        """Create (and validate) the foreign keys ``keys`` of ``spec`` that the table lacks; leave
        the ones it has. Raises ``TargetError`` naming the constraint the rows violate."""
        ...

    def stage(self, spec: TableSpec) -> Target:
        """A target on its own connection that writes the staging copy of ``spec`` (the ``swap``
        load mode: loaded, keyed and counted before :meth:`swap_in` replaces the live table)."""
        ...

    def discard(self, spec: TableSpec) -> None:
        """Drop this target's physical table of ``spec`` (a failed staging copy); never raises."""
        ...

    def swap_in(self, spec: TableSpec) -> None:
        """In one short transaction, replace the live table by its staging copy, keeping what the
        target can keep of the live table's grants and views; on failure the live table stays."""
        ...

    def check_table(self, spec: TableSpec) -> None:
        """Fail (``ConfigurationError``) unless the live table exists with exactly the mapped columns
        (the ``truncate`` load mode writes into it as it is)."""
        ...

    def lock_table(
        self, spec: TableSpec, holder: str, wait_s: float = 60.0, *, shared: bool = False
    ) -> AbstractContextManager[None]:
        """Hold the table lock for a whole copy of ``spec`` (see :mod:`core.locks`); ``holder`` names
        this copy to a waiting one. ``shared``: the range units of one run (``partition_as=tasks``)
        hold it together, excluding every exclusive holder (a whole-table copy, a plan or finish).
        Raises ``TargetError`` (retryable) when still held after ``wait_s``."""
        ...

    def count_rows(self, spec: TableSpec) -> int:
        """Exact ``COUNT(*)`` of the target table (rows)."""
        ...

    def existing_rows(self, spec: TableSpec) -> int | None:
        """Exact ``COUNT(*)`` of the target table, or None when it does not exist; reads only
        (the dry run, ``plan_only``, asks it what a copy would replace).

        Raises:
            TargetError: the query failed.
        """
        ...

    def execute(self, sql: str, params: Sequence[object] = ()) -> list[tuple[object, ...]]:
        """Run one statement (the driver's placeholders) and commit; return its rows."""
        ...

    def upsert_rows(self, spec: TableSpec, key_columns: Sequence[str], batch: pa.RecordBatch) -> int:
        """In one transaction, delete the rows whose ``key_columns`` equal the batch's, then append
        the batch; return rows written. For small bookkeeping tables (the audit)."""
        ...

    def clone(self, schema: str | None = None) -> Target:
        """A second target on its own connection to the same database (one per parallel unit),
        writing into ``schema`` when given."""
        ...

    def close(self) -> None:
        """Roll back anything open and close the connection. Idempotent."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...
