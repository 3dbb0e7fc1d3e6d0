"""The SQL Server Dialect record (data only; no driver import)."""

from __future__ import annotations

from include.replication.core.dialect import Dialect

__all__ = ["MSSQL", "MSSQL_OPTION_NAMES", "MSSQL_CASE_SENSITIVE_COLLATION"]

MSSQL_OPTION_NAMES = ("tds_version", "login_timeout", "timeout", "appname", "encryption", "charset", "statement_mib")
"""Connection extras read by name: pymssql ``connect`` arguments (``charset`` must be UTF-8, the
reader relies on it) and the writer's ``statement_mib`` (SQL text per INSERT, MiB)."""

MSSQL_CASE_SENSITIVE_COLLATION = "Latin1_General_100_BIN2"
"""Collation of SQL Server text columns copied from a case-sensitive source such as PostgreSQL:
binary code-point comparison, so two values are equal exactly when PostgreSQL's deterministic
collations say so (case, accents and supplementary characters all distinct; linguistic ``_CS_AS``
collations without ``_SC`` give many supplementary characters no weight, so distinct emoji keys
could collide). It exists on SQL Server 2008 and later and on Babelfish, which lacks the
``_SC_UTF8`` collations (measured: ``sys.fn_helpcollations()``)."""

MSSQL = Dialect(
    name="mssql",
    quote_start="[",
    quote_end="]",
    default_schema="dbo",
    default_time_precision=7,
    max_time_precision=7,
    # "nvarchar [ ( n | max ) ]: n ... from 1 through 4,000", varchar/varbinary through 8,000
    # (SQL Server "nchar and nvarchar", "char and varchar", "binary and varbinary")
    text_limits={
        "nvarchar": (4000, "nvarchar(max)"),
        "nchar": (4000, "nvarchar(max)"),
        "varchar": (8000, "varchar(max)"),
        "char": (8000, "varchar(max)"),
        "varbinary": (8000, "varbinary(max)"),
        "binary": (8000, "varbinary(max)"),
    },
    text_types=frozenset({"char", "nchar", "varchar", "nvarchar"}),
    option_names=MSSQL_OPTION_NAMES,
    text_allows_nul=False,  # kept strict: a NUL would reach pymssql's client-side quoting
    length_unit="utf16",
    key_ranges=True,
    identity_clause="IDENTITY({seed},{increment})",
    primary_key_clause="PRIMARY KEY CLUSTERED",
    drop_index_template="DROP INDEX IF EXISTS {index} ON {table}",
    case_sensitive_text=False,
    case_sensitive_collation=MSSQL_CASE_SENSITIVE_COLLATION,
    count_expression="COUNT_BIG(*)",
)
"""SQL Server: bracketed names, ``dbo``, 7 fractional digits, lengths in UTF-16 code units,
``IDENTITY(seed, increment)``, clustered primary keys."""
