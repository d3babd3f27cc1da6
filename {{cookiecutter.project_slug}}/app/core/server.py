"""The HTTP server's protocol: uvicorn's httptools one, with a bound on a request's head.

httptools reads a request line and headers of any size before the app sees them: 64 MB
of headers took 6 s and 115 MB of memory to be answered 200. This protocol answers 431
and closes the connection once a head passes HEAD_MAX_BYTES, having kept no more than
that and one read of the socket. (uvicorn's h11 has such a bound too, but costs about
100 µs a request more than httptools.) A request that is not HTTP at all is answered 400
in the API's problem shape as well, not in uvicorn's plain text. The API has no WebSocket
routes, so a WebSocket upgrade is not taken up: the request is served as the plain HTTP
request it also is, with the API's answer and headers (uvicorn would answer it 403 or
400 in plain text, with none of them).

Served by `uvicorn app.main:app --http app.core.server:BoundedHttpToolsProtocol`, as the
Dockerfile and the Makefile do.
"""

import json
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app.core.errors import status_code, status_title

HEAD_MAX_BYTES = 64 * 1024


class HeadTooLargeError(Exception):
    """Raised from a parser callback: the parser stops, and uvicorn answers the error."""


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Whatever `--ws` says: no upgrade is taken up (see the module's account).
        self.ws_protocol_class = None

    def _unsupported_upgrade_warning(self) -> None:
        """uvicorn warns that no WebSocket library is installed: none is wanted here."""

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

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        # ": " and CRLF around each, as sent.
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._head_complete = True
        super().on_headers_complete()

    def _count(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > HEAD_MAX_BYTES:
            self._head_too_large = True
            raise HeadTooLargeError

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
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
            status = 431
            detail = f"The request line and headers are over {HEAD_MAX_BYTES} bytes."
        else:
            status = 400
            detail = "The request is not valid HTTP/1.1."
        problem = {
            "type": "about:blank",
            "title": status_title(status),
            "status": status,
            "detail": detail,
            "code": status_code(status),
        }
        body = json.dumps(problem).encode()
        self.transport.write(
            f"HTTP/1.1 {status} {status_title(status)}\r\n".encode()
            + b"content-type: application/problem+json\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\n"
            b"connection: close\r\n\r\n" + body
        )
        self.transport.close()
