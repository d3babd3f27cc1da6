"""A rendered service whose PostgreSQL server restarts mid-traffic (command 3).

The server is a dedicated instance, started for this test and restarted by it (a
fast shutdown drops every connection; committed data stays), never the shared one.
The service runs as a real uvicorn process and is not restarted: readiness must go
503 and come back, requests meanwhile must get clean 503s, and every write that was
answered 201 must be in the database afterwards.
"""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.combinations import Combination
from tests.rendering import REST_POSTGRES, run, service_env
from tests.services import create_postgres_database, dedicated_postgres, psql

PASSWORD = "Restart-test-passw0rd!"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _call(
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
def _serving(project: Path, env: dict[str, str], log: Path) -> Iterator[int]:
    port = _free_port()
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
                if _call(port, "GET", "/health/ready")[0] == 200:
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


@pytest.mark.abuse
@pytest.mark.parametrize("combination", REST_POSTGRES)
def test_service_survives_a_database_restart(
    combination: Combination, project: Path, tmp_path: Path
) -> None:
    with dedicated_postgres(tmp_path) as postgres:
        url = create_postgres_database(postgres.url, "restart")
        env = service_env(combination) | {
            "DATABASE_URL": url.replace("postgresql://", "postgresql+asyncpg://", 1),
            "APP_ENVIRONMENT": "test",
            "BROKER_PREFIX": f"restart-{uuid.uuid4().hex[:8]}.",
            "RATE_LIMIT_API_PER_MINUTE": "100000",
        }
        run(["uv", "run", "--no-sync", "alembic", "upgrade", "head"], cwd=project, env=env)
        log = tmp_path / "service.log"
        with _serving(project, env, log) as port:
            email = f"restart-{uuid.uuid4().hex[:8]}@example.com"
            registered = _call(
                port, "POST", "/api/v1/auth/register", {"email": email, "password": PASSWORD}
            )
            assert registered[0] == 202, registered
            form = f"username={email}&password={PASSWORD}".replace("@", "%40")
            login = _call(
                port,
                "POST",
                "/api/v1/auth/token",
                form,
                **{"Content-Type": "application/x-www-form-urlencoded"},
            )
            assert login[0] == 200, login
            auth = {"Authorization": f"Bearer {login[2]['access_token']}"}

            answers: list[tuple[int, dict[str, str], Any]] = []
            stop = threading.Event()

            def traffic() -> None:
                while not stop.is_set():
                    name = f"item-{uuid.uuid4().hex}"
                    try:
                        answers.append(_call(port, "POST", "/api/v1/items", {"name": name}, **auth))
                    except OSError as exc:  # the service itself must not drop a request
                        answers.append((0, {}, str(exc)))
                    time.sleep(0.01)

            writer = threading.Thread(target=traffic)
            writer.start()
            try:
                time.sleep(1.0)
                restarted_at = len(answers)
                postgres.restart()
                # Readiness comes back by itself, the service untouched.
                deadline = time.monotonic() + 60
                while _call(port, "GET", "/health/ready")[0] != 200:
                    assert time.monotonic() < deadline, "readiness did not come back"
                    time.sleep(0.2)
                settled = len(answers)
                while len(answers) < settled + 20:
                    time.sleep(0.05)
            finally:
                stop.set()
                writer.join(60)

        statuses = [status for status, _, _ in answers]
        assert restarted_at > 0
        assert 503 in statuses, "no request met the restart: it went unobserved"
        errors = [line for line in log.read_text().splitlines() if '"error"' in line]
        assert set(statuses) <= {201, 503}, (sorted(set(statuses)), errors[-3:])
        for status, headers, body in answers:
            if status == 503:
                assert headers["content-type"] == "application/problem+json"
                assert body["code"] == "service_unavailable"
                assert headers["retry-after"]
        created = [body["id"] for status, _, body in answers if status == 201]
        assert statuses[-20:] == [201] * 20, "writes did not recover"
        ids = ",".join(f"'{item}'" for item in created)
        stored = psql(url, f"SELECT count(*) FROM items WHERE id IN ({ids})").strip()
        assert int(stored) == len(created), "an acknowledged write was lost"
