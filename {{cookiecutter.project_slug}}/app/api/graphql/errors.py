"""GraphQL's error shape: the message, plus `code` and `status` in the extensions.

Every error of a response has both; `Schema.execute` gives them last, so no error
escapes them, whichever step raised it. Errors the application raised on purpose
(AppError), and outages of a dependency, keep their message. GraphQL's own keep theirs
too: a document that does not parse (or is over the token limit) is
`graphql_parse_failed`, one that does not validate (an unknown field, a variable of the
wrong type, the depth and alias limits, introspection where it is off)
`graphql_validation_failed`, both 400. Anything else is logged with the request id and
masked (`internal_error`, 500).

While introspection is off, GraphQL's own messages name nothing of the schema that the
request did not name itself: suggestions ("Did you mean 'items'?") are dropped and other
names are hidden, or the messages would tell what introspection refuses to.
"""

import functools
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

from graphql import (
    GraphQLEnumType,
    GraphQLError,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLSyntaxError,
    Lexer,
    Source,
    TokenKind,
)
from strawberry.extensions import SchemaExtension
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from app.api.graphql.limits import MAX_TOKENS
from app.core.errors import AppError, BadRequestError, as_app_error
from app.core.problems import record_refusal

UNEXPECTED = "An unexpected error occurred."
PARSE_FAILED = ("graphql_parse_failed", 400)
VALIDATION_FAILED = ("graphql_validation_failed", 400)
INTERNAL = ("internal_error", 500)
RETRY_AFTER = "retryAfter"


class TooCostlyError(BadRequestError):
    """The request asks for more nodes than one request may fetch (relay.NodeBudget)."""

    code = "query_too_costly"


def refusal(error: BaseException | None) -> AppError | None:
    """The application's error, if it is a refusal to record."""
    if isinstance(error, GraphQLError):
        error = error.original_error
    known = as_app_error(error) if error is not None else None
    return known if known is not None and known.security_event is not None else None


class RefusalsSeen(StrawberryGraphQLCoreExecutionContext):
    """graphql-core's execution, noting each field's refusal as the field fails. The
    result does not keep them all: a non-null field's error nulls its parent, up to the
    whole response, and the fields failing beside it leave no error there."""

    def handle_field_error(self, raw_error: Exception, *args: Any) -> None:
        known = refusal(raw_error)
        refusals = getattr(self.context_value, "refusals", None)
        if known is not None and refusals is not None:
            refusals.setdefault(known.security_event.id, known)  # type: ignore[union-attr]
        super().handle_field_error(raw_error, *args)


class RecordRefusals(SchemaExtension):
    async def on_execute(self) -> AsyncIterator[None]:
        yield
        context = self.execution_context.context
        # Each refused field of the document is recorded (aliases too), once however
        # often it failed with the same refusal (an id asked for twice).
        refusals: dict[object, AppError] = dict(getattr(context, "refusals", {}))
        result = self.execution_context.result
        for error in (result.errors if result else None) or []:
            known = refusal(error)
            if known is not None:
                refusals.setdefault(known.security_event.id, known)  # type: ignore[union-attr]
        for known in refusals.values():
            await record_refusal(context.http_request, known)


def is_unexpected(error: GraphQLError) -> bool:
    # GraphQL's own errors (syntax, unknown field, bad variables) are safe to show.
    original = error.original_error
    return (
        original is not None
        and not isinstance(original, GraphQLError)
        and as_app_error(original) is None
    )


def shaped(error: GraphQLError, hide: Callable[[str], str] | None = None) -> GraphQLError:
    """The error as the client gets it; `hide` rewrites GraphQL's own messages."""
    original = error.original_error
    known = as_app_error(original) if original is not None else None
    extensions: dict[str, object] = {}
    if known is not None:
        message, code, status = known.detail, known.code, known.status
        # Rate limited, or a dependency down: when to try again, as REST's header says.
        if "Retry-After" in known.headers:
            extensions[RETRY_AFTER] = int(known.headers["Retry-After"])
    elif is_unexpected(error):
        message, (code, status) = UNEXPECTED, INTERNAL
    else:
        message = hide(error.message) if hide else error.message
        code, status = PARSE_FAILED if isinstance(error, GraphQLSyntaxError) else VALIDATION_FAILED
    # A copy: parsed and validated documents are cached with their errors. Its place is
    # the original's, not worked out again from the document.
    copy = GraphQLError(
        message, path=error.path, extensions={"code": code, "status": status, **extensions}
    )
    copy.nodes, copy.source = error.nodes, error.source
    copy.positions, copy.locations = error.positions, error.locations
    return copy


def wait_headers(errors: list[GraphQLError]) -> dict[str, str]:
    """The headers of the error that asks for the longest wait, if any does: its
    `Retry-After`, and a rate limit's `X-RateLimit-*` with it, so that they describe the
    same limit (the API-wide limit's, set before, said 591 left beside a login's wait)."""
    waiting = [
        known.headers
        for error in errors
        if error.original_error is not None
        and (known := as_app_error(error.original_error)) is not None
        and "Retry-After" in known.headers
    ]
    return max(waiting, key=lambda headers: int(headers["Retry-After"]), default={})


# graphql-core's `did_you_mean`: at most five quoted names (or selections: 'me { ... }'),
# after a few words at most. Every part bounded: `[^?]*` read on from each "Did you mean"
# a message echoed (a client's string of 100 kB of them) and took seconds.
_SUGGESTION = re.compile(
    r" ?Did you mean (?:[a-z ]{1,40} )?'[^'\n]{1,100}'(?:,? (?:or )?'[^'\n]{1,100}'){0,4}\?"
)
# GraphQL quotes the names it cites ('Query.items', '[ID!]!', '$input'); a client's
# values are quoted too (so their names count as the request's own).
_QUOTED = re.compile(r"'[^'\s]+'")
_NAME = re.compile(r"[_A-Za-z][_0-9A-Za-z]*")
HIDDEN = "…"


def document_names(query: str) -> set[str]:
    """The names in a document as GraphQL reads them (its Name tokens: not comments,
    not strings), up to where it stops parsing."""
    names: set[str] = set()
    lexer = Lexer(Source(query))
    try:
        for _ in range(MAX_TOKENS):  # where the parser stops too
            if (token := lexer.advance()).kind == TokenKind.EOF:
                break
            if token.kind == TokenKind.NAME and token.value:
                names.add(token.value)
    except GraphQLError:
        pass  # a syntax error: the names before it were read
    return names


def keys_of(value: object) -> set[str]:
    """The keys of the variables, at any depth: the input fields the request named. Read
    without recursion: variables a few hundred levels deep (JSON decodes about 900)
    exhausted the stack as an unexpected error."""
    keys: set[str] = set()
    pending = [value]
    while pending:
        found = pending.pop()
        if isinstance(found, dict):
            keys.update(map(str, found))
            pending.extend(found.values())
        elif isinstance(found, list):
            pending.extend(found)
    return keys


class SchemaNames:
    """The names a schema defines: types, fields, arguments, input fields and enum
    values (introspection's own, `__Type` and the like, are public)."""

    def __init__(self, schema: GraphQLSchema) -> None:
        types: set[str] = set()
        names: set[str] = set()
        for type_name, kind in schema.type_map.items():
            if type_name.startswith("__"):
                continue
            types.add(type_name)
            if isinstance(kind, GraphQLObjectType | GraphQLInterfaceType):
                for field_name, field in kind.fields.items():
                    names.add(field_name)
                    names.update(field.args)
            elif isinstance(kind, GraphQLInputObjectType):
                names.update(kind.fields)
            elif isinstance(kind, GraphQLEnumType):
                names.update(kind.values)
        self.types = frozenset(types)
        self.all = frozenset(types | names)

    def hider(self, query: str | None, variables: object) -> Callable[[str], str]:
        """A message without suggestions, and without the schema's names that are not
        in what was requested (the document's names, the variables' keys): names are
        hidden where GraphQL quotes them, and type names everywhere ("Int cannot
        represent ..."). Comments and string values name nothing: a list of words in
        one would have every name it guessed shown."""

        @functools.cache
        def named() -> set[str]:
            # Read only for a message that cites a name of the schema.
            return document_names(query or "") | keys_of(variables)

        def hidden(names: frozenset[str]) -> Callable[[re.Match[str]], str]:
            def replace(match: re.Match[str]) -> str:
                word = match.group()
                return HIDDEN if word in names and word not in named() else word

            return replace

        any_name, type_name = hidden(self.all), hidden(self.types)

        def hide(message: str) -> str:
            message = _SUGGESTION.sub("", message)
            message = _QUOTED.sub(lambda quoted: _NAME.sub(any_name, quoted.group()), message)
            return _NAME.sub(type_name, message)

        return hide
