"""A client that sends slowly holds no connection longer than the server's read timeout.

The app served by uvicorn with the image's protocol (app.core.server), in this process
on a loopback socket, its timeout shortened so the tests wait fractions of a second.
"""

import asyncio
import json
import re
import select
import socket
import time
from collections.abc import AsyncIterator

import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts

from app.core import server as protocol
from app.core.server import BoundedHttpToolsProtocol

TIMEOUT = 0.5
# Time enough, on a busy machine, for the server to act once the timeout has passed.
SLACK = 5.0


@pytest.fixture
async def port(app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[int]:
    monkeypatch.setattr(protocol, "READ_TIMEOUT_SECONDS", TIMEOUT)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, http=BoundedHttpToolsProtocol, lifespan="off", log_level="warning")
    server = uvicorn.Server(config)
    # Listening already: a connection made before the server starts waits in the backlog.
    sock.listen()
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        yield int(sock.getsockname()[1])
    finally:
        server.should_exit = True
        await serving


def post_path(app: FastAPI) -> str:
    """A route that reads a body: the API's first POST."""
    for context in iter_route_contexts(app.routes):
        methods = getattr(context.original_route, "methods", None) or ()
        if context.path_format and "POST" in methods and "{" not in context.path_format:
            return context.path_format
    raise AssertionError("the app has no POST route")


def exchange(port: int, sends: tuple[bytes, ...], pause: float) -> tuple[bytes, float]:
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT + SLACK) as sock:
        started = time.monotonic()
        for data in sends:
            if select.select([sock], [], [], 0)[0]:
                break  # the server has answered or closed: sending more would reset
            sock.sendall(data)
            time.sleep(pause)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        return answer, time.monotonic() - started


async def closed_after(port: int, *sends: bytes, pause: float = 0.0) -> tuple[bytes, float]:
    """What the server wrote until it closed the connection, and how long after the
    connection opened it closed; the sends made `pause` apart while it says nothing. (A
    plain socket in a thread: the server runs on this loop.)"""
    return await asyncio.to_thread(exchange, port, sends, pause)


async def test_a_connection_that_sends_nothing_is_closed_without_an_answer(port: int) -> None:
    answer, _ = await closed_after(port)
    assert answer == b""


async def test_a_head_sent_slowly_is_answered_408_once_its_time_is_up(port: int) -> None:
    """Bytes keep coming, but the head is never whole: the bound is on the whole head."""
    trickle = [b"GET /health/live HTTP/1.1\r\n", *(b"X-A: b\r\n" for _ in range(40))]
    answer, took = await closed_after(port, *trickle, pause=0.05)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), answer[:200]
    assert b"\r\ncontent-type: application/problem+json\r\n" in head.lower()
    problem = json.loads(body)
    assert (problem["status"], problem["code"]) == (408, "request_timeout"), problem
    assert took < len(trickle) * 0.05  # before the client was done sending


async def test_a_body_that_stops_coming_closes_the_connection(app: FastAPI, port: int) -> None:
    head = (
        f"POST {post_path(app)} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        "Content-Length: 100\r\n\r\n"
    )
    answer, took = await closed_after(port, head.encode() + b'{"a": ')
    assert answer == b""
    assert TIMEOUT <= took < TIMEOUT + SLACK


async def test_a_body_sent_with_short_pauses_is_served_however_long_it_takes(
    app: FastAPI, port: int
) -> None:
    """The body's bound is on each pause, not on the whole: a slow upload on a slow link
    that keeps moving is served."""
    body = b'{"query": "{ __typename }"}'
    request = (
        f"POST {post_path(app)} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    pieces = [body[i : i + 5] for i in range(0, len(body), 5)]
    answer, took = await closed_after(port, request.encode(), *pieces, pause=TIMEOUT / 3)
    assert took > TIMEOUT * 2
    head, _, answered = answer.partition(b"\r\n\r\n")
    # The app's own answer to what was sent (the API's 200 or 422), not the server's 408.
    assert re.match(rb"HTTP/1.1 (200|422) ", head), head
    assert json.loads(answered)


async def test_a_kept_alive_connection_gets_a_fresh_time_for_each_head(port: int) -> None:
    """The first head's time runs from the connection's opening; a later one's from its
    own first byte, however long the connection has been open."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for _ in range(3):
            writer.write(b"GET /health/live HTTP/1.1\r\nHost: test\r\n\r\n")
            await writer.drain()
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=SLACK)
            assert head.startswith(b"HTTP/1.1 200 "), head
            length = re.search(rb"(?im)^content-length: (\d+)\r$", head)
            assert length, head
            await reader.readexactly(int(length.group(1)))
            await asyncio.sleep(TIMEOUT * 0.8)  # under uvicorn's 5 s keep-alive
    finally:
        writer.close()
