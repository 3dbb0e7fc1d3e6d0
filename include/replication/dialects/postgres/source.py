"""PostgreSQL source: catalog from ``information_schema`` / ``pg_catalog``, RecordBatches via ADBC.

ADBC's PostgreSQL driver runs a query as ``COPY (SELECT ...) TO STDOUT (FORMAT binary)`` and
streams the result as Arrow batches of about ``adbc.postgresql.batch_size_hint_bytes`` bytes; the
reader casts each one to the catalog's schema (never the driver's inferred one) and re-chunks it
to the requested rows/bytes.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from include.replication.core.batching import rebatch, row_key
from include.replication.core.catalog import MAX_LENGTH, ColumnSpec, ForeignKeySpec, IdentitySpec, IndexSpec, TableSpec
from include.replication.core.ddl import count_sql, key_bounds_sql
from include.replication.core.dialect import Dialect
from include.replication.core.endpoint import Endpoint
from include.replication.core.errors import ConfigurationError, DataError, SourceError, UnsupportedTypeError
from include.replication.core.keyranges import KeyRange
from include.replication.core.protocols import Closing
from include.replication.core.rowfilter import RowFilter, where_sql
from include.replication.core.typemap import arrow_schema, select_expression
from include.replication.dialects.postgres.connect import close_quietly, connect, is_transient
from include.replication.dialects.postgres.dialect import POSTGRES

__all__ = ["PostgresSource", "CATALOG_COLUMNS_SQL"]

log = logging.getLogger(__name__)

CATALOG_COLUMNS_SQL = """
SELECT c.column_name, c.data_type, c.character_maximum_length, c.numeric_precision,
       c.numeric_scale, c.datetime_precision, c.is_nullable, c.is_identity,
       c.identity_start, c.identity_increment,
       (SELECT a.atttypmod FROM pg_attribute a
        WHERE a.attrelid = (quote_ident(c.table_schema) || '.' || quote_ident(c.table_name))::regclass
          AND a.attname = c.column_name) AS typmod,
       c.is_generated, c.generation_expression,
       (SELECT a.attgenerated FROM pg_attribute a
        WHERE a.attrelid = (quote_ident(c.table_schema) || '.' || quote_ident(c.table_name))::regclass
          AND a.attname = c.column_name) AS attgenerated
FROM information_schema.columns c
WHERE c.table_schema = $1 AND c.table_name = $2
ORDER BY c.ordinal_position
"""

_PK_SQL = """
SELECT con.conname, a.attname
FROM pg_constraint con
JOIN pg_class t ON t.oid = con.conrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
CROSS JOIN LATERAL unnest(con.conkey) WITH ORDINALITY AS k(attnum, ord)
JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum
WHERE n.nspname = $1 AND t.relname = $2 AND con.contype = 'p'
ORDER BY k.ord
"""

_INDEX_SQL = """
SELECT i.relname, ix.indisunique, a.attname, k.ord, ix.indexprs IS NOT NULL AS has_expr,
       pg_get_expr(ix.indpred, ix.indrelid) AS predicate, pg_get_indexdef(ix.indexrelid) AS definition
FROM pg_index ix
JOIN pg_class t ON t.oid = ix.indrelid
JOIN pg_class i ON i.oid = ix.indexrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
CROSS JOIN LATERAL unnest(ix.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
LEFT JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum
WHERE n.nspname = $1 AND t.relname = $2 AND NOT ix.indisprimary
ORDER BY i.relname, k.ord
"""

_SERIAL_SQL = """
SELECT a.attname, s.seqstart, s.seqincrement
FROM pg_attribute a
JOIN pg_class t ON t.oid = a.attrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
JOIN pg_depend d ON d.refobjid = t.oid AND d.refobjsubid = a.attnum AND d.classid = 'pg_class'::regclass
     AND d.deptype = 'a'
JOIN pg_sequence s ON s.seqrelid = d.objid
WHERE n.nspname = $1 AND t.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""
"""Columns owning a sequence (``serial`` / ``bigserial``): name, start, increment."""

_FK_SQL = """
SELECT con.conname, a.attname, rt.relname, ra.attname
FROM pg_constraint con
JOIN pg_class t ON t.oid = con.conrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
JOIN pg_class rt ON rt.oid = con.confrelid
CROSS JOIN LATERAL unnest(con.conkey, con.confkey) WITH ORDINALITY AS k(attnum, refnum, ord)
JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum
JOIN pg_attribute ra ON ra.attrelid = rt.oid AND ra.attnum = k.refnum
WHERE n.nspname = $1 AND t.relname = $2 AND con.contype = 'f'
ORDER BY con.conname, k.ord
"""

_ESTIMATE_SQL = """
SELECT GREATEST(c.reltuples, 0)::bigint
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND c.relname = $2
"""


def _column(row: tuple[Any, ...]) -> ColumnSpec:
    name, data_type, char_len, num_prec, num_scale, dt_prec, is_nullable, is_identity = row[:8]
    length: int | None = None
    precision: int | None = None
    scale: int | None = None
    if data_type in ("character varying", "character"):
        length = int(char_len) if char_len is not None else MAX_LENGTH
    elif data_type == "numeric":
        # from the type modifier: information_schema shows a PostgreSQL 15 negative scale as a
        # large positive number (numeric(5,-2) reads as numeric(5,2046))
        typmod = row[10] if len(row) > 10 else None
        if typmod is not None and int(typmod) >= 4:
            mod = int(typmod) - 4
            precision, scale = (mod >> 16) & 0xFFFF, ((mod & 0x7FF) ^ 1024) - 1024
        else:
            precision = int(num_prec) if num_prec is not None else None
            scale = int(num_scale) if num_scale is not None else None
    elif data_type.startswith(("timestamp", "time")):
        precision = int(dt_prec) if dt_prec is not None else 6
    generated = str(row[12]) if len(row) > 12 and row[11] == "ALWAYS" and row[12] else None
    return ColumnSpec(
        name=name,
        source_type=data_type,
        length=length,
        precision=precision,
        scale=scale,
        nullable=is_nullable == "YES",
        identity=is_identity == "YES",
        generated=generated,
        generated_stored=not (len(row) > 13 and row[13] == "v"),
    )


_INFINITY = {
    "timestamp": {-9_222_425_352_054_775_809: "infinity", -9_222_425_352_054_775_808: "-infinity"},
    "date": {-2_147_472_692: "infinity", -2_147_472_691: "-infinity"},
}
"""What ADBC's PostgreSQL driver returns for ``infinity`` / ``-infinity``: PostgreSQL's INT64/INT32
sentinels shifted from its 2000-01-01 epoch to Arrow's 1970 one, wrapping around (measured with
adbc-driver-postgresql 1.13). No real value lies there: both are far outside PostgreSQL's range."""


PG_MIN_TIMESTAMP_US = -210_866_803_200_000_000
"""PostgreSQL's earliest timestamp, 4713-11-24 00:00:00 BC (Julian day 0; PostgreSQL docs,
"Date/Time Types"), in microseconds since 1970. A ``timestamp[us]`` value the reader returns below
it is not a real value: it is ``infinity``/``-infinity`` (``_INFINITY``) or a timestamp after
294247-01-10 04:00:54.775807 that wrapped around (PostgreSQL counts microseconds since 2000 up
to 294276 AD; shifted to Arrow's 1970 epoch those overflow int64, measured with
adbc-driver-postgresql 1.13: 294276-12-31 23:59:59 came back as -9222426057710551616)."""


def _reject_unreadable(spec: TableSpec, field: pa.Field, col: pa.Array, batch: pa.RecordBatch) -> None:
    """Refuse, by key, the values the reader cannot hand over exactly: ``infinity`` (no Arrow
    timestamp or date, and no SQL Server type, holds it) and timestamps past the last instant
    Arrow's ``timestamp[us]`` holds (which the driver wraps around)."""
    if pa.types.is_timestamp(field.type):
        kind, values = "timestamp", col.cast(pa.int64())
        bad = pc.less(values, PG_MIN_TIMESTAMP_US)
    elif pa.types.is_date32(field.type):
        kind, values = "date", col.cast(pa.int32())
        bad = pc.is_in(values, value_set=pa.array(list(_INFINITY["date"]), pa.int32()))
    else:
        return
    hit = pc.fill_null(bad, False)
    if not pc.any(hit).as_py():
        return
    idx = int(pc.index(hit, True).as_py())
    raw = values[idx].as_py()
    if raw in _INFINITY[kind]:
        message = (f"PostgreSQL '{_INFINITY[kind][raw]}' cannot be copied exactly: Arrow and SQL Server have "
                   "no infinite date or time (replace it in the source, e.g. with NULL or a real date)")
    else:
        message = ("a PostgreSQL timestamp after 294247-01-10 04:00:54.775807, the last instant Arrow's "
                   "timestamp[us] holds, cannot be copied exactly (PostgreSQL keeps them to 294276 AD; "
                   "replace it in the source, e.g. with NULL)")
    raise DataError(message, table=spec.qualified_name, column=field.name, key=row_key(spec, batch, idx))


class PostgresSource(Closing):
    """A PostgreSQL database read through ADBC (implements :class:`core.protocols.Source`).

    Args:
        endpoint: where the database is.

    Raises:
        SourceError: the connection failed (retryable).
    """

    dialect: Dialect = POSTGRES

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self.schema = endpoint.schema or POSTGRES.default_schema
        self._conn: Any = None
        try:
            self._conn = connect(endpoint, autocommit=True)
        except Exception as exc:  # adbc_driver_manager errors
            raise SourceError(f"cannot connect to {endpoint.describe()}: {exc}") from exc

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._conn.cursor() as cur:
            cur.execute(sql, parameters=params or None)
            return list(cur.fetchall())

    def list_tables(self, schema: str | None = None) -> list[str]:
        """Base tables of ``schema`` (default: the endpoint's, else ``public``), sorted by name."""
        rows = self._query(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = $1 "
            "AND table_type = 'BASE TABLE' ORDER BY table_name",
            (schema or self.schema,),
        )
        return [r[0] for r in rows]

    def describe(self, table: str, schema: str | None = None) -> TableSpec:
        """Read one table's catalog: columns, identity, primary key, indexes, FKs, row estimate.

        Raises:
            ConfigurationError: the table does not exist (names schema and table).
            UnsupportedTypeError: a column type is not in the type map.
        """
        schema = schema or self.schema
        col_rows = self._query(CATALOG_COLUMNS_SQL, (schema, table))
        if not col_rows:
            exists = self._query("SELECT to_regclass($1)", (POSTGRES.qualified(schema, table),))[0][0]
            if exists is not None:
                raise UnsupportedTypeError("the table has no columns; a table without columns cannot be copied",
                                           table=f"{schema}.{table}")
            raise ConfigurationError("table not found in source", table=f"{schema}.{table}")
        columns = tuple(_column(r) for r in col_rows)
        identity = None
        for r, c in zip(col_rows, columns, strict=True):
            if c.identity:
                identity = IdentitySpec(c.name, int(r[8] or 1), int(r[9] or 1))
        if identity is None:  # a serial / DEFAULT nextval(...) column: copied as an identity column
            for name, start, increment in self._query(_SERIAL_SQL, (schema, table)):
                identity = IdentitySpec(str(name), int(start), int(increment))
                columns = tuple(dataclasses.replace(c, identity=True) if c.name == name else c for c in columns)
                log.info("%s.%s: column %s takes its default from a sequence; copied as an identity column "
                         "(START WITH %s INCREMENT BY %s)", schema, table, name, start, increment)
                break
        pk_rows = self._query(_PK_SQL, (schema, table))
        found: dict[str, IndexSpec] = {}
        for name, unique, col, _ord, has_expr, predicate, definition in self._query(_INDEX_SQL, (schema, table)):
            if has_expr or col is None:  # an expression index: only its own definition re-creates it
                found[name] = IndexSpec(name, (), bool(unique), definition=str(definition))
                continue
            prior = found.get(name)
            cols = (*prior.columns, col) if prior is not None else (col,)
            found[name] = IndexSpec(name, cols, bool(unique), where=str(predicate) if predicate else None)
        fks: dict[str, tuple[list[str], str, list[str]]] = {}
        for name, col, ref_table, ref_col in self._query(_FK_SQL, (schema, table)):
            entry = fks.setdefault(name, ([], ref_table, []))
            entry[0].append(col)
            entry[2].append(ref_col)
        estimate = self._query(_ESTIMATE_SQL, (schema, table))
        spec = TableSpec(
            name=table,
            columns=columns,
            schema=schema,
            primary_key=tuple(r[1] for r in pk_rows),
            primary_key_name=pk_rows[0][0] if pk_rows else None,
            identity=identity,
            indexes=tuple(found.values()),
            foreign_keys=tuple(ForeignKeySpec(n, tuple(c), rt, tuple(rc)) for n, (c, rt, rc) in fks.items()),
            row_estimate=int(estimate[0][0]) if estimate else 0,
            dialect=POSTGRES.name,
        )
        arrow_schema(spec)  # fail now, before copying, on an unsupported type
        return spec

    def count_rows(self, spec: TableSpec) -> int:
        """Exact ``COUNT(*)`` (rows)."""
        return int(self._query(count_sql(POSTGRES, spec.schema, spec.name))[0][0])

    def key_bounds(self, spec: TableSpec) -> tuple[int, int] | None:
        """``(min, max)`` of the table's single integer primary key, or None (no such key, or empty).

        Raises:
            SourceError: the query failed.
        """
        sql = key_bounds_sql(spec, POSTGRES)
        if sql is None:
            return None
        lo, hi = self._query(sql)[0]
        return None if lo is None else (int(lo), int(hi))

    def select_sql(
        self, spec: TableSpec, key_range: KeyRange | None = None, row_filter: RowFilter | None = None
    ) -> str:
        """The ``SELECT`` the reader runs: catalog columns (type-map expressions), ordered by PK,
        restricted to ``key_range`` (half-open, on the integer primary key) and ``row_filter`` (a cursor
        bound) when given."""
        exprs = []
        for c in spec.columns:
            q = POSTGRES.quote(c.name)
            e = select_expression(spec, c, q)
            exprs.append(e if e == q else f"{e} AS {q}")
        sql = f"SELECT {', '.join(exprs)} FROM {POSTGRES.qualified(spec.schema, spec.name)}"
        sql += where_sql(spec, POSTGRES, key_range, row_filter)
        if spec.primary_key:
            sql += " ORDER BY " + ", ".join(POSTGRES.quote(c) for c in spec.primary_key)
        return sql

    def read_batches(
        self,
        spec: TableSpec,
        *,
        batch_rows: int,
        batch_bytes: int,
        key_range: KeyRange | None = None,
        row_filter: RowFilter | None = None,
    ) -> Iterator[pa.RecordBatch]:
        """Stream the table as RecordBatches with ``arrow_schema(spec)``, ordered by primary key.

        Uses its own connection, so it can run on the reader thread while this object's
        connection serves catalog queries.

        Yields:
            ``pa.RecordBatch`` with at most ``batch_rows`` rows and about ``batch_bytes`` bytes.

        Raises:
            SourceError: the query failed (retryable).
            DataError: a value does not fit the catalog type (names table and column).
        """
        schema = arrow_schema(spec)
        sql = self.select_sql(spec, key_range, row_filter)
        try:
            conn = connect(self.endpoint, autocommit=False)
        except Exception as exc:
            raise SourceError(f"cannot connect: {exc}", table=spec.qualified_name, retryable=is_transient(exc)) from exc
        try:
            with conn.cursor() as cur:
                cur.adbc_statement.set_options(
                    **{"adbc.postgresql.batch_size_hint_bytes": str(max(64 * 1024, batch_bytes))}
                )
                try:
                    cur.execute(sql)
                    reader = cur.fetch_record_batch()
                except Exception as exc:
                    raise SourceError(f"query failed: {exc}", table=spec.qualified_name,
                                      retryable=is_transient(exc)) from exc
                yield from rebatch(self._driver_batches(spec, schema, reader), max_rows=batch_rows, max_bytes=batch_bytes)
        finally:
            close_quietly(conn)

    def _driver_batches(self, spec: TableSpec, schema: pa.Schema, reader: Any) -> Iterator[pa.RecordBatch]:
        """The driver's batches pinned to the catalog schema; a driver error while streaming (the
        connection dropped mid-read) becomes a ``SourceError`` naming the table, with its cause."""
        it = iter(reader)
        while True:
            try:
                batch = next(it)
            except StopIteration:
                return
            except Exception as exc:
                raise SourceError(f"reading rows failed: {exc}", table=spec.qualified_name,
                                  retryable=is_transient(exc)) from exc
            yield self._pin(spec, schema, batch)

    @staticmethod
    def _pin(spec: TableSpec, schema: pa.Schema, batch: pa.RecordBatch) -> pa.RecordBatch:
        """Cast a driver batch to the catalog schema (drops driver metadata, parses numeric text)."""
        arrays = []
        for i, field in enumerate(schema):
            col = batch.column(i)
            if isinstance(col.type, pa.ExtensionType) and not isinstance(field.type, pa.ExtensionType):
                col = col.storage  # PostgreSQL opaque types (numeric) arrive as text storage
            if isinstance(field.type, pa.ExtensionType) and col.type == field.type.storage_type:
                col = pa.ExtensionArray.from_storage(field.type, col)  # e.g. jsonb text -> arrow.json
            if col.type != field.type:
                try:
                    col = col.cast(field.type, safe=True)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                    raise DataError(
                        f"cannot convert {col.type} to {field.type}: {exc}",
                        table=spec.qualified_name,
                        column=field.name,
                    ) from exc
            _reject_unreadable(spec, field, col, batch)
            arrays.append(col)
        return pa.RecordBatch.from_arrays(arrays, schema=schema)

    def close(self) -> None:
        """Close the catalog connection. Idempotent."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None
