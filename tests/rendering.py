"""Rendering combinations and running commands in the rendered projects.

Each combination is rendered and installed once per worker (the `project`
fixture in conftest), and every check of a combination runs on that worker
(xdist `loadgroup` with one group per combination).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from pymongo import MongoClient
from pytest_cookies.plugin import Cookies

from tests.combinations import ALL, FULL_IN_COMMAND_2, MYPY_IN_COMMAND_2, Combination
from tests.services import create_postgres_database, mongodb_database_url

TEMPLATE = Path(__file__).resolve().parent.parent
TEXT_SUFFIXES = {".py", ".toml", ".ini", ".md", ".json", ".yaml", ".yml", ".mako", ".example", ""}
_projects: dict[str, Path] = {}


def params(combinations: list[Combination], *marks: pytest.MarkDecorator) -> list[Any]:
    """Test parameters, one per combination, each in its combination's xdist group."""
    return [
        pytest.param(c, id=c.id, marks=[pytest.mark.xdist_group(c.id), *marks])
        for c in combinations
    ]


EVERY = params(ALL)
REST_POSTGRES = params([c for c in ALL if c.database == "postgres" and c.api == "rest"])


def now_the_rest_slow(now: tuple[str, ...]) -> list[Any]:
    """Every combination: those named in command 2, the others marked slow, so that
    command 3 checks them."""
    return params([c for c in ALL if c.id in now]) + params(
        [c for c in ALL if c.id not in now], pytest.mark.slow
    )


# The pairwise covering five in command 2 (command 3 runs the others' full suites).
PAIRWISE_NOW_THE_REST_SLOW = now_the_rest_slow(FULL_IN_COMMAND_2)
OPPOSITES_NOW_THE_REST_SLOW = now_the_rest_slow(MYPY_IN_COMMAND_2)


def capture(
    args: list[str],
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: int = 600,
    stdin: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command with its output captured as text, whatever its exit code."""
    return subprocess.run(
        args,
        cwd=cwd,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def run(args: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: int = 600) -> str:
    """Run a command; fail the test with the end of its output if it fails."""
    result = capture(args, cwd, env, timeout)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{output[-6000:]}"
    return output


# The template's own virtualenv must not leak into the rendered project's. Bytecode is
# written: with PYTHONDONTWRITEBYTECODE set, as on some CI machines, every Python command
# of a combination (migrations, the suite, the CLIs it starts) compiled its imports anew,
# about 8 s of a 27 s suite.
_NOT_PASSED = {"VIRTUAL_ENV", "PYTHONPATH", "PYTHONDONTWRITEBYTECODE"}


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in _NOT_PASSED}


def mypy_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The clean environment with one mypy cache per worker, shared by every check of every
    combination it runs: the libraries are the same in each, only the project's own modules
    differ (5.4 s -> 1.3 s a project)."""
    return clean_env() | {"MYPY_CACHE_DIR": str(tmp_path_factory.getbasetemp() / "mypy-cache")}


def rendered_project(combination: Combination, cookies: Cookies) -> Path:
    """The combination rendered through pytest-cookies (the `cookies_session` fixture,
    with its own user config and replay dir) and installed (`uv sync`), once per worker."""
    if combination.id not in _projects:
        result = cookies.bake(extra_context=combination.answers())
        assert result.exit_code == 0, f"{combination.id} did not render: {result.exception!r}"
        path = result.project_path
        assert path is not None
        _projects[combination.id] = path
        run(["uv", "sync", "--quiet"], cwd=path, env=clean_env())
    return _projects[combination.id]


def text_files(project: Path) -> Iterator[Path]:
    for path in project.rglob("*"):
        if ".venv" in path.parts or not path.is_file() or path.name == "uv.lock":
            continue
        if path.suffix in TEXT_SUFFIXES or path.name.startswith("."):
            yield path


def service_env(combination: Combination) -> dict[str, str]:
    """The rendered project's environment: its own database, Redis db and broker."""
    env = clean_env()
    name = combination.id.replace("-", "_")
    if combination.database == "postgres":
        url = create_postgres_database(os.environ["POSTGRES_URL"], name)
        env["DATABASE_URL"] = url.replace("postgresql://", "postgresql+asyncpg://", 1)
    else:
        env["MONGODB_URL"] = mongodb_database_url(os.environ["MONGODB_URL"], name)
        client: MongoClient[dict[str, object]]
        with MongoClient(env["MONGODB_URL"]) as client:  # a fresh database, as for PostgreSQL
            client.drop_database(name)
    redis = urlsplit(os.environ["REDIS_URL"])
    env["REDIS_URL"] = urlunsplit(redis._replace(path=f"/{ALL.index(combination)}"))
    if combination.broker == "rabbitmq":
        env["BROKER_URL"] = os.environ["RABBITMQ_URL"]
    else:
        env["BROKER_URL"] = os.environ["KAFKA_URL"]
        env["BROKER_IDEMPOTENT_PRODUCER"] = os.environ.get("KAFKA_IDEMPOTENT_PRODUCER", "true")
        # Apache Kafka refuses a session timeout under 6 s; the stand-in holds a new
        # consumer group's first join for half of it, so a short one saves 4 s a group.
        env["BROKER_SESSION_TIMEOUT_MS"] = os.environ.get("KAFKA_SESSION_TIMEOUT_MS", "10000")
    return env
