"""Commit to seal: how long an audit record waits for the sealer while creates run.

For a PostgreSQL render with compliance logging, run from the render's directory with
its own interpreter (it has uvicorn, httpx and asyncpg) and its services' URLs set
(DATABASE_URL, REDIS_URL, BROKER_URL), after `alembic upgrade head`:

    .venv/bin/python <template>/benchmarks/seal_lag.py --seconds 10 --clients 16

It serves the app with uvicorn on a free loopback port, registers and logs in one user,
and has `--clients` concurrent clients create items for `--seconds`. Meanwhile it reads
the newest committed and the newest sealed audit sequence every 20 ms: a record's lag
runs from the read that first saw it to the read that first saw it sealed (so each is
good to about 20 ms). It prints the creates made and the lag's median, p99 and maximum.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx

PASSWORD = "Bench-mark-2026!"
POLL_SECONDS = 0.02
NEWEST = (
    "SELECT coalesce(max(sequence), 0), "
    "coalesce(max(sequence) FILTER (WHERE position IS NOT NULL), 0) FROM audit_log"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def signed_in(client: httpx.AsyncClient, graphql: bool) -> dict[str, str]:
    email = f"seal-{uuid.uuid4().hex[:8]}@example.com"
    if graphql:
        register = (
            "mutation($e: String!, $p: String!) { register(email: $e, password: $p) { detail } }"
        )
        login = (
            "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { accessToken } }"
        )
        for query in (register, login):
            answer = await client.post(
                "/graphql", json={"query": query, "variables": {"e": email, "p": PASSWORD}}
            )
        token = answer.json()["data"]["login"]["accessToken"]
    else:
        await client.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD})
        answer = await client.post(
            "/api/v1/auth/token", data={"username": email, "password": PASSWORD}
        )
        token = answer.json()["access_token"]
    return {"Authorization": f"Bearer {token}"}


async def create(client: httpx.AsyncClient, graphql: bool, headers: dict[str, str]) -> None:
    name = uuid.uuid4().hex
    if graphql:
        query = "mutation($n: String!) { createItem(input: {name: $n, priceCents: 5}) { id } }"
        answer = await client.post(
            "/graphql", json={"query": query, "variables": {"n": name}}, headers=headers
        )
        ok = answer.status_code == 200 and "errors" not in answer.json()
    else:
        answer = await client.post(
            "/api/v1/items", json={"name": name, "price_cents": 5}, headers=headers
        )
        ok = answer.status_code == 201
    if not ok:
        raise RuntimeError(f"create failed: {answer.status_code} {answer.text[:200]}")


async def measure(base: str, seconds: float, clients: int, graphql: bool) -> None:
    database = await asyncpg.connect(os.environ["DATABASE_URL"].replace("+asyncpg", ""))
    seen: dict[int, float] = {}
    sealed: dict[int, float] = {}
    creates = 0
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        headers = await signed_in(client, graphql)
        stop = time.monotonic() + seconds

        async def load() -> None:
            nonlocal creates
            while time.monotonic() < stop:
                await create(client, graphql, headers)
                creates += 1

        async def poll() -> None:
            last_seen = last_sealed = (await database.fetchrow(NEWEST))[0]
            # A few seconds past the load, for the last records to be sealed.
            while time.monotonic() < stop + 5:
                now = time.monotonic()
                newest, newest_sealed = await database.fetchrow(NEWEST)
                seen.update(dict.fromkeys(range(last_seen + 1, newest + 1), now))
                sealed.update(dict.fromkeys(range(last_sealed + 1, newest_sealed + 1), now))
                last_seen, last_sealed = max(last_seen, newest), max(last_sealed, newest_sealed)
                await asyncio.sleep(POLL_SECONDS)

        await asyncio.gather(poll(), *(load() for _ in range(clients)))
    await database.close()
    lags = sorted(sealed[s] - seen[s] for s in seen if s in sealed)
    if not lags:
        raise RuntimeError("no audit record was sealed")
    p99 = lags[max(0, round(len(lags) * 0.99) - 1)]
    print(
        f"{creates} creates in {seconds:g} s from {clients} clients; {len(lags)} audit "
        f"records sealed, {len(seen) - len(lags)} not yet; commit to seal: median "
        f"{statistics.median(lags) * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, "
        f"max {lags[-1] * 1000:.0f} ms"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=16)
    args = parser.parse_args(argv)
    graphql = Path("app/api/graphql").exists()
    port = free_port()
    # The API rate limit far above what the clients send; it still runs on every request.
    env: dict[str, Any] = {**os.environ, "RATE_LIMIT_API_PER_MINUTE": "100000000"}
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "app.main:app",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/health/ready").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        else:
            raise RuntimeError("the service did not get ready within 60 s")
        asyncio.run(measure(base, args.seconds, args.clients, graphql))
    finally:
        server.terminate()
        server.wait(15)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
