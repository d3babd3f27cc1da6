"""RFC 9457 problem details: the single error shape of every HTTP response."""

from collections.abc import Mapping
from typing import Any, cast

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from starlette.exceptions import HTTPException
from starlette.routing import Match

from app.core.context import current_request
from app.core.errors import REDIS_DOWN, AppError, as_app_error, status_code, status_title

PROBLEM_JSON = "application/problem+json"


def problem(status: int, title: str, detail: str, **extra: Any) -> JSONResponse:
    """A problem response. Its `code` is the status's (`not_found`) unless one is given."""
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
    body["detail"] = detail
    context = current_request()
    if context is not None:
        body["request_id"] = context.request_id
    body["code"] = status_code(status)
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON)


def status_problem(
    status: int, detail: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """The problem of an error known only by its status: one from routing, the body size
    limit, CORS or a library, titled with RFC 9110's reason phrase."""
    response = problem(status, status_title(status), detail)
    response.headers.update(headers or {})
    return response


async def _app_error(request: Request, exc: Exception) -> JSONResponse:
    error = as_app_error(exc)
    if error is None:
        raise exc
    if error.security_event is not None:
        await record_refusal(request, error)
    # Every 422 has the validation-problem shape, `errors` included, as documented.
    extra: dict[str, Any] = {"errors": []} if error.status == 422 else {}
    response = problem(error.status, error.title, error.detail, code=error.code, **extra)
    response.headers.update(error.headers)
    return response


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    error = cast(HTTPException, exc)
    headers = dict(error.headers or {})
    if error.status_code == 405:
        headers["Allow"] = allowed_methods(request)
    return status_problem(error.status_code, str(error.detail), headers)


def allowed_methods(request: Request) -> str:
    """Every method the request's path answers, as a 405 must list them (RFC 9110). The
    router's own 405 names those of the first route that matches the path alone, and an
    item's GET, PATCH and DELETE are three routes."""
    methods: set[str] = set()
    for route in iter_route_contexts(request.app.routes):
        match, _ = route.matches(request.scope)
        if match is not Match.NONE:
            methods |= route.methods or set()
    if "GET" in methods:
        methods.add("HEAD")  # HeadMiddleware answers it as GET
    return ", ".join(sorted(methods))


# The errors a 422 lists: a body of a megabyte of unknown fields had 85,000, a 7.6 MB
# answer. The detail says how many there were in all.
MAX_LISTED_ERRORS = 20


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    found = cast(RequestValidationError, exc).errors()
    # Only where and why: echoing the rejected input back could leak what was sent.
    errors = [
        {"loc": list(error["loc"]), "msg": error["msg"], "type": error["type"]}
        for error in found[:MAX_LISTED_ERRORS]
    ]
    detail = "The request is invalid."
    if len(found) > MAX_LISTED_ERRORS:
        detail = f"The request is invalid: {len(found)} errors, the first {len(errors)} listed."
    return problem(422, status_title(422), detail, errors=errors)


async def record_refusal(request: Request, error: AppError) -> None:
    # Imported here: the features import this module's errors, not the other way round.
    from app.api.dependencies import client_ip
    from app.auth.failures import record_failure

    services = getattr(request.app.state, "services", None)
    if services is None:
        return
    # A signed-in caller's refusals spend the account's own allowance: anonymous junk
    # from a shared address must not leave them unrecorded. An anonymous caller's are
    # counted per client as every per-address limit is: an IPv6 client by its /64.
    principal = getattr(request.state, "principal", None)
    caller = f"user:{principal.user_id}" if principal is not None else client_ip(request)
    await record_failure(
        error,
        database=services.database,
        limiter=services.limiter,
        limit=services.settings.rate_limit.failure_records_per_ip_per_minute,
        caller=caller,
    )


def unexpected_error() -> JSONResponse:
    return status_problem(500, "An unexpected error occurred.")


def install_problem_handlers(app: FastAPI) -> None:
    for error in (AppError, *REDIS_DOWN):
        app.add_exception_handler(error, _app_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
