"""The GraphQL API, served at /graphql."""

import json
import re
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Depends, HTTPException, Request, Response
from fastapi.responses import PlainTextResponse
from fastapi.routing import APIRoute
from strawberry.fastapi import GraphQLRouter
from strawberry.http import GraphQLHTTPResponse
from strawberry.types import ExecutionResult

from app.api.dependencies import rate_limit_api
from app.api.graphql.errors import PARSE_FAILED, VALIDATION_FAILED
from app.api.graphql.limits import request_refusal
from app.api.graphql.schema import Context, build_schema, get_context
from app.core import strict_json


def media_type_read(request: Request) -> Request:
    """The request, its media type in lower case: media types are case-insensitive
    (RFC 9110), and Strawberry refused `APPLICATION/JSON` as unsupported. A body under
    another type is refused: Strawberry took any holding the words `application/json`
    (`application/jsonx`, `application/json-patch+json`); so is one of another charset
    than UTF-8, which it read as UTF-8."""
    headers = request.scope["headers"]
    if request.method == "POST" and b"content-type" not in dict(headers):
        # A body of no type is what a cross-site page may send with no preflight.
        raise HTTPException(400, "Unsupported content type: send application/json.")
    for index, (name, value) in enumerate(headers):
        if name == b"content-type":
            media, separator, parameters = value.partition(b";")
            if request.method != "GET" and media.strip().lower() != b"application/json":
                raise HTTPException(400, "Unsupported content type: send application/json.")
            charset = strict_json.charset(value.decode("latin-1"))
            if charset not in (None, "utf-8"):
                raise HTTPException(400, "Unsupported charset: a JSON body is UTF-8.")
            if media != media.lower():
                lowered = [*headers]
                lowered[index] = (name, media.lower() + separator + parameters)
                return Request({**request.scope, "headers": lowered}, request.receive)
            break
    return request


GRAPHQL_RESPONSE = "application/graphql-response+json"
REQUEST_ERRORS = {PARSE_FAILED[0], VALIDATION_FAILED[0]}


def accepts_graphql_response(accept: str) -> bool:
    """Whether the client asks for GraphQL over HTTP's own media type at least as much as
    for `application/json` (RFC 9110 quality values; a range given twice counts at its
    best). Only a client that names it gets it: `application/json` is what every other
    client has always been answered."""
    quality: dict[str, float] = {}
    for media_range in accept.split(","):
        media, *parameters = media_range.split(";")
        weight = 1.0
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "q":
                weight = _quality(value.strip().strip('"'))
        media = media.strip().lower()
        quality[media] = max(weight, quality.get(media, 0.0))
    wanted = quality.get(GRAPHQL_RESPONSE, 0.0)
    return wanted > 0 and wanted >= quality.get("application/json", 0.0)


def _quality(value: str) -> float:
    """A q value, 0 to 1 with at most three decimals (RFC 9110); anything else is 0."""
    return float(value) if re.fullmatch(r"0(\.\d{0,3})?|1(\.0{0,3})?", value) else 0.0


def is_request_error(result: ExecutionResult) -> bool:
    """A document that did not parse or validate, or variables that did not coerce: the
    request's fault, before anything ran."""
    return result.data is None and all(
        (error.extensions or {}).get("code") in REQUEST_ERRORS for error in result.errors or ()
    )


class ProblemRoute(APIRoute):
    """Strawberry refuses a request it cannot take (not JSON, no query, a query over
    GET) in plain text; here the refusal gets the service's one error shape, a problem.

    A client accepting `application/graphql-response+json` gets it (GraphQL over HTTP):
    then a request error, which ran nothing, is a 400 without `data`; with
    `application/json` it is a 200, as that media type has it."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def handle_as_problem(request: Request) -> Response:
            # Set before the request may be copied: the copy shares its state.
            # Every Accept line, as one list (RFC 9110).
            accept = ",".join(request.headers.getlist("accept"))
            request.state.graphql_response = wants = accepts_graphql_response(accept)
            request.state.graphql_request_error = False
            response = await handle(media_type_read(request))
            if isinstance(response, PlainTextResponse) and response.status_code >= 400:
                raise HTTPException(response.status_code, bytes(response.body).decode())
            if wants and response.media_type == "application/json":
                response.headers["content-type"] = GRAPHQL_RESPONSE
                if request.state.graphql_request_error:
                    response.status_code = 400
            return response

        return handle_as_problem


# The members of a request (GraphQL over HTTP), each of its JSON type or null.
MEMBERS: dict[str, tuple[type, str]] = {
    "query": (str, "a string"),
    "operationName": (str, "a string"),
    "variables": (dict, "an object"),
    "extensions": (dict, "an object"),
}


class Router(GraphQLRouter[Context, None]):
    async def process_result(
        self, request: Request, result: ExecutionResult
    ) -> GraphQLHTTPResponse:
        answer = await super().process_result(request, result)
        if request.state.graphql_response and is_request_error(result):
            answer.pop("data", None)
            request.state.graphql_request_error = True
        return answer

    def decode_json(self, data: str | bytes) -> object:
        """A request is a JSON object (a list is a batch) of text with a UTF-8 form, its
        members of their types. Strawberry would fail with a server error on another JSON
        value, such as a bare string, on invalid UTF-8, on JSON nested past the
        interpreter's recursion limit and on a number longer than it converts; a lone
        surrogate (a JSON escape can carry one) would fail wherever it is encoded; it
        takes an `operationName` of any type, and the last of a key given twice; and
        what is no JSON but Python reads (UTF-16, a byte order mark, NaN) is refused
        (app/core/strict_json.py)."""
        try:
            decoded = strict_json.loads(data)
            # Fails on a lone surrogate anywhere, keys included.
            json.dumps(decoded, ensure_ascii=False).encode()
        except UnicodeError as exc:
            raise HTTPException(400, "The request body is not valid UTF-8 JSON.") from exc
        except strict_json.DuplicateKeyError as exc:
            raise HTTPException(400, f"The request body gives {exc.key!r} twice.") from exc
        except strict_json.NotJSONError as exc:
            raise HTTPException(400, f"The request body is not valid JSON: {exc.msg}.") from exc
        except RecursionError as exc:
            raise HTTPException(400, "The request body is nested too deeply.") from exc
        except ValueError as exc:
            # Not JSON, or a number past the digits the interpreter converts (4300).
            raise HTTPException(400, "The request body is not valid JSON.") from exc
        if not isinstance(decoded, dict | list):
            raise HTTPException(400, "The request body must be a JSON object.")
        for member, (kind, named) in MEMBERS.items():
            value = decoded.get(member) if isinstance(decoded, dict) else None
            if value is not None and not isinstance(value, kind):
                raise HTTPException(400, f"The request's `{member}` must be {named} or null.")
        if isinstance(decoded, dict):
            refusal = request_refusal(decoded)
            if refusal is not None:
                raise HTTPException(400, refusal)
        return decoded


def create_router(*extra: tuple[type, type], docs: bool) -> GraphQLRouter[Context, None]:
    """The endpoint; `extra` adds the (query, mutation) types of the options chosen.
    Without `docs` the schema answers no introspection and GraphiQL is not served."""
    return Router(
        build_schema(*extra, introspection=docs),
        path="/graphql",
        context_getter=get_context,
        graphql_ide="graphiql" if docs else None,
        # Queries over GET could be triggered cross-site; POST only.
        allow_queries_via_get=False,
        dependencies=[Depends(rate_limit_api)],
        route_class=ProblemRoute,
    )
