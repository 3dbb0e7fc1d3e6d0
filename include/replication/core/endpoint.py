"""The Endpoint record: where a database is and how to reach it (no dialect code, no driver)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

__all__ = ["Endpoint", "ConnectionFields"]


class ConnectionFields(NamedTuple):
    """The fields of an Airflow connection, as a dialect's own URI parser reads them.

    Attributes:
        conn_type: Airflow connection type (``postgres``, ``mssql``).
        host: host name or socket directory, or None.
        port: TCP port, or None.
        login: user, or None.
        password: password, or None.
        database: database name (Airflow's ``schema`` field), or None.
        extra: the remaining query parameters, by name.
    """

    conn_type: str
    host: str | None
    port: int | None
    login: str | None
    password: str | None
    database: str | None
    extra: dict[str, Any]


@dataclass(frozen=True)
class Endpoint:
    """Where a database is and how to reach it; built from Airflow connections or URIs
    (``include.replication.airflow.connections``) or by the tools.

    Attributes:
        dialect: the dialect's name (``postgresql`` or ``mssql``; a key of ``dialects.base.DIALECTS``).
        host: host name, or a Unix-socket directory for PostgreSQL.
        port: TCP port, or None for the driver default.
        database: database name.
        user: login, or None.
        password: password, or None. Never logged (``repr`` hides it).
        schema: schema inside the database, or None for the dialect's default (``public`` / ``dbo``).
        options: driver and writer options read by name from the connection extras (each
            dialect's ``Dialect.option_names``).
    """

    dialect: str
    host: str | None
    port: int | None
    database: str
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    schema: str | None = None
    options: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        """``dialect://user@host:port/database`` without the password, for logs and errors."""
        return f"{self.dialect}://{self.user or ''}@{self.host or ''}:{self.port or ''}/{self.database}"

    def with_database(self, database: str) -> Endpoint:
        """A copy pointing at another database on the same server."""
        return replace(self, database=database, options=dict(self.options))
