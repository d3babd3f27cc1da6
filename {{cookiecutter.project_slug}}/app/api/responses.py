"""Error responses as the OpenAPI document describes them.

Every error is an RFC 9457 problem, sent as application/problem+json (app/core/problems.py).
Routes list the statuses they can answer with, so clients and generated tests know
what to expect; FastAPI's own 422 entry (plain JSON, another shape) is replaced.
"""

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict

from app.core.problems import PROBLEM_JSON


class FieldError(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class Problem(BaseModel):
    """RFC 9457 problem details; members beyond these may be added (e.g. `checks`)."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str
    request_id: str | None = None
    # The application's error code, e.g. "item_not_found"; that of the status
    # ("method_not_allowed") for an error known only by its status.
    code: str


class ValidationProblem(Problem):
    """A 422: the problem, and where and why the request is invalid."""

    errors: list[FieldError]


WHEN = {
    400: "The request cannot be carried out as it is, or its form body cannot be parsed",
    401: "Missing, invalid or expired credentials",
    403: "The caller may not do this",
    404: "No such resource",
    409: "Conflicts with an existing resource",
    413: "The request body is too large",
    422: "The request is invalid",
    429: "Too many requests; see Retry-After",
    503: "A dependency is unavailable; see Retry-After",
}

_WAIT = {
    "description": "Seconds to wait before trying again.",
    "schema": {"type": "integer", "minimum": 0},
}
# The headers an error answer carries besides its problem.
HEADERS: dict[int, dict[str, Any]] = {
    401: {
        "WWW-Authenticate": {
            "description": "`Bearer`: the scheme the API takes (RFC 6750).",
            "schema": {"type": "string"},
        }
    },
    429: {"Retry-After": _WAIT},
    503: {"Retry-After": _WAIT},
}

# Shared components of the OpenAPI document: every error response refers to one of
# them, so generated clients get one typed error class rather than a copy per response.
_COMPONENTS = "#/components/schemas/{model}"


def _components() -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    for model in (Problem, ValidationProblem):
        schema = model.model_json_schema(ref_template=_COMPONENTS)
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    return schemas


PROBLEM_COMPONENTS = _components()


def problem_response(description: str, *, status: int) -> dict[str, Any]:
    model = ValidationProblem if status == 422 else Problem
    schema = {"$ref": _COMPONENTS.format(model=model.__name__)}
    response = {"description": description, "content": {PROBLEM_JSON: {"schema": schema}}}
    if status in HEADERS:
        response["headers"] = HEADERS[status]
    return response


# What any route that reads a request body may answer: the body cannot be parsed,
# is over the size limit, or is not valid.
BODY_ERRORS = (400, 413, 422)


def problems(*statuses: int, body: bool = False) -> dict[int | str, dict[str, Any]]:
    """The `responses` of a route for these error statuses (and the body's, with `body`)."""
    every = sorted({*statuses, *(BODY_ERRORS if body else ())})
    return {status: problem_response(WHEN[status], status=status) for status in every}


def operation_id(route: APIRoute) -> str:
    """Short and stable: the route function's name (`create_item`), not FastAPI's
    default built from the path and method (`create_item_api_v1_items_post`)."""
    return route.name


def _absent_is_null(parameter: dict[str, Any]) -> None:
    """An optional parameter's schema without its `null` branch: a query parameter or a
    header cannot carry a JSON null, it is left out instead (generated tests sent an empty
    header for it, which is refused)."""
    schema = parameter["schema"]
    kinds = schema.get("anyOf", [])
    if not parameter.get("required") and len(kinds) == 2 and {"type": "null"} in kinds:
        (kind,) = [each for each in kinds if each != {"type": "null"}]
        parameter["schema"] = {key: value for key, value in schema.items() if key != "anyOf"}
        parameter["schema"].update(kind)


def publish_openapi(app: FastAPI, *, tags: Mapping[str, str]) -> None:
    """Complete the document FastAPI generates: the shared problem components, the tags
    with their descriptions, `security` on every operation (`[]` where public), and
    optional parameters without a `null` branch."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = generate()
        document.setdefault("components", {}).setdefault("schemas", {}).update(PROBLEM_COMPONENTS)
        used: set[str] = set()
        for operations in document["paths"].values():
            for operation in operations.values():
                operation.setdefault("security", [])
                used.update(operation.get("tags", []))
                for parameter in operation.get("parameters", []):
                    _absent_is_null(parameter)
        document["tags"] = [
            {"name": name, "description": description}
            for name, description in tags.items()
            if name in used
        ]
        return document

    app.openapi = openapi  # type: ignore[method-assign]
