"""The Dialect record: everything shared code needs to know about a database dialect, as data.

Shared code (DDL, type map, value checks, the pipeline) never branches on a dialect's name; it
asks the record. Each dialect folder (``dialects/postgres``, ``dialects/mssql``) defines one
record, and ``dialects/base.py`` holds them by name. The class lives here, in the core, so core
functions can take a record without importing any dialect.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["Dialect", "LengthUnit", "TemporalLimits"]

LengthUnit = Literal["code_points", "utf16"]
"""How a dialect counts the declared length of a text column: Unicode code points (PostgreSQL
``varchar(n)``) or UTF-16 code units (SQL Server ``nvarchar(n)``: a character above U+FFFF
takes two)."""


@dataclass(frozen=True)
class TemporalLimits:
    """The values a date or time type of a dialect holds exactly.

    Attributes:
        minimum: smallest value: microseconds since 1970-01-01 (timestamps) or days (dates).
        maximum: largest value, same unit.
        unit: ``us`` (timestamp columns) or ``day`` (date columns).
        step_us: values must be multiples of this many microseconds (1 = any; SQL Server
            ``smalldatetime`` keeps whole minutes: 60,000,000); a declared fractional precision
            ``(p)`` below 6 adds its own step.
        ms_last_digits: SQL Server ``datetime`` stores 1/300 s ticks, shown as milliseconds ending
            in 0, 3 or 7; any other millisecond (or a sub-millisecond part) would be rounded.
    """

    minimum: int
    maximum: int
    unit: Literal["us", "day"] = "us"
    step_us: int = 1
    ms_last_digits: frozenset[int] | None = None


@dataclass(frozen=True)
class Dialect:
    """What shared code needs to know about one database dialect.

    Attributes:
        name: the dialect's name (``postgresql``, ``mssql``): the key of the type map and of the
            registry, and the ``TableSpec.dialect`` of catalogs read from it.
        quote_start: opening identifier quote (``"`` / ``[``).
        quote_end: closing identifier quote (``"`` / ``]``); doubled inside a name.
        default_schema: schema used when an endpoint names none (``public`` / ``dbo``).
        default_time_precision: fractional-second digits of an unparameterised time type
            (PostgreSQL 6, SQL Server 7; their documentation of ``time``/``datetime2``).
        max_time_precision: most fractional-second digits the dialect keeps (PostgreSQL 6, SQL
            Server 7); larger source precisions are capped in the target DDL (a documented loss).
        text_limits: target DDL base type -> (largest declared length, DDL used beyond it); for
            example SQL Server ``nvarchar`` -> ``(4000, "nvarchar(max)")`` (lengths in the
            dialect's own unit: characters, or bytes for binary types).
        text_types: DDL base types that hold text (a ``COLLATE`` clause applies to them).
        option_names: connection extras read by name and passed to this dialect's driver or
            writer; anything else in the extras is ignored (never splatted into a driver call).
        text_allows_nul: whether its text types can hold U+0000 (PostgreSQL: no). When False the
            writer rejects a NUL with a ``DataError`` instead of letting the driver cut the text.
        length_unit: how declared text lengths are counted (:data:`LengthUnit`).
        key_ranges: whether its Source and Target take ``key_range`` (parallel primary-key ranges).
        identity_clause: column clause of an identity column, with ``{seed}`` and ``{increment}``.
        primary_key_clause: ``PRIMARY KEY`` keyword as ``ALTER TABLE ... ADD CONSTRAINT`` needs it
            (SQL Server: ``PRIMARY KEY CLUSTERED``, as the StackOverflow2010 keys are).
        drop_index_template: ``DROP INDEX IF EXISTS`` statement with ``{index}`` (quoted index
            name), ``{schema}`` (quoted schema) and ``{table}`` (quoted, qualified table).
        case_sensitive_text: whether text compares case-sensitively by default (PostgreSQL yes;
            SQL Server's default collations no).
        case_sensitive_collation: collation a target gives text columns copied from a
            case-sensitive source, so keys that differ only in case stay distinct; None when the
            dialect is case-sensitive anyway.
        count_expression: the exact row count aggregate (``count(*)``; SQL Server's
            ``COUNT_BIG(*)`` does not overflow at 2^31 rows).
        generated_template: column DDL of a generated column, with ``{name}``, ``{type}``,
            ``{expression}`` and ``{storage}`` (:attr:`generated_storage`'s word for stored or virtual).
        generated_storage: (stored, virtual) keywords of :attr:`generated_template`.
        temporal_limits: target DDL base type (``datetime``, ``timestamp``, ``date``) -> the
            values it holds exactly (:class:`TemporalLimits`); checked on every batch before it is
            written, so a value the type would reject or round fails with table, column and key.
    """

    name: str
    quote_start: str
    quote_end: str
    default_schema: str
    default_time_precision: int
    max_time_precision: int
    text_limits: Mapping[str, tuple[int, str]] = field(default_factory=dict)
    text_types: frozenset[str] = frozenset()
    option_names: tuple[str, ...] = ()
    text_allows_nul: bool = True
    length_unit: LengthUnit = "code_points"
    key_ranges: bool = False
    identity_clause: str = ""
    primary_key_clause: str = "PRIMARY KEY"
    drop_index_template: str = "DROP INDEX IF EXISTS {schema}.{index}"
    case_sensitive_text: bool = True
    case_sensitive_collation: str | None = None
    count_expression: str = "count(*)"
    generated_template: str = "{name} {type} GENERATED ALWAYS AS ({expression}) {storage}"
    generated_storage: tuple[str, str] = ("STORED", "VIRTUAL")
    temporal_limits: Mapping[str, TemporalLimits] = field(default_factory=dict)

    def quote(self, name: str) -> str:
        """Quote one identifier: ``"a""b"`` (PostgreSQL) or ``[a]]b]`` (SQL Server)."""
        return self.quote_start + name.replace(self.quote_end, self.quote_end * 2) + self.quote_end

    def qualified(self, schema: str, table: str) -> str:
        """Quoted ``schema.table``."""
        return f"{self.quote(schema)}.{self.quote(table)}"

    def __repr__(self) -> str:
        return f"Dialect({self.name!r})"
