"""The HTTP server's protocol: uvicorn's httptools one, with a bound on a request's head.

httptools reads a request line and headers of any size before the app sees them: 64 MB
of headers took 6 s and 115 MB of memory to be answered 200. This protocol answers 431
and closes the connection once a head passes HEAD_MAX_BYTES, having kept no more than
that and one read of the socket. (uvicorn's h11 has such a bound too, but costs about
100 µs a request more than httptools.) A request that is not HTTP at all is answered 400
in the API's problem shape as well, not in uvicorn's plain text. Both answers are the
app's in all but the route: a request id, the security headers, an access log line and
the request metrics (under the `unknown` method and the `unmatched` route). The API has no WebSocket
routes, so a WebSocket upgrade is not taken up: the request is served as the plain HTTP
request it also is, with the API's answer and headers (uvicorn would answer it 403 or
400 in plain text, with none of them).

A client that sends slowly cannot hold a connection as long as it likes either (what
nginx's client_header_timeout and client_body_timeout bound): a request's head must be
whole within READ_TIMEOUT_SECONDS of its first byte, or of the connection's opening,
else a head begun is answered 408 and the connection closed (one with nothing sent is
just closed, as uvicorn closes an idle keep-alive connection); and a body the app is
waiting for may pause no longer than that between reads, else the connection is closed
and the app sees the client gone (499 in its access log). uvicorn itself bounds neither.

Served by `uvicorn app.main:app --http app.core.server:BoundedHttpToolsProtocol`, as the
Dockerfile and the Makefile do.
"""

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

from starlette.responses import JSONResponse
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app.core.errors import status_code, status_title
from app.core.middleware import API_HEADERS, REQUEST_ID_HEADER, REQUESTS, UNMATCHED
from app.core.middleware import log as access_log
from app.core.problems import PROBLEM_JSON

HEAD_MAX_BYTES = 64 * 1024
# How long a head may take to arrive whole, and a body the app waits for may pause.
READ_TIMEOUT_SECONDS = 15.0
# The method label of a request that did not parse far enough to have one.
UNKNOWN_METHOD = "unknown"


class HeadTooLargeError(Exception):
    """Raised from a parser callback: the parser stops, and uvicorn answers the error."""


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Whatever `--ws` says: no upgrade is taken up (see the module's account).
        self.ws_protocol_class = None

    def _unsupported_upgrade_warning(self) -> None:
        """uvicorn warns that no WebSocket library is installed: none is wanted here."""

    # The timer of what the connection waits for from the client: a head (the first one
    # timed from the connection's opening, a later one from the read it began in), or
    # more of a body (from its last read). It is set only when a read leaves the wait
    # unfinished: a request that comes whole in one read sets none.
    _read_timer: asyncio.TimerHandle | None = None
    _head_begun = False
    _body_pending = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self._head_timed_out)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self, expired: Callable[[], None]) -> None:
        self._disarm()
        self._read_timer = self.loop.call_later(READ_TIMEOUT_SECONDS, expired)

    def _disarm(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None

    def _head_timed_out(self) -> None:
        self._read_timer = None
        if self.transport.is_closing():
            return
        if self._head_begun:
            self._send_problem(408, f"The request head took over {READ_TIMEOUT_SECONDS:g} s.")
        else:
            self.transport.close()

    def _body_timed_out(self) -> None:
        self._read_timer = None
        cycle = self.cycle
        if self.transport.is_closing() or cycle is None:
            return
        if cycle.response_complete or not cycle.more_body:
            return  # nothing more of the body is waited for
        if self.flow.read_paused or cycle.waiting_for_100_continue:
            # The app has not taken what came, or not asked for the body yet: the client
            # is not the one keeping it waiting.
            self._arm(self._body_timed_out)
        else:
            self.transport.close()

    # The head's bytes the parser has handed over (request line, whole headers), and
    # those it has buffered while the head is still coming.
    _head_bytes = 0
    _buffered_bytes = 0
    _head_complete = False
    _head_too_large = False

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_bytes = self._buffered_bytes = 0
        self._head_complete = False
        self._head_begun = True

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        # ": " and CRLF around each, as sent.
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._head_complete = True
        self._head_begun, self._body_pending = False, True
        self._disarm()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._body_pending = False
        self._disarm()

    def _count(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > HEAD_MAX_BYTES:
            self._head_too_large = True
            raise HeadTooLargeError

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._head_begun:
            if self._read_timer is None:
                self._arm(self._head_timed_out)
        elif self._body_pending:
            self._arm(self._body_timed_out)  # the body moved: its pause starts again
        # The parser hands a header over only once it is whole: while a head is still
        # coming, count what it has buffered. (Counted from the read in which the head
        # began, so a request sent right behind a large body may be refused early.)
        if self._head_complete or self._head_too_large or self.transport.is_closing():
            return
        self._buffered_bytes += len(data)
        if self._buffered_bytes > HEAD_MAX_BYTES:
            self._head_too_large = True
            self.send_400_response("")

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a request it cannot parse (its message names no more than
        that), in the problem shape: 431 when the head was too large, 400 otherwise."""
        if self._head_too_large:
            self._send_problem(
                431, f"The request line and headers are over {HEAD_MAX_BYTES} bytes."
            )
        else:
            self._send_problem(400, "The request is not valid HTTP/1.1.")

    def _send_problem(self, status: int, detail: str) -> None:
        """An answer of the server's own, in the API's shape, and the connection closed."""
        self._disarm()
        request_id = uuid.uuid4().hex
        problem = {
            "type": "about:blank",
            "title": status_title(status),
            "status": status,
            "detail": detail,
            "request_id": request_id,
            "code": status_code(status),
        }
        body = JSONResponse(problem).body
        headers = [
            (b"content-type", PROBLEM_JSON.encode()),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
            (REQUEST_ID_HEADER.encode(), request_id.encode()),
            *API_HEADERS,
        ]
        self.transport.write(
            f"HTTP/1.1 {status} {status_title(status)}\r\n".encode()
            + b"".join(name + b": " + value + b"\r\n" for name, value in headers)
            + b"\r\n"
            + body
        )
        self.transport.close()
        REQUESTS.labels(UNKNOWN_METHOD, UNMATCHED, str(status)).inc()
        access_log.info(
            "request",
            method=UNKNOWN_METHOD,
            path=None,
            status=status,
            duration_ms=0.0,
            request_id=request_id,
        )
