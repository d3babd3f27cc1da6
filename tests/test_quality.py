"""The template's own code (hooks, tests, benchmarks, scripts) meets the projects' bar."""

from __future__ import annotations

import sys

from tests.rendering import TEMPLATE, run

OWN_CODE = ("hooks", "tests", "benchmarks", "scripts")


def test_ruff() -> None:
    run([sys.executable, "-m", "ruff", "check", "--no-cache", *OWN_CODE], cwd=TEMPLATE)
    run([sys.executable, "-m", "ruff", "format", "--no-cache", "--check", *OWN_CODE], cwd=TEMPLATE)


def test_mypy_strict() -> None:
    run([sys.executable, "-m", "mypy", "--no-incremental"], cwd=TEMPLATE)
