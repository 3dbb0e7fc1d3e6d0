"""The dialect registry: name -> (Dialect record, Source class, Target class), and the two
factories that open a Source or a Target for an :class:`Endpoint`.

Implementations import their drivers lazily (on connect), so importing the registry loads no
database driver.
"""

from __future__ import annotations

from collections.abc import Callable

from include.replication.core.dialect import Dialect
from include.replication.core.endpoint import ConnectionFields, Endpoint
from include.replication.core.errors import ConfigurationError
from include.replication.core.protocols import Source, Target
from include.replication.dialects.mssql.dialect import MSSQL
from include.replication.dialects.mssql.source import MssqlSource
from include.replication.dialects.mssql.target import MssqlTarget
from include.replication.dialects.postgres.connect import libpq_uri_fields
from include.replication.dialects.postgres.dialect import POSTGRES
from include.replication.dialects.postgres.source import PostgresSource
from include.replication.dialects.postgres.target import PostgresTarget

__all__ = ["REGISTRY", "URI_PARSERS", "open_source", "open_target"]

REGISTRY: dict[str, tuple[Dialect, Callable[[Endpoint], Source], Callable[[Endpoint], Target]]] = {
    POSTGRES.name: (POSTGRES, PostgresSource, PostgresTarget),
    MSSQL.name: (MSSQL, MssqlSource, MssqlTarget),
}
"""Every dialect the pipeline reads from and writes to."""

URI_PARSERS: dict[str, Callable[[str], ConnectionFields]] = {
    "postgresql": libpq_uri_fields,
    "postgres": libpq_uri_fields,
}
"""URI scheme -> the dialect's own URI parser, for URI forms Airflow's ``Connection(uri=...)``
does not read (libpq's socket form). Other schemes go through Airflow's parser."""


def _entry(endpoint: Endpoint) -> tuple[Dialect, Callable[[Endpoint], Source], Callable[[Endpoint], Target]]:
    try:
        return REGISTRY[endpoint.dialect]
    except KeyError:
        raise ConfigurationError(
            f"unknown dialect {endpoint.dialect!r} for {endpoint.describe()}; known: {', '.join(sorted(REGISTRY))}"
        ) from None


def open_source(endpoint: Endpoint) -> Source:
    """Open a :class:`Source` for the endpoint's dialect (the caller owns and closes it).

    Raises:
        ConfigurationError: unknown dialect.
        SourceError: the connection failed.
    """
    return _entry(endpoint)[1](endpoint)


def open_target(endpoint: Endpoint) -> Target:
    """Open a :class:`Target` for the endpoint's dialect (the caller owns and closes it).

    Raises:
        ConfigurationError: unknown dialect.
        TargetError: the connection failed.
    """
    return _entry(endpoint)[2](endpoint)
