"""The SQL Server Dialect record (data only; no driver import)."""

from __future__ import annotations

from include.replication.core.dialect import Dialect, TemporalLimits

__all__ = ["MSSQL", "MSSQL_OPTION_NAMES", "MSSQL_CASE_SENSITIVE_COLLATION"]

MSSQL_OPTION_NAMES = (
    "tds_version", "login_timeout", "timeout", "appname", "encryption", "charset", "statement_mib", "write_method",
)
"""Connection extras read by name: pymssql ``connect`` arguments (``charset`` must be UTF-8, the
reader relies on it), the writer's ``statement_mib`` (SQL text per INSERT, MiB) and
``write_method`` (``executemany`` or ``bulk_copy``)."""

MSSQL_CASE_SENSITIVE_COLLATION = "Latin1_General_100_BIN2"
"""Collation of SQL Server text columns copied from a case-sensitive source such as PostgreSQL:
binary code-point comparison, so two values are equal exactly when PostgreSQL's deterministic
collations say so (case, accents and supplementary characters all distinct; linguistic ``_CS_AS``
collations without ``_SC`` give many supplementary characters no weight, so distinct emoji keys
could collide). It exists on SQL Server 2008 and later and on Babelfish, which lacks the
``_SC_UTF8`` collations (measured: ``sys.fn_helpcollations()``)."""

_DATETIME2 = TemporalLimits(-62_135_596_800_000_000, 253_402_300_799_999_999)
"""datetime2 / datetimeoffset (written in UTC): 0001-01-01 to 9999-12-31 23:59:59.9999999."""
_TEMPORAL = {
    "datetime2": _DATETIME2,
    "datetimeoffset": _DATETIME2,
    # 1753-01-01 to 9999-12-31 23:59:59.997 in 1/300 s ticks
    "datetime": TemporalLimits(-6_847_804_800_000_000, 253_402_300_799_997_000, step_us=1000,
                               ms_last_digits=frozenset({0, 3, 7})),
    # 1900-01-01 to 2079-06-06 23:59, whole minutes
    "smalldatetime": TemporalLimits(-2_208_988_800_000_000, 3_453_321_540_000_000, step_us=60_000_000),
    "date": TemporalLimits(-719_162, 2_932_896, unit="day"),  # 0001-01-01 to 9999-12-31
}
"""Ranges and precision of SQL Server's date/time types (SQL Server "Date and time types")."""

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
    temporal_limits=_TEMPORAL,
    generated_template="{name} AS {expression}{storage}",  # a computed column takes its type from the expression
    generated_storage=(" PERSISTED", ""),
)
"""SQL Server: bracketed names, ``dbo``, 7 fractional digits, lengths in UTF-16 code units,
``IDENTITY(seed, increment)``, clustered primary keys."""
