"""Which source tables a run copies and what each is called in the target: ``tables`` entries and
patterns, the ``exclude`` list, the target schema map, the target table name template and the
target identifier case.

A ``tables`` entry is ``Table`` (the source connection's default schema, into the target
connection's default schema) or ``schema.Table`` (that source schema, into the target schema of
the same name unless ``schema_map`` names another). Names are split at the first dot; a table
whose own name holds a dot is written with its schema (``dbo.my.table``). An entry whose table
part holds ``*``, ``?`` or ``[`` is a pattern (:mod:`fnmatch`, case-insensitive), resolved against
the source catalog when the run is planned (:func:`resolve_tables`): ``Post*``, ``dbo.*``.

The target name of a table is ``target_table_template`` (``{table}``, ``so_{table}``,
``{schema}_{table}``) applied to the source name, then ``target_case``; keys, indexes and foreign
keys that carry the source table's name carry the target's (:meth:`NamingOptions.target_spec`).
Pure logic: no database, no driver.
"""

from __future__ import annotations

import fnmatch
import string
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from include.replication.core.catalog import TableSpec
from include.replication.core.config import DEFAULT_TABLE_TEMPLATE, DEFAULT_TARGET_CASE, TARGET_CASES, TargetCase
from include.replication.core.errors import ConfigurationError

__all__ = [
    "TableRef",
    "NamingOptions",
    "PatternError",
    "is_pattern",
    "resolve_tables",
    "target_schema",
]

_TEMPLATE_FIELDS = frozenset({"table", "schema"})


class PatternError(ConfigurationError):
    """A ``tables`` pattern matched no table of the source (or ``exclude`` left none); permanent.

    Attributes:
        pattern: the pattern, as given.
        schema: the source schema it was matched in (None = the source's default schema).
    """

    def __init__(self, message: str, *, pattern: str, schema: str | None = None) -> None:
        self.pattern = pattern
        self.schema = schema
        super().__init__(message)


@dataclass(frozen=True)
class TableRef:
    """One ``tables`` entry.

    Attributes:
        name: the table name (case kept).
        schema: the source schema, or None for the source connection's default.
    """

    name: str
    schema: str | None = None

    @classmethod
    def parse(cls, entry: str) -> TableRef:
        """``"Posts"`` -> ``TableRef("Posts")``; ``"archive.BigVotes"`` -> ``TableRef("BigVotes", "archive")``."""
        schema, dot, name = entry.partition(".")
        return cls(name, schema) if dot and schema and name else cls(entry)

    def __str__(self) -> str:
        return f"{self.schema}.{self.name}" if self.schema else self.name


def target_schema(ref: TableRef, schema_map: Mapping[str, str] | None = None) -> str | None:
    """The target schema of ``ref``: None (the target connection's default) for an unqualified
    entry, else ``schema_map[schema]`` or the same schema name."""
    if ref.schema is None:
        return None
    return (schema_map or {}).get(ref.schema, ref.schema)


def is_pattern(text: str) -> bool:
    """True when ``text`` holds a glob character (``*``, ``?``, ``[``)."""
    return any(ch in text for ch in "*?[")


def _matches(name: str, pattern: str) -> bool:
    return fnmatch.fnmatchcase(name.casefold(), pattern.casefold())


def _excluded(entry: str, patterns: Sequence[str]) -> bool:
    """An entry is excluded when a pattern matches it as written (``dbo.Votes``) or its table
    part alone (``Votes``), case-insensitively."""
    ref = TableRef.parse(entry)
    return any(_matches(entry, p) or (TableRef.parse(p).schema is None and _matches(ref.name, p)) for p in patterns)


def resolve_tables(
    patterns: Sequence[str], exclude: Sequence[str], list_tables: Callable[[str | None], list[str]]
) -> list[str]:
    """The run's ``tables`` entries: every pattern resolved against the source catalog, exact
    entries kept as written (the source's ``describe`` says if one does not exist), duplicates
    dropped (first occurrence kept), then ``exclude`` applied.

    Args:
        patterns: ``tables`` entries and patterns (``Posts``, ``Post*``, ``dbo.*``,
            ``archive.Big*``); empty = every base table of the source's default schema.
        exclude: patterns of entries to leave out (matched against ``schema.Table`` as written and
            against the table name alone).
        list_tables: the source's ``list_tables(schema)`` (None = its default schema).

    Returns:
        Entries in the order given (a pattern's matches sorted by name); qualified when the
        pattern was.

    Raises:
        PatternError: a pattern matches no table (names the pattern and schema), a schema part is
            a pattern, or ``exclude`` leaves no table.
    """
    found: list[str] = []
    if not patterns:
        found = list(list_tables(None))
    for pattern in patterns:
        ref = TableRef.parse(pattern)
        if ref.schema is not None and is_pattern(ref.schema):
            raise PatternError(f"tables pattern {pattern!r}: the schema part cannot be a pattern; name the schema",
                               pattern=pattern, schema=ref.schema)
        if not is_pattern(ref.name):
            found.append(pattern)
            continue
        names = list_tables(ref.schema)
        matched = [n for n in names if _matches(n, ref.name)]
        if not matched:
            where = f"schema {ref.schema!r}" if ref.schema else "the source's default schema"
            listed = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "") if names else "none"
            raise PatternError(f"tables pattern {pattern!r} matches no table in {where} (tables there: {listed})",
                               pattern=pattern, schema=ref.schema)
        found += [f"{ref.schema}.{n}" if ref.schema else n for n in matched]
    unique = list(dict.fromkeys(found))
    kept = [e for e in unique if not _excluded(e, exclude)]
    if unique and not kept:
        raise PatternError(f"exclude {list(exclude)} leaves none of the tables {unique}", pattern=", ".join(exclude))
    return kept


def _strings(value: Any, name: str) -> tuple[str, ...]:
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ConfigurationError(f"{name} must be a list of strings, got {value!r}")
    return tuple(v.strip() for v in value if v.strip())


@dataclass(frozen=True)
class NamingOptions:
    """The run's naming choices, validated once (:meth:`from_params`).

    Attributes:
        tables: ``tables`` entries and patterns (empty = every base table of the default schema).
        exclude: patterns of entries to leave out.
        target_case: ``preserve`` or ``lower`` (:data:`core.config.TargetCase`).
        table_template: target table name, with ``{table}`` (source table name) and optionally
            ``{schema}`` (source schema); applied before ``target_case``.
        schema_map: source schema -> target schema for ``schema.Table`` entries.
    """

    tables: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    target_case: TargetCase = DEFAULT_TARGET_CASE
    table_template: str = DEFAULT_TABLE_TEMPLATE
    schema_map: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.target_case not in TARGET_CASES:
            raise ConfigurationError(f"target_case must be one of {list(TARGET_CASES)}, got {self.target_case!r}")
        try:
            fields = {f for _, f, _, _ in string.Formatter().parse(self.table_template) if f is not None}
        except ValueError as exc:
            raise ConfigurationError(f"target_table_template {self.table_template!r}: {exc}") from exc
        if "table" not in fields or not fields <= _TEMPLATE_FIELDS:
            raise ConfigurationError(
                f"target_table_template {self.table_template!r} must contain {{table}} and may contain only "
                f"{sorted('{' + f + '}' for f in _TEMPLATE_FIELDS)}"
            )

    @classmethod
    def from_params(cls, params: Mapping[str, Any] | None) -> NamingOptions:
        """Build from DAG params (or the CLI's options under the same names): ``tables``,
        ``exclude`` (lists of strings, or comma-separated text), ``target_case``,
        ``target_table_template`` (empty = :data:`core.config.DEFAULT_TABLE_TEMPLATE`),
        ``schema_map`` (object). Other keys are ignored.

        Raises:
            ConfigurationError: a value of the wrong type, an unknown case, a bad template.
        """
        params = params or {}
        schema_map = params.get("schema_map") or {}
        if not isinstance(schema_map, Mapping):
            raise ConfigurationError(f"schema_map must be an object of schema names, got {schema_map!r}")
        return cls(
            tables=_strings(params.get("tables"), "tables"),
            exclude=_strings(params.get("exclude"), "exclude"),
            target_case=params.get("target_case") or DEFAULT_TARGET_CASE,
            table_template=params.get("target_table_template") or DEFAULT_TABLE_TEMPLATE,
            schema_map={str(k): str(v) for k, v in schema_map.items()},
        )

    def ident(self, name: str) -> str:
        """A column, index or constraint name in the target (lower-cased with ``lower``)."""
        return name.lower() if self.target_case == "lower" else name

    def table_name(self, name: str, schema: str) -> str:
        """The target table name of source table ``name`` in source schema ``schema``."""
        return self.ident(self.table_template.format(table=name, schema=schema))

    def target_schema(self, entry: str) -> str | None:
        """The target schema of a ``tables`` entry (None = the target connection's default)."""
        return target_schema(TableRef.parse(entry), self.schema_map or None)

    def target_spec(self, spec: TableSpec, quote: Callable[[str], str] | None = None) -> TableSpec:
        """``spec`` with the target's names: the table name from the template and case; columns,
        primary key, identity, index and foreign-key names and columns in the target case; a key,
        index or foreign-key name holding the source table's name holds the target's instead (so
        a templated copy beside the original has no clashing index names); referenced tables
        through the same template. Types, row estimate and the source dialect are kept.

        Args:
            spec: the source table's catalog.
            quote: the source dialect's identifier quoting; when given, quoted column names in
                generated-column expressions and partial/expression index SQL are renamed too.

        Returns:
            ``spec`` itself when no name changes.

        Raises:
            ConfigurationError: two columns of the table get the same target name.
        """
        name = self.table_name(spec.name, spec.schema)
        if name == spec.name and self.target_case == "preserve":
            return spec
        seen: dict[str, str] = {}
        for c in spec.columns:
            other = seen.setdefault(self.ident(c.name), c.name)
            if other != c.name:
                raise ConfigurationError(f"columns {other!r} and {c.name!r} both become {self.ident(c.name)!r} in the "
                                         "target (target_case lower); use target_case preserve",
                                         table=spec.qualified_name, column=c.name)

        def key(n: str) -> str:
            return self.ident(n.replace(spec.name, name, 1) if spec.name in n and name != spec.name else n)

        def sql(text: str | None) -> str | None:
            if text is None or quote is None or self.target_case == "preserve":
                return text
            for c in spec.columns:
                text = text.replace(quote(c.name), quote(self.ident(c.name)))
            return text

        columns = tuple(replace(c, name=self.ident(c.name), generated=sql(c.generated)) for c in spec.columns)
        identity = replace(spec.identity, column=self.ident(spec.identity.column)) if spec.identity else None
        indexes = tuple(
            replace(ix, name=key(ix.name), columns=tuple(self.ident(c) for c in ix.columns), where=sql(ix.where),
                    definition=sql(ix.definition))
            for ix in spec.indexes
        )
        fks = tuple(
            replace(fk, name=key(fk.name), columns=tuple(self.ident(c) for c in fk.columns),
                    ref_table=self.table_name(fk.ref_table, spec.schema),
                    ref_columns=tuple(self.ident(c) for c in fk.ref_columns))
            for fk in spec.foreign_keys
        )
        pk_name = key(spec.primary_key_name or f"PK_{spec.name}") if spec.primary_key else spec.primary_key_name
        return replace(
            spec, name=name, columns=columns, primary_key=tuple(self.ident(c) for c in spec.primary_key),
            primary_key_name=pk_name, identity=identity, indexes=indexes, foreign_keys=fks,
        )
