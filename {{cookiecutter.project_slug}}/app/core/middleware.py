"""Request ids, access logs and metrics, as plain ASGI middleware (no per-request task)."""

import ipaddress
import re
import time
import uuid
from collections.abc import Callable

import structlog
from fastapi.routing import iter_route_contexts
from prometheus_client import Counter, Histogram
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.context import RequestContext, set_current_request
from app.core.logging import REDACT_MARGIN
from app.core.problems import status_problem, unexpected_error
from app.observability.sentry import report_error

REQUEST_ID_HEADER = "x-request-id"
# An incoming id is kept only if it is short and plain, so it is safe to log and echo.
_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")

# What of the User-Agent goes into records (their column's size): it is read to a few
# times that first, so that masking sees a number where it is cut whole.
MAX_USER_AGENT = 256
MAX_USER_AGENT_BYTES = 4 * MAX_USER_AGENT


def client_address(host: str | None) -> str | None:
    """The client's address as records keep it: an IP address, written the usual way (an
    IPv4 address mapped into IPv6 as itself). A proxy's X-Forwarded-For is taken as the
    client by uvicorn as it is written; text that is no address (a name, an email, 60
    characters that a record cannot hold, an IPv6 zone) is none."""
    try:
        address = ipaddress.ip_address(host) if host else None
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id is not None:
            return None  # `%` and any text after it: no address of the client's
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
    return str(address) if address else None


REQUESTS = Counter("http_requests_total", "HTTP requests served.", ["method", "route", "status"])
LATENCY = Histogram(
    "http_request_duration_seconds", "Time to serve an HTTP request.", ["method", "route"]
)
log = structlog.get_logger("app.access")
UNMATCHED = "unmatched"
CLIENT_CLOSED_REQUEST = 499


class RouteTemplates:
    """The full path template of the route that served a request, prefixes included.
    FastAPI keeps an included router's routes with their own paths (`/items/{item_id}`)
    and applies the prefixes when matching, so the prefixed templates are read once from
    `iter_route_contexts` and found by route."""

    def __init__(self) -> None:
        self._templates: dict[int, str] = {}

    def __call__(self, scope: Scope) -> str:
        route = scope.get("route")
        if route is None:
            # No route matched: one label value for every unknown path.
            return UNMATCHED
        template = self._templates.get(id(route))
        if template is None:
            # Routes are added before serving; a miss rebuilds the table once per route.
            self._templates = {
                id(context.original_route): context.path_format or UNMATCHED
                for context in iter_route_contexts(scope["app"].routes)
            }
            template = self._templates.setdefault(id(route), getattr(route, "path", UNMATCHED))
        return template


class RequestContextMiddleware:
    """The request's id, its client, the access log line and the metrics. `redact` masks
    personal data in text: the client writes its request id and user agent, which go
    into records and events as well as logs, so an id it would change is replaced by a
    fresh one and the agent is kept masked."""

    def __init__(self, app: ASGIApp, redact: Callable[[str], str] | None = None) -> None:
        self.app = app
        self.route_template = RouteTemplates()
        self.redact = redact

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        incoming = headers.get(REQUEST_ID_HEADER.encode(), b"").decode("latin-1")
        request_id = incoming if _VALID_REQUEST_ID.fullmatch(incoming) else ""
        client = scope.get("client")
        # As sent (UTF-8 is what clients send beyond ASCII), masked whole, then cut: cut
        # first, a number at the end was kept in part; read as Latin-1, none was masked.
        user_agent = headers.get(b"user-agent", b"")
        agent = user_agent[:MAX_USER_AGENT_BYTES].decode("utf-8", "replace")
        kept = MAX_USER_AGENT
        if self.redact is not None:
            if request_id and self.redact(request_id) != request_id:
                request_id = ""
            agent = self.redact(agent)
            if len(user_agent) > MAX_USER_AGENT_BYTES:
                # A datum the read cut split lies, unmasked, at the end, however masking
                # moved it: not kept (as in the log's cuts).
                kept = min(kept, max(len(agent) - REDACT_MARGIN, 0))
        request_id = request_id or uuid.uuid4().hex
        set_current_request(
            RequestContext(
                request_id=request_id,
                client_ip=client_address(client[0] if client else None),
                user_agent=agent[:kept] or None,
            )
        )
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        status = 500
        response_started = False
        started = time.perf_counter()

        async def send_with_request_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status, response_started = message["status"], True
                message["headers"] = [
                    *message.get("headers", []),
                    (REQUEST_ID_HEADER.encode(), request_id.encode()),
                ]
            await send(message)

        try:
            await self.app(scope, receive, send_with_request_id)
        except ClientDisconnect:
            # The client went away before its request was read: no one to answer, and no
            # fault of the service's (nginx's 499 in the access log and metrics, not a 500).
            if not response_started:
                status = CLIENT_CLOSED_REQUEST
        except Exception as exc:
            # Logged here with the request id; the client learns nothing of the cause.
            log.exception("unhandled_error")
            report_error(exc)
            if not response_started:
                await unexpected_error()(scope, receive, send_with_request_id)
        finally:
            elapsed = time.perf_counter() - started
            # The route template, not the raw path, keeps the metric's label set bounded.
            route = self.route_template(scope)
            REQUESTS.labels(scope["method"], route, str(status)).inc()
            LATENCY.labels(scope["method"], route).observe(elapsed)
            log.info(
                "request",
                method=scope["method"],
                path=scope["path"],
                status=status,
                duration_ms=round(elapsed * 1000, 2),
            )


class BodySizeLimitMiddleware:
    """Refuse request bodies over the limit with 413, whatever else is wrong with them: by
    Content-Length before any is read, and a body without one as soon as it goes past
    the limit, or, when the app refuses the request before reading it all (an unknown
    path, a multipart body that does not parse), by reading the rest up to the limit."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.detail = f"The request body is over {max_bytes} bytes."

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            await status_problem(413, self.detail)(scope, receive, send)
            return
        received = 0
        # Whether some of a body of unknown length may be still unread.
        unfinished = length is None
        replaced = False

        async def limited_receive() -> Message:
            nonlocal received, unfinished
            message = await receive()
            received += len(message.get("body", b""))
            unfinished = message.get("more_body", False)
            if received > self.max_bytes:
                # FastAPI lets an HTTPException from the body through to the error handlers.
                raise HTTPException(413, self.detail)
            return message

        async def send_or_refuse(message: Message) -> None:
            nonlocal replaced
            if message["type"] == "http.response.start" and message["status"] >= 400:
                try:
                    while unfinished and received <= self.max_bytes:
                        await limited_receive()
                except HTTPException:
                    replaced = True
                    await status_problem(413, self.detail)(scope, receive, send)
            if not replaced:
                await send(message)

        # Only a body of unknown length can be over the limit with the app none the wiser.
        await self.app(scope, limited_receive, send_or_refuse if unfinished else send)


class HeadMiddleware:
    """HEAD on any GET route, as HTTP asks of GET resources: the GET runs and its body is
    dropped. FastAPI's routes answer only the methods they declare (405 otherwise)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def send_without_body(message: Message) -> None:
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        # A copy: the server reads the method of its own scope to send no body for HEAD.
        get = {**scope, "method": "GET"}
        try:
            await self.app(get, receive, send_without_body)
        finally:
            if "route" in get:
                # The route that served it, for the access log and metrics.
                scope["route"] = get["route"]


class ProblemCORSMiddleware(CORSMiddleware):
    """Starlette's CORS, with a refused preflight answered as a problem, not in plain text."""

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code < 400:
            return response
        headers = {
            name: value
            for name, value in response.headers.items()
            if name not in ("content-type", "content-length")
        }
        detail = f"{bytes(response.body).decode()}."
        return status_problem(response.status_code, detail, headers)


# API responses are data, never a page: nothing may load from them or frame them.
API_CSP = "default-src 'none'; frame-ancestors 'none'"
# The interactive docs (Swagger UI, GraphiQL, development only) load their scripts and
# styles from these CDNs; nothing else, and they may not be framed either.
_DOCS_CDNS = "https://cdn.jsdelivr.net https://unpkg.com"
DOCS_CSP = (
    f"default-src 'none'; script-src 'self' 'unsafe-inline' {_DOCS_CDNS}; "
    f"style-src 'self' 'unsafe-inline' {_DOCS_CDNS}; font-src {_DOCS_CDNS}; "
    f"img-src 'self' data: https://fastapi.tiangolo.com {_DOCS_CDNS}; "
    "connect-src 'self'; worker-src 'self' blob:; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'self'"
)
HSTS = "max-age=31536000; includeSubDomains"
_COMMON_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
]
# What every answer that is data gets (HSTS aside, which needs the scheme): also those
# the HTTP server writes itself (app/core/server.py).
API_HEADERS = [
    *_COMMON_HEADERS,
    (b"content-security-policy", API_CSP.encode()),
    (b"cache-control", b"no-store"),
]


class SecurityHeadersMiddleware:
    """Security headers on every response; HSTS only over HTTPS (behind a proxy that
    terminates TLS, run uvicorn with --proxy-headers so the scheme is known)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        https = scope.get("scheme") == "https"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                content_type = dict(headers).get(b"content-type", b"")
                page = content_type.startswith(b"text/html")
                headers += _COMMON_HEADERS
                headers.append(
                    (b"content-security-policy", (DOCS_CSP if page else API_CSP).encode())
                )
                if not page:
                    # Tokens and personal data must not be kept by caches on the way.
                    headers.append((b"cache-control", b"no-store"))
                if https:
                    headers.append((b"strict-transport-security", HSTS.encode()))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
