"""PostgreSQL connections through ADBC (``adbc_driver_postgresql.dbapi``), shared by source and target."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

from include.replication.core.endpoint import ConnectionFields, Endpoint
from include.replication.core.errors import ConfigurationError
from include.replication.dialects.postgres.dialect import POSTGRES

__all__ = ["libpq_uri", "libpq_uri_fields", "connect", "sqlstate", "is_transient", "close_quietly"]

log = logging.getLogger(__name__)

TRANSIENT_SQLSTATE_CLASSES = ("08", "40", "53", "57", "58")
"""SQLSTATE classes a retry can clear: connection exception, transaction rollback (serialization,
deadlock), insufficient resources, operator intervention (admin shutdown, cancel), system error
(PostgreSQL "Appendix A. Error Codes"). Everything else (data exceptions 22, integrity 23, syntax
and undefined objects 42, ...) fails the same way again."""


def libpq_uri(endpoint: Endpoint) -> str:
    """Build the libpq URI of an endpoint.

    A host starting with ``/`` is a Unix-socket directory and goes to the ``host=`` parameter.
    Only the options named in ``POSTGRES.option_names`` are passed on.

    Raises:
        ConfigurationError: the endpoint is not PostgreSQL or has no database.
    """
    if endpoint.dialect != POSTGRES.name:
        raise ConfigurationError(f"not a PostgreSQL endpoint: {endpoint.describe()}")
    if not endpoint.database:
        raise ConfigurationError(f"PostgreSQL endpoint without database: {endpoint.describe()}")
    auth = ""
    if endpoint.user:
        auth = quote(endpoint.user, safe="")
        if endpoint.password:
            auth += ":" + quote(endpoint.password, safe="")
        auth += "@"
    params = {k: endpoint.options[k] for k in POSTGRES.option_names if k in endpoint.options}
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


def libpq_uri_fields(uri: str) -> ConnectionFields:
    """Read a libpq URI into connection fields (libpq's own forms, which Airflow's parser misses).

    Forms: ``postgresql://user:pw@host:5432/db``, the socket form
    ``postgresql://user@/db?host=/socket/dir`` (libpq "Connection URIs"), and Airflow's form with
    a percent-encoded socket directory as host (``postgres://user@%2Fsocket%2Fdir/db``). Other
    query parameters stay in ``extra`` (read by name later, never passed on blindly).

    Raises:
        ConfigurationError: a port that is not a number.
    """
    parts = urlsplit(uri)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    hostport = parts.netloc.rsplit("@", 1)[-1]
    host, _, port = hostport.rpartition(":") if hostport.count(":") == 1 else (hostport, "", "")
    host = unquote(host) or query.pop("host", "")
    port = port or query.pop("port", "")
    query.pop("host", None)
    query.pop("port", None)
    if port and not port.isdigit():
        raise ConfigurationError(f"port {port!r} is not a number")
    return ConnectionFields(
        "postgres",
        host or None,
        int(port) if port else None,
        unquote(parts.username) if parts.username else None,
        unquote(parts.password) if parts.password else None,
        unquote(parts.path.lstrip("/")) or None,
        dict(query),
    )


def connect(endpoint: Endpoint, *, autocommit: bool = False) -> Any:
    """Open an ADBC DB-API connection to the endpoint.

    Returns:
        ``adbc_driver_postgresql.dbapi.Connection``; the caller owns and closes it.

    Raises:
        ConfigurationError: bad endpoint.
        adbc_driver_manager.Error: the server refused the connection (callers wrap it).
    """
    import adbc_driver_postgresql.dbapi as pg_dbapi

    return pg_dbapi.connect(libpq_uri(endpoint), autocommit=autocommit)


def sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE an ADBC error carries (``adbc_driver_manager.Error.sqlstate``), or None."""
    state = getattr(exc, "sqlstate", None)
    return str(state) if state else None


def is_transient(exc: BaseException) -> bool:
    """True when retrying may help: a transient SQLSTATE class, or no SQLSTATE at all (a lost
    connection: libpq reports ``server closed the connection`` without one)."""
    state = sqlstate(exc)
    return state is None or state[:2] in TRANSIENT_SQLSTATE_CLASSES


def close_quietly(conn: Any) -> None:
    """Roll back and close a connection on a cleanup path; a failure is logged, never raised, so it
    cannot replace the error that brought us here."""
    for step in ("rollback", "close"):
        try:
            getattr(conn, step)()
        except Exception:  # noqa: BLE001 - cleanup of a possibly broken connection
            log.debug("%s on a broken connection failed", step, exc_info=True)
