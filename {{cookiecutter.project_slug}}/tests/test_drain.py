"""SIGTERM drains: readiness answers 503 first, the server's own shutdown comes after
APP_DRAIN_SECONDS. In this process, with a stand-in for the server's handler; the real
uvicorn processes are in test_instances.py (slow)."""

import asyncio
import os
import signal
from collections.abc import Iterator
from types import FrameType

import pytest
from fastapi import FastAPI
from httpx import AsyncClient

from app.core.drain import Drain


@pytest.fixture
def server_handler() -> Iterator[list[int]]:
    """What the server does on SIGTERM (uvicorn: begin its shutdown), recorded."""
    received: list[int] = []

    def handle(signum: int, frame: FrameType | None) -> None:
        received.append(signum)

    previous = signal.signal(signal.SIGTERM, handle)
    try:
        yield received
    finally:
        signal.signal(signal.SIGTERM, previous)


async def test_sigterm_turns_readiness_503_before_the_server_stops(
    app: FastAPI, client: AsyncClient, server_handler: list[int]
) -> None:
    drain = Drain(seconds=0.2)
    saved = app.state.drain
    app.state.drain = drain
    drain.install()
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.sleep(0)
        assert drain.draining
        response = await client.get("/health/ready")
        assert response.status_code == 503
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["detail"] == "Not ready: shutting down."
        assert server_handler == [], "the server stopped before readiness turned"
        for _ in range(100):
            if server_handler:
                break
            await asyncio.sleep(0.05)
        assert server_handler == [signal.SIGTERM]
    finally:
        drain.uninstall()
        app.state.drain = saved


async def test_a_second_sigterm_stops_at_once(server_handler: list[int]) -> None:
    drain = Drain(seconds=60)
    drain.install()
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.sleep(0)
        assert server_handler == []
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.sleep(0)
        assert server_handler == [signal.SIGTERM]
    finally:
        drain.uninstall()
