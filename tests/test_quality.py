"""The template's own code (hooks and these tests) meets the bar it sets for projects."""

from __future__ import annotations

import sys

from tests.rendering import TEMPLATE, run


def test_ruff() -> None:
    run([sys.executable, "-m", "ruff", "check", "--no-cache", "hooks", "tests"], cwd=TEMPLATE)
    run(
        [sys.executable, "-m", "ruff", "format", "--no-cache", "--check", "hooks", "tests"],
        cwd=TEMPLATE,
    )


def test_mypy_strict() -> None:
    run([sys.executable, "-m", "mypy", "--no-incremental"], cwd=TEMPLATE)
