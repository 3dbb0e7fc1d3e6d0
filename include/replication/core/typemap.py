"""Type map: one table from (source dialect, source type) to an Arrow type and to each target type.

The map is data (``TYPE_MAP``), not branches: every entry says

* ``arrow``: the exact Arrow type the reader produces for the column (a name from ``_ARROW``);
* ``targets``: for each target dialect, a DDL template. ``{n}`` is the length, ``{p}`` the
  precision, ``{s}`` the scale, ``{p6}`` the precision capped at 6 (PostgreSQL's limit for
  fractional seconds). ``max`` is the template used when the length is ``(max)``/unbounded.
* ``select``: an optional SQL expression template (``{col}`` = the quoted column) the source
  reader selects instead of the bare column, for types its driver returns in an inexact form.

Lossy or refused cases are listed in ``notes`` and enforced: a target template ``None`` means
"cannot be held exactly", and :func:`target_type` raises :class:`UnsupportedTypeError` for it.

Sources of the mappings: SQL Server "Data types (Transact-SQL)" and PostgreSQL "Data Types"
documentation; money/smallmoney are decimal(19,4)/(10,4) per SQL Server's docs; the
DATETIME -> timestamp(3) and NVARCHAR(MAX) -> text choices come from ../shared/DESIGN.md.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from include.replication.core.catalog import MAX_LENGTH, ColumnSpec, Dialect, TableSpec
from include.replication.core.errors import UnsupportedTypeError

__all__ = [
    "TypeRule",
    "TYPE_MAP",
    "rule_for",
    "arrow_type",
    "arrow_schema",
    "target_type",
    "select_expression",
    "target_arrow_schema",
    "adapt_batch",
]


def _decimal(c: ColumnSpec) -> pa.DataType:
    if c.precision is None:
        raise UnsupportedTypeError(
            "numeric without declared precision has no exact Arrow decimal type; declare numeric(p,s)",
            column=c.name,
        )
    s = c.scale if c.scale is not None else 0
    return pa.decimal128(c.precision, s) if c.precision <= 38 else pa.decimal256(c.precision, s)


def _time(c: ColumnSpec) -> pa.DataType:
    return pa.time64("ns") if (c.precision or 0) > 6 else pa.time64("us")


_ARROW: dict[str, Callable[[ColumnSpec], pa.DataType]] = {
    "bool": lambda c: pa.bool_(),
    "int16": lambda c: pa.int16(),
    "int32": lambda c: pa.int32(),
    "int64": lambda c: pa.int64(),
    "float32": lambda c: pa.float32(),
    "float64": lambda c: pa.float64(),
    "decimal": _decimal,
    "money": lambda c: pa.decimal128(19, 4),
    "smallmoney": lambda c: pa.decimal128(10, 4),
    "string": lambda c: pa.string(),
    "binary": lambda c: pa.binary(),
    "binary8": lambda c: pa.binary(8),
    "uuid": lambda c: pa.uuid(),
    "json": lambda c: pa.json_(pa.string()),
    "date": lambda c: pa.date32(),
    "time": _time,
    "timestamp": lambda c: pa.timestamp("us"),
    "timestamptz": lambda c: pa.timestamp("us", tz="UTC"),
}


@dataclass(frozen=True)
class TargetTemplate:
    """DDL of a target column type.

    Attributes:
        template: format string with ``{n}``, ``{p}``, ``{s}``, ``{p6}``; None = not exactly holdable.
        max: template used when the length is ``MAX_LENGTH`` or None (unbounded).
    """

    template: str | None
    max: str | None = None


@dataclass(frozen=True)
class TypeRule:
    """One entry of the type map.

    Attributes:
        arrow: key into the Arrow type builders (``int32``, ``decimal``, ``timestamp``, ...).
        targets: target dialect -> DDL template.
        select: optional SQL expression template over ``{col}`` used by the source reader.
        notes: why the mapping is what it is (shown in docs and errors).
        parse_for: target dialect -> ``timestamp`` / ``timestamptz``: the column travels as the
            source's canonical text and that target's writer parses it (:func:`adapt_batch`).
    """

    arrow: str
    targets: Mapping[str, TargetTemplate]
    select: str | None = None
    notes: str = ""
    parse_for: Mapping[str, str] | None = None


def _t(pg: str | None, mssql: str | None, pg_max: str | None = None, mssql_max: str | None = None) -> dict[str, TargetTemplate]:
    return {"postgresql": TargetTemplate(pg, pg_max), "mssql": TargetTemplate(mssql, mssql_max)}


TYPE_MAP: dict[tuple[str, str], TypeRule] = {
    # ---- SQL Server sources (names as sys.types spells them) ----
    ("mssql", "bigint"): TypeRule("int64", _t("bigint", "bigint")),
    ("mssql", "int"): TypeRule("int32", _t("integer", "int")),
    ("mssql", "smallint"): TypeRule("int16", _t("smallint", "smallint")),
    ("mssql", "tinyint"): TypeRule("int16", _t("smallint", "tinyint"), notes="0..255 held in int16/smallint"),
    ("mssql", "bit"): TypeRule("bool", _t("boolean", "bit")),
    ("mssql", "decimal"): TypeRule("decimal", _t("numeric({p},{s})", "decimal({p},{s})")),
    ("mssql", "numeric"): TypeRule("decimal", _t("numeric({p},{s})", "numeric({p},{s})")),
    ("mssql", "money"): TypeRule("money", _t("numeric(19,4)", "money"), notes="never through float"),
    ("mssql", "smallmoney"): TypeRule("smallmoney", _t("numeric(10,4)", "smallmoney")),
    ("mssql", "float"): TypeRule("float64", _t("double precision", "float")),
    ("mssql", "real"): TypeRule("float32", _t("real", "real")),
    ("mssql", "date"): TypeRule("date", _t("date", "date")),
    ("mssql", "time"): TypeRule(
        "time",
        _t("time({p6})", "time({p})"),
        select="DATEDIFF_BIG(NANOSECOND, CAST('00:00:00' AS time(7)), {col})",
        notes="read as exact nanoseconds since midnight (pymssql keeps only microseconds); PostgreSQL keeps 6 digits",
    ),
    ("mssql", "datetime"): TypeRule("timestamp", _t("timestamp(3)", "datetime")),
    ("mssql", "smalldatetime"): TypeRule("timestamp", _t("timestamp(0)", "smalldatetime")),
    ("mssql", "datetime2"): TypeRule(
        "string",
        _t("timestamp({p6})", "datetime2({p})"),
        select="CAST({col} AS nvarchar(27))",
        parse_for={"postgresql": "timestamp"},
        notes="travels as SQL Server's canonical text 'YYYY-MM-DD hh:mm:ss[.nnnnnnn]' (exact: Arrow's "
        "timestamp[ns] cannot hold 0001..9999, pymssql keeps only microseconds); a SQL Server target "
        "gets the text back exactly; PostgreSQL keeps 6 digits (the 100 ns digit is dropped)",
    ),
    ("mssql", "datetimeoffset"): TypeRule(
        "string",
        _t("timestamptz({p6})", "datetimeoffset({p})"),
        select="CAST({col} AS nvarchar(34))",
        parse_for={"postgresql": "timestamptz"},
        notes="travels as SQL Server's canonical text 'YYYY-MM-DD hh:mm:ss[.nnnnnnn] +hh:mm': a SQL "
        "Server target keeps the instant, the offset and all 7 digits; PostgreSQL timestamptz keeps "
        "the UTC instant with 6 digits",
    ),
    ("mssql", "char"): TypeRule("string", _t("char({n})", "char({n})")),
    ("mssql", "nchar"): TypeRule("string", _t("char({n})", "nchar({n})")),
    ("mssql", "varchar"): TypeRule("string", _t("varchar({n})", "varchar({n})", "text", "varchar(max)")),
    ("mssql", "nvarchar"): TypeRule("string", _t("varchar({n})", "nvarchar({n})", "text", "nvarchar(max)")),
    ("mssql", "text"): TypeRule("string", _t("text", "varchar(max)")),
    ("mssql", "ntext"): TypeRule("string", _t("text", "nvarchar(max)")),
    ("mssql", "xml"): TypeRule("string", _t("text", "xml"), select="CAST({col} AS nvarchar(max))"),
    ("mssql", "binary"): TypeRule("binary", _t("bytea", "binary({n})")),
    ("mssql", "varbinary"): TypeRule("binary", _t("bytea", "varbinary({n})", "bytea", "varbinary(max)")),
    ("mssql", "image"): TypeRule("binary", _t("bytea", "varbinary(max)")),
    ("mssql", "uniqueidentifier"): TypeRule("uuid", _t("uuid", "uniqueidentifier")),
    ("mssql", "timestamp"): TypeRule("binary8", _t("bytea", "binary(8)"), notes="rowversion: 8 bytes, never a date"),
    ("mssql", "rowversion"): TypeRule("binary8", _t("bytea", "binary(8)"), notes="8 bytes, never a date"),
    # ---- PostgreSQL sources (names as information_schema.columns.data_type spells them) ----
    ("postgresql", "smallint"): TypeRule("int16", _t("smallint", "smallint")),
    ("postgresql", "integer"): TypeRule("int32", _t("integer", "int")),
    ("postgresql", "bigint"): TypeRule("int64", _t("bigint", "bigint")),
    ("postgresql", "boolean"): TypeRule("bool", _t("boolean", "bit")),
    ("postgresql", "numeric"): TypeRule(
        "decimal",
        _t("numeric({p},{s})", "decimal({p},{s})"),
        select="{col}::text",
        notes="ADBC returns numeric as opaque text; read as text and cast to decimal128 exactly",
    ),
    ("postgresql", "real"): TypeRule("float32", _t("real", "real")),
    ("postgresql", "double precision"): TypeRule("float64", _t("double precision", "float")),
    ("postgresql", "date"): TypeRule("date", _t("date", "date")),
    ("postgresql", "time without time zone"): TypeRule("time", _t("time({p6})", "time({p})")),
    ("postgresql", "timestamp without time zone"): TypeRule("timestamp", _t("timestamp({p6})", "datetime2({p})")),
    ("postgresql", "timestamp with time zone"): TypeRule(
        "timestamptz", _t("timestamptz({p6})", "datetimeoffset({p})")
    ),
    ("postgresql", "character"): TypeRule("string", _t("char({n})", "nchar({n})")),
    ("postgresql", "character varying"): TypeRule(
        "string", _t("varchar({n})", "nvarchar({n})", "text", "nvarchar(max)")
    ),
    ("postgresql", "text"): TypeRule("string", _t("text", "nvarchar(max)")),
    ("postgresql", "json"): TypeRule("string", _t("json", "nvarchar(max)")),
    ("postgresql", "jsonb"): TypeRule(
        "json",
        _t("jsonb", "nvarchar(max)"),
        select="{col}::text",
        notes="arrow.json extension: ADBC's binary COPY writes it with jsonb's version byte (a plain string is refused)",
    ),
    ("postgresql", "xml"): TypeRule("string", _t("xml", "xml"), select="{col}::text"),
    ("postgresql", "bytea"): TypeRule("binary", _t("bytea", "varbinary(max)")),
    ("postgresql", "uuid"): TypeRule("uuid", _t("uuid", "uniqueidentifier")),
}


def rule_for(dialect: Dialect, column: ColumnSpec, table: str = "?") -> TypeRule:
    """Return the type-map entry for a source column.

    Args:
        dialect: the source dialect the column was read from.
        column: the column.
        table: qualified table name, for the error message.

    Raises:
        UnsupportedTypeError: the (dialect, type) pair is not in ``TYPE_MAP``; names table, column
            and type. Raised before any row is copied.
    """
    try:
        return TYPE_MAP[(dialect, column.source_type)]
    except KeyError:
        raise UnsupportedTypeError(
            f"unsupported {dialect} type {column.source_type!r}; supported: "
            + ", ".join(sorted(t for d, t in TYPE_MAP if d == dialect)),
            table=table,
            column=column.name,
        ) from None


def arrow_type(dialect: Dialect, column: ColumnSpec, table: str = "?") -> pa.DataType:
    """Return the exact Arrow type the reader produces for a source column.

    Raises:
        UnsupportedTypeError: unknown source type, or one with no exact Arrow type.
    """
    try:
        return _ARROW[rule_for(dialect, column, table).arrow](column)
    except UnsupportedTypeError as exc:
        if exc.table is None:
            raise UnsupportedTypeError(exc.reason, table=table, column=column.name) from None
        raise


def arrow_schema(table: TableSpec) -> pa.Schema:
    """Return the Arrow schema of a table: one field per column, in ordinal order.

    Nullability comes from the catalog (``nullable``), never from the rows, so an all-NULL batch
    keeps its declared types.

    Raises:
        UnsupportedTypeError: a column's type is not in the map.
    """
    return pa.schema(
        [
            pa.field(c.name, arrow_type(table.dialect, c, table.qualified_name), nullable=c.nullable)
            for c in table.columns
        ]
    )


def target_type(table: TableSpec, column: ColumnSpec, target: Dialect) -> str:
    """Return the DDL type (e.g. ``varchar(40)``, ``numeric(19,4)``) of a column in the target.

    Args:
        table: the source table (its dialect selects the rule).
        column: the column.
        target: target dialect.

    Raises:
        UnsupportedTypeError: unknown source type, or a type the target cannot hold exactly.
    """
    rule = rule_for(table.dialect, column, table.qualified_name)
    tpl = rule.targets[target]
    unbounded = column.length is None or column.length == MAX_LENGTH
    text = tpl.max if (unbounded and tpl.max is not None) else tpl.template
    if text is None:
        raise UnsupportedTypeError(
            f"{table.dialect} type {column.source_type!r} cannot be held exactly by {target}",
            table=table.qualified_name,
            column=column.name,
        )
    n = column.length
    if target == "mssql" and "{n}" in text and n is not None and n > 4000 and text.startswith("nvarchar"):
        text = "nvarchar(max)"  # nvarchar(n) stops at 4000 characters
    p = column.precision
    if p is None and ("{p}" in text or "{p6}" in text):
        if "{s}" in text:
            arrow_type(table.dialect, column, table.qualified_name)  # raises for numeric without precision
        p = _DEFAULT_TIME_PRECISION[target]
    return text.format(n=n, p=p, s=column.scale if column.scale is not None else 0, p6=min(p, 6) if p is not None else None)


_DEFAULT_TIME_PRECISION: dict[str, int] = {"postgresql": 6, "mssql": 7}
"""Fractional-second digits of an unparameterised time type (PostgreSQL 6, SQL Server 7)."""


def select_expression(table: TableSpec, column: ColumnSpec, quoted: str) -> str:
    """Return the SQL the source reader selects for a column (``quoted`` is the quoted name).

    Raises:
        UnsupportedTypeError: unknown source type.
    """
    rule = rule_for(table.dialect, column, table.qualified_name)
    return rule.select.format(col=quoted) if rule.select else quoted



_SQLSERVER_DATETIME_TEXT = r"^(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2})(\.\d{1,6})?\d* ?([+-]\d{2}:\d{2})?$"
"""SQL Server's canonical datetime2 / datetimeoffset text; groups: seconds, up to 6 fraction
digits (a 7th is dropped), offset. Source: the "default string literal format" of datetime2 and
datetimeoffset in SQL Server's Transact-SQL data type documentation."""

_PARSED_TYPES = {"timestamp": pa.timestamp("us"), "timestamptz": pa.timestamp("us", tz="UTC")}


def _parsed(table: TableSpec, column: ColumnSpec, target: Dialect) -> pa.DataType | None:
    rule = rule_for(table.dialect, column, table.qualified_name)
    kind = (rule.parse_for or {}).get(target)
    return _PARSED_TYPES[kind] if kind else None


def target_arrow_schema(table: TableSpec, target: Dialect) -> pa.Schema:
    """The schema a target's writer ingests: :func:`arrow_schema`, with the columns that travel as
    text and are parsed for that target (``TypeRule.parse_for``) as timestamps."""
    schema = arrow_schema(table)
    for i, column in enumerate(table.columns):
        parsed = _parsed(table, column, target)
        if parsed is not None:
            schema = schema.set(i, pa.field(column.name, parsed, nullable=column.nullable))
    return schema


def adapt_batch(table: TableSpec, batch: pa.RecordBatch, target: Dialect) -> pa.RecordBatch:
    """Convert the text-carried columns of a batch for a target (see ``TypeRule.parse_for``).

    SQL Server ``datetime2``/``datetimeoffset`` text becomes ``timestamp[us]`` /
    ``timestamp[us, UTC]`` (the offset applied); a 7th fractional digit is dropped, as the type
    map documents for PostgreSQL. Batches without such columns are returned unchanged.

    Raises:
        DataError: a value that is not SQL Server's canonical text (names table, column, key).
    """
    schema = target_arrow_schema(table, target)
    if schema.equals(batch.schema):
        return batch
    from include.replication.core.checks import row_key
    from include.replication.core.errors import DataError

    arrays = list(batch.columns)
    for i, field in enumerate(schema):
        if field.type == batch.schema.field(i).type:
            continue
        text = batch.column(i)
        ok = pc.fill_null(pc.match_substring_regex(text, _SQLSERVER_DATETIME_TEXT), True)
        if not pc.all(ok).as_py():
            bad = int(pc.index(ok, False).as_py())
            raise DataError(
                f"{text[bad].as_py()!r} is not SQL Server datetime text", table=table.qualified_name,
                column=field.name, key=row_key(table, batch, bad),
            )
        iso = pc.replace_substring_regex(text, _SQLSERVER_DATETIME_TEXT, r"\1\2\3")
        arrays[i] = pc.cast(iso, field.type)
    return pa.RecordBatch.from_arrays(arrays, schema=schema)
