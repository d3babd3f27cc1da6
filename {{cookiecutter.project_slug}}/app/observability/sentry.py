"""Unexpected errors to Sentry, when SENTRY_DSN is set; nothing at all when it is not.

What is sent is the error, where it was raised (without local variables), the request's
method, URL and headers less the credentials, the release and environment, and the
current trace id (OpenTelemetry's while tracing is on, so an error leads to its trace)
and the request id.
Never sent: request bodies, cookies, the Authorization header and its kind, local
variables, breadcrumbs (log messages and URLs the masking would not have seen). With
`redact` (the logs' masking of personal data, with compliance logging) the texts of the
error and of the request are masked as a log line is.
"""

from collections.abc import Callable, Mapping, MutableMapping
from functools import partial
from typing import Any, cast

import sentry_sdk
from sentry_sdk.integrations.fastapi import FastApiIntegration
from sentry_sdk.integrations.logging import LoggingIntegration
from sentry_sdk.integrations.starlette import StarletteIntegration
from sentry_sdk.types import Event, Hint

from app import about
from app.core.context import current_request
from app.observability.tracing import current_trace_ids
from app.settings import Settings

# A structlog processor: app/core/logging.py's `redact`.
Redact = Callable[[Any, str, MutableMapping[str, Any]], MutableMapping[str, Any]]
# Request headers that carry credentials or a session: dropped, not even marked.
SECRET_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key"}
)
_REQUEST_DROPPED = ("data", "cookies", "env")


def configure_sentry(settings: Settings, *, redact: Redact | None = None) -> bool:
    """Send unexpected errors to Sentry if SENTRY_DSN is set; whether it is."""
    dsn = settings.sentry.dsn.get_secret_value() if settings.sentry.dsn else ""
    if not dsn:
        return False
    sentry_sdk.init(
        dsn=dsn,
        release=f"{settings.app.name}@{about.VERSION}",
        environment=settings.app.environment,
        # send_default_pii is left unset, which is False: no user, IP address, cookies or
        # credential headers from the integrations. (Passing it is deprecated in favour
        # of data_collection, whose defaults collect more.)
        max_request_body_size="never",
        include_local_variables=False,
        max_breadcrumbs=0,
        # Errors only: traces go through OpenTelemetry.
        traces_sample_rate=None,
        # No integration that records database statements or other libraries' calls.
        auto_enabling_integrations=False,
        integrations=[
            StarletteIntegration(),
            FastApiIntegration(),
            # Errors are reported where they are handled (report_error), not from log
            # lines: a line holds the unmasked values the log's processors mask.
            LoggingIntegration(level=None, event_level=None),
        ],
        before_send=partial(scrub, redact=redact),
    )
    return True


def report_error(error: BaseException) -> None:
    """An unexpected error, to Sentry if it is configured (a no-op otherwise)."""
    if sentry_sdk.is_initialized():
        sentry_sdk.capture_exception(error)


def _masked(redact: Redact, value: Any) -> Any:
    return redact(None, "sentry", {"value": value})["value"]


def scrub(event: Event, _: Hint, *, redact: Redact | None = None) -> Event:
    """Sentry's `before_send`: what goes out, as the module's docstring says."""
    data = cast("dict[str, Any]", event)
    request = data.get("request")
    if isinstance(request, dict):
        for key in _REQUEST_DROPPED:
            request.pop(key, None)
        headers = request.get("headers")
        if isinstance(headers, Mapping):
            request["headers"] = {
                name: value
                for name, value in headers.items()
                if str(name).lower() not in SECRET_HEADERS
            }
    request_context = current_request()
    if request_context is not None:
        data.setdefault("tags", {})["request_id"] = request_context.request_id
    ids = current_trace_ids()
    if ids is not None:
        trace_id, span_id = ids
        contexts = data.setdefault("contexts", {})
        sentry_trace = {**contexts.get("trace", {}), "trace_id": trace_id, "span_id": span_id}
        sentry_trace.pop("parent_span_id", None)
        contexts["trace"] = sentry_trace
        data.setdefault("tags", {})["trace_id"] = trace_id
    if redact is not None:
        _redact(data, redact)
    return event


def _redact(data: dict[str, Any], redact: Redact) -> None:
    for exception in (data.get("exception") or {}).get("values") or []:
        if isinstance(exception.get("value"), str):
            exception["value"] = _masked(redact, exception["value"])
    for key in ("message", "logentry", "extra"):
        if key in data:
            data[key] = _masked(redact, data[key])
    request = data.get("request")
    if isinstance(request, dict):
        for key in ("url", "query_string", "headers"):
            if key in request:
                request[key] = _masked(redact, request[key])
