"""A rendered service served by uvicorn in a process of its own, and plain HTTP calls to it:
for the tests that need the real server (restarts, Prometheus scraping, contract tools)."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.services import free_ports


def call(
    port: int, method: str, path: str, body: dict[str, Any] | str | None = None, **headers: str
) -> tuple[int, dict[str, str], Any]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        payload = json.dumps(body) if isinstance(body, dict) else body
        if isinstance(body, dict):
            headers = {**headers, "Content-Type": "application/json"}
        connection.request(method, path, body=payload, headers=headers)
        response = connection.getresponse()
        raw = response.read()
        answer = {k.lower(): v for k, v in response.getheaders()}
        return response.status, answer, json.loads(raw) if raw else None
    finally:
        connection.close()


@contextmanager
def serving(project: Path, env: dict[str, str], log: Path) -> Iterator[int]:
    (port,) = free_ports(1)
    argv = [sys.executable, "-m", "uv", "run", "--no-sync", "uvicorn", "app.main:app"]
    server = subprocess.Popen(
        [*argv, "--port", str(port), "--log-level", "warning"],
        cwd=project,
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if call(port, "GET", "/health/ready")[0] == 200:
                    break
            except OSError:
                pass
            assert server.poll() is None, "the service exited"
            time.sleep(0.2)
        else:
            pytest.fail("the service did not become ready")
        yield port
    finally:
        server.terminate()
        server.wait(30)
