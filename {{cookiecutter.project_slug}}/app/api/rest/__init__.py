"""The REST API, versioned by URL prefix."""

from collections import Counter

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel

from app.api.dependencies import rate_limit_api
from app.api.responses import problems
from app.api.rest import auth, items, users
from app.core.idempotency import HEADER as IDEMPOTENCY_HEADER

TAGS = {
    "auth": "Registration, sign-in with the OAuth2 password flow, token refresh and logout.",
    "users": "The caller's account, and the list of users for administrators.",
    "items": "The example resource: create, read, update and delete your own items.",
}


PREFIX = "/api/v1"
# The headers the API reads one value of.
SINGLE_VALUED_HEADERS = ("Authorization", "Content-Type", IDEMPOTENCY_HEADER)
FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")


def query_names(dependant: Dependant) -> frozenset[str]:
    """The query parameters an operation reads, its dependencies' and its query models'
    fields included."""
    names: set[str] = set()
    for field in dependant.query_params:
        model = field.field_info.annotation
        if isinstance(model, type) and issubclass(model, BaseModel):
            names |= {info.alias or name for name, info in model.model_fields.items()}
        else:
            names.add(field.alias)
    for dependency in dependant.dependencies:
        names |= query_names(dependency)
    return frozenset(names)


_DECLARED: dict[int, frozenset[str]] = {}
UNDECLARED = "Not a parameter of this operation."


async def single_values(request: Request) -> None:
    """A query parameter the operation does not read, or one, a form field or a
    single-valued header given more than once, is refused (422, naming it): neither
    dropped silently (a misspelt filter would answer everything) nor one of the values
    picked (which was meant is not known). No query parameter of the API takes a list
    (tests/test_problem_shape.py)."""
    names = Counter(name for name, _ in request.query_params.multi_items())
    problems = [
        {"loc": ("query", name), "msg": "Given more than once.", "type": "repeated"}
        for name, count in names.items()
        if count > 1
    ]
    problems += [
        {"loc": ("header", name), "msg": "Given more than once.", "type": "repeated"}
        for name in SINGLE_VALUED_HEADERS
        if len(request.headers.getlist(name)) > 1
    ]
    if request.headers.get("content-type", "").lower().startswith(FORMS):
        # Read by FastAPI already, for the route's form fields: no field takes a list.
        fields = Counter(name for name, _ in (await request.form()).multi_items())
        problems += [
            {"loc": ("body", name), "msg": "Given more than once.", "type": "repeated"}
            for name, count in fields.items()
            if count > 1
        ]
    if names:
        route = request.scope["route"]
        declared = _DECLARED.get(id(route))
        if declared is None:
            declared = _DECLARED[id(route)] = query_names(route.dependant)
        problems += [
            {"loc": ("query", name), "msg": UNDECLARED, "type": "extra_forbidden"}
            for name in names
            if name not in declared
        ]
    if problems:
        raise RequestValidationError(problems)


async def api_checks(request: Request, response: Response) -> None:
    """What every API request is checked for, in one dependency (each one FastAPI solves
    costs a request about 20 µs): the rate limit, then repeated or unknown parameters."""
    await rate_limit_api(request, response, request.app.state.services)
    await single_values(request)


def include_api(app: FastAPI, *extra: APIRouter) -> None:
    """The API's routers, and those of the options chosen at generation, under the
    version prefix and the API-wide rate limit.

    Each is included in the app itself rather than in one `/api/v1` router: FastAPI
    finds a request's route by scanning the included routers, and a router inside a
    router is scanned at each level, once to match and once to hand over. One level
    less saves about 80 µs of CPU on every API request (measured on a cached read)."""
    for part in (auth.router, users.router, items.router, *extra):
        app.include_router(
            part,
            prefix=PREFIX,
            dependencies=[Depends(api_checks)],
            # Any route may be rate limited, be sent a parameter twice, or find Redis or
            # the database down.
            responses=problems(422, 429, 503),
        )
