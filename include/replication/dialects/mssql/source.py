"""SQL Server source: catalog from ``sys.*`` views, RecordBatches through pymssql ``fetchmany``.

Catalog: names are spelled as ``INFORMATION_SCHEMA`` spells them (it keeps their case on every
server; Babelfish's ``sys.*`` views return them lower-cased), matched to the ``sys.*`` rows
case-insensitively and cross-checked (a name ``sys.*`` has and ``INFORMATION_SCHEMA`` lacks is a
``SourceError``). Types come from ``sys.columns`` joined to ``sys.types`` on the column's *system* type
(so alias types such as ``sysname`` resolve to their base type), never from DB-API type codes
(pymssql reports ``float`` and ``int`` with the same code). Lengths are converted to characters
for ``nchar``/``nvarchar`` (``max_length / 2``); ``(max)`` is ``-1``; ``text``/``ntext``/
``image``/``xml`` are unbounded (``-1``). The fractional-second digits of ``time``/``datetime2``/
``datetimeoffset`` (``sys.columns.scale``) go to ``ColumnSpec.precision``. Identity seed,
increment and last value come from ``sys.identity_columns``, keys and indexes from
``sys.indexes``/``sys.index_columns``, foreign keys from ``sys.foreign_keys``, the row estimate
from ``sys.partitions`` (heap or clustered index).

Reader: one pymssql connection per copy unit (``read_batches`` opens and closes its own), ``SET
TEXTSIZE 2147483647`` so ``(max)``/``text`` values are not cut at the driver's default, ``ORDER BY``
the primary key, ``fetchmany`` windows sized by bytes, rows converted column by column
(:mod:`..mssql_convert`). Precision pymssql loses and the policy for it are described in
:mod:`..mssql_convert`.

"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from typing import Any

import pyarrow as pa

from include.replication.core.catalog import MAX_LENGTH, ColumnSpec, ForeignKeySpec, IdentitySpec, IndexSpec, TableSpec
from include.replication.core.ddl import count_sql, key_bounds_sql
from include.replication.core.dialect import Dialect
from include.replication.core.endpoint import Endpoint
from include.replication.core.errors import ConfigurationError, ReplicationError, SourceError, UnsupportedTypeError
from include.replication.core.keyranges import KeyRange
from include.replication.core.protocols import Closing
from include.replication.core.rowfilter import RowFilter, where_sql
from include.replication.core.typemap import arrow_schema, select_expression
from include.replication.dialects.mssql.connect import connect_mssql, is_transient
from include.replication.dialects.mssql.convert import (
    estimate_row_bytes,
    group_rows_by_bytes,
    next_fetch_size,
    rows_to_batch,
)
from include.replication.dialects.mssql.dialect import MSSQL

__all__ = [
    "MssqlSource",
    "restore_case",
    "column_from_catalog",
    "select_sql",
    "TABLES_SQL",
    "COLUMNS_SQL",
    "IDENTITY_SQL",
    "INDEXES_SQL",
    "FOREIGN_KEYS_SQL",
    "ROW_ESTIMATE_SQL",
]

log = logging.getLogger(__name__)

TEXTSIZE_SQL = "SET TEXTSIZE 2147483647"
"""Sent first on every reader session: without it FreeTDS cuts (max)/text values."""

TABLES_SQL = """
SELECT t.name
FROM sys.tables AS t
JOIN sys.schemas AS s ON s.schema_id = t.schema_id
WHERE s.name = %s AND t.is_ms_shipped = 0
ORDER BY t.name
"""

COLUMNS_SQL = """
SELECT c.name, bt.name AS base_type, ut.is_assembly_type, ut.name AS declared_type, c.max_length,
       c.precision, c.scale, c.is_nullable, c.is_identity, cc.definition, cc.is_persisted
FROM sys.columns AS c
JOIN sys.types AS ut ON ut.user_type_id = c.user_type_id
LEFT JOIN sys.types AS bt ON bt.user_type_id = c.system_type_id
LEFT JOIN sys.computed_columns AS cc ON cc.object_id = c.object_id AND cc.column_id = c.column_id
WHERE c.object_id = OBJECT_ID(%s)
ORDER BY c.column_id
"""

IDENTITY_SQL = """
SELECT ic.name, CAST(ic.seed_value AS bigint), CAST(ic.increment_value AS bigint),
       CAST(ic.last_value AS bigint)
FROM sys.identity_columns AS ic
WHERE ic.object_id = OBJECT_ID(%s)
"""

INDEXES_SQL = """
SELECT i.name, i.is_primary_key, i.is_unique, i.type, i.has_filter, c.name AS column_name,
       ic.key_ordinal, ic.is_included_column, i.filter_definition
FROM sys.indexes AS i
JOIN sys.index_columns AS ic ON ic.object_id = i.object_id AND ic.index_id = i.index_id
JOIN sys.columns AS c ON c.object_id = ic.object_id AND c.column_id = ic.column_id
WHERE i.object_id = OBJECT_ID(%s) AND i.is_hypothetical = 0 AND i.type IN (1, 2)
ORDER BY i.index_id, ic.is_included_column, ic.key_ordinal, ic.index_column_id
"""

FOREIGN_KEYS_SQL = """
SELECT fk.name, pc.name AS column_name, rt.name AS ref_table, rc.name AS ref_column
FROM sys.foreign_keys AS fk
JOIN sys.foreign_key_columns AS fkc ON fkc.constraint_object_id = fk.object_id
JOIN sys.columns AS pc ON pc.object_id = fkc.parent_object_id AND pc.column_id = fkc.parent_column_id
JOIN sys.tables AS rt ON rt.object_id = fkc.referenced_object_id
JOIN sys.columns AS rc ON rc.object_id = fkc.referenced_object_id AND rc.column_id = fkc.referenced_column_id
WHERE fk.parent_object_id = OBJECT_ID(%s)
ORDER BY fk.name, fkc.constraint_column_id
"""

CASED_TABLES_SQL = """
SELECT TABLE_NAME FROM INFORMATION_SCHEMA.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_TYPE = 'BASE TABLE'
"""
"""Table names as the catalog spells them (case kept on SQL Server and Babelfish alike)."""

CASED_COLUMNS_SQL = """
SELECT COLUMN_NAME FROM INFORMATION_SCHEMA.COLUMNS WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s
"""
"""Column names of one table as the catalog spells them."""

ROW_ESTIMATE_SQL = """
SELECT COALESCE(SUM(p.rows), 0)
FROM sys.partitions AS p
WHERE p.object_id = OBJECT_ID(%s) AND p.index_id IN (0, 1)
"""

_UNICODE = {"nchar", "nvarchar"}
_UNBOUNDED = {"text", "ntext", "image", "xml"}
_LENGTHED = {"char", "varchar", "nchar", "nvarchar", "binary", "varbinary"}
_FRACTIONAL = {"time", "datetime2", "datetimeoffset"}
_NUMERIC = {"decimal", "numeric"}


def column_from_catalog(row: tuple[Any, ...], table: str = "?") -> ColumnSpec:
    """Build a :class:`ColumnSpec` from one row of :data:`COLUMNS_SQL`.

    Args:
        row: ``(name, base_type, is_assembly_type, declared_type, max_length (bytes), precision,
            scale, is_nullable, is_identity[, computed definition, is_persisted])``.
        table: qualified table name, for messages.

    Returns:
        The column with its normalised type; length in characters (``nchar``/``nvarchar``: bytes
        / 2) or bytes, ``-1`` for ``(max)`` and unbounded types; ``precision`` = fractional
        digits for time types, decimal precision for decimal/numeric; ``scale`` for decimal/numeric.
        CLR types (``hierarchyid``, ``geometry``, ``geography``) keep their own name, so
        ``typemap`` rejects them with ``UnsupportedTypeError`` before any copy.
    """
    name, base, is_assembly, declared, max_length, precision, scale, nullable, identity = row[:9]
    computed = row[9] if len(row) > 9 else None
    persisted = bool(row[10]) if len(row) > 10 and row[10] is not None else True
    typ = str(declared if (is_assembly or base is None) else base).lower()
    if typ == "rowversion":
        typ = "timestamp"
    length: int | None = None
    if typ in _LENGTHED:
        ml = int(max_length)
        length = MAX_LENGTH if ml == -1 else (ml // 2 if typ in _UNICODE else ml)
    elif typ in _UNBOUNDED:
        length = MAX_LENGTH
    prec: int | None = None
    sc: int | None = None
    if typ in _NUMERIC:
        prec, sc = int(precision), int(scale)
    elif typ in _FRACTIONAL:
        prec = int(scale)
    return ColumnSpec(
        name=str(name),
        source_type=typ,
        length=length,
        precision=prec,
        scale=sc,
        nullable=bool(nullable),
        identity=bool(identity),
        generated=str(computed) if computed else None,
        generated_stored=persisted,
    )


def select_sql(spec: TableSpec, key_range: KeyRange | None = None, row_filter: RowFilter | None = None) -> str:
    """The reader's ``SELECT``: every column (through the typemap ``select`` template where one is
    set, aliased back to its name), restricted to ``key_range`` (half-open, on the single integer
    primary key) and ``row_filter`` (a cursor bound) when given, ``ORDER BY`` the primary key (else every column, for a stable order).

    Raises:
        UnsupportedTypeError: a column type outside the type map.
        ValueError: ``key_range`` on a table without a single integer primary key.
    """
    cols = []
    for c in spec.columns:
        q = MSSQL.quote(c.name)
        expr = select_expression(spec, c, q)
        cols.append(expr if expr == q else f"{expr} AS {q}")
    order = spec.primary_key or spec.column_names
    order_sql = ", ".join(MSSQL.quote(c) for c in order)
    where = where_sql(spec, MSSQL, key_range, row_filter)
    return f"SELECT {', '.join(cols)} FROM {MSSQL.qualified(spec.schema, spec.name)}{where} ORDER BY {order_sql}"


def restore_case(name: str, spelled: Sequence[str], what: str, table: str) -> str:
    """The spelling of ``name`` among ``spelled`` (the ``INFORMATION_SCHEMA`` names): the exact
    name if present, else the one name equal to it ignoring case.

    Args:
        name: a name as a ``sys.*`` view returned it (lower-cased on Babelfish).
        spelled: the names ``INFORMATION_SCHEMA`` returned for the same object.
        what: ``column`` / ``table``, for the message.
        table: qualified table name, for the message.

    Raises:
        SourceError: no such name, or several differing only in case (the catalog views disagree).
    """
    if name in spelled:
        return name
    matches = [s for s in spelled if s.lower() == name.lower()]
    if len(matches) != 1:
        raise SourceError(
            f"{what} {name!r} from sys.* has {len(matches)} matches in INFORMATION_SCHEMA {sorted(spelled)}; "
            "the catalog views disagree", table=table, retryable=False,
        )
    return matches[0]


def _wrap(exc: Exception, message: str, table: str | None = None) -> SourceError:
    return SourceError(f"{message}: {exc}", table=table, retryable=is_transient(exc))


class MssqlSource(Closing):
    """A SQL Server database read through pymssql (implements :class:`core.protocols.Source`).

    The catalog connection is opened on first use; every ``read_batches`` call opens its own
    session (one per copy unit) and closes it on every path.

    Args:
        endpoint: a ``mssql`` endpoint (``schema`` defaults to ``dbo``).
    """

    dialect: Dialect = MSSQL

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self.schema = endpoint.schema or MSSQL.default_schema
        self._conn: Any = None

    def _catalog_conn(self) -> Any:
        if self._conn is None:
            try:
                self._conn = connect_mssql(self.endpoint, autocommit=True)
            except Exception as exc:
                raise _wrap(exc, f"cannot connect to {self.endpoint.describe()}") from exc
        return self._conn

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        conn = self._catalog_conn()
        try:
            cur = conn.cursor()
            try:
                if params:
                    cur.execute(sql, params)
                else:
                    cur.execute(sql)
                return list(cur.fetchall())
            finally:
                cur.close()
        except Exception as exc:
            raise _wrap(exc, "catalog query failed") from exc

    def list_tables(self, schema: str | None = None) -> list[str]:
        """Names of the user tables in ``schema`` (default ``dbo``), sorted.

        Raises:
            SourceError: the query failed.
        """
        schema = schema or self.schema
        spelled = [str(r[0]) for r in self._query(CASED_TABLES_SQL, (schema,))]
        return sorted(restore_case(str(r[0]), spelled, "table", schema) for r in self._query(TABLES_SQL, (schema,)))

    def describe(self, table: str, schema: str | None = None) -> TableSpec:
        """Read the catalog of one table.

        Returns:
            TableSpec with dialect ``mssql``.

        Raises:
            ConfigurationError: the table does not exist.
            SourceError: a catalog query failed.
        """
        schema = schema or self.schema
        tables = [str(r[0]) for r in self._query(CASED_TABLES_SQL, (schema,))]
        matches = [t for t in tables if t == table] or [t for t in tables if t.lower() == table.lower()]
        if len(matches) != 1:
            raise ConfigurationError(
                "table not found in the source catalog" if not matches else f"several tables match: {matches}",
                table=f"{schema}.{table}",
            )
        table = matches[0]
        obj = MSSQL.qualified(schema, table)
        qname = f"{schema}.{table}"
        spelled = [str(r[0]) for r in self._query(CASED_COLUMNS_SQL, (schema, table))]

        def cased(name: object) -> str:
            return restore_case(str(name), spelled, "column", qname)

        rows = self._query(COLUMNS_SQL, (obj,))
        if not rows:
            raise UnsupportedTypeError("the table has no columns; a table without columns cannot be copied", table=qname)
        if len(rows) != len(spelled):
            raise SourceError(f"sys.columns lists {len(rows)} columns, INFORMATION_SCHEMA {len(spelled)}",
                              table=qname, retryable=False)
        columns = tuple(column_from_catalog((cased(r[0]), *r[1:]), qname) for r in rows)
        identity = None
        for name, seed, inc, last in self._query(IDENTITY_SQL, (obj,)):
            identity = IdentitySpec(cased(name), int(seed), int(inc), None if last is None else int(last))
        pk: tuple[str, ...] = ()
        pk_name: str | None = None
        indexes: dict[str, dict[str, Any]] = {}
        for name, is_pk, is_unique, _typ, has_filter, col, _ordinal, included, filter_sql in self._query(INDEXES_SQL, (obj,)):
            entry = indexes.setdefault(str(name), {"pk": bool(is_pk), "unique": bool(is_unique), "cols": [], "lost": [],
                                                   "where": str(filter_sql) if has_filter and filter_sql else None})
            if included:
                entry["lost"].append(f"INCLUDE {cased(col)}")
            else:
                entry["cols"].append(cased(col))
        secondary = []
        for name, entry in indexes.items():
            if entry["pk"]:
                pk, pk_name = tuple(entry["cols"]), name
                continue
            if entry["lost"]:
                log.warning("index %s on %s: %s not reproduced in the target", name, qname, ", ".join(entry["lost"]))
            secondary.append(IndexSpec(name, tuple(entry["cols"]), entry["unique"], where=entry["where"]))
        fks: dict[str, dict[str, Any]] = {}
        for name, col, ref_table, ref_col in self._query(FOREIGN_KEYS_SQL, (obj,)):
            ref = restore_case(str(ref_table), tables, "table", qname)
            ref_spelled = [str(r[0]) for r in self._query(CASED_COLUMNS_SQL, (schema, ref))]
            fk = fks.setdefault(str(name), {"cols": [], "ref_table": ref, "ref_cols": []})
            fk["cols"].append(cased(col))
            fk["ref_cols"].append(restore_case(str(ref_col), ref_spelled, "column", f"{schema}.{ref}"))
        estimate = int(self._query(ROW_ESTIMATE_SQL, (obj,))[0][0] or 0)
        spec = TableSpec(
            name=table,
            columns=columns,
            schema=schema,
            primary_key=pk,
            primary_key_name=pk_name,
            identity=identity,
            indexes=tuple(secondary),
            foreign_keys=tuple(
                ForeignKeySpec(n, tuple(f["cols"]), f["ref_table"], tuple(f["ref_cols"])) for n, f in fks.items()
            ),
            row_estimate=estimate,
            dialect=MSSQL.name,
        )
        arrow_schema(spec)  # UnsupportedTypeError (table, column, type) before any row is copied
        return spec

    def count_rows(self, spec: TableSpec) -> int:
        """Exact ``COUNT_BIG(*)`` of the table (rows).

        Raises:
            SourceError: the query failed.
        """
        return int(self._query(count_sql(MSSQL, spec.schema, spec.name))[0][0])

    def key_bounds(self, spec: TableSpec) -> tuple[int, int] | None:
        """``(MIN, MAX)`` of the table's single integer primary key, or None (no such key, or empty).

        Raises:
            SourceError: the query failed.
        """
        sql = key_bounds_sql(spec, MSSQL)
        if sql is None:
            return None
        lo, hi = self._query(sql)[0]
        return None if lo is None else (int(lo), int(hi))

    def read_batches(
        self,
        spec: TableSpec,
        *,
        batch_rows: int,
        batch_bytes: int,
        key_range: KeyRange | None = None,
        row_filter: RowFilter | None = None,
    ) -> Iterator[pa.RecordBatch]:
        """Stream the table ordered by primary key as RecordBatches with ``arrow_schema(spec)``.

        Opens one pymssql session for the call, sends ``SET TEXTSIZE 2147483647``, runs
        :func:`select_sql` and reads it with ``fetchmany`` windows sized from the observed bytes
        per row (:func:`mssql_convert.next_fetch_size`).

        Args:
            spec: the table's catalog (from :meth:`describe`).
            key_range: read only ``lo <= key < hi`` of the single integer primary key.
            row_filter: read only the rows at or past a cursor bound (``merge`` mode).
            batch_rows: at most this many rows per batch.
            batch_bytes: about this many bytes per batch; one larger row travels alone.

        Yields:
            ``pa.RecordBatch`` with ``arrow_schema(spec)``, at most ``batch_rows`` rows.

        Raises:
            UnsupportedTypeError: a column type outside the type map (before any query).
            DataError: a value its Arrow type cannot hold exactly (table, column, key).
            SourceError: the connection or the query failed.
        """
        schema = arrow_schema(spec)
        sql = select_sql(spec, key_range, row_filter)
        started = time.monotonic()
        rows_total = bytes_total = batches = 0
        try:
            conn = connect_mssql(self.endpoint, autocommit=True)
        except Exception as exc:
            raise _wrap(exc, f"cannot connect to {self.endpoint.describe()}", spec.qualified_name) from exc
        try:
            cur = conn.cursor()
            try:
                cur.execute(TEXTSIZE_SQL)
                cur.execute(sql)
                observed = {"rows": 0, "bytes": 0}

                def fetched() -> Iterator[tuple[Any, ...]]:
                    while True:
                        size = next_fetch_size(observed["bytes"], observed["rows"], batch_rows=batch_rows, batch_bytes=batch_bytes)
                        window = cur.fetchmany(size)
                        if not window:
                            return
                        for row in window:
                            observed["rows"] += 1
                            observed["bytes"] += estimate_row_bytes(row)
                            yield row

                for rows in group_rows_by_bytes(fetched(), batch_rows=batch_rows, batch_bytes=batch_bytes):
                    batch = rows_to_batch(spec, rows, schema)
                    rows_total += batch.num_rows
                    bytes_total += batch.nbytes
                    batches += 1
                    yield batch
            finally:
                cur.close()
        except ReplicationError:
            raise
        except Exception as exc:
            raise _wrap(exc, "reading rows failed", spec.qualified_name) from exc
        finally:
            conn.close()
        log.info(
            "read %s: %d rows, %d batches, %d bytes, %.2f s",
            spec.qualified_name, rows_total, batches, bytes_total, time.monotonic() - started,
        )

    def close(self) -> None:
        """Close the catalog connection. Idempotent."""
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None
