"""A pytest plugin that records where the template suite's time goes, for benchmarks.matrix.

Loaded with `-p benchmarks.matrix_plugin` and `BENCH_MATRIX_RECORD=<file>`; does nothing
without the variable. It writes JSON lines to the file:

- in every process that runs tests: each command the suite runs through
  `tests.rendering.run` and each `cookiecutter` render, with its duration and directory;
- in the controlling process: each test phase (setup, call, teardown) with its worker,
  duration and outcome, and the session's wall time.

It wraps the two helpers rather than changing the suite, so the suite runs as it always does.
"""

from __future__ import annotations

import functools
import json
import os
import time
from collections.abc import Callable
from typing import Any

import pytest

_RECORD = os.environ.get("BENCH_MATRIX_RECORD")
_started = time.time()
_current_test = ""  # in a process that runs tests: the one running now


def _write(entry: dict[str, Any]) -> None:
    if _RECORD:
        with open(_RECORD, "a") as out:  # noqa: PTH123 - one short append per line, any process
            out.write(json.dumps(entry) + "\n")


def _timed(kind: str, function: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.time()
        ok = False
        try:
            result = function(*args, **kwargs)
            ok = True
            return result
        finally:
            if kind == "render":
                where = str(kwargs.get("output_dir", ""))
                argv: list[str] = ["cookiecutter"]
            else:
                where = str(kwargs.get("cwd", args[1] if len(args) > 1 else ""))
                argv = [str(a) for a in (args[0] if args else kwargs.get("args", []))]
            _write(
                {
                    "kind": kind,
                    "argv": argv,
                    "where": where,
                    "start": started,
                    "seconds": time.time() - started,
                    "ok": ok,
                    "pid": os.getpid(),
                    "test": _current_test,
                }
            )

    return wrapper


def pytest_configure(config: pytest.Config) -> None:
    if not _RECORD:
        return
    try:
        import tests.rendering as rendering
    except ImportError:  # the suite changed shape: phases below still tell the story
        return
    # Before the test modules are collected, so `from tests.rendering import run` in them
    # picks up the wrapped helper.
    if hasattr(rendering, "run") and not hasattr(rendering.run, "__wrapped__"):
        rendering.run = _timed("command", rendering.run)
    if hasattr(rendering, "cookiecutter") and not hasattr(rendering.cookiecutter, "__wrapped__"):
        rendering.cookiecutter = _timed("render", rendering.cookiecutter)


def pytest_runtest_logstart(nodeid: str, location: tuple[str, int | None, str]) -> None:
    global _current_test  # one test at a time in a process
    _current_test = nodeid


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    node = getattr(report, "node", None)
    if node is None and os.environ.get("PYTEST_XDIST_WORKER"):
        return  # a worker's own report; the controller writes the forwarded copy
    worker = node.gateway.id if node is not None else "main"
    _write(
        {
            "kind": "phase",
            "nodeid": report.nodeid,
            "when": report.when,
            "worker": worker,
            "start": getattr(report, "start", 0.0),
            "seconds": report.duration,
            "outcome": report.outcome,
        }
    )


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if hasattr(session.config, "workerinput"):
        return
    _write(
        {
            "kind": "session",
            "start": _started,
            "seconds": time.time() - _started,
            "exitstatus": int(exitstatus),
        }
    )
