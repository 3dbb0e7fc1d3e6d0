"""Which source tables a run copies and where each lands: ``schema.table`` entries and the target
schema map.

A ``tables`` entry is ``Table`` (the source connection's default schema, into the target
connection's default schema) or ``schema.Table`` (that source schema, into the target schema of
the same name unless ``schema_map`` names another). Names are split at the first dot; a table
whose own name holds a dot is written with its schema (``dbo.my.table``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["TableRef", "target_schema"]


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
