"""Validation: source and target row counts per table, as a report and a pass/fail verdict."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal, get_args

from include.replication.core.errors import ConfigurationError, ValidationError
from include.replication.core.naming import NamingOptions, TableRef, target_schema
from include.replication.core.protocols import Source, Target

__all__ = [
    "ValidateMode",
    "VALIDATE_MODES",
    "validate_mode",
    "CountRow",
    "compare_counts",
    "raise_if_counts_differ",
    "format_count_table",
]

log = logging.getLogger(__name__)

ValidateMode = Literal["count", "checksum"]
"""What the validate task proves: equal ``COUNT(*)`` (``count``), or also equal rows, value for
value (``checksum``, :mod:`core.checksum`)."""
VALIDATE_MODES: tuple[str, ...] = get_args(ValidateMode)


def validate_mode(params: Mapping[str, Any] | None) -> ValidateMode:
    """The DAG param ``validate`` (default ``count``), checked.

    Raises:
        ConfigurationError: a value other than ``count`` or ``checksum``.
    """
    value = (params or {}).get("validate") or "count"
    if value not in VALIDATE_MODES:
        raise ConfigurationError(f"validate must be one of {list(VALIDATE_MODES)}, got {value!r}")
    return value  # type: ignore[return-value]  # checked against the Literal's values


@dataclass(frozen=True)
class CountRow:
    """Row counts of one table.

    Attributes:
        table: table name.
        source_rows: exact ``COUNT(*)`` in the source (rows).
        target_rows: exact ``COUNT(*)`` in the target (rows).
    """

    table: str
    source_rows: int
    target_rows: int

    @property
    def ok(self) -> bool:
        """True when both counts are equal."""
        return self.source_rows == self.target_rows

    def as_dict(self) -> dict[str, object]:
        """Plain dict with an ``ok`` key (XCom-serialisable)."""
        return {**asdict(self), "ok": self.ok}

    def summary(self) -> str:
        """``count ok 177`` or ``count DIFF source 177 target 176`` (for the audit row)."""
        if self.ok:
            return f"count ok {self.source_rows}"
        return f"count DIFF source {self.source_rows} target {self.target_rows}"


def compare_counts(
    source: Source, target: Target, tables: list[str], *, raise_on_mismatch: bool = True,
    schema_map: Mapping[str, str] | None = None, naming: NamingOptions | None = None,
) -> list[CountRow]:
    """Count every table in source and target.

    Args:
        source: open source.
        target: open target.
        tables: ``Table`` or ``schema.Table`` entries (:class:`core.naming.TableRef`).
        raise_on_mismatch: raise when any count differs.
        schema_map: source schema -> target schema of qualified entries (default the same name);
            ``naming.schema_map`` when ``naming`` is given.
        naming: the run's naming options: each table is counted in the target under its target
            name (template, case); None = the source's names.

    Returns:
        One :class:`CountRow` per table, in the given order.

    Raises:
        ValidationError: a count differs (names the tables), when ``raise_on_mismatch``.
    """
    rows = []
    for name in tables:
        ref = TableRef.parse(name)
        spec = source.describe(ref.name, ref.schema)
        tspec = naming.target_spec(spec, source.dialect.quote) if naming is not None else spec
        schema = naming.target_schema(name) if naming is not None else target_schema(ref, schema_map)
        if schema is None or schema == target.schema:
            counted = target.count_rows(tspec)
        else:
            with target.clone(schema=schema) as there:
                counted = there.count_rows(tspec)
        rows.append(CountRow(name, source.count_rows(spec), counted))
    log.info("row counts, source vs target:\n%s", format_count_table(rows))
    if raise_on_mismatch:
        raise_if_counts_differ(rows)
    return rows


def raise_if_counts_differ(rows: list[CountRow]) -> None:
    """Raise when any count differs.

    Raises:
        ValidationError: names every table whose counts differ, with both counts.
    """
    bad = [r for r in rows if not r.ok]
    if bad:
        raise ValidationError(
            "row counts differ: " + ", ".join(f"{r.table} {r.source_rows} != {r.target_rows}" for r in bad)
        )


def format_count_table(rows: list[CountRow]) -> str:
    """A fixed-width text table: table, source rows, target rows, OK/DIFF, and a total line."""
    width = max([len(r.table) for r in rows] + [5])
    lines = [f"{'table':<{width}}  {'source':>12}  {'target':>12}  check", "-" * (width + 36)]
    for r in rows:
        lines.append(f"{r.table:<{width}}  {r.source_rows:>12,}  {r.target_rows:>12,}  {'OK' if r.ok else 'DIFF'}")
    total_s = sum(r.source_rows for r in rows)
    total_t = sum(r.target_rows for r in rows)
    lines.append("-" * (width + 36))
    lines.append(f"{'total':<{width}}  {total_s:>12,}  {total_t:>12,}  {'OK' if total_s == total_t and all(r.ok for r in rows) else 'DIFF'}")
    return "\n".join(lines)
