"""DAG import check run by ``astro dev parse`` and by the parse step of ``astro deploy``.

The Astro CLI runs ``pytest .astro/test_dag_integrity_default.py`` inside the project image and
skips its parse check (printing "Please run astro dev init") when this file is missing; the file
``astro dev init`` would write does the same job as this one: import every file of the DAGs folder
through a ``DagBag`` and fail, naming the file and the error, on any import error not listed in
``.astro/dag_integrity_exceptions.txt`` (one path per line, relative to AIRFLOW_HOME; ``#``
comments allowed).

Written for this project rather than copied: its DAG files open no connection and read no
Variable at parse time (``tests/dags/test_dag_integrity.py`` holds the project's own rules), so
nothing needs patching, and no metadata database is needed to parse them. Run here by
``tests/dags/test_astro_parse.py`` as the CLI would run it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

EXCEPTIONS_FILE = Path(__file__).with_name("dag_integrity_exceptions.txt")


def _exceptions() -> set[str]:
    """Paths (relative to AIRFLOW_HOME) whose import errors are tolerated."""
    if not EXCEPTIONS_FILE.exists():
        return set()
    lines = (line.split("#", 1)[0].strip() for line in EXCEPTIONS_FILE.read_text().splitlines())
    return {line for line in lines if line}


def _import_results() -> list[tuple[str, str]]:
    """``(path relative to AIRFLOW_HOME, error text or "")`` for every file the DagBag read."""
    from airflow.models.dagbag import DagBag

    bag = DagBag(include_examples=False)
    home = os.environ.get("AIRFLOW_HOME", os.getcwd())
    results = {os.path.relpath(path, home): str(error).strip() for path, error in bag.import_errors.items()}
    for dag in bag.dags.values():
        results.setdefault(os.path.relpath(dag.fileloc, home), "")
    return sorted(results.items())


RESULTS = _import_results()


def test_the_dags_folder_holds_dags():
    assert RESULTS, "the DAGs folder holds no DAG file"


@pytest.mark.parametrize(("rel_path", "error"), RESULTS, ids=[path for path, _ in RESULTS])
def test_file_imports(rel_path: str, error: str) -> None:
    """Each DAG file imports without error (or is listed in dag_integrity_exceptions.txt)."""
    if error and rel_path not in _exceptions():
        pytest.fail(f"{rel_path} failed to import:\n{error}", pytrace=False)
