"""The Astro project files say what docs/astro.md says: base image, concurrency, resources, packages.

No Docker engine is needed: the Dockerfile, ``.astro/config.yaml``, ``docker-compose.override.yml``,
``packages.txt``, ``requirements.txt`` and ``.dockerignore`` are parsed as text/YAML and their
values compared with the project's decisions.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]

RUNTIME_IMAGE = "astrocrpublic.azurecr.io/runtime:3.1-3-python-3.11"
"""Astro Runtime 3.1-3, its Python 3.11 distribution, from the Airflow 3 Runtime registry (not
quay.io/astronomer/astro-runtime); tag form ``<runtime-version>-python-<python-version>`` from
Astro's "Customize your Astro project Dockerfile"."""

ASTRO_CLI_PROJECT_KEYS = {
    "airflow.expose_port",
    "cloud.api.protocol",
    "cloud.api.port",
    "cloud.api.ws_protocol",
    "container.binary",
    "context",
    "disable_astro_run",
    "disable_env_objects",
    "duplicate_volumes",
    "local.registry",
    "postgres.user",
    "postgres.password",
    "postgres.host",
    "postgres.port",
    "postgres.repository",
    "postgres.tag",
    "project.name",
    "project.deployment",
    "project.workspace",
    "show_warnings",
    "skip_parse",
    "upgrade_message",
    "webserver.port",
}
"""Keys the Astro CLI reads from ``.astro/config.yaml`` (astro-cli config/config.go, docs "Configure the CLI")."""

ASTRO_AIRFLOW3_SERVICES = {"postgres", "db-migration", "scheduler", "dag-processor", "api-server", "triggerer"}
"""Services of the Astro CLI's Airflow 3 compose template (airflow/include/airflow3/composeyml.go.tmpl)."""

GIB = 1024**3
MIB = 1024**2
_COMPOSE_UNITS = {"b": 1, "k": 1024, "kb": 1024, "m": MIB, "mb": MIB, "g": GIB, "gb": GIB}


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """Split Dockerfile text into ``(INSTRUCTION, arguments)`` pairs.

    Comment lines are dropped and backslash line continuations are joined.

    Args:
        text: Dockerfile source.

    Returns:
        One ``(upper-case instruction, argument string)`` pair per instruction, in file order.
    """
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    if pending.strip():
        logical.append(pending.strip())
    pairs = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        pairs.append((keyword.upper(), args.strip()))
    return pairs


def dockerfile_env(text: str) -> dict[str, str]:
    """The ``ENV key=value`` settings of a Dockerfile, later ones winning; values are unquoted, not expanded.

    Args:
        text: Dockerfile source.

    Returns:
        Mapping of variable name to its raw value (``${VAR}`` references are left as written).

    Raises:
        ValueError: an ENV instruction uses the legacy ``ENV key value`` form.
    """
    env: dict[str, str] = {}
    for keyword, args in dockerfile_instructions(text):
        if keyword != "ENV":
            continue
        for token in shlex.split(args, posix=True):
            if "=" not in token:
                raise ValueError(f"legacy 'ENV key value' form is not supported: {args!r}")
            key, _, value = token.partition("=")
            env[key] = value
    return env


def compose_bytes(value: str | int) -> int:
    """Convert a Docker Compose byte value (``512m``, ``2g``, ``1024kb`` or an int) to bytes.

    Args:
        value: compose byte value; units b/k/kb/m/mb/g/gb are binary (``1g`` = 1024**3 bytes).

    Returns:
        Size in bytes.

    Raises:
        ValueError: the value is not a compose byte value (e.g. Kubernetes-style ``2Gi``).
    """
    if isinstance(value, int):
        return value
    match = re.fullmatch(r"(\d+)([a-z]*)", value.strip().lower())
    if match is None or match.group(2) not in {"", *_COMPOSE_UNITS}:
        raise ValueError(f"not a Docker Compose byte value: {value!r}")
    number, unit = match.groups()
    return int(number) * _COMPOSE_UNITS.get(unit, 1)


def _flatten(mapping: dict, prefix: str = "") -> set[str]:
    keys: set[str] = set()
    for key, value in mapping.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            keys |= _flatten(value, dotted + ".")
        else:
            keys.add(dotted)
    return keys


@pytest.fixture(scope="module")
def dockerfile() -> str:
    return (ROOT / "Dockerfile").read_text(encoding="utf-8")


def test_dockerfile_starts_from_astro_runtime_3_1_3_single_stage(dockerfile: str) -> None:
    instructions = dockerfile_instructions(dockerfile)
    froms = [args for keyword, args in instructions if keyword == "FROM"]
    assert instructions[0] == ("FROM", RUNTIME_IMAGE)
    assert froms == [RUNTIME_IMAGE]


def test_the_image_python_is_the_python_the_tests_run_on(dockerfile: str) -> None:
    (image,) = [args for keyword, args in dockerfile_instructions(dockerfile) if keyword == "FROM"]
    match = re.fullmatch(r".*:(\d+\.\d+-\d+)-python-(\d+)\.(\d+)", image)
    assert match is not None, image
    assert (int(match[2]), int(match[3])) == sys.version_info[:2]
    lock = (ROOT / "requirements-dev.lock").read_text(encoding="utf-8")
    assert f"-p {match[2]}.{match[3]}" in lock.splitlines()[1]  # `uv pip compile ... -p 3.11` header


_ALLOCATOR_PROBE = """
import ctypes, json, pyarrow as pa
class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
libc.mallinfo2.restype = MallInfo2
libc.free(libc.malloc(4 << 20))   # freeing a 4 MiB mmap-ed block raises glibc's dynamic threshold to 4 MiB
before = libc.mallinfo2().hblks
block = libc.malloc(1 << 20)      # then a 1 MiB block: heap (dynamic threshold) or mmap (pinned 128 KiB)
print(json.dumps({"pool": pa.default_memory_pool().backend_name, "mmapped_blocks": libc.mallinfo2().hblks - before}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc tunables")
def test_dockerfile_allocator_variables_take_effect(dockerfile: str) -> None:
    """The two ENV lines do what tune_allocators() does at run time: Arrow uses the system pool and
    glibc keeps mmap-ing blocks above 128 KiB after a large free (no dynamic threshold)."""
    env = dockerfile_env(dockerfile)
    assert env["ARROW_DEFAULT_MEMORY_POOL"] == "system"
    from include.replication.core.allocators import MMAP_THRESHOLD_BYTES

    assert int(env["MALLOC_MMAP_THRESHOLD_"]) == MMAP_THRESHOLD_BYTES
    base = {k: v for k, v in os.environ.items() if k not in ("ARROW_DEFAULT_MEMORY_POOL", "MALLOC_MMAP_THRESHOLD_")}

    def probe(extra: dict[str, str]) -> dict[str, object]:
        out = subprocess.run([sys.executable, "-c", _ALLOCATOR_PROBE], env={**base, **extra},
                             capture_output=True, text=True, check=True)
        return json.loads(out.stdout)

    default, image = probe({}), probe({k: env[k] for k in ("ARROW_DEFAULT_MEMORY_POOL", "MALLOC_MMAP_THRESHOLD_")})
    assert default["pool"] != "system" and default["mmapped_blocks"] == 0  # the defaults this fixes
    assert image == {"pool": "system", "mmapped_blocks": 1}


def test_dockerfile_sets_concurrency_limits(dockerfile: str) -> None:
    env = dockerfile_env(dockerfile)
    assert int(env["AIRFLOW__CORE__PARALLELISM"]) == 16
    assert int(env["AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG"]) == 8
    assert int(env["AIRFLOW__CORE__MAX_ACTIVE_RUNS_PER_DAG"]) == 2
    assert int(env["AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG"]) <= int(env["AIRFLOW__CORE__PARALLELISM"])


def test_dockerfile_sets_spill_root_and_keeps_project_importable(dockerfile: str) -> None:
    env = dockerfile_env(dockerfile)
    assert env["STACKOVERFLOW_SPILL_ROOT"] == "/tmp/stackoverflow-spill"
    # First entry is AIRFLOW_HOME; whatever the base image had follows after a ':'.
    assert re.match(r"/usr/local/airflow(\$\{|:|$)", env["PYTHONPATH"]) is not None


def test_dockerfile_spill_root_matches_config_env_name(dockerfile: str) -> None:
    from include.replication.core.config import DEFAULT_SPILL_ROOT_ENV

    assert DEFAULT_SPILL_ROOT_ENV in dockerfile_env(dockerfile)


def test_dockerfile_parser_joins_continuations_and_unquotes() -> None:
    text = '# c\nFROM img:1\nENV A=1 \\\n    B="two words"\n# mid\nENV C=${X:+:${X}}\n'
    assert dockerfile_instructions(text)[0] == ("FROM", "img:1")
    assert dockerfile_env(text) == {"A": "1", "B": "two words", "C": "${X:+:${X}}"}
    with pytest.raises(ValueError, match="legacy"):
        dockerfile_env("FROM x\nENV A 1\n")


def test_astro_config_names_project_and_uses_only_cli_keys() -> None:
    config = yaml.safe_load((ROOT / ".astro" / "config.yaml").read_text(encoding="utf-8"))
    assert config["project"]["name"] == "stackoverflow-replication"
    unknown = _flatten(config) - ASTRO_CLI_PROJECT_KEYS
    assert unknown == set(), f"keys the Astro CLI does not read: {sorted(unknown)}"


def test_compose_override_sets_local_memory_limits() -> None:
    override = yaml.safe_load((ROOT / "docker-compose.override.yml").read_text(encoding="utf-8"))
    services = override["services"]
    assert set(services) <= ASTRO_AIRFLOW3_SERVICES
    assert compose_bytes(services["scheduler"]["mem_limit"]) == 4 * GIB
    assert compose_bytes(services["api-server"]["mem_limit"]) == 1 * GIB
    assert compose_bytes(services["triggerer"]["mem_limit"]) == 512 * MIB


def test_local_concurrency_fits_the_scheduler_memory_limit() -> None:
    """LocalExecutor: every running task (task process + supervisor) lives in the scheduler
    container. The figures come from the committed real-scheduler measurement; 10 % margin."""
    measured = json.loads((ROOT / "benchmarks" / "results" / "standalone_scale0.05_parallelism8.json").read_text())
    assert measured["ok"] and measured["peak_rss"]["tasks_at_once"] == 8
    peak = measured["peak_rss"]
    scheduler = yaml.safe_load((ROOT / "docker-compose.override.yml").read_text(encoding="utf-8"))["services"]["scheduler"]
    parallelism = int(scheduler["environment"]["AIRFLOW__CORE__PARALLELISM"])
    assert int(scheduler["environment"]["AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG"]) <= parallelism
    need = parallelism * (peak["task_bytes"] + peak["supervisor_bytes"]) * 1.1 + peak["other_bytes"]
    assert need <= compose_bytes(scheduler["mem_limit"]), f"{need / GIB:.2f} GiB needed"
    # the image's 8 tasks per DAG would not fit: the local override is what keeps it in bounds
    assert 8 * (peak["task_bytes"] + peak["supervisor_bytes"]) + peak["other_bytes"] > compose_bytes(scheduler["mem_limit"])


def test_compose_bytes_units_and_rejects_kubernetes_quantities() -> None:
    assert compose_bytes("512m") == 536_870_912
    assert compose_bytes("2g") == 2_147_483_648
    assert compose_bytes("1024kb") == 1_048_576
    assert compose_bytes(100) == 100
    with pytest.raises(ValueError):
        compose_bytes("2Gi")


def test_packages_txt_lists_no_system_packages() -> None:
    lines = (ROOT / "packages.txt").read_text(encoding="utf-8").splitlines()
    assert [line for line in lines if line.strip() and not line.lstrip().startswith("#")] == []


def test_requirements_leave_airflow_to_the_image() -> None:
    names = {
        re.split(r"[<>=!~\[; ]", line.strip(), maxsplit=1)[0].lower()
        for line in (ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    }
    assert {"pyarrow", "pymssql", "adbc-driver-postgresql"} <= names
    assert "apache-airflow" not in names


def test_dockerignore_keeps_local_secrets_out_of_the_image() -> None:
    patterns = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".env", "airflow_settings.yaml", ".venv", ".git", "airflow-connections.local.*"} <= patterns
