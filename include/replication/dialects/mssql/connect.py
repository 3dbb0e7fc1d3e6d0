"""pymssql connections from an :class:`Endpoint`, shared by the SQL Server source and target."""

from __future__ import annotations

from typing import Any

from include.replication.core.endpoint import Endpoint
from include.replication.core.errors import ConfigurationError
from include.replication.dialects.mssql.dialect import MSSQL

__all__ = ["DEFAULT_TDS_VERSION", "TRANSIENT_ERROR_NUMBERS", "is_transient", "WRITE_METHODS", "connect_arguments", "connect_mssql", "connect_pytds", "write_method"]

WRITE_METHODS = ("executemany", "bulk_copy")
"""How the SQL Server writer sends rows: chunked multi-row INSERT through pymssql (the default), or
the TDS bulk-load protocol through python-tds (:mod:`include.replication.dialects.mssql.bulk`)."""

DEFAULT_TDS_VERSION = "7.4"
"""TDS protocol version asked for unless the connection says otherwise: 7.4 (SQL Server 2012 and
later) returns datetime2 as a datetime (7.2 returns text; 7.0/7.1/8.0 fail; pymssql/FreeTDS docs
and ../shared/babelfish/README.md)."""

_UTF8 = {"utf-8", "utf8"}


def connect_arguments(endpoint: Endpoint, *, autocommit: bool = False, database: str | None = None) -> dict[str, Any]:
    """The keyword arguments of ``pymssql.connect`` for an endpoint (no connection is made).

    Options are read by name from ``endpoint.options`` (the names in ``MSSQL.option_names``):
    ``tds_version`` (default :data:`DEFAULT_TDS_VERSION`), ``login_timeout`` and ``timeout``
    (seconds), ``appname``, ``encryption``, ``charset``. ``statement_mib`` belongs to the writer
    and is not passed to the driver.

    Args:
        endpoint: a ``mssql`` endpoint.
        autocommit: pymssql autocommit mode.
        database: database to open instead of ``endpoint.database`` (e.g. ``master``).

    Returns:
        The arguments, password included (never log them).

    Raises:
        ConfigurationError: ``charset`` is not UTF-8 (the reader's text conversion relies on it),
            or a timeout is not an integer.
    """
    opts = endpoint.options
    charset = opts.get("charset", "UTF-8")
    if charset.lower() not in _UTF8:
        raise ConfigurationError(
            f"connection {endpoint.describe()}: charset {charset!r} is not supported; the SQL Server reader "
            "and writer exchange text as UTF-8 (remove the option or set it to UTF-8)"
        )
    kwargs: dict[str, Any] = {
        "server": endpoint.host or "localhost",
        "port": str(endpoint.port or 1433),
        "user": endpoint.user,
        "password": endpoint.password,
        "database": database if database is not None else endpoint.database,
        "autocommit": autocommit,
        "tds_version": opts.get("tds_version", DEFAULT_TDS_VERSION),
        "charset": "UTF-8",
    }
    for name in ("login_timeout", "timeout"):
        if name in opts:
            try:
                kwargs[name] = int(opts[name])
            except ValueError:
                raise ConfigurationError(f"connection option {name} must be whole seconds, got {opts[name]!r}") from None
    for name in ("appname", "encryption"):
        if name in opts:
            kwargs[name] = opts[name]
    write_method(endpoint)  # validated with the other options
    unknown = set(opts) - set(MSSQL.option_names)
    if unknown:  # Endpoint builders keep only known names; a hand-made Endpoint may not
        raise ConfigurationError(f"unknown SQL Server connection options {sorted(unknown)}; known: {list(MSSQL.option_names)}")
    return kwargs


def connect_mssql(endpoint: Endpoint, *, autocommit: bool = False, database: str | None = None) -> Any:
    """Open a pymssql connection (see :func:`connect_arguments`); the caller owns and closes it.

    Returns:
        A ``pymssql.Connection``.

    Raises:
        ConfigurationError: an unusable option.
        Exception: whatever ``pymssql.connect`` raises (callers wrap it with the endpoint described
            without its password).
    """
    import pymssql

    return pymssql.connect(**connect_arguments(endpoint, autocommit=autocommit, database=database))


def write_method(endpoint: Endpoint) -> str:
    """The endpoint's ``write_method`` option (:data:`WRITE_METHODS`), default ``executemany``.

    Raises:
        ConfigurationError: an unknown method.
    """
    method = endpoint.options.get("write_method", WRITE_METHODS[0])
    if method not in WRITE_METHODS:
        raise ConfigurationError(f"write_method must be one of {list(WRITE_METHODS)}, got {method!r}")
    return method


def connect_pytds(endpoint: Endpoint, *, database: str | None = None) -> Any:
    """Open a python-tds connection in autocommit mode (transactions are explicit), for the bulk-load
    writer; the caller owns and closes it. Options as :func:`connect_arguments` (``timeout``,
    ``login_timeout``, ``appname``); TDS 7.4.

    Raises:
        ConfigurationError: an unusable option.
        Exception: whatever ``pytds.connect`` raises (callers wrap it without the password).
    """
    import pytds

    args = connect_arguments(endpoint, autocommit=True, database=database)
    kwargs: dict[str, Any] = {
        "server": args["server"], "port": int(args["port"]), "database": args["database"],
        "user": args["user"], "password": args["password"], "autocommit": True,
    }
    for name in ("login_timeout", "timeout", "appname"):
        if name in args:
            kwargs[name] = args[name]
    return pytds.connect(**kwargs)


TRANSIENT_ERROR_NUMBERS = frozenset({
    -2, 233, 1205, 1222, 4060, 10053, 10054, 10060, 40197, 40501, 40613, 49918, 49919, 49920,
    20003, 20004, 20006, 20009, 20047,
})
"""SQL Server and DB-Library error numbers a retry can clear: timeout (-2), connection lost (233,
10053, 10054, 10060), deadlock victim (1205), lock timeout (1222), database unavailable (4060,
Azure's 40197/40501/40613/4991x), DB-Library timeout/read/write/connect/dead-process (20003,
20004, 20006, 20009, 20047). Other errors (constraint, conversion, syntax, permission) are
permanent (SQL Server "Database engine errors"; FreeTDS's DB-Library message list)."""


def is_transient(exc: BaseException) -> bool:
    """True when retrying may help: a lost or unusable connection, or an error number in
    :data:`TRANSIENT_ERROR_NUMBERS` (pymssql and python-tds exceptions alike)."""
    name = type(exc).__name__
    if name in ("InterfaceError", "ClosedConnectionError", "ConnectionError", "TimeoutError", "OSError"):
        return True
    args = getattr(exc, "args", ())
    number = getattr(exc, "number", None)
    if number is None and args and isinstance(args[0], int):
        number = args[0]
    if number is None and name == "OperationalError" and args and isinstance(args[0], tuple) and args[0]:
        number = args[0][0] if isinstance(args[0][0], int) else None
    if number is None:
        return name == "OperationalError" or isinstance(exc, (ConnectionError, TimeoutError))
    return int(number) in TRANSIENT_ERROR_NUMBERS
