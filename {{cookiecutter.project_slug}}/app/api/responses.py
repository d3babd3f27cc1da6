"""Error responses as the OpenAPI document describes them.

Every error is an RFC 9457 problem, sent as application/problem+json (app/core/problems.py).
Routes list the statuses they can answer with, so clients and generated tests know
what to expect; FastAPI's own 422 entry (plain JSON, another shape) is replaced.
"""

from typing import Any

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
    # The application's error code, e.g. "item_not_found".
    code: str | None = None
    # Where and why the request is invalid, for 422 from request validation.
    errors: list[FieldError] | None = None


WHEN = {
    400: "The request cannot be carried out as it is, or its body cannot be parsed",
    401: "Missing, invalid or expired credentials",
    403: "The caller may not do this",
    404: "No such resource",
    409: "Conflicts with an existing resource",
    413: "The request body is too large",
    422: "The request is invalid",
    429: "Too many requests; see Retry-After",
    503: "A dependency is unavailable; see Retry-After",
}


def _inlined(schema: Any, definitions: dict[str, Any]) -> Any:
    """The schema with its local references replaced by what they point to.

    The OpenAPI document resolves `#/...` against its own root, so the `$defs` of a
    schema placed inside it cannot be referenced as pydantic writes them.
    """
    if isinstance(schema, dict):
        if "$ref" in schema:
            return _inlined(definitions[schema["$ref"].rsplit("/", 1)[-1]], definitions)
        return {key: _inlined(value, definitions) for key, value in schema.items()}
    if isinstance(schema, list):
        return [_inlined(value, definitions) for value in schema]
    return schema


def _problem_schema() -> dict[str, Any]:
    schema = Problem.model_json_schema()
    definitions = schema.pop("$defs", {})
    inlined: dict[str, Any] = _inlined(schema, definitions)
    return inlined


PROBLEM_SCHEMA = _problem_schema()


def problem_response(description: str) -> dict[str, Any]:
    return {"description": description, "content": {PROBLEM_JSON: {"schema": PROBLEM_SCHEMA}}}


# What any route that reads a request body may answer: the body cannot be parsed,
# is over the size limit, or is not valid.
BODY_ERRORS = (400, 413, 422)


def problems(*statuses: int, body: bool = False) -> dict[int | str, dict[str, Any]]:
    """The `responses` of a route for these error statuses (and the body's, with `body`)."""
    every = sorted({*statuses, *(BODY_ERRORS if body else ())})
    return {status: problem_response(WHEN[status]) for status in every}
