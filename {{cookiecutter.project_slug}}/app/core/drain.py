"""Draining on SIGTERM, so a stopping instance loses no request.

On the first SIGTERM, readiness answers 503 at once while every request is still served,
for `APP_DRAIN_SECONDS`, long enough for a load balancer's health checks to take the
instance out. Then the server's own shutdown runs: uvicorn stops accepting, lets the
requests in flight finish (up to its `--timeout-graceful-shutdown`), and the lifespan
stops the outbox relay (handing its lease over) and lets the consumers finish their
messages (`EVENTS_GRACEFUL_TIMEOUT_SECONDS`). A second SIGTERM skips the wait.
"""

import asyncio
import contextvars
import signal
import threading
from types import FrameType
from typing import Any

import structlog

log = structlog.get_logger(__name__)


class Drain:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.draining = False
        self._server_handler: Any = None
        self._stop: asyncio.TimerHandle | None = None

    def install(self) -> None:
        """Put the drain in front of the server's SIGTERM handler. Nothing to do without
        one (the app run in a test, or not in the main thread): SIGTERM stays as it is."""
        if threading.current_thread() is not threading.main_thread():
            return
        server_handler = signal.getsignal(signal.SIGTERM)
        if not callable(server_handler):
            return
        self._server_handler = server_handler
        loop = asyncio.get_running_loop()

        def on_sigterm(signum: int, frame: FrameType | None) -> None:
            if self.draining or self.seconds <= 0:
                self.draining = True
                self._hand_over(signum, frame)
                return
            self.draining = True
            # Called between two bytecodes of the loop's thread: hand the rest to the loop,
            # in a context of its own (not that of the request it interrupted).
            loop.call_soon_threadsafe(self._stop_later, loop, signum, context=contextvars.Context())

        signal.signal(signal.SIGTERM, on_sigterm)

    def _stop_later(self, loop: asyncio.AbstractEventLoop, signum: int) -> None:
        log.info("draining", seconds=self.seconds)
        self._stop = loop.call_later(self.seconds, self._hand_over, signum, None)

    def _hand_over(self, signum: int, frame: FrameType | None) -> None:
        """The server's own shutdown, once."""
        handler, self._server_handler = self._server_handler, None
        if handler is not None:
            signal.signal(signal.SIGTERM, handler)
            handler(signum, frame)

    def uninstall(self) -> None:
        if self._stop is not None:
            self._stop.cancel()
        if self._server_handler is not None:
            signal.signal(signal.SIGTERM, self._server_handler)
            self._server_handler = None
