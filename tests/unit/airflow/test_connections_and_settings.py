"""Connection URIs and Airflow connection fields -> Endpoint; config validation; secret redaction."""

from __future__ import annotations

import pytest

from include.replication.airflow.connections import endpoint_from_fields, endpoint_from_uri
from include.replication.core.config import CopySettings, MiB
from include.replication.core.errors import ConfigurationError, redact
from include.replication.dialects.postgres.connect import libpq_uri


@pytest.mark.parametrize(
    ("uri", "host", "port", "db", "user", "password"),
    [
        ("postgresql://alice:s3cr%40t@db.example:6543/so", "db.example", 6543, "so", "alice", "s3cr@t"),
        ("postgresql://postgres@/so_src?host=/tmp/Sock%20Dir", "/tmp/Sock Dir", None, "so_src", "postgres", None),
        ("postgres://postgres@%2Ftmp%2FPgData/target", "/tmp/PgData", None, "target", "postgres", None),
        ("postgres://u:p@h/d", "h", None, "d", "u", "p"),
    ],
)
def test_postgres_uris(uri, host, port, db, user, password):
    ep = endpoint_from_uri(uri)
    assert (ep.dialect, ep.host, ep.port, ep.database, ep.user, ep.password) == (
        "postgresql", host, port, db, user, password)


def test_options_are_read_by_name_and_schema_override():
    ep = endpoint_from_uri("postgresql://u@h/d?sslmode=require&evil=1&db_schema=so", schema="other")
    assert ep.options == {"sslmode": "require"}
    assert ep.schema == "other"
    assert endpoint_from_uri("postgresql://u@h/d?db_schema=so").schema == "so"
    assert endpoint_from_uri("postgresql://u@h/d").schema is None  # the dialect default (public) applies


def test_mssql_uri_through_airflow_parsing():
    ep = endpoint_from_uri("mssql://sa:Pa%3Bss@sql.example:1433/StackOverflow2010?tds_version=7.4")
    assert (ep.dialect, ep.host, ep.port, ep.database, ep.user, ep.password) == (
        "mssql", "sql.example", 1433, "StackOverflow2010", "sa", "Pa;ss")
    assert ep.options == {"tds_version": "7.4"}
    assert ep.schema is None


def test_password_never_in_repr_or_description():
    ep = endpoint_from_uri("postgresql://alice:topsecret@h:5432/d")
    assert "topsecret" not in repr(ep)
    assert "topsecret" not in ep.describe()


def test_unusable_connections_name_the_connection_not_the_secret():
    with pytest.raises(ConfigurationError, match="'stackoverflow_source' has type 'mysql'"):
        endpoint_from_fields("stackoverflow_source", "mysql", "h", 1, "u", "pw", "db", {})
    with pytest.raises(ConfigurationError, match="names no database"):
        endpoint_from_fields("stackoverflow_target", "mssql", "h", 1, "u", "pw", None, {})


def test_libpq_uri_round_trip():
    ep = endpoint_from_uri("postgresql://a%20b:p%2Fw@/my%20db?host=/tmp/x&sslmode=disable")
    assert libpq_uri(ep) == "postgresql://a%20b:p%2Fw@/my%20db?sslmode=disable&host=%2Ftmp%2Fx"
    assert libpq_uri(endpoint_from_uri("postgresql://u@db:5433/so")) == "postgresql://u@db:5433/so"


def test_redact_removes_passwords():
    text = "could not connect to postgresql://alice:hunter2@db/so; retry with password=hunter2;x"
    out = redact(text)
    assert "hunter2" not in out
    assert "postgresql://alice:***@db/so" in out


def test_copy_settings_from_params():
    s = CopySettings.from_params({"memory_budget_mib": 64, "batch_rows": 1000, "overlap": False}, run_id="r", attempt=3)
    # overlap is not a DAG param (the DAGs always overlap); the benchmarks set it on CopySettings
    assert (s.memory_budget_bytes, s.batch_rows, s.batch_bytes, s.overlap, s.run_id, s.attempt) == (
        64 * MiB, 1000, 2 * MiB, True, "r", 3)
    assert CopySettings.from_params({}).batch_bytes == 4 * MiB
    assert CopySettings.from_params({"memory_budget_mib": 1024}).batch_bytes == 8 * MiB
    assert CopySettings.from_params({"memory_budget_mib": 1}).batch_bytes == 64 * 1024
    assert CopySettings().buffer_budget_bytes == 128 * MiB - 16 * 4 * MiB  # 64 MiB in the buffer
    # 1 MiB - 16 x 64 KiB in flight leaves nothing: the floor of two batches
    assert CopySettings.from_params({"memory_budget_mib": 1}).buffer_budget_bytes == 2 * 64 * 1024
    tight = CopySettings(memory_budget_bytes=2 * MiB, batch_bytes=512 * 1024)
    assert tight.buffer_budget_bytes == 1 * MiB  # never less than two batches
    with pytest.raises(ConfigurationError):
        CopySettings.from_params({"memory_budget_mib": 0})
    with pytest.raises(ConfigurationError):
        CopySettings.from_params({"parallel_ranges": 17})
    with pytest.raises(ConfigurationError):
        CopySettings.from_params({"batch_rows": "many"})


def test_regression_mssql_options_from_an_airflow_connection_reach_driver_and_writer():
    """Before: connections.OPTION_NAMES lacked appname, encryption and statement_mib, so an Airflow
    connection could never set them; charset was accepted and then overwritten with UTF-8."""
    from include.replication.dialects.mssql.connect import connect_arguments
    from include.replication.dialects.mssql.target import MssqlTarget

    extras = {"appname": "so-replication", "encryption": "require", "statement_mib": "4", "tds_version": "7.4",
              "login_timeout": "7", "evil": "x"}
    ep = endpoint_from_fields("stackoverflow_target", "mssql", "sql.example", 1433, "sa", "pw", "so", extras)
    assert ep.options == {"appname": "so-replication", "encryption": "require", "statement_mib": "4",
                          "tds_version": "7.4", "login_timeout": "7"}
    kwargs = connect_arguments(ep)
    assert (kwargs["appname"], kwargs["encryption"], kwargs["tds_version"], kwargs["login_timeout"]) == (
        "so-replication", "require", "7.4", 7)
    assert "evil" not in kwargs and "statement_mib" not in kwargs
    assert MssqlTarget(ep).statement_bytes == 4 * MiB


@pytest.mark.parametrize("charset", ["UTF-8", "utf8"])
def test_mssql_charset_utf8_is_accepted(charset):
    from include.replication.dialects.mssql.connect import connect_arguments

    ep = endpoint_from_fields("c", "mssql", "h", 1433, "u", "p", "d", {"charset": charset})
    assert connect_arguments(ep)["charset"] == "UTF-8"


def test_regression_mssql_charset_other_than_utf8_is_refused_not_overwritten():
    from include.replication.dialects.mssql.connect import connect_arguments

    ep = endpoint_from_fields("c", "mssql", "h", 1433, "u", "p", "d", {"charset": "cp1252"})
    with pytest.raises(ConfigurationError, match="charset 'cp1252'.*UTF-8"):
        connect_arguments(ep)


def test_the_libpq_socket_form_is_parsed_here_because_airflow_leaves_its_host_empty():
    """Why connections.py keeps its own libpq URI parse (documented there): Airflow's parse of the
    socket form puts the socket directory into the extras; ours makes it the host."""
    from airflow.sdk import Connection

    from include.replication.airflow.connections import endpoint_from_uri

    uri = "postgresql://user@/db?host=/socket/dir&sslmode=require"
    airflow_conn = Connection.from_uri(uri, conn_id="x")
    assert (airflow_conn.host, airflow_conn.extra_dejson["host"]) == ("", "/socket/dir")
    ep = endpoint_from_uri(uri)
    assert (ep.host, ep.database, ep.user, ep.options.get("sslmode")) == ("/socket/dir", "db", "user", "require")
