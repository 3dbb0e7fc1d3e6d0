"""Catalog: plain dataclasses describing a source table, read from the source's own metadata.

The catalog is the single description of a table that every later step uses: the type map turns
its columns into an Arrow schema and into target DDL, the reader pins its batches to that schema,
the writer creates the target table from it. Nothing in the catalog is specific to the Stack
Overflow tables.

Source types are stored normalised: lower case, no length (``nvarchar``, ``datetime2``,
``character varying``), with the length, precision and scale in their own fields. Lengths are in
characters for text types and bytes for binary types; ``-1`` means ``(max)`` / unbounded.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

MAX_LENGTH = -1
"""Length value meaning ``(max)`` (SQL Server) or unbounded (PostgreSQL ``text``)."""


@dataclass(frozen=True)
class ColumnSpec:
    """One column of a source table.

    Attributes:
        name: column name as the source spells it (case kept).
        source_type: normalised source type name, lower case, without parameters.
        length: characters (text) or bytes (binary); ``MAX_LENGTH`` (-1) for max; None if n/a.
        precision: numeric precision, or fractional-second digits for time types; None if n/a.
        scale: numeric scale; None if n/a.
        nullable: True if the column accepts NULL.
        identity: True if the column is an IDENTITY / identity column.
        generated: the expression of a generated (computed) column, in the source dialect's SQL;
            None for an ordinary column. Re-created as generated only in a target of the same
            dialect; writers never send its values (the target computes them).
        generated_stored: True when the generated values are stored (PostgreSQL ``STORED``, SQL
            Server ``PERSISTED``), False for virtual ones.
    """

    name: str
    source_type: str
    length: int | None = None
    precision: int | None = None
    scale: int | None = None
    nullable: bool = True
    identity: bool = False
    generated: str | None = None
    generated_stored: bool = True


@dataclass(frozen=True)
class IdentitySpec:
    """The identity column of a table and its generator.

    Attributes:
        column: name of the identity column.
        seed: first value (SQL Server seed, PostgreSQL START WITH).
        increment: step between values.
        last_value: last value generated at catalog time, or None when never used.
    """

    column: str
    seed: int = 1
    increment: int = 1
    last_value: int | None = None


@dataclass(frozen=True)
class IndexSpec:
    """A secondary index (not the primary key).

    Attributes:
        name: index name in the source.
        columns: key columns in order (empty for an expression index).
        unique: True for a unique index.
        where: the predicate of a partial (filtered) index, in the source dialect's SQL; None when
            the index covers every row. Re-created only on a target of the same dialect.
        definition: the source's own ``CREATE INDEX`` text of an expression index (no plain key
            columns); re-created only on a target of the same dialect.
    """

    name: str
    columns: tuple[str, ...]
    unique: bool = False
    where: str | None = None
    definition: str | None = None


@dataclass(frozen=True)
class ForeignKeySpec:
    """A foreign key, recorded for ordering and documentation; the pipeline does not create it.

    Attributes:
        name: constraint name.
        columns: referencing columns.
        ref_table: referenced table name (same schema).
        ref_columns: referenced columns.
    """

    name: str
    columns: tuple[str, ...]
    ref_table: str
    ref_columns: tuple[str, ...]


@dataclass(frozen=True)
class TableSpec:
    """A source table as read from the source catalog.

    Attributes:
        name: table name (case kept).
        columns: columns in the source's ordinal order.
        schema: source schema (``dbo``, ``public``).
        primary_key: primary-key columns in order; empty if none.
        primary_key_name: the source's constraint name, or None.
        identity: the identity column, or None.
        indexes: secondary indexes.
        foreign_keys: foreign keys.
        row_estimate: the catalog's row estimate (rows); 0 when unknown.
        dialect: name of the dialect whose type names the columns use (the one the catalog was
            read from); selects the type-map rules.
    """

    name: str
    columns: tuple[ColumnSpec, ...]
    schema: str = "public"
    primary_key: tuple[str, ...] = ()
    primary_key_name: str | None = None
    identity: IdentitySpec | None = None
    indexes: tuple[IndexSpec, ...] = ()
    foreign_keys: tuple[ForeignKeySpec, ...] = ()
    row_estimate: int = 0
    dialect: str = "postgresql"

    @property
    def qualified_name(self) -> str:
        """``schema.name``, unquoted, for logs and error messages."""
        return f"{self.schema}.{self.name}"

    @property
    def column_names(self) -> tuple[str, ...]:
        """Column names in ordinal order."""
        return tuple(c.name for c in self.columns)

    @property
    def written_columns(self) -> tuple[str, ...]:
        """Names of the columns a writer sends (generated columns are computed by the target)."""
        return tuple(c.name for c in self.columns if c.generated is None)

    def as_plain(self) -> TableSpec:
        """This table with its generated columns turned into plain ones (their values copied):
        the ``generated_columns: plain`` choice for a target of another dialect."""
        columns = tuple(replace(c, generated=None) if c.generated is not None else c for c in self.columns)
        return replace(self, columns=columns)

    def column(self, name: str) -> ColumnSpec:
        """Return the column called ``name``.

        Raises:
            KeyError: no such column.
        """
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"{self.qualified_name} has no column {name!r}")
