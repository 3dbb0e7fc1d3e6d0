"""PostgreSQL connections through ADBC (``adbc_driver_postgresql.dbapi``), shared by source and target."""

from __future__ import annotations

from urllib.parse import quote, urlencode

from include.replication.core.endpoints import Endpoint
from include.replication.core.errors import ConfigurationError

__all__ = ["libpq_uri", "connect", "PG_OPTION_NAMES"]

PG_OPTION_NAMES = ("sslmode", "sslrootcert", "sslcert", "sslkey", "application_name", "connect_timeout")
"""libpq URI parameters taken by name from an endpoint's options (connection extras)."""


def libpq_uri(endpoint: Endpoint) -> str:
    """Build the libpq URI of an endpoint.

    A host starting with ``/`` is a Unix-socket directory and goes to the ``host=`` parameter.
    Only the options named in ``PG_OPTION_NAMES`` are passed on.

    Raises:
        ConfigurationError: the endpoint is not PostgreSQL or has no database.
    """
    if endpoint.dialect != "postgresql":
        raise ConfigurationError(f"not a PostgreSQL endpoint: {endpoint.describe()}")
    if not endpoint.database:
        raise ConfigurationError(f"PostgreSQL endpoint without database: {endpoint.describe()}")
    auth = ""
    if endpoint.user:
        auth = quote(endpoint.user, safe="")
        if endpoint.password:
            auth += ":" + quote(endpoint.password, safe="")
        auth += "@"
    params = {k: endpoint.options[k] for k in PG_OPTION_NAMES if k in endpoint.options}
    host = endpoint.host or ""
    netloc = ""
    if host.startswith("/"):
        params["host"] = host
        if endpoint.port:
            params["port"] = str(endpoint.port)
    else:
        netloc = quote(host, safe="") + (f":{endpoint.port}" if endpoint.port else "")
    query = ("?" + urlencode(params)) if params else ""
    return f"postgresql://{auth}{netloc}/{quote(endpoint.database, safe='')}{query}"


def connect(endpoint: Endpoint, *, autocommit: bool = False):  # noqa: ANN201 - ADBC Connection
    """Open an ADBC DB-API connection to the endpoint.

    Returns:
        ``adbc_driver_postgresql.dbapi.Connection``; the caller owns and closes it.

    Raises:
        ConfigurationError: bad endpoint.
        adbc_driver_manager.Error: the server refused the connection (callers wrap it).
    """
    import adbc_driver_postgresql.dbapi as pg_dbapi

    return pg_dbapi.connect(libpq_uri(endpoint), autocommit=autocommit)
