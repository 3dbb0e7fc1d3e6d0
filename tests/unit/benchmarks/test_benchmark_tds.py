"""Pure logic of the SQL Server-source throughput benchmark (benchmarks/throughput_tds.py): URI
parsing, the method registry, the run record's row-count check, options, the Babelfish caveat and
the small SQL/CSV builders of the baselines. No server."""

from __future__ import annotations

import io
import json

import pytest

# a development package (requirements-dev.txt): `astro dev pytest` in the image skips this module
pytest.importorskip("psycopg")
pytest.importorskip("matplotlib")

from benchmarks.harness import record_run
from benchmarks.methods import METHODS, PIPE_KEY, TDS_METHODS, TDS_REFERENCE_KEY, method_info
from benchmarks.methods.csv_spool import copy_csv_sql, spool_csv
from benchmarks.methods.ours import WRITE_METHOD_VARIANTS, settings_for, target_endpoint
from benchmarks.methods.pymssql_copy import copy_sql
from benchmarks.methods.report import RunRecord, summarize, write_results
from benchmarks.methods.tds import endpoint_for, mssql_endpoint_from_uri
from benchmarks.throughput_tds import parse_args, server_caveat, server_name, with_database
from include.replication.core.errors import ConfigurationError

BABELFISH_VERSION = (
    "Babelfish for PostgreSQL with SQL Server Compatibility - 12.0.2000.8\nDec  2 2026 16:39:00\n"
    "Copyright (c) Amazon Web Services\nPostgreSQL 16.4 on x86_64-pc-linux-gnu (Babelfish 4.4.0)"
)
SQLSERVER_VERSION = "Microsoft SQL Server 2022 (RTM-CU14) - 16.0.4135.4 (X64)\n\tJul 10 2024 14:09:09\n\tDeveloper Edition"


# -- URIs -------------------------------------------------------------------------------------------


def test_mssql_uri_parts_are_percent_decoded() -> None:
    ep = mssql_endpoint_from_uri("mssql://babelfish_user:p%40ss%3Aw%2Fd@127.0.0.1:54557/bench%20db", "dbo")
    assert (ep.dialect, ep.host, ep.port, ep.database, ep.user, ep.password, ep.schema) == (
        "mssql", "127.0.0.1", 54557, "bench db", "babelfish_user", "p@ss:w/d", "dbo"
    )
    assert ep.options == {}


def test_mssql_uri_keeps_known_options_and_db_schema() -> None:
    ep = mssql_endpoint_from_uri("mssql://u:p@h:1433/db?write_method=bulk_copy&db_schema=sales&bogus=1")
    assert ep.options == {"write_method": "bulk_copy"}
    assert ep.schema == "sales"
    assert mssql_endpoint_from_uri("mssql://u:p@h/db?db_schema=sales", "dbo").schema == "dbo"  # argument wins
    assert mssql_endpoint_from_uri("mssql://u:p@h/db").port is None


def test_mssql_uri_rejects_other_schemes_and_no_database() -> None:
    with pytest.raises(ConfigurationError):
        mssql_endpoint_from_uri("postgresql://u@h/db")
    with pytest.raises(ConfigurationError):
        mssql_endpoint_from_uri("mssql://u:p@h:1433/")


def test_mssql_uri_reads_like_the_products_airflow_parser() -> None:
    from include.replication.airflow.connections import endpoint_from_uri

    uri = "mssql://babelfish_user:p%40ss%3Aw%2Fd@127.0.0.1:54557/bench_tds_source?write_method=bulk_copy&timeout=30"
    assert mssql_endpoint_from_uri(uri, "dbo") == endpoint_from_uri(uri, schema="dbo")


def test_endpoint_for_sends_libpq_uris_to_the_products_parser() -> None:
    ep = endpoint_for("postgresql://postgres@/bench_tds?host=/tmp/sock", "public")
    assert (ep.dialect, ep.host, ep.database, ep.schema) == ("postgresql", "/tmp/sock", "bench_tds", "public")
    assert endpoint_for("mssql://u:p@h:1/db", "dbo").dialect == "mssql"


def test_with_database_replaces_only_the_path() -> None:
    uri = "mssql://u:p%40@127.0.0.1:54557/master"
    assert with_database(uri, "bench tds") == "mssql://u:p%40@127.0.0.1:54557/bench%20tds"


# -- our pipeline's variants ---------------------------------------------------------------------------


@pytest.mark.parametrize("variant", WRITE_METHOD_VARIANTS)
def test_write_method_variants_set_the_target_option(variant: str, tmp_path) -> None:
    ep = target_endpoint("mssql://u:p@h:1433/db?timeout=30", "dbo", variant)
    assert ep.options == {"timeout": "30", "write_method": variant}
    assert settings_for(variant, tmp_path) == settings_for("default", tmp_path)


def test_default_variant_leaves_the_target_alone_and_write_methods_need_sql_server() -> None:
    assert target_endpoint("mssql://u:p@h:1433/db", "dbo", "default").options == {}
    with pytest.raises(ValueError):
        target_endpoint("postgresql://postgres@/db?host=/tmp", "public", "bulk_copy")


# -- registry -------------------------------------------------------------------------------------


def test_tds_registry_is_separate_and_complete() -> None:
    assert not set(METHODS) & set(TDS_METHODS)  # method_info needs unique keys
    assert TDS_REFERENCE_KEY in TDS_METHODS
    assert {"ours_executemany", "ours_bulk", "ours_to_pg", "pymssql_copy", "csv_spool_tds"} <= set(TDS_METHODS)
    assert all(m.source_dialect == "mssql" for m in TDS_METHODS.values())
    assert all(m.source_dialect == m.target_dialect == "postgresql" for m in METHODS.values())
    assert {k for k, m in TDS_METHODS.items() if m.target_dialect == "mssql"} == {"ours_executemany", "ours_bulk"}
    assert {m.variant for m in TDS_METHODS.values() if m.module == "ours" and m.target_dialect == "mssql"} == set(
        WRITE_METHOD_VARIANTS
    )
    assert method_info("ours_bulk") is TDS_METHODS["ours_bulk"]
    assert method_info(PIPE_KEY) is METHODS[PIPE_KEY]
    with pytest.raises(KeyError):
        method_info("nope")


def test_every_tds_method_module_has_a_run() -> None:
    import importlib

    for m in TDS_METHODS.values():
        assert callable(importlib.import_module(f"benchmarks.methods.{m.module}").run)


# -- options --------------------------------------------------------------------------------------


def test_parse_args_defaults() -> None:
    args = parse_args([])
    assert args.scale == 0.002
    assert args.tables == ["Posts", "Votes"]
    assert args.methods == list(TDS_METHODS)
    assert args.stem == "throughput_tds_scale0.002"
    assert parse_args(["--scale", "0.01"]).stem == "throughput_tds_scale0.01"


@pytest.mark.parametrize(
    "argv", [["--methods", "ours_bulk"], ["--methods", "pymssql_copy,pipe"], ["--scale", "0"], ["--repeats", "0"]]
)
def test_parse_args_rejects(argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        parse_args(argv)


# -- run records ----------------------------------------------------------------------------------


def _ok(seconds: float = 2.0, capped: bool = False) -> dict:
    return {"ok": True, "seconds": seconds, "rows": 10, "capped": capped, "extra": {"batches": 1},
            "baseline_rss_bytes": 50, "peak_rss_bytes": 90}


def test_record_run_keeps_a_run_whose_count_matches() -> None:
    rec = record_run("Posts", "ours_bulk", 1, 7, _ok(), 10, 10)
    assert (rec.seconds, rec.rows, rec.error, rec.peak_rss_bytes, rec.baseline_rss_bytes) == (2.0, 10, None, 90, 50)
    assert (rec.table, rec.method, rec.repeat, rec.order, rec.extra) == ("Posts", "ours_bulk", 1, 7, {"batches": 1})


def test_record_run_fails_an_uncapped_run_with_another_count() -> None:
    rec = record_run("Posts", "ours_bulk", 0, 0, _ok(), 9, 10)
    assert rec.seconds is None
    assert rec.error == "target holds 9 rows, source 10"


def test_record_run_accepts_fewer_rows_from_a_capped_run() -> None:
    rec = record_run("Posts", "values", 0, 0, _ok(capped=True), 4, 10)
    assert (rec.seconds, rec.rows, rec.capped, rec.error) == (2.0, 4, True, None)


def test_record_run_of_a_failed_child() -> None:
    rec = record_run("Votes", "ours_to_pg", 0, 3, {"ok": False, "error": "boom"}, None, 10)
    assert (rec.seconds, rec.rows, rec.error) == (None, 0, "boom")


# -- the Markdown ---------------------------------------------------------------------------------


def test_caveat_names_babelfish_and_says_it_is_not_sql_server() -> None:
    text = server_caveat(BABELFISH_VERSION, 2, local=True)
    assert "Babelfish figures (Babelfish 4.4.0 on PostgreSQL 16.4, local, 2 cores)" in text
    assert "not Microsoft SQL Server figures" in text


def test_server_name() -> None:
    assert server_name(BABELFISH_VERSION) == "Babelfish 4.4.0 on PostgreSQL 16.4"
    assert server_name(SQLSERVER_VERSION) == "Microsoft SQL Server 2022 (RTM-CU14) - 16.0.4135.4 (X64)"
    assert server_name("") == "unknown TDS server"


def test_caveat_of_a_real_sql_server_names_it() -> None:
    text = server_caveat(SQLSERVER_VERSION, 8, local=False)
    assert text == "TDS server: Microsoft SQL Server 2022 (RTM-CU14) - 16.0.4135.4 (X64) (8 cores)."


def test_results_carry_preamble_and_the_reference_header(tmp_path) -> None:
    records = [RunRecord("Posts", TDS_REFERENCE_KEY, 0, 0, 1.0, rows=100), RunRecord("Posts", "ours_bulk", 0, 1, 3.0, rows=100)]
    summaries = summarize(records, {"Posts": 100}, {"Posts": 1_000_000}, TDS_REFERENCE_KEY)
    paths = write_results(
        tmp_path, "t", meta={"title": "tds", "reference": TDS_REFERENCE_KEY}, records=records, summaries=summaries,
        labels={}, chart=False, preamble=["**Babelfish figures.**"], ratio_header=f"x {TDS_REFERENCE_KEY}",
    )
    md = paths["md"].read_text()
    assert md.startswith("# Loader throughput: tds\n\n**Babelfish figures.**\n\n")
    assert "| peak RSS MiB | x pymssql_copy |" in md
    assert "| Posts | ours_bulk | 100 | 3.00 [3.00-3.00] | n/a | 33 | 0.3 | 0 | 3.00 |" in md
    assert json.loads(paths["json"].read_text())["meta"]["reference"] == TDS_REFERENCE_KEY


# -- the baselines' builders ----------------------------------------------------------------------


def test_copy_sql_quotes_and_picks_the_format() -> None:
    assert copy_sql("public", "Posts", ("Id", 'a"b'), binary=True) == (
        'COPY "public"."Posts" ("Id", "a""b") FROM STDIN (FORMAT binary)'
    )
    assert copy_sql("public", "Votes", ("Id",), binary=False) == 'COPY "public"."Votes" ("Id") FROM STDIN'
    with pytest.raises(ValueError):
        copy_sql("public", "Votes", (), binary=False)


def test_spool_csv_writes_null_marker_and_rewinds() -> None:
    spool = io.BytesIO()
    rows, size = spool_csv([[(1, "a,b", None)], [(2, "", "x\ny")]], spool)
    data = spool.read()
    assert (rows, size) == (2, len(data))
    assert data == b'1,"a,b",\\N\r\n2,,"x\ny"\r\n'
    assert not spool.closed


def test_copy_csv_sql() -> None:
    assert copy_csv_sql("public", "Votes", ["Id", "PostId"]) == (
        'COPY "public"."Votes" ("Id", "PostId") FROM STDIN (FORMAT csv, NULL \'\\N\')'
    )
