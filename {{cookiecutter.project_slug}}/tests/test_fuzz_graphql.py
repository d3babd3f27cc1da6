"""Fuzzing of the GraphQL API (`pytest -m fuzz`).

Operations are generated from the schema the app serves (hypothesis-graphql), valid
and with a schema violation, and sent next to malformed documents and requests.
Whatever is sent, the answer must be JSON and no server error, and no error may be one
the server did not expect: those are masked as "An unexpected error occurred.".
The app runs in-process, on the event loop its services are bound to.
"""

import asyncio
import json
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC
from typing import Any, TypeVar
from uuid import UUID

import graphql
import pytest
from fastapi import FastAPI
from httpx import AsyncClient, Response
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_graphql import Mode, from_schema

from app.api.graphql.errors import UNEXPECTED
from app.services import Services
from tests.conftest import Account, new_item
from tests.test_graphql_api import global_id

# Hundreds of generated requests a test: more than the suite's default per-test limit.
pytestmark = [pytest.mark.fuzz, pytest.mark.timeout(300)]
T = TypeVar("T")

GRAPHQL = "/graphql"
MIN_REQUESTS = 1000
# Operations generated from the schema; each kind of malformed input gets MALFORMED.
GENERATED = 600
MALFORMED = 100
# Root fields that end the caller's session: each of their requests gets a session of its own.
ENDS_SESSION = {"logout"}
FUZZ_SETTINGS = settings(
    deadline=None,
    derandomize=True,
    database=None,
    # One account serves every example of a test, as the fixtures are meant to.
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)
# Requests sent, by kind of input, and the root fields the generated operations reached.
SENT: Counter[str] = Counter()
REACHED: Counter[str] = Counter()

Caller = str
CALLERS: list[Caller] = ["user", "admin", "anonymous"]
NAMES = st.from_regex(r"[_A-Za-z][_0-9A-Za-z]{0,20}", fullmatch=True)
# Any text, lone surrogates included: JSON's escapes can carry them, and no database can
# store them.
TEXT = st.text(st.characters(codec=None) | st.characters(categories=["Cs"]))
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12,
)


def as_json(request: object) -> bytes:
    """ASCII JSON, so text without a UTF-8 form (a lone surrogate) travels as an escape."""
    return json.dumps(request).encode()


@dataclass(frozen=True, repr=False)
class Fuzzer:
    """Sends documents to the app. The tests are synchronous (Hypothesis drives them), so
    each request runs to completion on the session's loop, idle in between."""

    loop: asyncio.AbstractEventLoop
    client: AsyncClient
    services: Services
    schema: graphql.GraphQLSchema

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coroutine)

    def root_fields(self) -> dict[str, graphql.GraphQLField]:
        roots = (self.schema.query_type, self.schema.mutation_type)
        return {name: field for root in roots if root for name, field in root.fields.items()}

    def headers(
        self, caller: Caller, accounts: dict[Caller, Account], fresh: bool
    ) -> dict[str, str]:
        if caller == "anonymous":
            return {}
        account = accounts[caller]
        if not fresh:
            return account.headers
        tokens = self.run(self.services.tokens.open_session(account.user))
        return {"Authorization": f"Bearer {tokens.access_token}"}

    def post(
        self,
        kind: str,
        headers: dict[str, str],
        content: bytes,
        content_type: str = "application/json",
    ) -> dict[str, Any]:
        """Send one request and check the answer; returns its JSON body."""
        headers = {**headers, "Content-Type": content_type}
        response = self.run(self.client.post(GRAPHQL, headers=headers, content=content))
        SENT[kind] += 1
        return answered_as_expected(response)

    def new_item(self, owner: Account) -> UUID:
        return self.run(new_item(self.services, owner)).id


def answered_as_expected(response: Response) -> dict[str, Any]:
    """No server error, a JSON body, and no error the server did not expect."""
    assert response.status_code < 500, response.text
    assert "json" in response.headers["content-type"], response.headers["content-type"]
    body = response.json()
    assert isinstance(body, dict), body
    messages = [error.get("message") for error in body.get("errors") or []]
    assert UNEXPECTED not in messages, body
    assert body.get("detail") != UNEXPECTED, body
    return body


@pytest.fixture(scope="module")
async def fuzzer(app: FastAPI, client: AsyncClient) -> Fuzzer:
    """The schema is the one the app serves, read by introspection like any client."""
    introspection = {"query": graphql.get_introspection_query()}
    served = await client.post(GRAPHQL, json=introspection)
    assert served.status_code == 200, served.text
    return Fuzzer(
        loop=asyncio.get_running_loop(),
        client=client,
        services=app.state.services,
        schema=graphql.build_client_schema(served.json()["data"]),
    )


@pytest.fixture
def accounts(account: Account, admin_account: Account) -> dict[Caller, Account]:
    return {"user": account, "admin": admin_account}


def string_node(value: object) -> graphql.StringValueNode:
    return graphql.StringValueNode(value=str(value))


@pytest.fixture
def custom_scalars(
    fuzzer: Fuzzer, account: Account, other_account: Account
) -> dict[str, st.SearchStrategy[graphql.ValueNode]]:
    """Values for the schema's own scalars. An id is now and then of a real item, the
    caller's own or someone else's: random ones only ever find nothing."""
    known = [fuzzer.new_item(account), fuzzer.new_item(other_account)]
    ids = st.sampled_from(known) | st.uuids()
    global_ids = st.builds(global_id, st.sampled_from(["Item", "User", "Query"]), ids)
    return {
        "ID": (global_ids | st.text(max_size=40)).map(string_node),
        "DateTime": st.datetimes(timezones=st.just(UTC))
        .map(lambda at: at.isoformat())
        .map(string_node),
    }


@settings(FUZZ_SETTINGS, max_examples=GENERATED)
@given(data=st.data())
def test_generated_operations(
    data: st.DataObject,
    fuzzer: Fuzzer,
    accounts: dict[Caller, Account],
    custom_scalars: dict[str, st.SearchStrategy[graphql.ValueNode]],
) -> None:
    """A query or mutation on one root field, valid or with one schema violation (a
    wrong argument type, a missing argument, an unknown enum value), by any caller."""
    fields = fuzzer.root_fields()
    field = data.draw(st.sampled_from(sorted(fields)), label="field")
    # Without arguments there is nothing to violate: only valid operations.
    modes = list(Mode) if fields[field].args else [Mode.POSITIVE]
    mode = data.draw(st.sampled_from(modes), label="mode")
    document = data.draw(
        from_schema(fuzzer.schema, fields=[field], custom_scalars=custom_scalars, mode=mode),
        label="document",
    )
    caller = data.draw(st.sampled_from(CALLERS), label="caller")
    headers = fuzzer.headers(caller, accounts, fresh=field in ENDS_SESSION)
    fuzzer.post("generated", headers, as_json({"query": document}))
    REACHED[field] += 1


def valid_documents(fuzzer: Fuzzer) -> st.SearchStrategy[str]:
    """Valid documents, to break: the tests below start from them."""
    return from_schema(
        fuzzer.schema,
        fields=["me", "items", "item"],
        custom_scalars={
            "ID": st.builds(global_id, st.just("Item"), st.uuids()).map(string_node),
        },
    )


@settings(FUZZ_SETTINGS, max_examples=MALFORMED)
@given(text=TEXT | st.binary().map(lambda raw: raw.decode("latin-1")))
def test_garbage_documents(text: str, fuzzer: Fuzzer, account: Account) -> None:
    fuzzer.post("garbage", account.headers, as_json({"query": text}))


BRACKETS = "{}()[]"


@settings(FUZZ_SETTINGS, max_examples=MALFORMED)
@given(data=st.data())
def test_unbalanced_brackets(data: st.DataObject, fuzzer: Fuzzer, account: Account) -> None:
    """A valid document with brackets dropped, added or doubled."""
    document = data.draw(valid_documents(fuzzer), label="document")
    for _ in range(data.draw(st.integers(1, 3), label="edits")):
        at = data.draw(st.integers(0, len(document)), label="at")
        if data.draw(st.booleans(), label="drop") and document[at : at + 1] in set(BRACKETS):
            document = document[:at] + document[at + 1 :]
        else:
            bracket = data.draw(st.sampled_from(BRACKETS), label="bracket")
            document = document[:at] + bracket * data.draw(st.integers(1, 50)) + document[at:]
    fuzzer.post("unbalanced", account.headers, as_json({"query": document}))


def nested(depth: int, shape: str) -> str:
    """A document nested `depth` levels deep, in one of several places."""
    if shape == "selections":
        return "{" + "me{" * depth + "id" + "}" * (depth + 1)
    if shape == "braces":
        return "{" * depth + "}" * depth
    if shape == "list value":
        return "{items(first: " + "[" * depth + "1" + "]" * depth + "){edges{cursor}}}"
    if shape == "object value":
        inner = "{ownerId: " * depth + "null" + "}" * depth
        return "{items(filter: " + inner + "){edges{cursor}}}"
    # Braces in strings are concatenated: this file must stay free of template markers.
    if shape == "fragments":
        spreads = "".join(
            f"fragment F{level} on User " + "{ " + f"...F{level + 1}" + " }"
            for level in range(depth)
        )
        return "{me{...F0}}" + spreads + f"fragment F{depth} on User " + "{ id }"
    # Wide rather than deep: many aliases of one field.
    return "{" + " ".join(f"a{index}: me" + "{id}" for index in range(depth)) + "}"


@settings(FUZZ_SETTINGS, max_examples=MALFORMED)
@given(
    depth=st.integers(1, 3000) | st.sampled_from([10, 100, 1000, 10_000, 100_000]),
    shape=st.sampled_from(
        ["selections", "braces", "list value", "object value", "fragments", "aliases"]
    ),
)
def test_deep_and_huge_documents(depth: int, shape: str, fuzzer: Fuzzer, account: Account) -> None:
    """Nesting past every parser and limit, and documents past the size limit (413)."""
    fuzzer.post("deep", account.headers, as_json({"query": nested(depth, shape)}))


@settings(FUZZ_SETTINGS, max_examples=MALFORMED)
@given(data=st.data())
def test_unknown_fields_and_arguments(
    data: st.DataObject, fuzzer: Fuzzer, account: Account
) -> None:
    document = data.draw(valid_documents(fuzzer), label="document")
    name = data.draw(NAMES, label="name")
    openings = [at for at, char in enumerate(document) if char in "{("]
    at = data.draw(st.sampled_from(openings), label="at") + 1
    unknown = f"{name}: 1 " if document[at - 1] == "(" else f"{name} "
    document = document[:at] + unknown + document[at:]
    fuzzer.post("unknown", account.headers, as_json({"query": document}))


def argument_types(fuzzer: Fuzzer) -> list[tuple[str, str, str, str]]:
    """(operation, root field, argument, type) for every argument of every root field."""
    found = []
    for operation, root in (
        ("query", fuzzer.schema.query_type),
        ("mutation", fuzzer.schema.mutation_type),
    ):
        for name, field in (root.fields if root else {}).items():
            for argument, definition in field.args.items():
                found.append((operation, name, argument, str(definition.type)))
    return found


def selection(fuzzer: Fuzzer, operation: str, field: str) -> str:
    root = fuzzer.schema.query_type if operation == "query" else fuzzer.schema.mutation_type
    assert root is not None
    returned = graphql.get_named_type(root.fields[field].type)
    return " { __typename }" if isinstance(returned, graphql.GraphQLObjectType) else ""


@settings(FUZZ_SETTINGS, max_examples=MALFORMED)
@given(data=st.data())
def test_wrong_variable_types(data: st.DataObject, fuzzer: Fuzzer, account: Account) -> None:
    """An argument passed as a variable of its declared type, or of another, with a
    value of any JSON type: most of them wrong."""
    operation, field, argument, declared = data.draw(
        st.sampled_from(argument_types(fuzzer)), label="argument"
    )
    others = ["Int", "String!", "[Int]", "ID", "Boolean", "ItemFilter"]
    kind = data.draw(st.just(declared) | st.sampled_from(others), label="variable type")
    call = f"{field}({argument}: $value){selection(fuzzer, operation, field)}"
    document = f"{operation} Fuzz($value: {kind}) " + "{ " + call + " }"
    value = data.draw(JSON_VALUES, label="value")
    variables = data.draw(st.just({"value": value}) | st.dictionaries(NAMES, JSON_VALUES))
    request = {"query": document, "variables": variables}
    fuzzer.post("variables", account.headers, as_json(request))


@settings(FUZZ_SETTINGS, max_examples=MALFORMED)
@given(data=st.data())
def test_malformed_requests(data: st.DataObject, fuzzer: Fuzzer, account: Account) -> None:
    """Bodies that are no GraphQL request: not JSON, another JSON value, members of
    the wrong type, too deep, or sent as another content type."""
    request: dict[str, Any] = data.draw(
        st.fixed_dictionaries(
            {},
            optional={
                "query": JSON_VALUES | st.just("{me{id}}"),
                "variables": JSON_VALUES,
                "operationName": JSON_VALUES,
                "extensions": JSON_VALUES,
            },
        ),
        label="request",
    )
    body = data.draw(st.sampled_from(["request", "json value", "bytes", "deep"]), label="body")
    if body == "request":
        content = as_json(request)
    elif body == "json value":
        content = as_json(data.draw(JSON_VALUES, label="value"))
    elif body == "bytes":
        content = data.draw(st.binary(), label="bytes")
    else:
        depth = data.draw(st.integers(1, 200_000), label="depth")
        content = b"[" * depth + b"]" * depth
    content_type = data.draw(
        st.sampled_from(
            ["application/json", "text/plain", "application/graphql", "multipart/form-data"]
        ),
        label="content type",
    )
    fuzzer.post("malformed", account.headers, content, content_type)


LOGIN = 'mutation Login($email: String!) { login(email: $email, password: "x") { expiresIn } }'
CREATE = "mutation Create($name: String!) { createItem(input: {name: $name}) { id } }"


@pytest.mark.parametrize(
    ("content", "status", "code"),
    [
        # A JSON value that is no object: was a server error.
        (b'"{me{id}}"', 400, None),
        # Not UTF-8: was a server error.
        (b"\x80", 400, None),
        # JSON nested past the recursion limit: was a server error.
        (b"[" * 100_000 + b"]" * 100_000, 400, None),
        # A lone surrogate in a variable: was a server error wherever it was encoded.
        (as_json({"query": LOGIN, "variables": {"email": "\ud800@example.com"}}), 400, None),
        # Not JSON: was answered in plain text.
        (b"{me{id}}", 400, None),
        # NUL, which some databases refuse: was an unexpected error.
        (
            as_json({"query": LOGIN, "variables": {"email": "a\x00@example.com"}}),
            200,
            "unauthorized",
        ),
        (as_json({"query": CREATE, "variables": {"name": "a\x00b"}}), 200, "invalid_input"),
    ],
)
def test_what_fuzzing_found_stays_fixed(
    content: bytes, status: int, code: str | None, fuzzer: Fuzzer, account: Account
) -> None:
    body = fuzzer.post("regressions", account.headers, content)
    if status == 400:
        assert body["status"] == 400, body
    else:
        assert body["errors"][0]["extensions"]["code"] == code, body


def test_every_root_field_was_fuzzed_with_enough_requests(
    fuzzer: Fuzzer, record_property: Callable[[str, object], None]
) -> None:
    """Runs last: the fuzzing above is worth something only if its generated operations
    reached every root field and it sent many requests."""
    assert set(REACHED) == set(fuzzer.root_fields())
    total = sum(SENT.values())
    record_property("fuzz_requests", total)
    assert total >= MIN_REQUESTS, f"only {total} requests were sent: {dict(SENT)}"
