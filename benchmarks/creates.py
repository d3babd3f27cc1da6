"""Creates under load, against a served render: commit to seal, and CPU per create split.

For a PostgreSQL render with compliance logging, run from the render's directory with
its own interpreter (it has uvicorn, httpx and asyncpg) and its services' URLs
set (DATABASE_URL, REDIS_URL, BROKER_URL), after `alembic upgrade head`:

    .venv/bin/python <template>/benchmarks/creates.py lag --seconds 10 --clients 16
    .venv/bin/python <template>/benchmarks/creates.py cost --seconds 10 --clients 16

Both serve the app with uvicorn (one worker) on a free loopback port, register and log in
one user, and have `--clients` concurrent clients create items for `--seconds`.

`lag` reads the newest committed and the newest sealed audit sequence every 20 ms
meanwhile: a record's lag runs from the read that first saw it to the read that first saw
it sealed (so each is good to about 20 ms). It prints the creates made and the lag's
median, p99 and maximum.

`cost` reads the worker's CPU time (user + system) over the load in three runs, taken in
turn `--rounds` times (3), and compares their medians: with everything on; with the
events' delivery held off (another owner holds the relay's lease, so nothing is claimed,
published or consumed; the relay still tries the lease when woken); and with the audit
sealer held off too (another connection holds its advisory lock). The differences are
what delivery and sealing cost a create (delivery's a lower bound: the relay's attempts
at its lease stay in the second run). Between runs the holds are let go and the service
delivers and seals what waited, so each run starts with nothing pending.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
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


async def load(
    client: httpx.AsyncClient, graphql: bool, headers: dict[str, str], seconds: float, clients: int
) -> int:
    """`clients` concurrent creates for `seconds`; how many were made."""
    stop = time.monotonic() + seconds
    creates = 0

    async def one_client() -> None:
        nonlocal creates
        while time.monotonic() < stop:
            await create(client, graphql, headers)
            creates += 1

    await asyncio.gather(*(one_client() for _ in range(clients)))
    return creates


async def measure_lag(base: str, seconds: float, clients: int, graphql: bool) -> None:
    database = await asyncpg.connect(_dsn())
    seen: dict[int, float] = {}
    sealed: dict[int, float] = {}
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        headers = await signed_in(client, graphql)
        stop = time.monotonic() + seconds

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

        _, creates = await asyncio.gather(poll(), load(client, graphql, headers, seconds, clients))
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


# The render's names for the relay's lease (app/events/outbox.py) and the sealer's
# advisory lock (app/storage/postgres/audit.py).
RELAY_LEASE = "outbox-relay"
SEALER_LOCK = 0x61756469
# Held by this benchmark instead of the service's relay; the relay takes it back once it
# has expired (at its next poll).
HOLD_RELAY = (
    "INSERT INTO leases (name, owner, until, fence) "
    "VALUES ($1, 'creates-benchmark', now() + interval '1 hour', 1) "
    "ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, until = excluded.until, "
    "fence = leases.fence + 1"
)
RELEASE_RELAY = (
    "UPDATE leases SET until = now() - interval '1 second' "
    "WHERE name = $1 AND owner = 'creates-benchmark'"
)
PENDING = (
    "SELECT (SELECT count(*) FROM outbox WHERE sent_at IS NULL) "
    "+ (SELECT count(*) FROM audit_log WHERE position IS NULL)"
)


async def _settled(database: asyncpg.Connection) -> None:
    """Wait until every event is sent and every audit record sealed."""
    deadline = time.monotonic() + 120
    while await database.fetchval(PENDING):
        if time.monotonic() > deadline:
            raise RuntimeError("events or audit records still pending after 120 s")
        await asyncio.sleep(0.2)


COST_RUNS = ("everything on", "delivery held off", "delivery and sealing held off")


async def measure_cost(
    base: str, pid: int, seconds: float, clients: int, graphql: bool, rounds: int
) -> None:
    database = await asyncpg.connect(_dsn())
    sealer_hold = await asyncpg.connect(_dsn())
    runs: dict[str, list[float]] = {run: [] for run in COST_RUNS}
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        headers = await signed_in(client, graphql)
        await load(client, graphql, headers, 2, clients)  # warm up
        # The three in turn, `rounds` times: a busy spell of the machine then hits each.
        for run in COST_RUNS * rounds:
            await _settled(database)
            if run != "everything on":
                await database.execute(HOLD_RELAY, RELAY_LEASE)
            if run == "delivery and sealing held off":
                await sealer_hold.execute("SELECT pg_advisory_lock($1)", SEALER_LOCK)
            before = cpu_seconds(pid)
            creates = await load(client, graphql, headers, seconds, clients)
            runs[run].append((cpu_seconds(pid) - before) / creates * 1e6)
            print(f"{run}: {creates} creates, {runs[run][-1]:.0f} CPU µs a create", flush=True)
            await database.execute(RELEASE_RELAY, RELAY_LEASE)
            await sealer_hold.execute("SELECT pg_advisory_unlock_all()")
    await _settled(database)
    await database.close()
    await sealer_hold.close()
    full, undelivered, bare = (statistics.median(runs[run]) for run in COST_RUNS)
    print(
        f"per create, medians of {rounds}: the request {bare:.0f} µs, delivery (relay, "
        f"publish, consumer) {full - undelivered:.0f} µs, sealing {undelivered - bare:.0f} µs; "
        f"{full:.0f} µs in all"
    )


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (all its threads), from /proc. As in
    benchmarks/load.py, which imports what the render's interpreter lacks: this script
    runs on that interpreter, alone."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _dsn() -> str:
    return os.environ["DATABASE_URL"].replace("+asyncpg", "")


@contextlib.contextmanager
def serving() -> Iterator[tuple[str, int]]:
    """The render served by one uvicorn worker on a free port: its URL and pid."""
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
        stdout=subprocess.DEVNULL,
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
        yield base, server.pid
    finally:
        server.terminate()
        server.wait(15)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("measure", choices=["lag", "cost"])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3, help="cost: each run this many times")
    args = parser.parse_args(argv)
    graphql = Path("app/api/graphql").exists()
    with serving() as (base, pid):
        if args.measure == "lag":
            asyncio.run(measure_lag(base, args.seconds, args.clients, graphql))
        else:
            asyncio.run(measure_cost(base, pid, args.seconds, args.clients, graphql, args.rounds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
