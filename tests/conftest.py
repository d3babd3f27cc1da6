"""Session plumbing: real services for the whole run, and a per-combination summary.

The services start once, in the controlling process, before the xdist workers
are spawned; their URLs reach the workers (and the rendered projects' suites)
through the environment. URLs already set in the environment are used as they are.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import pytest
from pytest_cookies.plugin import Cookies

from tests.combinations import Combination
from tests.rendering import rendered_project
from tests.services import ensure_servers_installed, running_services

_stack = contextlib.ExitStack()
_started = time.monotonic()
_per_combination: dict[str, dict[str, float | bool]] = defaultdict(
    lambda: {
        "seconds": 0.0,
        "failed": False,
        "tests": 0,
        "rendered_tests": 0,
        "fuzz_requests": 0,
        "smoke": False,
    }
)
_COMBINATION_ID = re.compile(r"\[((?:postgres|mongodb)-[a-z]+-[a-z]+-(?:audit|plain))\]")


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """`-n auto`: one worker per core, and one more for command 2, whose workers spend
    part of their time waiting on the commands they start (renders, installs, the
    rendered suites' services). On 2 cores three runs with 3 workers took 407, 440 and
    487 s, the last run with 2 workers 487 s: a gain within the runs' spread, kept because
    an idle core is then rarer. The slow proofs (command 3) keep one per core: they time
    out dependencies and run several servers each."""
    cores = os.cpu_count() or 1
    slow = "slow" in config.option.markexpr and "not slow" not in config.option.markexpr
    return cores if slow else cores + 1


def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config, "workerinput") or config.option.collectonly:
        return
    kafka_given = "KAFKA_URL" in os.environ
    workdir = Path(tempfile.mkdtemp(prefix="template-services-"))
    # A fresh machine: the servers are installed here when that is possible (root and
    # apt-get), or the run stops with one sentence naming them, not a traceback.
    try:
        ensure_servers_installed()
        urls = _stack.enter_context(running_services(workdir))
    except RuntimeError as error:
        raise pytest.UsageError(str(error)) from None
    os.environ.update(
        POSTGRES_URL=urls.postgres,
        REDIS_URL=urls.redis,
        RABBITMQ_URL=urls.rabbitmq,
        KAFKA_URL=urls.kafka,
        MONGODB_URL=urls.mongodb,
    )
    # The Kafka-protocol stand-in started here has no idempotent producer (InitProducerId)
    # and takes a short consumer session; a real Kafka given by KAFKA_URL keeps the
    # rendered project's defaults.
    if not kafka_given:
        os.environ.setdefault("KAFKA_IDEMPOTENT_PRODUCER", "false")
        os.environ.setdefault("KAFKA_SESSION_TIMEOUT_MS", "2000")


def pytest_unconfigure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput"):
        _stack.close()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    match = _COMBINATION_ID.search(report.nodeid)
    if match is None or "test_hooks.py" in report.nodeid:
        return
    stats = _per_combination[match.group(1)]
    stats["seconds"] = float(stats["seconds"]) + report.duration
    if report.failed:
        stats["failed"] = True
    if report.when == "call":
        stats["tests"] = int(stats["tests"]) + 1
        for name, value in report.user_properties:
            # Summed: command 3 runs several parts of one combination's suite.
            if name in {"rendered_tests", "fuzz_requests"}:
                stats[name] = int(stats[name]) + int(str(value))
            elif name == "smoke":
                stats[name] = bool(value)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _per_combination:
        return
    write = terminalreporter.write_line
    terminalreporter.section("combinations")
    for combination, stats in sorted(_per_combination.items()):
        result = "FAILED" if stats["failed"] else "passed"
        fuzzed = f", {stats['fuzz_requests']} requests fuzzed" if stats["fuzz_requests"] else ""
        part = "its smoke part" if stats["smoke"] else "the project's own suite"
        write(
            f"{combination:<32} {result:<7} {stats['tests']:>3} checks, "
            f"{stats['rendered_tests']:>3} tests in {part:<23}, "
            f"{stats['seconds']:6.1f} s{fuzzed}"
        )
    write(f"total wall time: {time.monotonic() - _started:.1f} s")


@pytest.fixture
def project(combination: Combination, cookies_session: Cookies) -> Path:
    return rendered_project(combination, cookies_session)
