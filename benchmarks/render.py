"""Render time per combination: cookiecutter's Python API, hooks included, into temp dirs."""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from cookiecutter.main import cookiecutter

from tests.combinations import ALL, Combination

TEMPLATE = Path(__file__).resolve().parent.parent


def render(answers: dict[str, Any], output_dir: Path) -> Path:
    """Render the template with these answers (no prompts); return the project's path."""
    output_dir.mkdir(parents=True, exist_ok=True)
    return Path(
        cookiecutter(
            str(TEMPLATE), no_input=True, output_dir=str(output_dir), extra_context=answers
        )
    )


def time_renders(runs: int) -> dict[str, list[float]]:
    """Seconds per render, `runs` times for every combination (the first run of all is a
    warm-up: imports and Jinja's template cache are paid once per process)."""
    times: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-render-") as tmp:
        render(ALL[0].answers(), Path(tmp) / "warm-up")
        for n in range(runs):
            for combination in ALL:
                out = Path(tmp) / f"{combination.id}-{n}"
                started = time.perf_counter()
                render(combination.answers(), out)
                times.setdefault(combination.id, []).append(time.perf_counter() - started)
    return times


def median_ms(times: list[float]) -> float:
    return 1000 * statistics.median(times)


def combination_ids() -> list[str]:
    return [c.id for c in ALL]


__all__ = ["Combination", "combination_ids", "median_ms", "render", "time_renders"]
