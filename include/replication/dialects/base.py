"""The Dialect records by name (data only: importing this imports no driver and no implementation)."""

from __future__ import annotations

from include.replication.core.dialect import Dialect
from include.replication.core.errors import ConfigurationError
from include.replication.dialects.mssql.dialect import MSSQL
from include.replication.dialects.postgres.dialect import POSTGRES

__all__ = ["DIALECTS", "dialect"]

DIALECTS: dict[str, Dialect] = {d.name: d for d in (POSTGRES, MSSQL)}
"""Every dialect the pipeline reads from and writes to, by name."""


def dialect(name: str) -> Dialect:
    """The Dialect record called ``name``.

    Raises:
        ConfigurationError: no such dialect (names the known ones).
    """
    try:
        return DIALECTS[name]
    except KeyError:
        raise ConfigurationError(f"unknown dialect {name!r}; known: {', '.join(sorted(DIALECTS))}") from None
