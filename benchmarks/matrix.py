"""The template's full test command, timed per combination and per stage.

Runs `pytest` at the repository root exactly as `uv run pytest` does (xdist on every
core, real services), with benchmarks.matrix_plugin recording each command and test
phase; then sums them by stage: render, environment (`uv sync`), static (ruff, mypy),
the rendered project's own suite (with its migrations check, on PostgreSQL), the
delivery files' checks, and the rest.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
STAGES = ("render", "environment", "ruff", "mypy", "suite", "delivery", "other")
# Checks of the delivery files (tests/test_delivery.py): the image's runtime-only
# environment (`uv sync --no-dev`), the linters of the Dockerfile, workflows and Compose
# file, pre-commit in a git copy, the Makefile.
_DELIVERY = ("hadolint", "actionlint", "zizmor", "check_jsonschema", "check-jsonschema",
             "pre-commit", "pre_commit", "make", "git")  # fmt: skip
_COMBINATION = re.compile(r"(postgres|mongodb)-(rest|graphql)-(rabbitmq|kafka)-(audit|plain)")


@dataclasses.dataclass
class MatrixReport:
    wall_seconds: float
    exit_status: int
    # combination -> stage -> seconds
    stages: dict[str, dict[str, float]]
    template_checks_seconds: float  # hooks, prompts and the template's own lint
    workers: dict[str, float]  # busy seconds per xdist worker
    first_test_after: float  # seconds from session start to the first test (services)
    log: Path


def run_matrix(record: Path, log: Path, extra_args: list[str]) -> int:
    record.unlink(missing_ok=True)
    env = {
        **os.environ,
        "BENCH_MATRIX_RECORD": str(record),
        # So xdist workers import the plugin too; the rendered projects never see it.
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    # The repository's own environment, as `uv run pytest` uses: under `uv run --with`
    # sys.executable is a temporary overlay, next to which the suite finds none of the
    # checkers it runs (hadolint, zizmor, ...).
    own = REPO / ".venv" / "bin" / "python"
    python = str(own) if own.exists() else sys.executable
    with log.open("w") as out:
        return subprocess.run(
            [python, "-m", "pytest", "-p", "benchmarks.matrix_plugin", *extra_args],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
        ).returncode


def _stage(argv: list[str], kind: str) -> str:
    if kind == "render":
        return "render"
    words = " ".join(argv)
    if "--no-dev" in argv or any(Path(a).name.startswith(_DELIVERY) for a in argv[:3]):
        return "delivery"
    if " sync" in words:
        return "environment"
    for tool, stage in (
        ("ruff", "ruff"),
        ("mypy", "mypy"),
        ("pytest", "suite"),
    ):
        if tool in argv or any(a.endswith(f"/{tool}") for a in argv):
            return stage
    return "other"


def summarise(record: Path, log: Path) -> MatrixReport:
    entries = [json.loads(line) for line in record.read_text().splitlines() if line.strip()]
    session = next((e for e in entries if e["kind"] == "session"), None)
    stages: dict[str, dict[str, float]] = defaultdict(lambda: dict.fromkeys(STAGES, 0.0))
    tests: dict[str, float] = defaultdict(float)
    template_checks = 0.0
    workers: dict[str, float] = defaultdict(float)
    starts = []
    for e in entries:
        if e["kind"] == "phase":
            workers[e["worker"]] += e["seconds"]
            if e["start"]:
                starts.append(e["start"])
            match = _COMBINATION.search(e["nodeid"])
            if match and "test_hooks" not in e["nodeid"]:
                tests[match.group(0)] += e["seconds"]
            else:
                template_checks += e["seconds"]
        elif e["kind"] in {"command", "render"}:
            # The test that ran the command names its combination; else its directory does.
            match = _COMBINATION.search(e.get("test", "")) or _COMBINATION.search(e["where"])
            if match:
                stages[match.group(0)][_stage(e["argv"], e["kind"])] += e["seconds"]
    for combination, total in tests.items():
        counted = sum(v for k, v in stages[combination].items() if k != "other")
        stages[combination]["other"] = max(0.0, total - counted)
    wall = session["seconds"] if session else 0.0
    begin = session["start"] if session else 0.0
    return MatrixReport(
        wall_seconds=wall,
        exit_status=session["exitstatus"] if session else -1,
        stages=dict(sorted(stages.items())),
        template_checks_seconds=template_checks,
        workers=dict(sorted(workers.items())),
        first_test_after=(min(starts) - begin) if starts and begin else 0.0,
        log=log,
    )
