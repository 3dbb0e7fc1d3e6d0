"""Type map: one table from (source dialect, source type) to an Arrow type and to each target type.

The map is data (``TYPE_MAP``), not branches: every entry says

* ``arrow``: the exact Arrow type the reader produces for the column (a name from ``_ARROW``);
* ``targets``: for each target dialect, a DDL template. ``{n}`` is the length, ``{p}`` the
  precision, ``{s}`` the scale, ``{tp}`` the fractional-second digits capped at the target's
  ``Dialect.max_time_precision``. ``max`` is the template used when the length is
  ``(max)``/unbounded; a declared length above the target's ``Dialect.text_limits`` becomes the
  limit's replacement (SQL Server ``nvarchar(5000)`` -> ``nvarchar(max)``).
* ``select``: an optional SQL expression template (``{col}`` = the quoted column) the source
  reader selects instead of the bare column, for types its driver returns in an inexact form.
* ``carrier`` / ``parse_for``: a column that travels as the source's canonical text
  (:class:`TextCarrier`, a pattern and its replacement) and is parsed into a timestamp for the
  targets named in ``parse_for`` (:func:`adapt_batch`).

Lossy or refused cases are listed in ``notes`` and enforced: a target template ``None`` means
"cannot be held exactly", and :func:`target_type` raises :class:`UnsupportedTypeError` for it.

Sources of the mappings: SQL Server "Data types (Transact-SQL)" and PostgreSQL "Data Types"
documentation; money/smallmoney are decimal(19,4)/(10,4) per SQL Server's docs; the
DATETIME -> timestamp(3) (datetime keeps 1/300 s, under a millisecond) and NVARCHAR(MAX) -> text
(both unbounded) choices are the project's design (README, "How a table is copied").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from include.replication.core.batching import row_key
from include.replication.core.catalog import MAX_LENGTH, ColumnSpec, TableSpec
from include.replication.core.dialect import Dialect
from include.replication.core.errors import DataError, UnsupportedTypeError

__all__ = [
    "TypeRule",
    "TargetTemplate",
    "TextCarrier",
    "SQLSERVER_DATETIME_TEXT",
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
    if not 1 <= c.precision <= MAX_DECIMAL_PRECISION:
        raise UnsupportedTypeError(
            f"numeric({c.precision},{s}) has more digits than Arrow's widest decimal holds "
            f"({MAX_DECIMAL_PRECISION}, decimal256)", column=c.name,
        )
    if not 0 <= s <= c.precision:
        raise UnsupportedTypeError(
            f"numeric({c.precision},{s}) has a scale outside 0..precision (PostgreSQL 15 allows negative scales and "
            "scales above the precision; neither Arrow nor SQL Server holds them)", column=c.name,
        )
    return pa.decimal128(c.precision, s) if c.precision <= 38 else pa.decimal256(c.precision, s)


MAX_DECIMAL_PRECISION = 76
"""Digits of Arrow's widest decimal type (decimal256)."""


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
        template: format string with ``{n}``, ``{p}``, ``{s}``, ``{tp}``; None = not exactly holdable.
        max: template used when the length is ``MAX_LENGTH`` or None (unbounded).
    """

    template: str | None
    max: str | None = None


@dataclass(frozen=True)
class TextCarrier:
    """A source's canonical text form of a type, and how to turn it into ISO 8601 for Arrow's cast.

    Attributes:
        pattern: regular expression every carried value matches (RE2 syntax, for pyarrow.compute).
        replacement: replacement giving ISO 8601 text that ``pyarrow.compute.cast`` parses.
        description: what the text is, for error messages.
        source: where the format is specified.
    """

    pattern: str
    replacement: str
    description: str
    source: str = ""


SQLSERVER_DATETIME_TEXT = TextCarrier(
    pattern=r"^(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2})(\.\d{1,6})?\d* ?([+-]\d{2}:\d{2})?$",
    replacement=r"\1\2\3",
    description="SQL Server datetime text",
    source='the "default string literal format" of datetime2 and datetimeoffset in SQL Server\'s '
    "Transact-SQL data type documentation; groups: seconds, up to 6 fraction digits (a 7th is dropped), offset",
)
"""SQL Server's canonical ``datetime2`` / ``datetimeoffset`` text (``CAST(col AS nvarchar)``)."""


@dataclass(frozen=True)
class TypeRule:
    """One entry of the type map.

    Attributes:
        arrow: key into the Arrow type builders (``int32``, ``decimal``, ``timestamp``, ...).
        targets: target dialect -> DDL template.
        select: optional SQL expression template over ``{col}`` used by the source reader.
        notes: why the mapping is what it is (shown in docs and errors).
        carrier: the canonical text the column travels as, when it travels as text.
        parse_for: target dialect -> ``timestamp`` / ``timestamptz``: that target's writer parses
            the carried text (:func:`adapt_batch`); other targets get the text.
    """

    arrow: str
    targets: Mapping[str, TargetTemplate]
    select: str | None = None
    notes: str = ""
    carrier: TextCarrier | None = None
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
        _t("time({tp})", "time({tp})"),
        select="DATEDIFF_BIG(NANOSECOND, CAST('00:00:00' AS time(7)), {col})",
        notes="read as exact nanoseconds since midnight (pymssql keeps only microseconds); PostgreSQL keeps 6 digits",
    ),
    ("mssql", "datetime"): TypeRule("timestamp", _t("timestamp(3)", "datetime")),
    ("mssql", "smalldatetime"): TypeRule("timestamp", _t("timestamp(0)", "smalldatetime")),
    ("mssql", "datetime2"): TypeRule(
        "string",
        _t("timestamp({tp})", "datetime2({tp})"),
        select="CAST({col} AS nvarchar(27))",
        carrier=SQLSERVER_DATETIME_TEXT,
        parse_for={"postgresql": "timestamp"},
        notes="travels as SQL Server's canonical text 'YYYY-MM-DD hh:mm:ss[.nnnnnnn]' (exact: Arrow's "
        "timestamp[ns] cannot hold 0001..9999, pymssql keeps only microseconds); a SQL Server target "
        "gets the text back exactly; PostgreSQL keeps 6 digits (the 100 ns digit is dropped)",
    ),
    ("mssql", "datetimeoffset"): TypeRule(
        "string",
        _t("timestamptz({tp})", "datetimeoffset({tp})"),
        select="CAST({col} AS nvarchar(34))",
        carrier=SQLSERVER_DATETIME_TEXT,
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
    ("postgresql", "time without time zone"): TypeRule("time", _t("time({tp})", "time({tp})")),
    ("postgresql", "timestamp without time zone"): TypeRule("timestamp", _t("timestamp({tp})", "datetime2({tp})")),
    ("postgresql", "timestamp with time zone"): TypeRule(
        "timestamptz", _t("timestamptz({tp})", "datetimeoffset({tp})")
    ),
    ("postgresql", "character"): TypeRule("string", _t("char({n})", "nchar({n})")),
    ("postgresql", "character varying"): TypeRule(
        "string", _t("varchar({n})", "nvarchar({n})", "varchar", "nvarchar(max)"),
        notes="an unbounded varchar stays varchar (not text) in PostgreSQL",
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


def rule_for(dialect: str, column: ColumnSpec, table: str = "?") -> TypeRule:
    """Return the type-map entry for a source column.

    Args:
        dialect: name of the source dialect the column was read from (``TableSpec.dialect``).
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


def arrow_type(dialect: str, column: ColumnSpec, table: str = "?") -> pa.DataType:
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
        target: the target's Dialect record (its text limits and time precision apply).

    Raises:
        UnsupportedTypeError: unknown source type, or a type the target cannot hold exactly.
    """
    rule = rule_for(table.dialect, column, table.qualified_name)
    tpl = rule.targets[target.name]
    unbounded = column.length is None or column.length == MAX_LENGTH
    text = tpl.max if (unbounded and tpl.max is not None) else tpl.template
    if text is None:
        raise UnsupportedTypeError(
            f"{table.dialect} type {column.source_type!r} cannot be held exactly by {target.name}",
            table=table.qualified_name,
            column=column.name,
        )
    n = column.length
    limit = target.text_limits.get(text.split("(")[0])
    if "{n}" in text and limit is not None and n is not None and n > limit[0]:
        text = limit[1]  # e.g. SQL Server nvarchar(n) stops at 4,000 characters: nvarchar(max)
    p = column.precision
    if p is None and ("{p}" in text or "{tp}" in text):
        if "{s}" in text:
            arrow_type(table.dialect, column, table.qualified_name)  # raises for numeric without precision
        p = target.default_time_precision
    tp = min(p, target.max_time_precision) if p is not None else None
    return text.format(n=n, p=p, s=column.scale if column.scale is not None else 0, tp=tp)


def select_expression(table: TableSpec, column: ColumnSpec, quoted: str) -> str:
    """Return the SQL the source reader selects for a column (``quoted`` is the quoted name).

    Raises:
        UnsupportedTypeError: unknown source type.
    """
    rule = rule_for(table.dialect, column, table.qualified_name)
    return rule.select.format(col=quoted) if rule.select else quoted



_PARSED_TYPES = {"timestamp": pa.timestamp("us"), "timestamptz": pa.timestamp("us", tz="UTC")}


def _parsed(table: TableSpec, column: ColumnSpec, target: Dialect) -> tuple[pa.DataType, TextCarrier] | None:
    rule = rule_for(table.dialect, column, table.qualified_name)
    kind = (rule.parse_for or {}).get(target.name)
    if not kind or rule.carrier is None:
        return None
    return _PARSED_TYPES[kind], rule.carrier


def target_arrow_schema(table: TableSpec, target: Dialect) -> pa.Schema:
    """The schema a target's writer ingests: :func:`arrow_schema`, with the columns that travel as
    text and are parsed for that target (``TypeRule.parse_for``) as timestamps."""
    schema = arrow_schema(table)
    for i, column in enumerate(table.columns):
        parsed = _parsed(table, column, target)
        if parsed is not None:
            schema = schema.set(i, pa.field(column.name, parsed[0], nullable=column.nullable))
    return schema


def adapt_batch(table: TableSpec, batch: pa.RecordBatch, target: Dialect) -> pa.RecordBatch:
    """Convert the text-carried columns of a batch for a target (see ``TypeRule.parse_for``).

    For example SQL Server ``datetime2``/``datetimeoffset`` text becomes ``timestamp[us]`` /
    ``timestamp[us, UTC]`` for PostgreSQL (the offset applied; a 7th fractional digit dropped, as
    the type map documents). Batches without such columns are returned unchanged.

    Raises:
        DataError: a value that does not match its carrier's pattern (names table, column, key).
    """
    schema = target_arrow_schema(table, target)
    if schema.equals(batch.schema):
        return batch
    arrays = list(batch.columns)
    for i, column in enumerate(table.columns):
        parsed = _parsed(table, column, target)
        if parsed is None:
            continue
        typ, carrier = parsed
        text = batch.column(i)
        ok = pc.fill_null(pc.match_substring_regex(text, carrier.pattern), True)
        if not pc.all(ok).as_py():
            bad = int(pc.index(ok, False).as_py())
            raise DataError(
                f"{text[bad].as_py()!r} is not {carrier.description}", table=table.qualified_name,
                column=column.name, key=row_key(table, batch, bad),
            )
        iso = pc.replace_substring_regex(text, carrier.pattern, carrier.replacement)
        arrays[i] = pc.cast(iso, typ)
    return pa.RecordBatch.from_arrays(arrays, schema=schema)
