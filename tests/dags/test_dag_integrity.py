"""DAG integrity: every file in dags/ imports without error, and every DAG follows the project's
rules (tags, retries >= 2, no catchup), as the Astro project template enforces."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DAGS_DIR = ROOT / "dags"


@pytest.fixture(scope="module")
def dagbag(tmp_path_factory):
    os.environ.setdefault("AIRFLOW_HOME", str(tmp_path_factory.mktemp("airflow_home")))
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    from airflow.models.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS_DIR), include_examples=False)


def test_every_dag_file_imports(dagbag):
    assert dagbag.import_errors == {}
    files = {Path(d.fileloc).name for d in dagbag.dags.values()}
    assert files == {p.name for p in DAGS_DIR.glob("*.py")}


def test_expected_dag_ids(dagbag):
    assert set(dagbag.dag_ids) == {"replicate_stackoverflow_to_postgres", "replicate_stackoverflow_to_target",
                                   "report_on_replicated_tables"}


@pytest.mark.parametrize("dag_id", ["replicate_stackoverflow_to_postgres", "replicate_stackoverflow_to_target"])
def test_copies_emit_table_assets_through_the_dag_alias(dagbag, dag_id):
    from airflow.sdk import AssetAlias

    copy = dagbag.dags[dag_id].task_dict["copy"]
    assert copy.outlets == [AssetAlias(f"{dag_id}.tables")]


def test_the_downstream_example_is_scheduled_on_the_replication_alias(dagbag):
    from airflow.sdk import AssetAlias

    dag = dagbag.dags["report_on_replicated_tables"]
    assert dag.timetable.asset_condition == AssetAlias("replicate_stackoverflow_to_postgres.tables")
    assert dag.tags and "stackoverflow" in dag.tags
    assert all(t.retries >= 2 for t in dag.tasks)
    assert dag.catchup is False


@pytest.mark.parametrize("dag_id", ["replicate_stackoverflow_to_postgres", "replicate_stackoverflow_to_target"])
def test_dag_rules(dagbag, dag_id):
    dag = dagbag.dags[dag_id]
    assert dag.tags and "stackoverflow" in dag.tags
    assert dag.default_args["retries"] >= 2
    assert all(t.retries >= 2 for t in dag.tasks)
    assert dag.catchup is False
    assert dag.doc_md and "Airflow DAG" in dag.doc_md
    assert {t.task_id for t in dag.tasks} == {"plan", "copy", "ranged", "finish", "foreign_keys", "validate", "summary", "cleanup"}
    assert dag.params["partition_as"] == "threads" and dag.params["partition_min_rows"] == 100_000
    assert dag.task_dict["validate"].trigger_rule == dag.task_dict["foreign_keys"].trigger_rule == "none_failed"
    # sweeps spill debris whatever the copies did, without deciding the run's state
    assert dag.task_dict["cleanup"].is_teardown and dag.task_dict["cleanup"].trigger_rule == "all_done_setup_success"
    assert dag.params["memory_budget_mib"] == 128 and dag.params["load_mode"] == "swap"
    # naming and the dry run: defaults from core.config, the same the CLI falls back to
    assert (dag.params["target_case"], dag.params["target_table_template"]) == ("preserve", "{table}")
    assert (dag.params["tables"], dag.params["exclude"], dag.params["plan_only"]) == ([], [], False)


def test_connection_ids(dagbag):
    """The copy task bodies close over the design card's connection ids."""
    import inspect

    text = inspect.getsource(__import__("include.replication.airflow.dag_factory", fromlist=["x"]))
    assert "source_conn_id" in text
    for path, conn in [
        ("replicate_stackoverflow_to_postgres.py", "stackoverflow_postgres_target"),
        ("replicate_stackoverflow_to_target.py", "stackoverflow_target"),
    ]:
        src = (DAGS_DIR / path).read_text()
        assert f'target_conn_id="{conn}"' in src
        assert 'source_conn_id="stackoverflow_source"' in src


def test_dag_files_have_no_driver_or_sql():
    """DAG files only wire: no driver imports, no SQL (../shared/STYLE.md rules 1 and 11)."""
    for path in DAGS_DIR.glob("*.py"):
        text = path.read_text()
        for forbidden in ("import pymssql", "adbc_driver", "psycopg", "SELECT ", "INSERT "):
            assert forbidden not in text, (path.name, forbidden)
