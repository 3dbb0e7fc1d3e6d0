"""The command line's options are the DAG params: same names, same defaults (absent options fall
back to core.config), every subcommand has --help with examples."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from include.replication.airflow.dag_factory import DEFAULT_PARAMS
from include.replication.cli import build_parser, params_from_args
from include.replication.core.errors import ConfigurationError

ROOT = Path(__file__).resolve().parents[2]
ENDPOINTS = ["--source", "postgresql://u@/s?host=/tmp", "--target", "postgresql://u@/t?host=/tmp"]


def test_every_option_becomes_the_dag_param_of_the_same_name():
    args = build_parser().parse_args(
        [
            "copy",
            *ENDPOINTS,
            "--tables",
            "Post*,Users",
            "--tables",
            "dbo.Votes",
            "--exclude",
            "PostHistory",
            "--target-case",
            "lower",
            "--target-table-template",
            "so_{table}",
            "--schema-map",
            "archive=arch",
            "--generated-columns",
            "plain",
            "--load-mode",
            "truncate",
            "--no-foreign-keys",
            "--memory-budget-mib",
            "64",
            "--batch-rows",
            "1000",
            "--batch-mib",
            "2",
            "--parallel-ranges",
            "4",
            "--spill-root",
            "/tmp/s",
            "--sqlserver-write-method",
            "bulk_copy",
        ]
    )
    params = params_from_args(args)
    assert params == {
        "tables": ["Post*", "Users", "dbo.Votes"],
        "exclude": ["PostHistory"],
        "target_case": "lower",
        "target_table_template": "so_{table}",
        "schema_map": {"archive": "arch"},
        "generated_columns": "plain",
        "load_mode": "truncate",
        "foreign_keys": False,
        "memory_budget_mib": 64,
        "batch_rows": 1000,
        "batch_mib": 2.0,
        "parallel_ranges": 4,
        "spill_root": "/tmp/s",
        "sqlserver_write_method": "bulk_copy",
    }
    assert set(params) <= set(DEFAULT_PARAMS)


def test_absent_options_are_absent_so_the_shared_defaults_apply():
    assert params_from_args(build_parser().parse_args(["copy", *ENDPOINTS])) == {}
    assert params_from_args(build_parser().parse_args(["validate", *ENDPOINTS])) == {}


def test_bad_schema_map_and_bad_choices_are_refused():
    with pytest.raises(ConfigurationError):
        params_from_args(build_parser().parse_args(["plan", *ENDPOINTS, "--schema-map", "archive"]))
    with pytest.raises(SystemExit):
        build_parser().parse_args(["plan", *ENDPOINTS, "--target-case", "upper"])


@pytest.mark.parametrize("command", [[], ["plan"], ["copy"], ["validate"]])
def test_help_everywhere(command):
    run = subprocess.run(
        [sys.executable, "-m", "include.replication", *command, "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    assert "usage: python -m include.replication" in run.stdout
    if command:
        assert "examples:" in run.stdout and "--source URI|CONN_ID" in run.stdout and "--target-case" in run.stdout
    else:
        assert "{plan,copy,validate}" in run.stdout and "exit codes" in run.stdout


def test_sync_and_validation_options_are_the_dag_params():
    args = build_parser().parse_args(["copy", *ENDPOINTS, "--mode", "append", "--table-mode", "Votes=full",
                                      "--table-mode", "Badges=append", "--validate", "checksum"])
    params = params_from_args(args)
    assert params == {"mode": "append", "table_modes": {"Votes": "full", "Badges": "append"}, "validate": "checksum"}
    assert set(params) <= set(DEFAULT_PARAMS)
    assert params_from_args(build_parser().parse_args(["validate", *ENDPOINTS, "--validate", "checksum"])) == {
        "validate": "checksum"}
    merge = build_parser().parse_args(["copy", *ENDPOINTS, "--mode", "merge", "--cursor-column",
                                       "Posts=LastActivityDate", "--merge-lag-seconds", "60"])
    assert params_from_args(merge) == {"mode": "merge", "cursor_columns": {"Posts": "LastActivityDate"},
                                       "merge_lag_seconds": 60.0}
    assert set(params_from_args(merge)) <= set(DEFAULT_PARAMS)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["copy", *ENDPOINTS, "--mode", "upsert"])


@pytest.mark.parametrize(("flag", "value", "message"), [
    ("--schema-map", "archive", "--schema-map wants SRC=DST, got ['archive']"),
    ("--table-mode", "Votes=", "--table-mode wants TABLE=MODE, got ['Votes']"),
])
def test_pair_options_without_both_sides_are_refused_naming_the_flag(flag, value, message):
    from include.replication.core.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match=re.escape(message)):
        params_from_args(build_parser().parse_args(["copy", *ENDPOINTS, flag, value]))
