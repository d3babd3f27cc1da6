"""The rendered service under load, next to the bare baseline, on loopback.

For each measured combination: render it, `uv sync`, migrate, start it N times to time
start-to-ready, register and log in, seed items, then load three scenarios at a few
concurrency levels with wrk; then the baseline (benchmarks/baseline_app.py) on the same
database and Redis, loaded the same way, and the framework floor (the checked baseline's
work as a minimal app: benchmarks/fastapi_floor.py for REST, benchmarks/strawberry_floor.py
with Strawberry for GraphQL, sent the service's own documents). One
uvicorn worker process each. With several worker counts (--workers), the service is then
started again at each further count, on its own, and loaded the same way: one service at
a time, since instances side by side share their background work (the outbox relay and
the audit sealer run wherever the lease or lock is held), which would blur whose CPU is
whose.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import json
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from benchmarks import profile, wrk
from benchmarks.client import Client, wait_ready
from benchmarks.render import render
from tests.rendering import clean_env
from tests.services import (
    ServiceUrls,
    create_postgres_database,
    free_ports,
    mongodb_database_url,
)

PASSWORD = "Bench-mark-2026!"
READY_TIMEOUT = 60.0
ITEM_FIELDS = "id ownerId name description priceCents status createdAt updatedAt"
SCENARIOS = ("read", "list", "create")
SCENARIO_TITLES = {
    "read": "read by id (warm cache)",
    "list": "list 20, status filter",
    "create": "create",
}
HOT_IDS = 100  # the cached-read scenario rotates over this many items, all warmed first


@dataclasses.dataclass(frozen=True)
class Target:
    database: str
    api: str
    broker: str = "rabbitmq"
    compliance_logging: bool = True

    @property
    def name(self) -> str:
        return f"{self.api}-{self.database}"

    def answers(self) -> dict[str, Any]:
        return {
            "project_name": f"Bench {self.name}",
            "database": self.database,
            "api": self.api,
            "broker": self.broker,
            "compliance_logging": self.compliance_logging,
        }


def target_of(project: Path) -> Target:
    """The combination an already rendered project was made with."""
    answers = json.loads((project / ".cookiecutter.json").read_text())
    return Target(
        answers["database"], answers["api"], answers["broker"], bool(answers["compliance_logging"])
    )


TARGETS = {
    t.name: t
    for t in (Target("postgres", "rest"), Target("postgres", "graphql"), Target("mongodb", "rest"))
}


@dataclasses.dataclass(frozen=True)
class Cell:
    result: wrk.Result
    cpu_us: float  # server CPU time per request
    # The whole machine's CPU busy over the run, as a share of all its cores: the service,
    # its database, Redis and broker, and wrk itself all run on them.
    machine_busy: float = 0.0


@dataclasses.dataclass
class Measurement:
    target: str
    scenario: str
    connections: int
    service: Cell
    baseline: Cell
    checked: Cell  # the baseline with the service's token and session checks and rate limit
    floor: Cell | None = None  # the checked baseline's work as a minimal framework app
    # The service at each worker count measured (the first count's is `service`).
    by_workers: dict[int, Cell] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class TargetReport:
    target: str
    startup_seconds: list[float]
    measurements: list[Measurement]
    profiles: dict[str, list[tuple[float, str]]]
    rss_mib: float = 0.0  # resident memory of the service's worker after the load
    # Per worker count: each worker process's resident memory after the load (MiB), and
    # the supervising process's when there are several workers.
    worker_rss_mib: dict[int, list[float]] = dataclasses.field(default_factory=dict)
    master_rss_mib: dict[int, float] = dataclasses.field(default_factory=dict)


class Server:
    """A uvicorn process of its own session, stopped with SIGTERM (SIGKILL if it hangs)."""

    def __init__(self, argv: list[str], *, cwd: Path, env: dict[str, str], log: Path) -> None:
        (self.port,) = free_ports(1)
        self.log = log
        self.log_start = log.stat().st_size if log.exists() else 0  # where this run's begins
        with log.open("ab") as out:
            self.popen = subprocess.Popen(
                [*argv, "--host", "127.0.0.1", "--port", str(self.port)],
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                start_new_session=True,
            )
        self.started = time.monotonic()
        self.pid = self.popen.pid

    def wait_ready(self) -> float:
        """Seconds from process start to /health/ready answering 200."""
        try:
            ready = wait_ready(
                self.port, timeout=READY_TIMEOUT, alive=lambda: self.popen.poll() is None
            )
        except RuntimeError as exc:
            tail = self.log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{exc}; log {self.log}:\n{tail}") from None
        return ready - self.started

    def wait_workers(self, workers: int, *, logged: bool) -> None:
        """/health/ready answers once one worker is up: wait for all of them, until each
        has logged its startup complete (when the log level shows uvicorn's INFO), else
        until the supervisor has started them all."""
        deadline = time.monotonic() + READY_TIMEOUT
        while workers > 1 and time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise RuntimeError(f"the server exited; log {self.log}")
            if logged:
                with self.log.open("rb") as out:
                    out.seek(self.log_start)
                    up = out.read().count(b"Application startup complete")
            else:
                up = len(worker_pids(self.pid, workers))
            if up >= workers:
                return
            time.sleep(0.1)
        if workers > 1:
            raise RuntimeError(f"{workers} workers not all up after {READY_TIMEOUT:.0f} s")

    def stop(self) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait()


@contextlib.contextmanager
def serving(argv: list[str], *, cwd: Path, env: dict[str, str], log: Path) -> Iterator[Server]:
    server = Server(argv, cwd=cwd, env=env, log=log)
    try:
        yield server
    finally:
        server.stop()


def _service_env(target: Target, urls: ServiceUrls, run_id: str, log_level: str) -> dict[str, str]:
    db_name = f"bench_{target.name.replace('-', '_')}_{run_id}"
    env = clean_env()
    if target.database == "postgres":
        url = create_postgres_database(urls.postgres, db_name)
        env["DATABASE_URL"] = url.replace("postgresql://", "postgresql+asyncpg://", 1)
    else:
        env["MONGODB_URL"] = mongodb_database_url(urls.mongodb, db_name)
        # The suite's MongoDB stand-in is a standalone server, which production refuses
        # unless told (a change and its events are separate writes there).
        env["MONGODB_ALLOW_STANDALONE"] = "true"
    env.update(
        REDIS_URL=urls.redis + "/0",
        REDIS_KEY_PREFIX=f"bench-{run_id}-{target.name}:",
        BROKER_URL=urls.rabbitmq if target.broker == "rabbitmq" else urls.kafka,
        BROKER_PREFIX=f"bench-{run_id}-{target.name}.",
        # As in production: strong secrets, no docs, the production checks on.
        APP_ENVIRONMENT="production",
        APP_LOG_LEVEL=log_level,
        AUTH_SECRET_KEY=secrets.token_urlsafe(48),
        AUDIT_SECRET_KEY=secrets.token_urlsafe(48),
        METRICS_TOKEN=secrets.token_urlsafe(48),
        # Limits far above what one worker can serve: the limiter still runs on every request.
        RATE_LIMIT_API_PER_MINUTE="100000000",
        RATE_LIMIT_LOGIN_PER_IP_PER_MINUTE="1000",
    )
    return env


class Api:
    """The service's API, REST or GraphQL, for setup and for building wrk scenarios."""

    def __init__(self, target: Target, port: int) -> None:
        self.target = target
        self.client = Client(port)
        self.graphql = target.api == "graphql"
        self.email = ""  # the user logged in as

    def login(self, email: str = "") -> str:
        """A new user's token, or a new token of the user with this email."""
        # An address whose name the password does not hold (registration refuses that).
        email = email or f"load-{uuid.uuid4().hex[:8]}@example.com"
        self.email = email
        if self.graphql:
            self.client.graphql(
                "mutation($e: String!, $p: String!) "
                "{ register(email: $e, password: $p) { detail } }",
                e=email,
                p=PASSWORD,
            )
            data = self.client.graphql(
                "mutation($e: String!, $p: String!) { login(email: $e, password: $p) "
                "{ accessToken } }",
                e=email,
                p=PASSWORD,
            )
            token = str(data["login"]["accessToken"])
        else:
            body = {"email": email, "password": PASSWORD}
            # 202: registration is accepted the same whether or not the address was free.
            self.client.request(
                "POST", "/api/v1/auth/register", json_body=body, expect=(200, 201, 202)
            )
            form = {"username": email, "password": PASSWORD}
            token = str(
                self.client.request("POST", "/api/v1/auth/token", form=form)["access_token"]
            )
        self.client.token = token
        return token

    def create(self, name: str, status: str) -> str:
        if self.graphql:
            data = self.client.graphql(
                "mutation($n: String!, $s: ItemStatus!) "
                "{ createItem(input: {name: $n, priceCents: 1999, status: $s}) { id } }",
                n=name,
                s=status.upper(),
            )
            return str(data["createItem"]["id"])
        body = {"name": name, "price_cents": 1999, "status": status, "description": "seeded"}
        return str(self.client.request("POST", "/api/v1/items", json_body=body)["id"])

    def read(self, item_id: str) -> None:
        if self.graphql:
            self.client.graphql(
                f"query($id: ID!) {{ item(id: $id) {{ {ITEM_FIELDS} }} }}", id=item_id
            )
        else:
            self.client.request("GET", f"/api/v1/items/{item_id}")

    def scenarios(self, token: str, ids: list[str]) -> dict[str, wrk.Scenario]:
        auth = {"Authorization": f"Bearer {token}"}
        if not self.graphql:
            return {
                "read": wrk.Scenario(
                    "GET",
                    "/api/v1/items",
                    auth,
                    paths=tuple(f"/api/v1/items/{i}" for i in ids),
                ),
                "list": wrk.Scenario("GET", "/api/v1/items?status=active&limit=20", auth),
                "create": wrk.Scenario(
                    "POST",
                    "/api/v1/items",
                    {**auth, "Content-Type": "application/json"},
                    bodies=('{"name": "load-@N@", "price_cents": 500}',),
                ),
            }
        headers = {**auth, "Content-Type": "application/json"}
        read = f"query($id: ID!) {{ item(id: $id) {{ {ITEM_FIELDS} }} }}"
        listing = (
            f"{{ items(first: 20, filter: {{status: ACTIVE}}) {{ edges {{ cursor node "
            f"{{ {ITEM_FIELDS} }} }} pageInfo {{ hasNextPage endCursor }} }} }}"
        )
        # The name in a variable, as clients send it: the document stays the same, so the
        # service parses and validates it once (a name written into the document would
        # make every request a new document).
        create = (
            "mutation($n: String!) { createItem(input: {name: $n, priceCents: 500}) "
            f"{{ {ITEM_FIELDS} }} }}"
        )

        def body(query: str, **variables: str) -> str:
            return json.dumps({"query": query, "variables": variables})

        return {
            "read": wrk.Scenario(
                "POST", "/graphql", headers, bodies=tuple(body(read, id=i) for i in ids)
            ),
            "list": wrk.Scenario("POST", "/graphql", headers, bodies=(body(listing),)),
            "create": wrk.Scenario(
                "POST", "/graphql", headers, bodies=(body(create, n="load-@N@"),)
            ),
        }


def baseline_scenarios(
    ids: list[str], *, prefix: str = "", headers: dict[str, str] | None = None
) -> dict[str, wrk.Scenario]:
    """The bare baseline's routes, or under prefix "/checked" with the token in headers."""
    items, headers = f"{prefix}/items", headers or {}
    return {
        "read": wrk.Scenario("GET", items, headers, paths=tuple(f"{items}/{i}" for i in ids)),
        "list": wrk.Scenario("GET", f"{items}?status=active&limit=20", headers),
        "create": wrk.Scenario(
            "POST",
            items,
            {**headers, "Content-Type": "application/json"},
            bodies=('{"name": "load-@N@", "price_cents": 500}',),
        ),
    }


def _check(scenario: wrk.Scenario, port: int) -> None:
    """One request of the scenario by hand: it must succeed, and a GraphQL one without errors."""
    client = Client(port)
    try:
        body = (
            scenario.bodies[0].replace("@N@", "check-" + uuid.uuid4().hex[:8])
            if scenario.bodies
            else None
        )
        path = scenario.paths[0] if scenario.paths else scenario.path
        conn = client._conn
        conn.request(scenario.method, path, body=body, headers=scenario.headers)
        response = conn.getresponse()
        raw = response.read()
        if response.status >= 300 or b'"errors"' in raw:
            raise RuntimeError(
                f"scenario check failed: {scenario.method} {path}: {response.status} {raw[:400]!r}"
            )
    finally:
        client.close()


def rss_mib(pid: int) -> float:
    """Resident memory of a process now, in MiB, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_ticks() -> tuple[int, int]:
    """The machine's busy and total CPU time so far, over all cores (clock ticks), from
    /proc/stat: idle and waiting on I/O are not busy; guest time is already in user."""
    fields = [int(field) for field in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def children(pid: int) -> list[int]:
    """The processes whose parent is pid now, from /proc. (Scanned from every process's
    stat: /proc/<pid>/task/*/children needs a kernel option this machine's lacks.)"""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            if int(stat.read_text().rpartition(")")[2].split()[1]) == pid:
                found.append(int(stat.parent.name))
    return found


def process_tree(pid: int) -> list[int]:
    """The process and all its descendants: uvicorn's supervisor and its workers."""
    tree, todo = [], [pid]
    while todo:
        tree.append(todo.pop())
        todo += children(tree[-1])
    return tree


def tree_cpu_seconds(pid: int) -> float:
    """CPU time so far of the process and its descendants, those alive now."""
    total = 0.0
    for member in process_tree(pid):
        with contextlib.suppress(OSError):  # one that ended between the scan and the read
            total += cpu_seconds(member)
    return total


def worker_pids(pid: int, workers: int) -> list[int]:
    """uvicorn's worker processes: the server itself with one worker; with several, the
    supervisor's children but multiprocessing's resource tracker."""
    if workers == 1:
        return [pid]
    found = []
    for child in children(pid):
        with contextlib.suppress(OSError):  # one that ended since the scan
            if b"resource_tracker" not in Path(f"/proc/{child}/cmdline").read_bytes():
                found.append(child)
    return found


def _cell(
    server: Server | _Deferred, scenario: wrk.Scenario, c: int, seconds: float, tag: str
) -> Cell:
    url = f"http://127.0.0.1:{server.port}"
    wrk_bin = wrk.ensure_wrk()
    # A short warm-up at this concurrency: connections opened, pools filled.
    wrk.run(wrk_bin, url, scenario, connections=c, seconds=1, tag=f"{tag}w")
    before, (busy_before, total_before) = tree_cpu_seconds(server.pid), machine_ticks()
    result = wrk.run(wrk_bin, url, scenario, connections=c, seconds=seconds, tag=tag)
    cpu = tree_cpu_seconds(server.pid) - before
    busy, total = machine_ticks()
    # CPU time per request: what a single worker's throughput is bound by, and far less
    # sensitive than req/s to other work on the machine. Summed over the process tree:
    # with several workers, the supervisor's and every worker's.
    per_request = 1e6 * cpu / result.requests if result.requests else 0.0
    return Cell(result, per_request, (busy - busy_before) / max(1, total - total_before))


def measure_target(
    target: Target,
    urls: ServiceUrls,
    workdir: Path,
    *,
    connections: list[int],
    seconds: float,
    starts: int,
    seed_items: int,
    log_level: str,
    with_profile: bool,
    say: Callable[[str], None],
    project: Path | None = None,
    workers: list[int] | None = None,
) -> TargetReport:
    """Service and baseline run side by side, and each cell is measured on the service
    and then at once on the baseline, so a slow spell of the machine hits both. With
    several worker counts, one service per count runs too, each loaded in turn; the
    first count's is the one compared with the baselines (which keep one worker), the
    others are started and measured after it, one at a time."""
    counts = workers or [1]
    run_id = uuid.uuid4().hex[:6]
    wrk_bin = wrk.ensure_wrk()
    if project is None:
        project = render(target.answers(), workdir / target.name)
    subprocess.run(["uv", "sync", "--quiet"], cwd=project, env=clean_env(), check=True)
    env = _service_env(target, urls, run_id, log_level)
    python = str(project / ".venv" / "bin" / "python")
    if target.database == "postgres":
        migrate = [python, "-m", "alembic", "upgrade", "head"]
        subprocess.run(migrate, cwd=project, env=env, check=True, capture_output=True)

    def argv_for(count: int) -> list[str]:
        # The HTTP protocol the image serves with (the render's Dockerfile).
        protocol = "app.core.server:BoundedHttpToolsProtocol"
        workers = str(count)
        return [python, "-m", "uvicorn", "app.main:app", "--http", protocol, "--workers", workers]

    argv = argv_for(counts[0])
    log = workdir / f"{target.name}.log"
    logged = log_level in ("DEBUG", "INFO")

    startup = []
    for _ in range(max(0, starts - 1)):
        with serving(argv, cwd=project, env=env, log=log) as server:
            startup.append(server.wait_ready())
    profiles: dict[str, list[tuple[float, str]]] = {}
    with (
        serving(argv, cwd=project, env=env, log=log) as service,
        _baseline_server(target, env, project, workdir) as baseline,
        _baseline_server(target, env, project, workdir, floor=True) as floor,
    ):
        startup.append(service.wait_ready())
        service.wait_workers(counts[0], logged=logged)
        median = statistics.median(startup)
        say(f"  {target.name}: ready in {median:.2f} s (median of {len(startup)})")
        api = Api(target, service.port)
        token = api.login()
        ids = [
            # Every fourth item active: the list scenario filters on status=active.
            api.create(f"seed-{n:05d}", "active" if n % 4 == 0 else "draft")
            for n in range(seed_items)
        ]
        hot = ids[:HOT_IDS]
        for item_id in hot:
            api.read(item_id)  # warms the cache
        owner = _owner_of(api, ids[0])
        raw = [_uuid_of(item_id) for item_id in hot] if api.graphql else hot
        api.client.close()
        api_email = api.email
        for bare in (baseline, floor):
            bare.env["BASELINE_OWNER_ID"] = owner
            bare.start()
        baseline.wait_ready()
        floor.wait_ready()
        warm = Client(baseline.port)
        for item_id in raw:
            warm.request("GET", f"/items/{item_id}")  # warms the baseline's cache
        warm.close()
        say(f"  {target.name}: seeded {seed_items} items; loading")

        ours, theirs = api.scenarios(token, hot), baseline_scenarios(raw)
        auth = {"Authorization": f"Bearer {token}"}
        checked = baseline_scenarios(raw, prefix="/checked", headers=auth)
        # The floor answers what the service is asked: REST's routes, or the same GraphQL
        # documents (its global ids name the baseline's cached items).
        floors = api.scenarios(token, hot) if api.graphql else baseline_scenarios(raw, headers=auth)
        for name in SCENARIOS:
            _check(ours[name], service.port)
            _check(theirs[name], baseline.port)
            _check(checked[name], baseline.port)
            _check(floors[name], floor.port)
        measurements = []
        for c in connections:
            for name in SCENARIOS:
                tag = f"{run_id}-{name}-{c}-"
                measured = _cell(service, ours[name], c, seconds, "s" + tag)
                base = _cell(baseline, theirs[name], c, seconds, "b" + tag)
                with_checks = _cell(baseline, checked[name], c, seconds, "c" + tag)
                bare_fastapi = _cell(floor, floors[name], c, seconds, "f" + tag)
                measurements.append(
                    Measurement(
                        target.name,
                        name,
                        c,
                        measured,
                        base,
                        with_checks,
                        bare_fastapi,
                        {counts[0]: measured},
                    )
                )
        worker_rss = {counts[0]: [rss_mib(pid) for pid in worker_pids(service.pid, counts[0])]}
        master_rss = {counts[0]: rss_mib(service.pid)}
        resident = max(worker_rss[counts[0]])
        if with_profile:
            top = max(connections)
            for name in SCENARIOS:
                # Runs of their own: sampling slows the process a little, the figures above not.
                recorder = profile.Recorder(
                    service.popen.pid, seconds=seconds, label=f"{target.name}-{name}"
                )
                url = f"http://127.0.0.1:{service.port}"
                wrk.run(
                    wrk_bin,
                    url,
                    ours[name],
                    connections=top,
                    seconds=seconds + 1,
                    tag=f"p{run_id}-{name}-",
                )
                profiles[name] = recorder.top()
    for count in counts[1:]:
        more_log = workdir / f"{target.name}-{count}w.log"
        with serving(argv_for(count), cwd=project, env=env, log=more_log) as server:
            server.wait_ready()
            server.wait_workers(count, logged=logged)
            api = Api(target, server.port)
            ours = api.scenarios(api.login(api_email), hot)  # the same user, a fresh token
            api.client.close()
            for name in SCENARIOS:
                _check(ours[name], server.port)
            say(f"  {target.name}: loading {count} workers")
            for m in measurements:
                # A tag of its own, so that created names stay unique per owner.
                tag = f"s{count}w{run_id}-{m.scenario}-{m.connections}-"
                m.by_workers[count] = _cell(server, ours[m.scenario], m.connections, seconds, tag)
            worker_rss[count] = [rss_mib(pid) for pid in worker_pids(server.pid, count)]
            master_rss[count] = rss_mib(server.pid)
    return TargetReport(
        target.name, startup, measurements, profiles, resident, worker_rss, master_rss
    )


def _uuid_of(global_id: str) -> str:
    """GraphQL's ids are global, base64 of "Type:<uuid>": the baseline needs the uuid."""
    return base64.b64decode(global_id).decode().split(":", 1)[1]


def _owner_of(api: Api, item_id: str) -> str:
    if api.graphql:
        query = "query($id: ID!) { item(id: $id) { ownerId } }"
        return _uuid_of(str(api.client.graphql(query, id=item_id)["item"]["ownerId"]))
    return str(api.client.request("GET", f"/api/v1/items/{item_id}")["owner_id"])


class _Deferred:
    """A server whose environment is completed before it starts (the baseline needs the
    owner id of the seeded items)."""

    def __init__(self, argv: list[str], *, cwd: Path, env: dict[str, str], log: Path) -> None:
        self.argv, self.cwd, self.env, self.log = argv, cwd, env, log
        self.server: Server | None = None

    def start(self) -> None:
        self.server = Server(self.argv, cwd=self.cwd, env=self.env, log=self.log)

    @property
    def port(self) -> int:
        assert self.server is not None
        return self.server.port

    @property
    def pid(self) -> int:
        assert self.server is not None
        return self.server.pid

    def wait_ready(self) -> float:
        assert self.server is not None
        return self.server.wait_ready()

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()


@contextlib.contextmanager
def _baseline_server(
    target: Target, env: dict[str, str], project: Path, workdir: Path, *, floor: bool = False
) -> Iterator[_Deferred]:
    """The bare baseline's server, or with floor the framework floor's (which imports the
    baseline's functions): FastAPI's for a REST target, FastAPI and Strawberry's for a
    GraphQL one. Each served from a copy of the modules it needs."""
    name = "floor" if floor else "baseline"
    app_dir = workdir / name
    package = app_dir / "benchmarks"
    package.mkdir(parents=True, exist_ok=True)
    for module in ("__init__.py", "baseline_app.py", "fastapi_floor.py", "strawberry_floor.py"):
        shutil.copy(Path(__file__).with_name(module), package / module)
    db_url = env.get("DATABASE_URL", "").replace("postgresql+asyncpg://", "postgresql://", 1)
    base_env = {
        **clean_env(),
        "BASELINE_DATABASE": target.database,
        "BASELINE_DB_URL": db_url or env["MONGODB_URL"],
        "BASELINE_REDIS_URL": env["REDIS_URL"],
        "BASELINE_AUTH_SECRET": env["AUTH_SECRET_KEY"],
        "BASELINE_SESSION_PREFIX": env["REDIS_KEY_PREFIX"] + "session:",
    }
    python = str(project / ".venv" / "bin" / "python")
    module = "baseline_app"
    if floor:
        module = "strawberry_floor" if target.api == "graphql" else "fastapi_floor"
    argv = [
        python, "-m", "uvicorn", f"benchmarks.{module}:app", "--app-dir", str(app_dir),
        "--workers", "1", "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip
    deferred = _Deferred(argv, cwd=app_dir, env=base_env, log=workdir / f"{name}-{target.name}.log")
    try:
        yield deferred
    finally:
        deferred.stop()
