"""Airflow connections -> :class:`Endpoint`. The only module that reads Airflow connections.

Connection fields map as Airflow's own Postgres and MSSQL hooks use them: ``host``, ``port``,
``login``, ``password``, and ``schema`` = the database name. Extras are read by name, never
splatted into a driver call: ``db_schema`` (schema inside the database, default public / dbo),
and the options the dialect's record lists (``Dialect.option_names``: libpq parameters for
PostgreSQL; pymssql arguments and the writer's ``statement_mib`` for SQL Server).

What Airflow does here, and what stays hand-written:

* A connection id is resolved by Airflow (``BaseHook.get_connection``: metadata DB, secrets
  backends, ``AIRFLOW_CONN_*``), and a URI of any other scheme by ``Connection.from_uri``, so the
  fields are Airflow's own parse.
* Kept: the libpq URI form (``postgresql://user@/db?host=/socket/dir``, what psql users and
  ``tools/localpg.py`` write) is parsed by ``dialects/postgres/connect.libpq_uri_fields``, because
  ``Connection.from_uri`` reads ``?host=`` as an extra and leaves the host empty (measured with
  Airflow 3.1.3: host ``''``, extra ``{'host': '/socket/dir'}``).
* Kept: the driver arguments themselves (``dialects/*/connect.py``). ``PostgresHook`` and
  ``MsSqlHook`` open psycopg2 / pymssql connections or SQLAlchemy engines; the copy needs an ADBC
  libpq URI and pymssql arguments with project rules (``tds_version`` default, ``charset`` refused
  unless UTF-8, the writer's ``statement_mib``), so the Endpoint is turned into those by the
  dialect. Lineage, which the hooks would also report, is reported by ``airflow/assets.py``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from include.replication.core.endpoint import Endpoint
from include.replication.core.errors import ConfigurationError
from include.replication.dialects.base import dialect
from include.replication.dialects.registry import URI_PARSERS

__all__ = ["CONN_TYPES", "endpoint_from_fields", "endpoint_from_airflow", "endpoint_from_uri", "endpoint_from_text"]

CONN_TYPES: dict[str, str] = {
    "postgres": "postgresql",
    "postgresql": "postgresql",
    "mssql": "mssql",
}
"""Airflow ``conn_type`` -> dialect."""

def endpoint_from_fields(
    conn_id: str,
    conn_type: str | None,
    host: str | None,
    port: int | None,
    login: str | None,
    password: str | None,
    database: str | None,
    extra: Mapping[str, Any] | None,
) -> Endpoint:
    """Build an :class:`Endpoint` from Airflow connection fields.

    Raises:
        ConfigurationError: unknown connection type or no database (``schema`` field); the message
            names the connection id, never the password.
    """
    name = CONN_TYPES.get((conn_type or "").lower())
    if name is None:
        raise ConfigurationError(
            f"connection {conn_id!r} has type {conn_type!r}; expected one of {sorted(CONN_TYPES)}"
        )
    if not database:
        raise ConfigurationError(f"connection {conn_id!r} names no database (the 'schema' field)")
    extra = dict(extra or {})
    options = {k: str(extra[k]) for k in dialect(name).option_names if k in extra and extra[k] is not None}
    return Endpoint(
        dialect=name,
        host=host or None,
        port=int(port) if port else None,
        database=database,
        user=login or None,
        password=password or None,
        schema=extra.get("db_schema") or None,
        options=options,
    )


def endpoint_from_airflow(conn_id: str) -> Endpoint:
    """Resolve an Airflow connection id (``stackoverflow_source``, ...) into an :class:`Endpoint`.

    Works wherever Airflow resolves connections: the metadata DB, a secrets backend, or
    ``AIRFLOW_CONN_<ID>`` environment variables.

    Raises:
        ConfigurationError: the connection does not exist or is not usable.
    """
    from airflow.sdk import BaseHook

    try:
        conn = BaseHook.get_connection(conn_id)
    except Exception as exc:
        raise ConfigurationError(f"Airflow connection {conn_id!r} not found: {type(exc).__name__}") from exc
    return endpoint_from_fields(
        conn_id, conn.conn_type, conn.host, conn.port, conn.login, conn.password, conn.schema, conn.extra_dejson
    )


def endpoint_from_uri(uri: str, conn_id: str = "uri", *, schema: str | None = None) -> Endpoint:
    """Parse a connection URI into an :class:`Endpoint`.

    PostgreSQL URIs follow libpq: ``postgresql://user:pw@host:5432/db``, the socket form
    ``postgresql://user@/db?host=/socket/dir``, and Airflow's form with a percent-encoded socket
    directory as host (``postgres://user@%2Fsocket%2Fdir/db``); other query parameters become
    options (read by name later). Other schemes (``mssql://...``) are parsed by Airflow's own
    ``Connection(uri=...)``, so a URI that works as ``AIRFLOW_CONN_...`` works here too.

    Args:
        uri: the URI; the password in it never reaches a log or an error message.
        conn_id: name used in error messages.
        schema: schema inside the database (overrides a ``db_schema`` query parameter).

    Raises:
        ConfigurationError: unparsable or unsupported URI, or no database.
    """
    from urllib.parse import urlsplit

    native = URI_PARSERS.get(urlsplit(uri).scheme)
    if native is not None:
        fields = native(uri)
        extra: dict[str, Any] = dict(fields.extra)
        if schema:
            extra["db_schema"] = schema
        return endpoint_from_fields(
            conn_id, fields.conn_type, fields.host, fields.port, fields.login, fields.password, fields.database, extra
        )
    from airflow.sdk import Connection

    try:
        conn = Connection.from_uri(uri, conn_id=conn_id)
    except Exception as exc:
        raise ConfigurationError(f"cannot parse connection URI for {conn_id!r}: {type(exc).__name__}") from exc
    extra = dict(conn.extra_dejson)
    if schema:
        extra["db_schema"] = schema
    return endpoint_from_fields(conn_id, conn.conn_type, conn.host, conn.port, conn.login, conn.password, conn.schema, extra)


def endpoint_from_text(text: str, name: str = "endpoint", *, schema: str | None = None) -> Endpoint:
    """An endpoint from what a user types on the command line: a connection URI (anything with
    ``://``, the ``AIRFLOW_CONN_*`` format: :func:`endpoint_from_uri`), or an Airflow connection
    id. An id whose ``AIRFLOW_CONN_<ID>`` environment variable holds a URI is parsed from it
    directly (no Airflow start-up); any other id is resolved by Airflow
    (:func:`endpoint_from_airflow`: metadata DB, secrets backend, JSON-form variables).

    Args:
        text: URI or connection id.
        name: what the value is (``--source``), for error messages.
        schema: schema inside the database (overrides the connection's ``db_schema``).

    Raises:
        ConfigurationError: an unparsable URI, an unknown connection, no database.
    """
    if "://" in text:
        return endpoint_from_uri(text, name, schema=schema)
    value = os.environ.get(f"AIRFLOW_CONN_{text.upper()}", "")
    endpoint = endpoint_from_uri(value, text) if "://" in value else endpoint_from_airflow(text)
    if schema:
        from dataclasses import replace

        endpoint = replace(endpoint, schema=schema)
    return endpoint
