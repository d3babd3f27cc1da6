"""A rendered service whose PostgreSQL server restarts mid-traffic (command 3).

The server is a dedicated instance, started for this test and restarted by it (a
fast shutdown drops every connection; committed data stays), never the shared one.
The service runs as a real uvicorn process and is not restarted: readiness must go
503 and come back, requests meanwhile must get clean 503s, and every write that was
answered 201 must be in the database afterwards.
"""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.combinations import Combination
from tests.rendering import REST_POSTGRES, run, service_env
from tests.services import create_postgres_database, dedicated_postgres, psql
from tests.serving import call, serving

PASSWORD = "Restart-test-passw0rd!"


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
        with serving(project, env, log) as port:
            # An address whose name the password does not hold (registration refuses that).
            email = f"survivor-{uuid.uuid4().hex[:8]}@example.com"
            registered = call(
                port, "POST", "/api/v1/auth/register", {"email": email, "password": PASSWORD}
            )
            assert registered[0] == 202, registered
            form = f"username={email}&password={PASSWORD}".replace("@", "%40")
            login = call(
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
                        answers.append(call(port, "POST", "/api/v1/items", {"name": name}, **auth))
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
                while call(port, "GET", "/health/ready")[0] != 200:
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
