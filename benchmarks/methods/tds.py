"""What the SQL Server-source methods share: the ``mssql://`` URI -> :class:`Endpoint` parse, and
the plain pymssql row reader of the baselines.

Why a parser here: the product parses ``mssql://`` URIs with Airflow's ``Connection.from_uri``,
whose import takes about 5 s, and a method builds its endpoints inside the timed part of its run.
:func:`mssql_endpoint_from_uri` reads the same URI form the same way (percent-decoded user,
password, host and database; query parameters kept as options by name, as
``endpoint_from_fields`` keeps them) without Airflow; the unit tests check it against the
product's parser.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from benchmarks.methods.base import RunContext
from include.replication.core.endpoint import Endpoint
from include.replication.core.errors import ConfigurationError
from include.replication.dialects.mssql.dialect import MSSQL

__all__ = [
    "MSSQL_SCHEMES",
    "TEXTSIZE_SQL",
    "endpoint_for",
    "mssql_endpoint_from_uri",
    "pymssql_connect",
    "pymssql_row_chunks",
]

MSSQL_SCHEMES = ("mssql",)
"""URI schemes read as SQL Server endpoints (Airflow's ``conn_type`` for SQL Server)."""

TEXTSIZE_SQL = "SET TEXTSIZE 2147483647"
"""What our reader sends first (``dialects/mssql/source.py``): without it FreeTDS cuts
``nvarchar(max)`` values (Posts.Body) at its default text size, so the baselines send it too."""


def mssql_endpoint_from_uri(uri: str, schema: str | None = None) -> Endpoint:
    """The ``mssql`` :class:`Endpoint` of ``mssql://user:password@host:port/database?option=value``.

    Args:
        uri: the URI (every part percent-encoded, as ``LocalBabelfish.uri`` writes it).
        schema: schema inside the database (default: a ``db_schema`` query parameter, else None
            = ``dbo``).

    Returns:
        The endpoint; query parameters among ``MSSQL.option_names`` become options, others are
        dropped (as ``endpoint_from_fields`` does).

    Raises:
        ConfigurationError: not an ``mssql://`` URI, or no database in its path.
    """
    parts = urlsplit(uri)
    if parts.scheme not in MSSQL_SCHEMES:
        raise ConfigurationError(f"not an mssql:// URI: scheme {parts.scheme!r}")
    database = unquote(parts.path.lstrip("/"))
    if not database:
        raise ConfigurationError("the mssql:// URI names no database")
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    return Endpoint(
        dialect=MSSQL.name,
        host=unquote(parts.hostname) if parts.hostname else None,
        port=parts.port,
        database=database,
        user=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        schema=schema or query.get("db_schema") or None,
        options={k: v for k, v in query.items() if k in MSSQL.option_names},
    )


def endpoint_for(uri: str, schema: str) -> Endpoint:
    """The product's :class:`Endpoint` for a benchmark URI: ``mssql://`` through
    :func:`mssql_endpoint_from_uri`, libpq URIs through the product's own (Airflow-free) parser.

    Raises:
        ConfigurationError: unparsable URI.
    """
    if urlsplit(uri).scheme in MSSQL_SCHEMES:
        return mssql_endpoint_from_uri(uri, schema)
    from include.replication.airflow.connections import endpoint_from_uri

    return endpoint_from_uri(uri, schema=schema)


def pymssql_connect(uri: str, database: str | None = None) -> Any:
    """A plain ``pymssql.connect`` (TDS 7.4, UTF-8, autocommit) to the database of an ``mssql://`` URI
    (or ``database``), what a user of pymssql would write; the caller closes it.

    Raises:
        pymssql.Error: the server refused the connection.
    """
    import pymssql

    ep = mssql_endpoint_from_uri(uri)
    return pymssql.connect(
        server=ep.host or "localhost",
        port=str(ep.port or 1433),
        user=ep.user,
        password=ep.password,
        database=database or ep.database,
        tds_version="7.4",
        charset="UTF-8",
        autocommit=True,
    )


def pymssql_row_chunks(ctx: RunContext) -> Iterator[list[tuple[Any, ...]]]:
    """Rows of ``ctx.select_sql`` (our reader's ``SELECT``) from the SQL Server source as pymssql
    tuples, ``fetchmany(ctx.chunk_rows)`` at a time; one session, ``SET TEXTSIZE`` first.

    Yields:
        Non-empty lists of row tuples (pymssql's Python values: int, str, datetime, ...).

    Raises:
        pymssql.Error: the connection or the query failed.
    """
    conn = pymssql_connect(ctx.source_uri)
    try:
        cur = conn.cursor()
        cur.execute(TEXTSIZE_SQL)
        cur.execute(ctx.select_sql)
        while rows := cur.fetchmany(ctx.chunk_rows):
            yield rows
        cur.close()
    finally:
        conn.close()
