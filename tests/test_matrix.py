"""Every option combination: rendered, checked statically, installed, and tested for real."""

from __future__ import annotations

import itertools
import json
import re
import tomllib
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from scripts.bump_pins import PYPROJECT, normalize, pins
from tests.combinations import (
    ALL,
    FULL_IN_COMMAND_2,
    MYPY_IN_COMMAND_2,
    OPTIONS,
    TRACES,
    Combination,
    smoke_tests,
)
from tests.rendering import (
    EVERY,
    OPPOSITES_NOW_THE_REST_SLOW,
    clean_env,
    mypy_env,
    params,
    run,
    service_env,
    text_files,
)
from tests.test_hooks import post_gen

# Fewer tests than this means part of a rendered suite silently stopped running.
MIN_RENDERED_TESTS = 70
MIN_SMOKE_TESTS = 12
MIN_FUZZ_TESTS = 5
SUITE_TIMEOUT = 600
EXACT = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]+\])?==([^\s;]+)$")
# What the rendered project's own interpreter has installed, name -> version.
INSTALLED = (
    "import importlib.metadata as m, json; "
    "print(json.dumps({d.metadata['Name']: d.version for d in m.distributions()}))"
)


@pytest.mark.parametrize("combination", EVERY)
def test_renders_completely(combination: Combination, project: Path) -> None:
    for path in text_files(project):
        # GitHub Actions expressions (`${{ ... }}`) are meant to be left in workflows.
        text = path.read_text().replace("${{", "")
        for marker in ("{{", "{%"):
            assert marker not in text, f"unrendered {marker!r} in {path.relative_to(project)}"
    for leftover in ("__pycache__", ".ruff_cache", ".mypy_cache"):
        assert not [p for p in project.rglob(leftover) if ".venv" not in p.parts]


@pytest.mark.parametrize("combination", EVERY)
def test_structured_files_parse(combination: Combination, project: Path) -> None:
    parsed = 0
    for path in text_files(project):
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
    for path in text_files(project):
        text = path.read_text().lower()
        for word in forbidden:
            assert word not in text, f"{word!r} in {path.relative_to(project)}"
    expected = {
        word
        for (option, value), words in TRACES.items()
        if combination.chosen(option, value)
        for word in words
    }
    everything = "".join(path.read_text().lower() for path in text_files(project))
    assert all(word in everything for word in expected)


@pytest.mark.parametrize("combination", EVERY)
def test_installed_versions_are_the_pins(combination: Combination, project: Path) -> None:
    """The render's first `uv sync` installed exactly the versions the template's suite
    tested: every direct dependency pinned with ==, as in the template's one pin list."""
    declared = tomllib.loads((project / "pyproject.toml").read_text())
    requirements = [*declared["project"]["dependencies"], *declared["dependency-groups"]["dev"]]
    tested = pins(PYPROJECT.read_text())
    python = str(project / ".venv" / "bin" / "python")
    installed = {
        normalize(name): version
        for name, version in json.loads(run([python, "-c", INSTALLED], cwd=project)).items()
    }
    for requirement in requirements:
        match = EXACT.match(requirement)
        assert match, f"not an exact pin: {requirement!r}"
        name, version = normalize(match.group(1)), match.group(3)
        assert tested[name] == version, f"{requirement} is not the template's pin"
        assert installed.get(name) == version, f"{requirement}: installed {installed.get(name)}"


@pytest.mark.parametrize("combination", EVERY)
def test_ruff(combination: Combination, project: Path) -> None:
    run(
        ["uv", "run", "--no-sync", "ruff", "check", "--no-cache", "."],
        cwd=project,
        env=clean_env(),
    )
    run(
        ["uv", "run", "--no-sync", "ruff", "format", "--no-cache", "--check", "."],
        cwd=project,
        env=clean_env(),
    )


# Two opposite in every option here, the other fourteen in command 3 (MYPY_IN_COMMAND_2).
@pytest.mark.parametrize("combination", OPPOSITES_NOW_THE_REST_SLOW)
def test_mypy_strict(
    combination: Combination, project: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    run(["uv", "run", "--no-sync", "mypy", "--strict"], cwd=project, env=mypy_env(tmp_path_factory))


def _rendered_suite(combination: Combination, project: Path, *pytest_args: str) -> dict[str, int]:
    """Run the rendered project's own suite against the services; its counts, when it
    passed with nothing skipped."""
    report = project / "pytest-report.xml"
    run(
        [
            "uv",
            "run",
            "--no-sync",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            f"--junitxml={report}",
            *pytest_args,
        ],
        cwd=project,
        env=service_env(combination),
        timeout=SUITE_TIMEOUT,
    )
    suite = ET.parse(report).getroot().find("testsuite")
    assert suite is not None
    counts = {key: int(suite.get(key, "0")) for key in ("tests", "failures", "errors", "skipped")}
    # What the rendered tests record, e.g. how many requests the fuzzing sent.
    for prop in suite.iter("property"):
        if prop.get("name") == "fuzz_requests":
            counts["fuzz_requests"] = counts.get("fuzz_requests", 0) + int(prop.get("value", "0"))
    assert counts["failures"] == counts["errors"] == 0, counts
    assert counts["skipped"] == 0, f"a rendered test was skipped: {counts}"
    return counts


# The fuzzing runs in the third command (`pytest -m "abuse or slow"`). Its modules are all
# fuzz tests: not importing them saves importing schemathesis and hypothesis (2 to 5 s a
# suite, the first time with the bytecode compiled).
FAST_PART = ("-m", "not fuzz and not slow", "--ignore-glob=tests/test_fuzz_*.py")


@pytest.mark.parametrize("combination", EVERY)
def test_rendered_suite_passes_against_real_services(
    combination: Combination, project: Path, record_property: Callable[[str, object], None]
) -> None:
    """In full for a pairwise covering set of combinations, the smoke part for the others
    (whose full suites are `test_the_rest_of_the_rendered_suite_passes`, command 3)."""
    if combination.id in FULL_IN_COMMAND_2:
        counts = _rendered_suite(combination, project, *FAST_PART)
        assert counts["tests"] >= MIN_RENDERED_TESTS, counts
    else:
        counts = _rendered_suite(combination, project, *FAST_PART, *smoke_tests(combination))
        assert counts["tests"] >= MIN_SMOKE_TESTS, counts
        record_property("smoke", True)
    record_property("rendered_tests", counts["tests"])


@pytest.mark.slow
@pytest.mark.parametrize("combination", params([c for c in ALL if c.id not in FULL_IN_COMMAND_2]))
def test_the_rest_of_the_rendered_suite_passes(
    combination: Combination, project: Path, record_property: Callable[[str, object], None]
) -> None:
    """Command 3: the full fast suite of each combination command 2 ran only a smoke part of."""
    counts = _rendered_suite(combination, project, *FAST_PART)
    assert counts["tests"] >= MIN_RENDERED_TESTS, counts
    record_property("rendered_tests", counts["tests"])


def test_the_full_suites_in_command_2_pair_every_two_option_values() -> None:
    """Every value of each option runs its full suite next to every value of every other
    option in command 2; the full suites of the rest run in command 3."""
    full = [c for c in ALL if c.id in FULL_IN_COMMAND_2]
    assert len(full) == len(FULL_IN_COMMAND_2)
    for (first, first_values), (second, second_values) in itertools.combinations(OPTIONS, 2):
        for pair in itertools.product(first_values, second_values):
            assert any((c.answers()[first], c.answers()[second]) == pair for c in full), (
                f"no full suite in command 2 has {first}={pair[0]} with {second}={pair[1]}"
            )


def test_the_type_checks_in_command_2_take_every_value_of_every_option() -> None:
    checked = [c for c in ALL if c.id in MYPY_IN_COMMAND_2]
    assert len(checked) == len(MYPY_IN_COMMAND_2)
    for option, values in OPTIONS:
        assert {c.answers()[option] for c in checked} == set(values), option


# The rendered tests/test_instances.py starts three uvicorn instances and kills two:
# about a minute, two on a loaded machine. It runs for one combination per database,
# two that differ in every option; in the other fourteen it is left out (not skipped),
# its code the same and checked statically (ruff, mypy) like every render's.
INSTANCES_RUN_FOR = {"postgres-rest-rabbitmq-audit", "mongodb-graphql-kafka-plain"}


def _instances_args(combination: Combination) -> list[str]:
    return [] if combination.id in INSTANCES_RUN_FOR else ["--ignore=tests/test_instances.py"]


@pytest.mark.abuse
@pytest.mark.parametrize("combination", EVERY)
def test_rendered_fuzzing_finds_nothing(
    combination: Combination, project: Path, record_property: Callable[[str, object], None]
) -> None:
    """The rendered project's fuzz tests: at least 1000 generated requests against its
    own API (each module checks its count), no server error, no answer off its schema;
    and its slow tests, which start the app or its commands in fresh interpreters."""
    counts = _rendered_suite(combination, project, "-m", "fuzz")
    assert counts["tests"] >= MIN_FUZZ_TESTS, counts
    # A session of their own: after the fuzzing's thousand requests, the app's shutdown at
    # the end of a shared session overran the last slow test's time limit.
    slow = _rendered_suite(combination, project, "-m", "slow", *_instances_args(combination))
    counts["tests"] += slow["tests"]
    record_property("rendered_tests", counts["tests"])
    record_property("fuzz_requests", counts["fuzz_requests"])
