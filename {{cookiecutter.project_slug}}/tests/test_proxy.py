"""Who the client is, and which host is ours, as the deployment serves the app.

The slow tests serve the app as the image does: the Dockerfile's own command and its
FORWARDED_ALLOW_IPS, by uvicorn in a fresh interpreter on loopback. 127.0.0.2 plays
the proxy; 127.0.0.1 is any other peer that connects. Each server counts its rate
limits under a Redis key prefix of its own and runs its consumers under a broker prefix
of its own; the session's relay is stopped meanwhile, as in test_instances.py.
"""

import asyncio
import ipaddress
import json
import os
import re
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from httpx import AsyncClient
from prometheus_client import REGISTRY
from pydantic import ValidationError
from uvicorn.server import ServerState

from app.api.dependencies import address_key
from app.core.server import HEAD_MAX_BYTES, BoundedHttpToolsProtocol
from app.services import Services
from app.settings import ForwardedSettings, Settings
from tests.conftest import closed_port, server_log, settings_env, until_answering
from tests.cursors import captured_logs

LABELS = {"method": "unknown", "route": "unmatched"}

PROJECT = Path(__file__).resolve().parents[1]
DOCKERFILE = (PROJECT / "Dockerfile").read_text()
PROXY = "127.0.0.2"
PEER = "127.0.0.1"
# Anonymous API requests an address may make a minute, on the servers started here.
API_LIMIT = 3
{%- if cookiecutter.api == "rest" %}
# An anonymous API request: refused (401), but counted against its address's limit first.
API_REQUEST: dict[str, Any] = {"method": "GET", "url": "/api/v1/items"}
{%- else %}
# An anonymous API request, counted against its address's limit.
API_REQUEST: dict[str, Any] = {
    "method": "POST",
    "url": "/graphql",
    "json": {"query": "{ __typename }"},
}
{%- endif %}


def image_command(port: int) -> list[str]:
    """The image's CMD, run by this interpreter on a loopback port."""
    found = re.search(r"^CMD (\[.*\])$", DOCKERFILE, re.M)
    assert found, "the Dockerfile has no exec-form CMD"
    command: list[str] = json.loads(found.group(1))
    assert command[0] == "uvicorn", command
    command = [sys.executable, "-m", *command]
    command[command.index("--host") + 1] = "127.0.0.1"
    command[command.index("--port") + 1] = str(port)
    return command


def image_forwarded_allow_ips() -> str:
    found = re.search(r'^ENV FORWARDED_ALLOW_IPS="(.*)"$', DOCKERFILE, re.M)
    assert found, "the image does not say whose X-Forwarded-* headers it believes"
    return found.group(1)


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def client(self, source: str) -> httpx.AsyncClient:
        """A client whose connections come from the `source` address."""
        transport = httpx.AsyncHTTPTransport(local_address=source)
        return httpx.AsyncClient(base_url=self.url, transport=transport, timeout=30)

    async def wait_until_serving(self) -> None:
        async with self.client(PEER) as client:
            await until_answering(self.process, self.log, client, "/health/live")

    def stop(self) -> None:
        if self.process.poll() is None:
            # SIGTERM: the relay hands its lease back for the session's.
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)


def start_server(settings: Settings, log: Path, forwarded_allow_ips: str) -> Server:
    """The image's command, believing the X-Forwarded-* headers of the given peers."""
    port = closed_port()
    env = {
        **os.environ,
        **settings_env(settings),
        "FORWARDED_ALLOW_IPS": forwarded_allow_ips,
        "APP_DRAIN_SECONDS": "0",
        "APP_LOG_LEVEL": "WARNING",
        "RATE_LIMIT_API_PER_MINUTE": str(API_LIMIT),
        "REDIS_KEY_PREFIX": f"proxy-{uuid.uuid4().hex[:8]}:",
        "BROKER_PREFIX": f"proxy-{uuid.uuid4().hex[:8]}.",
    }
    with log.open("wb") as out:
        process = subprocess.Popen(  # noqa: S603 - this interpreter, the image's command
            image_command(port), cwd=PROJECT, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    return Server(f"http://127.0.0.1:{port}", process, log)


async def serving(settings: Settings, log: Path, forwarded_allow_ips: str) -> Server:
    """A server started and answering. Its port is picked free and then bound by uvicorn,
    so another process can take it in between ("address already in use", seen once on a
    busy machine): then it is started again on another."""
    attempts = 0
    while True:
        attempts += 1
        server = start_server(settings, log, forwarded_allow_ips)
        try:
            await server.wait_until_serving()
        except pytest.fail.Exception:
            server.stop()
            taken = "address already in use" in await asyncio.to_thread(server_log, log)
            if not taken or attempts == 3:
                raise
        else:
            return server


@asynccontextmanager
async def image_servers(
    settings: Settings, logs: Path, **forwarded_allow_ips: str
) -> AsyncIterator[dict[str, Server]]:
    """One server per name, each believing the X-Forwarded-* headers of the given peers."""
    servers: dict[str, Server] = {}
    try:
        for name, allowed in forwarded_allow_ips.items():
            servers[name] = await serving(settings, logs / f"{name}.log", allowed)
        yield servers
    finally:
        for server in servers.values():
            server.stop()


@pytest.fixture(scope="module")
async def servers(
    app: FastAPI, settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[dict[str, Server]]:
    """`image`: as the image ships, no proxy declared; `proxied`: PROXY declared."""
    services: Services = app.state.services
    await services.relay.stop()
    try:
        async with image_servers(
            settings,
            tmp_path_factory.mktemp("proxy"),
            image=image_forwarded_allow_ips(),
            proxied=PROXY,
        ) as started:
            yield started
    finally:
        services.relay.start()


async def limited_after(client: httpx.AsyncClient, forwarded_for: list[str]) -> list[bool]:
    """Whether each anonymous API request, sent with each X-Forwarded-For, was rate limited."""
    answers = [
        await client.request(**API_REQUEST, headers={"X-Forwarded-For": address})
        for address in forwarded_for
    ]
    return [answer.status_code == 429 for answer in answers]


@pytest.mark.slow
async def test_behind_the_declared_proxy_each_client_is_limited_by_its_own_address(
    servers: dict[str, Server],
) -> None:
    async with servers["proxied"].client(PROXY) as proxy:
        # One client past its limit is refused; another client through the same proxy is not.
        first = await limited_after(proxy, ["203.0.113.10"] * (API_LIMIT + 1))
        assert first == [False] * API_LIMIT + [True]
        assert await limited_after(proxy, ["203.0.113.11"]) == [False]


@pytest.mark.slow
async def test_behind_the_declared_proxy_one_client_is_one_however_its_address_is_written(
    servers: dict[str, Server],
) -> None:
    """An address in any of its spellings, an IPv4 address mapped into IPv6, and the
    addresses of one IPv6 /64 count as one client."""
    one_network = [
        "2001:db8:5:6::1",
        "2001:DB8:5:6:0:0:0:1",
        "2001:0db8:0005:0006::2",
        "2001:db8:5:6:ffff::9",
    ]
    mapped = [
        "203.0.113.20",
        "::ffff:203.0.113.20",
        "::ffff:cb00:7114",
        "0:0:0:0:0:ffff:203.0.113.20",
    ]
    async with servers["proxied"].client(PROXY) as proxy:
        for spellings in (one_network, mapped):
            assert await limited_after(proxy, spellings) == [False] * API_LIMIT + [True]
        assert await limited_after(proxy, ["2001:db8:5:7::1"]) == [False]


@pytest.mark.parametrize(
    ("host", "key"),
    [
        ("198.51.100.7", "198.51.100.7"),
        ("::ffff:198.51.100.7", "198.51.100.7"),
        ("2001:DB8:1:2:3::5", "2001:db8:1:2::/64"),
        ("2001:db8::1:0:0:5", "2001:db8::/64"),
        ("fe80::1%eth0", "fe80::/64"),
        ("::1", "::/64"),
        (None, "unknown"),
        ("unix-peer", "unix-peer"),
    ],
)
def test_the_limits_count_a_client_by_one_key_per_address_or_ipv6_network(
    host: str | None, key: str
) -> None:
    assert address_key(host) == key


NOT_HTTP = [
    b"GARBAGE\r\n\r\n",
    b"GET /health/live HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n",
    b"GET /health/live HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
    b"GET /health/\x00live HTTP/1.1\r\nHost: x\r\n\r\n",
    b"POST /health/live HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
]


@pytest.mark.slow
@pytest.mark.parametrize("sent", NOT_HTTP, ids=range(len(NOT_HTTP)))
async def test_a_request_that_is_not_http_is_answered_400_in_the_problem_shape(
    servers: dict[str, Server], sent: bytes
) -> None:
    port = httpx.URL(servers["image"].url).port
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(sent)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), timeout=10)  # then the server closes
    finally:
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 Bad Request\r\n"), answer[:200]
    assert b"\r\ncontent-type: application/problem+json\r\n" in head.lower()
    problem = json.loads(body)
    assert (problem["status"], problem["code"]) == (400, "bad_request"), problem


WEBSOCKET_UPGRADES = {
    "complete": b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n",
    "without a key": b"",
}


@pytest.mark.slow
@pytest.mark.parametrize("extra", WEBSOCKET_UPGRADES.values(), ids=WEBSOCKET_UPGRADES.keys())
async def test_a_websocket_upgrade_is_served_as_the_http_request_it_also_is(
    servers: dict[str, Server], extra: bytes
) -> None:
    """No WebSocket routes: uvicorn answered an upgrade 403 or 400 in plain text, with
    none of the API's headers. The API answers it like any request."""
    port = httpx.URL(servers["image"].url).port
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(
            b"GET /health/live HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade, close\r\n"
            b"Upgrade: websocket\r\n" + extra + b"\r\n"
        )
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), timeout=10)
    finally:
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n"), answer[:300]
    assert b"\r\nx-request-id: " in head.lower()
    assert b"\r\nx-content-type-options: nosniff" in head.lower()
    assert json.loads(body) == {"status": "ok"}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("server", "peer"),
    [("image", PEER), ("image", PROXY), ("proxied", PEER)],
    ids=["image-loopback", "image-any-peer", "proxied-undeclared-peer"],
)
async def test_a_peer_that_is_not_a_declared_proxy_cannot_choose_its_address(
    servers: dict[str, Server], server: str, peer: str
) -> None:
    """Each request claims another address; all count as the peer's own."""
    claimed = [f"198.51.100.{n}" for n in range(API_LIMIT + 1)]
    async with servers[server].client(peer) as client:
        assert await limited_after(client, claimed) == [False] * API_LIMIT + [True]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("server", "peer", "hsts"),
    [("proxied", PROXY, True), ("proxied", PEER, False), ("image", PEER, False)],
    ids=["declared-proxy", "undeclared-peer", "image-loopback"],
)
async def test_hsts_is_sent_when_a_declared_proxy_says_the_request_came_over_https(
    servers: dict[str, Server], server: str, peer: str, hsts: bool
) -> None:
    async with servers[server].client(peer) as client:
        response = await client.get("/health/live", headers={"X-Forwarded-Proto": "https"})
    assert response.status_code == 200
    assert ("strict-transport-security" in response.headers) is hsts


def image_head_bound() -> int:
    """The largest request head (request line and headers) the image's server takes."""
    command = image_command(0)
    protocol = command[command.index("--http") + 1]
    assert protocol == "app.core.server:BoundedHttpToolsProtocol", "this protocol bounds heads"
    return HEAD_MAX_BYTES


async def refused(client: httpx.AsyncClient, header_bytes: int) -> bool:
    """Whether a request with a header this long is refused: answered 431 in the problem
    shape, or cut off while it is still being sent."""
    try:
        response = await client.get("/health/live", headers={"X-Big": "a" * header_bytes})
    except httpx.TransportError:
        return True
    assert response.status_code in {200, 431}, response.status_code
    if response.status_code == 431:
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] == "request_header_fields_too_large"
    return response.status_code != 200


@pytest.mark.slow
async def test_a_request_head_of_megabytes_is_refused_without_being_read(
    servers: dict[str, Server],
) -> None:
    """The server stops reading a head once it grows past the bound: memory and time
    stay bounded (unbounded, 64 MB of headers took 6 s and 115 MB to be answered 200)."""
    async with servers["image"].client(PEER) as client:
        assert not await refused(client, 16 * 1024)
        for size in (1_000_000, 16_000_000):
            assert await refused(client, size), size
        assert not await refused(client, 16 * 1024)


@pytest.mark.slow
async def test_a_request_head_over_the_images_bound_is_refused(
    servers: dict[str, Server],
) -> None:
    """Refused at the bound itself, however the head arrives: in one read or in many."""
    bound = image_head_bound()
    assert bound == 64 * 1024
    async with servers["image"].client(PEER) as client:
        assert not await refused(client, bound - 4096)
        assert await refused(client, bound + 1024)


class Written(asyncio.Transport):
    """A connection's transport that keeps what the server writes."""

    def __init__(self) -> None:
        super().__init__()
        self.written = b""
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += bytes(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 40000), "sockname": ("127.0.0.1", 8000)}.get(name)


@pytest.mark.parametrize(
    ("sent", "status"),
    [(b"GARBAGE\r\n\r\n", 400), (b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 70_000, 431)],
    ids=["not HTTP", "head over the bound"],
)
async def test_what_the_server_answers_itself_is_the_apps_answer_but_for_the_route(
    app: FastAPI, sent: bytes, status: int
) -> None:
    """A request that does not parse, or whose head is too large, is answered by the
    protocol before the app sees it: it had no request id, none of the security headers,
    no access line and no count in the metrics."""
    protocol = BoundedHttpToolsProtocol(
        config=uvicorn.Config(app), server_state=ServerState(), app_state={}
    )
    transport = Written()
    counted = REGISTRY.get_sample_value("http_requests_total", LABELS | {"status": str(status)})
    with captured_logs() as logs:
        protocol.connection_made(transport)
        protocol.data_received(sent)
    head, _, body = transport.written.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0].startswith(f"HTTP/1.1 {status} ")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    problem = json.loads(body)
    assert problem["status"] == status
    assert headers["x-request-id"] == problem["request_id"]
    assert headers["content-type"] == "application/problem+json"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["cache-control"] == "no-store"
    assert headers["content-security-policy"].startswith("default-src 'none'")
    assert transport.closed
    line = next(json.loads(text) for text in logs.getvalue().splitlines() if '"request"' in text)
    assert (line["status"], line["request_id"]) == (status, problem["request_id"])
    after = REGISTRY.get_sample_value("http_requests_total", LABELS | {"status": str(status)})
    assert (after or 0) == (counted or 0) + 1


def test_the_kubernetes_deployment_believes_the_pod_network_and_no_one_else() -> None:
    """The ConfigMap's FORWARDED_ALLOW_IPS holds the ingress controller's pods (any
    private address: the NetworkPolicy lets no other pod in), not loopback or the
    internet."""
    kustomization = (PROJECT / "deploy" / "base" / "kustomization.yaml").read_text()
    found = re.search(r"^\s*- FORWARDED_ALLOW_IPS=(.*)$", kustomization, re.M)
    assert found, "the deployment does not declare its proxy"
    allowed = ForwardedSettings(allow_ips=found.group(1)).allow_ips
    assert allowed
    networks = [ipaddress.ip_network(entry.strip()) for entry in allowed.split(",")]

    def believed(address: str) -> bool:
        ip = ipaddress.ip_address(address)
        return any(ip in network for network in networks)

    for pod in ("10.244.1.17", "172.20.3.4", "192.168.7.9", "fd00:10:244::5"):
        assert believed(pod), pod
    for other in ("127.0.0.1", "::1", "203.0.113.7", "2001:db8::1", "100.64.0.1"):
        assert not believed(other), other


@pytest.mark.parametrize("value", ["", "*", "10.0.0.0/8", "10.0.0.0/8, 192.168.0.1,fc00::/7"])
def test_forwarded_allow_ips_takes_addresses_and_networks(value: str) -> None:
    assert ForwardedSettings(allow_ips=value).allow_ips == value


@pytest.mark.parametrize("value", ["10.0.0.1/8", "proxy.example", "10.0.0.0/8,*", "10.0.0.300"])
def test_a_malformed_forwarded_allow_ips_stops_the_start(value: str) -> None:
    """uvicorn would take it as a name that never matches, and believe no one unseen."""
    with pytest.raises(ValidationError, match="FORWARDED_ALLOW_IPS"):
        ForwardedSettings(allow_ips=value)


def paths_one_slash_away(app: FastAPI) -> list[str]:
    """Each route's path (a parameter filled in), its trailing slash added or taken away."""
    paths = {
        re.sub(r"\{[^}]*\}", str(uuid.uuid4()), path)
        for context in iter_route_contexts(app.routes)
        if (path := context.path_format) and path != "/"
    }
    return sorted(path.rstrip("/") if path.endswith("/") else f"{path}/" for path in paths)


async def test_no_response_redirects_to_a_host_taken_from_the_request(
    app: FastAPI, client: AsyncClient
) -> None:
    paths = paths_one_slash_away(app)
    assert "/health/live/" in paths
    for path in paths:
        for method in ("GET", "POST"):
            response = await client.request(method, path, headers={"Host": "evil.example"})
            location = response.headers.get("location", "")
            assert "evil.example" not in location, f"{method} {path} -> {location}"
