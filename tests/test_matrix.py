"""Every option combination: rendered, checked statically, installed, and tested for real.

Each combination is rendered and installed once per worker (the `project`
fixture), and all its checks run on that worker (xdist `loadgroup`).
"""

from __future__ import annotations

import json
import os
import subprocess
import tomllib
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import yaml
from pymongo import MongoClient
from cookiecutter.main import cookiecutter

from tests.combinations import ALL, TRACES, Combination
from tests.conftest import TEMPLATE
from tests.services import create_postgres_database, mongodb_database_url
from tests.test_hooks import post_gen

# Fewer tests than this means part of a rendered suite silently stopped running.
MIN_RENDERED_TESTS = 30
SUITE_TIMEOUT = 600
TEXT_SUFFIXES = {".py", ".toml", ".ini", ".md", ".json", ".yaml", ".yml", ".mako", ".example", ""}
_projects: dict[str, Path] = {}


def _params(combinations: list[Combination]) -> list[Any]:
    return [pytest.param(c, id=c.id, marks=pytest.mark.xdist_group(c.id)) for c in combinations]


EVERY = _params(ALL)
POSTGRES = _params([c for c in ALL if c.database == "postgres"])


def _run(args: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: int = 600) -> str:
    result = subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{output[-6000:]}"
    return output


def _clean_env() -> dict[str, str]:
    # The template's own virtualenv must not leak into the rendered project's.
    return {k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "PYTHONPATH"}}


@pytest.fixture
def project(combination: Combination, tmp_path_factory: pytest.TempPathFactory) -> Path:
    if combination.id not in _projects:
        out = tmp_path_factory.mktemp(combination.id)
        path = Path(
            cookiecutter(
                str(TEMPLATE),
                no_input=True,
                output_dir=str(out),
                extra_context=combination.answers(),
            )
        )
        _projects[combination.id] = path
        _run(["uv", "sync", "--quiet"], cwd=path, env=_clean_env())
    return _projects[combination.id]


def _text_files(project: Path) -> Iterator[Path]:
    for path in project.rglob("*"):
        if ".venv" in path.parts or not path.is_file() or path.name == "uv.lock":
            continue
        if path.suffix in TEXT_SUFFIXES or path.name.startswith("."):
            yield path


@pytest.mark.parametrize("combination", EVERY)
def test_renders_completely(combination: Combination, project: Path) -> None:
    for path in _text_files(project):
        text = path.read_text()
        for marker in ("{{", "{%"):
            assert marker not in text, f"unrendered {marker!r} in {path.relative_to(project)}"
    for leftover in ("__pycache__", ".ruff_cache", ".mypy_cache"):
        assert not [p for p in project.rglob(leftover) if ".venv" not in p.parts]


@pytest.mark.parametrize("combination", EVERY)
def test_structured_files_parse(combination: Combination, project: Path) -> None:
    parsed = 0
    for path in _text_files(project):
        if path.suffix == ".toml":
            tomllib.loads(path.read_text())
        elif path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix in {".yaml", ".yml"}:
            yaml.safe_load(path.read_text())
        else:
            continue
        parsed += 1
    assert parsed >= 2


@pytest.mark.parametrize("combination", EVERY)
def test_no_trace_of_unchosen_options(combination: Combination, project: Path) -> None:
    for (option, value), paths in post_gen.PRUNE.items():
        if combination.chosen(option, value):
            for relative in paths:
                assert not (project / relative).exists(), relative
    forbidden = {
        word
        for (option, value), words in TRACES.items()
        if not combination.chosen(option, value)
        for word in words
    }
    for path in _text_files(project):
        text = path.read_text().lower()
        for word in forbidden:
            assert word not in text, f"{word!r} in {path.relative_to(project)}"
    expected = {
        word
        for (option, value), words in TRACES.items()
        if combination.chosen(option, value)
        for word in words
    }
    everything = "".join(path.read_text().lower() for path in _text_files(project))
    assert all(word in everything for word in expected)


@pytest.mark.parametrize("combination", EVERY)
def test_ruff(combination: Combination, project: Path) -> None:
    _run(
        ["uv", "run", "--no-sync", "ruff", "check", "--no-cache", "."],
        cwd=project,
        env=_clean_env(),
    )
    _run(
        ["uv", "run", "--no-sync", "ruff", "format", "--no-cache", "--check", "."],
        cwd=project,
        env=_clean_env(),
    )


@pytest.mark.parametrize("combination", EVERY)
def test_mypy_strict(combination: Combination, project: Path) -> None:
    _run(["uv", "run", "--no-sync", "mypy", "--strict"], cwd=project, env=_clean_env())


def _service_env(combination: Combination) -> dict[str, str]:
    """The rendered project's environment: its own database, Redis db and broker."""
    env = _clean_env()
    name = combination.id.replace("-", "_")
    if combination.database == "postgres":
        url = create_postgres_database(os.environ["POSTGRES_URL"], name)
        env["DATABASE_URL"] = url.replace("postgresql://", "postgresql+asyncpg://", 1)
    else:
        env["MONGODB_URL"] = mongodb_database_url(os.environ["MONGODB_URL"], name)
        with MongoClient(env["MONGODB_URL"]) as client:  # a fresh database, as for PostgreSQL
            client.drop_database(name)
    redis = urlsplit(os.environ["REDIS_URL"])
    env["REDIS_URL"] = urlunsplit(redis._replace(path=f"/{ALL.index(combination)}"))
    if combination.broker == "rabbitmq":
        env["BROKER_URL"] = os.environ["RABBITMQ_URL"]
    else:
        env["BROKER_URL"] = os.environ["KAFKA_URL"]
        env["BROKER_IDEMPOTENT_PRODUCER"] = os.environ.get("KAFKA_IDEMPOTENT_PRODUCER", "true")
    return env


@pytest.mark.parametrize("combination", POSTGRES)
def test_migrations_match_the_models(combination: Combination, project: Path) -> None:
    env = _service_env(combination)
    _run(["uv", "run", "--no-sync", "alembic", "upgrade", "head"], cwd=project, env=env)
    output = _run(["uv", "run", "--no-sync", "alembic", "check"], cwd=project, env=env)
    assert "No new upgrade operations detected" in output


@pytest.mark.parametrize("combination", EVERY)
def test_rendered_suite_passes_against_real_services(
    combination: Combination, project: Path
) -> None:
    report = project / "pytest-report.xml"
    _run(
        [
            "uv",
            "run",
            "--no-sync",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            f"--junitxml={report}",
        ],
        cwd=project,
        env=_service_env(combination),
        timeout=SUITE_TIMEOUT,
    )
    suite = ET.parse(report).getroot().find("testsuite")
    assert suite is not None
    counts = {key: int(suite.get(key, "0")) for key in ("tests", "failures", "errors", "skipped")}
    assert counts["failures"] == counts["errors"] == 0, counts
    assert counts["skipped"] == 0, f"a rendered test was skipped: {counts}"
    assert counts["tests"] >= MIN_RENDERED_TESTS, counts
