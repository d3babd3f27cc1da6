"""The GraphQL API end to end, over HTTP against the real services."""

import re
import sys
from base64 import b64decode, b64encode
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from uuid import uuid4

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient

from app.api.graphql.errors import SchemaNames
from app.api.graphql.limits import (
    MAX_DOCUMENT_CHARS,
    MAX_DOCUMENT_LINES,
    MAX_LIST_VALUES,
    MAX_OPERATION_NAME,
    MAX_SELECTIONS,
    MAX_TOKENS,
    MAX_VALIDATION_ERRORS,
)
from app.api.graphql.relay import as_sequence, cursor_key, id_key
from app.api.graphql.schema import (
    MAX_ALIASES,
    MAX_DEPTH,
    MAX_NODES,
    ItemSort,
    build_schema,
    overlong_int,
)
from app.core.errors import BadRequestError, InvalidInputError
from app.core.pagination import PAGE_MAX
from app.main import create_app
from app.services import Services
from app.settings import Settings
from tests.conftest import (
    PASSWORD,
    Account,
    FailingDatabase,
    background_paused,
    new_account,
    new_item,
    override,
    serving,
    unique,
    unique_address,
)
from tests.cursors import OVERLONG, assert_logged_small, captured_logs, forged_cursors
from tests.test_auth import demote_while_redis_is_down

ITEM_FIELDS = "id name description priceCents status createdAt updatedAt ownerId"
CREATE = "mutation C($input: ItemInput!) { createItem(input: $input) { " + ITEM_FIELDS + " } }"
UPDATE = (
    "mutation U($id: ID!, $input: ItemPatch!) { updateItem(id: $id, input: $input) { "
    + ITEM_FIELDS
    + " } }"
)
DELETE = "mutation D($id: ID!) { deleteItem(id: $id) }"
ITEM = "query I($id: ID!) { item(id: $id) { " + ITEM_FIELDS + " } }"
NODE = "query N($id: ID!) { node(id: $id) { id ... on Item { name } } }"
NODES = "query N($ids: [ID!]!) { nodes(ids: $ids) { id } }"
ITEMS = """
query Items($first: Int!, $after: String, $filter: ItemFilter, $sort: ItemSort! = CREATED_AT_DESC) {
  items(first: $first, after: $after, filter: $filter, sort: $sort) {
    edges { cursor node { id name priceCents owner { id email } } }
    pageInfo { hasNextPage endCursor }
  }
}
"""
REGISTER = """
mutation R($email: String!, $password: String!) {
  register(email: $email, password: $password) { detail }
}
"""
LOGIN = """
mutation L($email: String!, $password: String!) {
  login(email: $email, password: $password) { accessToken refreshToken tokenType expiresIn }
}
"""
REFRESH = """
mutation F($refresh: String!) { refreshToken(refreshToken: $refresh) { accessToken refreshToken } }
"""
ME = "{ me { id email role } }"


def global_id(type_name: str, key: object) -> str:
    """An id as the API gives it: opaque, and here made from its parts."""
    return b64encode(f"{type_name}:{key}".encode()).decode()


NO_ITEM = global_id("Item", uuid4())


def key_of(id: str) -> str:
    return b64decode(id).decode().split(":", 1)[1]


async def graphql(
    client: AsyncClient, query: str, token: str | None = None, **variables: Any
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = await client.post(
        "/graphql", json={"query": query, "variables": variables}, headers=headers
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def data(body: dict[str, Any]) -> dict[str, Any]:
    assert "errors" not in body, body["errors"]
    result: dict[str, Any] = body["data"]
    return result


def error(body: dict[str, Any]) -> dict[str, Any]:
    (only,) = body["errors"]
    return dict(only)


def code(body: dict[str, Any]) -> tuple[str, int]:
    extensions = error(body)["extensions"]
    return extensions["code"], extensions["status"]


async def register_and_login(client: AsyncClient) -> tuple[str, dict[str, Any]]:
    email = f"{unique('Flow')}@Example.com"
    assert data(await graphql(client, REGISTER, email=email, password=PASSWORD))["register"]
    tokens = data(await graphql(client, LOGIN, email=email, password=PASSWORD))["login"]
    assert tokens["tokenType"] == "bearer"
    return email.lower(), tokens


async def test_scripted_flow(app: FastAPI, client: AsyncClient, settings: Settings) -> None:
    email, tokens = await register_and_login(client)
    assert data(await graphql(client, ME, tokens["accessToken"]))["me"]["email"] == email

    refreshed = data(await graphql(client, REFRESH, refresh=tokens["refreshToken"]))["refreshToken"]
    reuse = await graphql(client, REFRESH, refresh=tokens["refreshToken"])
    assert code(reuse) == ("unauthorized", 401)
    assert "reuse" in error(reuse)["message"]
    assert code(await graphql(client, ME, refreshed["accessToken"])) == ("unauthorized", 401)

    _, tokens = await register_and_login(client)
    access = tokens["accessToken"]
    created = []
    for name, price, status in [
        ("apple", 300, "ACTIVE"),
        ("pear", 100, "ACTIVE"),
        ("fig", 200, "DRAFT"),
    ]:
        item = {"name": name, "priceCents": price, "status": status}
        created.append(data(await graphql(client, CREATE, access, input=item))["createItem"])
    owner_id = created[0]["ownerId"]

    listing = {"first": 1, "filter": {"ownerId": owner_id, "status": "ACTIVE"}, "sort": "PRICE"}
    first = data(await graphql(client, ITEMS, access, **listing))["items"]
    assert [edge["node"]["name"] for edge in first["edges"]] == ["pear"]
    assert first["edges"][0]["node"]["owner"]["id"] == owner_id
    assert first["pageInfo"]["hasNextPage"] is True
    after = first["pageInfo"]["endCursor"]
    second = data(await graphql(client, ITEMS, access, **listing, after=after))["items"]
    assert [edge["node"]["name"] for edge in second["edges"]] == ["apple"]
    assert second["pageInfo"]["hasNextPage"] is False

    fig = created[2]["id"]
    patched = data(await graphql(client, UPDATE, access, id=fig, input={"status": "ACTIVE"}))
    assert (patched["updateItem"]["status"], patched["updateItem"]["name"]) == ("ACTIVE", "fig")
    assert data(await graphql(client, ITEM, access, id=fig))["item"]["status"] == "ACTIVE"

    stranger = (await register_and_login(client))[1]["accessToken"]
    assert code(await graphql(client, ITEM, stranger, id=fig)) == ("not_item_owner", 403)
    denied = await graphql(client, UPDATE, stranger, id=fig, input={"name": "mine"})
    assert code(denied) == ("not_item_owner", 403)
    assert code(await graphql(client, DELETE, stranger, id=fig)) == ("not_item_owner", 403)

    assert data(await graphql(client, DELETE, access, id=fig))["deleteItem"] is True
    assert code(await graphql(client, ITEM, access, id=fig)) == ("item_not_found", 404)

    strict = override(settings, "rate_limit", login_per_account_per_minute=2)
    async with serving(app, settings=strict):
        for _ in range(2):
            await graphql(client, LOGIN, email=email, password="Wrong-passw0rd!")
        response = await client.post(
            "/graphql", json={"query": LOGIN, "variables": {"email": email, "password": PASSWORD}}
        )
    limited = response.json()
    assert code(limited) == ("rate_limited", 429)
    # When to try again, as REST's header says: in the error, and in the answer's header.
    wait = error(limited)["extensions"]["retryAfter"]
    assert isinstance(wait, int)
    assert 0 < wait <= 60
    assert response.headers["retry-after"] == str(wait)
    # The rate-limit headers describe the limit that refused, not the API-wide one.
    assert response.headers["x-ratelimit-limit"] == "2"
    assert response.headers["x-ratelimit-remaining"] == "0"


async def test_owners_are_loaded_in_one_batch(
    client: AsyncClient, services: Services, admin_account: Account
) -> None:
    """Listing N items with their owners costs the same number of queries for any N."""
    # An admin lists everyone's items, so the page holds items of several owners.
    owners = [admin_account] + [await new_account(services) for _ in range(4)]
    for index in range(50):
        owner = owners[index % len(owners)]
        item = {"name": unique("batch"), "priceCents": index}
        data(await graphql(client, CREATE, owner.tokens.access_token, input=item))

    async def round_trips(first: int) -> int:
        before = services.database.round_trips
        body = data(await graphql(client, ITEMS, admin_account.tokens.access_token, first=first))
        assert len(body["items"]["edges"]) == first
        assert all(edge["node"]["owner"]["id"] for edge in body["items"]["edges"])
        return services.database.round_trips - before

    # Both pages hold items of other users: each request also records, in one unit of
    # work, whose items the administrator read (one owner's on the first page, four on
    # the second).
    async with background_paused(services):
        assert await round_trips(1) == await round_trips(50)


async def test_admin_lists_users_others_may_not(
    client: AsyncClient, account: Account, admin_account: Account
) -> None:
    query = """
    query U($after: String) {
      users(first: 1, after: $after) { edges { node { id } } pageInfo { hasNextPage endCursor } }
    }
    """
    denied = await graphql(client, query, account.tokens.access_token)
    assert code(denied) == ("forbidden", 403)
    first = data(await graphql(client, query, admin_account.tokens.access_token))["users"]
    assert len(first["edges"]) == 1
    assert first["pageInfo"]["hasNextPage"] is True
    second = data(
        await graphql(
            client, query, admin_account.tokens.access_token, after=first["pageInfo"]["endCursor"]
        )
    )["users"]
    assert key_of(second["edges"][0]["node"]["id"]) > key_of(first["edges"][0]["node"]["id"])


async def test_a_demoted_admins_old_token_is_refused_by_admin_operations(
    client: AsyncClient, services: Services, settings: Settings, admin_account: Account
) -> None:
    """Demoted while Redis could not be told: the session lives on and the token still
    says admin, but administrators' operations ask the database."""
    await demote_while_redis_is_down(services, settings, admin_account)
    token = admin_account.tokens.access_token
    assert data(await graphql(client, "{ me { role } }", token))["me"]["role"] == "USER"
    listed = await graphql(client, "{ users(first: 1) { edges { cursor } } }", token)
    assert code(listed) == ("forbidden", 403)


SET_ROLE = """
mutation R($id: ID!, $role: UserRole!) { setRole(userId: $id, role: $role) { id email role } }
"""


async def test_an_admin_sets_roles_and_the_old_sessions_end(
    client: AsyncClient, account: Account, other_account: Account, admin_account: Account
) -> None:
    user_id = global_id("User", other_account.user.id)
    admin = admin_account.tokens.access_token
    denied = await graphql(client, SET_ROLE, account.tokens.access_token, id=user_id, role="ADMIN")
    assert code(denied) == ("forbidden", 403)
    assert code(await graphql(client, SET_ROLE, id=user_id, role="ADMIN")) == ("unauthorized", 401)
    wrong_role = await graphql(client, SET_ROLE, admin, id=user_id, role="ROOT")
    assert "ROOT" in error(wrong_role)["message"]
    not_a_user = global_id("Item", other_account.user.id)
    assert code(await graphql(client, SET_ROLE, admin, id=not_a_user, role="ADMIN")) == (
        "invalid_input",
        422,
    )
    missing = await graphql(client, SET_ROLE, admin, id=global_id("User", uuid4()), role="ADMIN")
    assert code(missing) == ("user_not_found", 404)
    # Refused attempts changed nothing: the user's session still works, as a user's.
    me, session = "{ me { role } }", other_account.tokens.access_token
    assert data(await graphql(client, me, session))["me"]["role"] == "USER"

    # The same role again changes nothing either, and ends no session.
    same = data(await graphql(client, SET_ROLE, admin, id=user_id, role="USER"))["setRole"]
    assert (same["id"], same["role"]) == (user_id, "USER")
    assert data(await graphql(client, me, session))

    promoted = data(await graphql(client, SET_ROLE, admin, id=user_id, role="ADMIN"))["setRole"]
    assert promoted == {**same, "role": "ADMIN"}
    # The old token carried the old role: it is refused, and a new sign-in carries the new.
    assert code(await graphql(client, me, session)) == ("unauthorized", 401)
    tokens = data(await graphql(client, LOGIN, email=other_account.email, password=PASSWORD))
    assert data(await graphql(client, me, tokens["login"]["accessToken"]))["me"]["role"] == "ADMIN"


async def test_change_password_and_logout(client: AsyncClient, account: Account) -> None:
    change = """
    mutation C($c: String!, $n: String!) { changePassword(currentPassword: $c, newPassword: $n) }
    """
    token = account.tokens.access_token
    assert code(
        await graphql(client, change, token, c="Wrong-passw0rd!", n="Another-passw0rd!")
    ) == (
        "wrong_password",
        400,
    )
    assert code(await graphql(client, change, token, c=PASSWORD, n=PASSWORD)) == (
        "password_reused",
        400,
    )
    assert data(await graphql(client, change, token, c=PASSWORD, n="Another-passw0rd!"))
    assert code(await graphql(client, ME, token)) == ("unauthorized", 401)

    tokens = data(await graphql(client, LOGIN, email=account.email, password="Another-passw0rd!"))
    fresh = tokens["login"]["accessToken"]
    assert data(await graphql(client, "mutation { logout }", fresh))["logout"] is True
    assert code(await graphql(client, ME, fresh)) == ("unauthorized", 401)


async def test_anonymous_and_bad_tokens_are_401(client: AsyncClient) -> None:
    for token in (None, "not-a-token"):
        unknown = global_id("Item", uuid4())
        assert code(await graphql(client, ITEM, token, id=unknown)) == ("unauthorized", 401)
        assert code(await graphql(client, NODE, token, id=unknown)) == ("unauthorized", 401)


async def test_registration_answers_the_same_whether_or_not_the_email_is_taken(
    client: AsyncClient, account: Account
) -> None:
    taken = await graphql(client, REGISTER, email=account.email.upper(), password=PASSWORD)
    new = await graphql(client, REGISTER, email=f"{unique('new')}@example.com", password=PASSWORD)
    assert data(taken) == data(new)
    assert data(await graphql(client, LOGIN, email=account.email, password=account.password))


async def test_each_aliased_registration_counts_against_the_address_limit(
    app: FastAPI, settings: Settings
) -> None:
    """Fifteen registrations in one document are fifteen hashes: each alias counts."""
    strict = override(settings, "rate_limit", register_per_ip_per_minute=3)
    address = unique_address()
    fields = " ".join(
        f'r{n}: register(email: "{unique("alias")}@example.com", password: "{PASSWORD}") '
        "{ detail }"
        for n in range(15)
    )
    transport = ASGITransport(app=app, client=(address, 4321))
    async with (
        serving(app, settings=strict),
        AsyncClient(transport=transport, base_url="http://t") as client,
    ):
        body = await graphql(client, "mutation { " + fields + " }")
    # Mutations run in order: the first three are accepted, and each after them is
    # refused before its password is hashed.
    accepted = [alias for alias, answer in body["data"].items() if answer is not None]
    assert accepted == ["r0", "r1", "r2"]
    refusals = [(error["path"], error["extensions"]["code"]) for error in body["errors"]]
    assert refusals == [([f"r{n}"], "rate_limited") for n in range(3, 15)]


async def test_duplicate_item_names_are_409(client: AsyncClient, account: Account) -> None:
    item = {"name": unique("dup")}
    token = account.tokens.access_token
    data(await graphql(client, CREATE, token, input=item))
    assert code(await graphql(client, CREATE, token, input=item)) == ("item_name_taken", 409)


@pytest.mark.parametrize(
    "item",
    [
        {"name": ""},
        {"name": "x" * 101},
        {"name": "ok", "description": "d" * 2001},
        {"name": "ok", "priceCents": -1},
    ],
)
async def test_invalid_input_is_422(
    client: AsyncClient, account: Account, item: dict[str, Any]
) -> None:
    body = await graphql(client, CREATE, account.tokens.access_token, input=item)
    assert code(body) == ("invalid_input", 422)


@pytest.mark.parametrize("first", [-1, 101])
async def test_page_size_is_bounded(client: AsyncClient, account: Account, first: int) -> None:
    body = await graphql(client, ITEMS, account.tokens.access_token, first=first)
    assert code(body) == ("invalid_input", 422)


async def test_bad_cursor_is_400(client: AsyncClient, account: Account) -> None:
    body = await graphql(client, ITEMS, account.tokens.access_token, first=1, after="garbage")
    assert code(body) == ("bad_request", 400)


async def test_weak_password_is_422(client: AsyncClient) -> None:
    body = await graphql(client, REGISTER, email=f"{unique('w')}@example.com", password="weak")
    assert code(body) == ("invalid_input", 422)


async def test_malformed_query_is_refused(client: AsyncClient) -> None:
    response = await client.post("/graphql", json={"query": "{ items(first: 1) { edges "})
    (only,) = response.json()["errors"]
    assert only["message"].startswith("Syntax Error")


async def test_queries_over_get_are_refused(client: AsyncClient) -> None:
    response = await client.get("/graphql", params={"query": ME})
    assert response.status_code == 400
    assert "data" not in response.text


async def test_unexpected_failure_is_masked(
    app: FastAPI, client: AsyncClient, account: Account
) -> None:
    async with serving(app, database=FailingDatabase()):
        body = await graphql(client, ITEMS, account.tokens.access_token, first=1)
    assert error(body)["message"] == "An unexpected error occurred."
    assert "secret-detail" not in str(body)


async def test_api_rate_limit(
    app: FastAPI, client: AsyncClient, settings: Settings, account: Account
) -> None:
    strict = override(settings, "rate_limit", api_per_minute=2)
    async with serving(app, settings=strict):
        responses = [
            await client.post("/graphql", json={"query": ME}, headers=account.headers)
            for _ in range(3)
        ]
    assert [r.status_code for r in responses] == [200, 200, 429]
    assert responses[-1].headers["content-type"] == "application/problem+json"
    assert "retry-after" in responses[-1].headers


FIELDS_WITH_ARGUMENTS = """
{ __schema {
    queryType { fields { name args { name } } }
    mutationType { fields { name args { name } } }
} }
"""


async def test_no_field_taking_an_id_lets_a_stranger_in(
    client: AsyncClient, account: Account, other_account: Account
) -> None:
    owner, stranger = account.tokens.access_token, other_account.tokens.access_token
    item = data(await graphql(client, CREATE, owner, input={"name": unique("private")}))
    item_id = item["createItem"]["id"]
    attempts = {
        "item": (ITEM, {}),
        "node": (NODE, {}),
        "updateItem": (UPDATE, {"input": {"name": "taken"}}),
        "deleteItem": (DELETE, {}),
    }
    # Every field with an id argument is tried: a new one must be added here.
    schema = data(await graphql(client, FIELDS_WITH_ARGUMENTS, owner))["__schema"]
    with_id = {
        field["name"]
        for kind in ("queryType", "mutationType")
        for field in schema[kind]["fields"]
        if any(argument["name"] in ("id", "ids") for argument in field["args"])
    }
    assert with_id == {*attempts, "nodes"}

    for query, variables in attempts.values():
        denied = await graphql(client, query, stranger, id=item_id, **variables)
        assert code(denied) == ("not_item_owner", 403)
    denied = await graphql(client, NODES, stranger, ids=[item_id])
    assert code(denied) == ("not_item_owner", 403)
    assert denied["data"] == {"nodes": [None]}
    assert data(await graphql(client, ITEM, owner, id=item_id))["item"] == item["createItem"]


@pytest.mark.parametrize(
    "variables",
    [
        {"filter": {"ownerId": "1' OR '1'='1"}},
        {"filter": {"ownerId": {"$ne": None}}},
        {"filter": {"status": "ACTIVE' OR 1=1 --"}},
        {"sort": "NAME; DROP TABLE items"},
        {"sort": {"$natural": 1}},
        {"after": "' OR 1=1 --"},
    ],
)
async def test_injection_in_filters_and_sort_is_refused(
    client: AsyncClient, account: Account, variables: dict[str, Any]
) -> None:
    body = await graphql(client, ITEMS, account.tokens.access_token, **{"first": 5, **variables})
    assert body.get("data") is None or body["data"].get("items") is None
    assert "An unexpected error occurred." not in str(body)


async def test_injection_looking_input_is_stored_as_plain_text(
    client: AsyncClient, account: Account
) -> None:
    token = account.tokens.access_token
    for name in ("x'); DROP TABLE items; --", '{"$where": "sleep(1000)"}', "$ne"):
        created = data(await graphql(client, CREATE, token, input={"name": name}))["createItem"]
        assert created["name"] == name
        read = data(await graphql(client, ITEM, token, id=created["id"]))["item"]
        assert read["name"] == name


def errors_of(body: dict[str, Any]) -> str:
    return " ".join(error["message"] for error in body["errors"])


async def test_an_int_literal_too_long_to_read_is_refused_as_the_int_it_cannot_be(
    client: AsyncClient, account: Account
) -> None:
    token, digits = account.tokens.access_token, "9" * 5000
    with captured_logs() as logs:
        body = await graphql(client, "{ items(first: " + digits + ") { edges { cursor } } }", token)
    assert code(body) == ("graphql_validation_failed", 400)
    assert "Int cannot represent" in errors_of(body)
    assert_logged_small(logs)  # no unexpected error, no traceback
    # The same digits in a string are no Int literal: the id is merely not valid.
    body = await graphql(client, '{ node(id: "' + digits + '") { id } }', token)
    assert code(body) == ("invalid_input", 422)


@pytest.mark.timeout(10)
def test_looking_for_an_overlong_int_reads_the_document_once() -> None:
    """Runs of digits as long as the limit, in comments: each run was read again from
    each of its digits (230 of them, in a 1 MB body, cost 15 s of CPU)."""
    limit = sys.get_int_max_str_digits()
    comments = ("#" + "1" * limit + "\n") * 1000
    assert overlong_int("{ __typename }\n" + comments) is None
    literal = "9" * (limit + 1)
    assert overlong_int(comments + "{ items(first: " + literal + ") { pageInfo } }") == literal


async def test_deeply_nested_variables_are_answered_in_the_graphql_error_shape(
    settings: Settings, services: Services
) -> None:
    """Without introspection an error's names are checked against the variables' keys,
    which were read recursively: keys some hundreds of levels deep (JSON decodes about
    900) exhausted the stack, an internal error."""
    nested: Any = 1
    for _ in range(800):
        nested = {"a": nested}
    async with production_client(settings, services) as production:
        response = await production.post(
            "/graphql", json={"query": "{ zzz }", "variables": {"x": nested}}
        )
    assert response.status_code == 200
    assert code(response.json()) == ("graphql_validation_failed", 400)


async def test_abusive_documents_are_refused(client: AsyncClient, account: Account) -> None:
    token = account.tokens.access_token
    nested = "{ items { edges { node { owner { " + "a { " * 6 + "id" + " }" * 10 + " }"
    deep = await graphql(client, nested, token)
    assert f"exceeds maximum operation depth of {MAX_DEPTH}" in errors_of(deep)

    selections = " ".join(f"m{n}: me " + "{ id }" for n in range(MAX_ALIASES + 1))
    aliases = "{ " + selections + " }"
    many = await graphql(client, aliases, token)
    assert f"{MAX_ALIASES + 1} aliases found. Allowed: {MAX_ALIASES}" in errors_of(many)

    huge = await graphql(client, "{ me { " + "id " * MAX_TOKENS + "} }", token)
    assert f"more than {MAX_TOKENS} tokens" in errors_of(huge)
    for body in (deep, many, huge):
        assert body.get("data") is None


async def test_in_a_document_of_several_mutations_one_failing_hides_no_other(
    client: AsyncClient, account: Account
) -> None:
    """With non-null results, a failure nulled the whole response: the items the other
    mutations created (or deleted) were written, yet the answer said nothing was, and the
    mutations after the failing one did not run."""
    token = account.tokens.access_token
    first, last = unique("first"), unique("last")
    document = (
        "mutation($first: String!, $last: String!) { "
        + "a: createItem(input: { name: $first }) { id name } "
        + 'b: deleteItem(id: "not-an-id") '
        + "c: createItem(input: { name: $last }) { id name } }"
    )
    body = await graphql(client, document, token, first=first, last=last)
    assert body["data"]["b"] is None
    assert code(body) == ("invalid_input", 422)
    assert error(body)["path"] == ["b"]
    assert [body["data"][alias]["name"] for alias in ("a", "c")] == [first, last]
    for alias in ("a", "c"):
        found = await graphql(client, NODE, token, id=body["data"][alias]["id"])
        assert data(found)["node"]["id"] == body["data"][alias]["id"]


async def test_mutations_after_one_that_ends_the_session_are_refused(
    client: AsyncClient,
) -> None:
    """After `changePassword` (or `logout`) ended every session, the mutations after it
    in the same document still ran as the ended session."""
    for ending, arguments in (
        ("changePassword(currentPassword: $p, newPassword: $n)", "$p: String!, $n: String!, "),
        ("logout", ""),
    ):
        _, tokens = await register_and_login(client)
        document = (
            f"mutation({arguments}$name: String!) "
            + "{ "
            + f"a: {ending} "
            + "b: createItem(input: { name: $name }) { id } }"
        )
        passwords = {"p": PASSWORD, "n": "An0ther-passw0rd!!"} if arguments else {}
        body = await graphql(
            client, document, tokens["accessToken"], name=unique("after"), **passwords
        )
        assert body["data"] == {"a": True, "b": None}, body
        assert code(body) == ("unauthorized", 401)
        assert error(body)["path"] == ["b"]


@pytest.mark.parametrize(
    "content_type",
    ["application/jsonx", "application/json-patch+json", "text/application/json", "json"],
)
async def test_a_body_under_another_media_type_is_refused(
    client: AsyncClient, content_type: str
) -> None:
    """Strawberry took any media type with `application/json` in it."""
    response = await client.post(
        "/graphql", content=b'{"query": "{ __typename }"}', headers={"content-type": content_type}
    )
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert "application/json" in response.json()["detail"]


@pytest.mark.parametrize(
    "content_type", ["APPLICATION/JSON", "Application/Json; charset=UTF-8", "application/JSON"]
)
async def test_the_media_type_is_read_whatever_its_case(
    client: AsyncClient, content_type: str
) -> None:
    """Media types are case-insensitive (RFC 9110): these were refused as unsupported."""
    response = await client.post(
        "/graphql", content=b'{"query": "{ __typename }"}', headers={"content-type": content_type}
    )
    assert response.json() == {"data": {"__typename": "Query"}}


async def test_invalid_input_says_why_as_rest_does(client: AsyncClient) -> None:
    """It named the field only: `Invalid input: password.`, and a client could not tell
    its user what to change."""
    register = "mutation($e: String!, $p: String!) { register(email: $e, password: $p) { detail } }"
    body = await graphql(client, register, e=f"{unique('why')}@example.com", p="abcdefghijk")
    assert code(body) == ("invalid_input", 422)
    assert error(body)["message"] == (
        "Invalid input: password: Value error, password needs letters, digits and a symbol."
    )


GRAPHQL_RESPONSE = "application/graphql-response+json"
REQUEST_ERRORS = [
    ({"query": "{ __typename"}, "graphql_parse_failed"),
    ({"query": "{ noSuchField }"}, "graphql_validation_failed"),
    (
        {"query": "query($id: ID!) { __typename }", "variables": {"id": None}},
        "graphql_validation_failed",
    ),
]


@pytest.mark.parametrize(("body", "code"), REQUEST_ERRORS)
async def test_a_request_error_is_a_400_without_data_for_a_graphql_response_client(
    client: AsyncClient, body: dict[str, Any], code: str
) -> None:
    """GraphQL over HTTP: a client accepting application/graphql-response+json gets it,
    and a request that ran nothing (it did not parse, validate or coerce) is a 400 with no
    `data` entry. It was a 200 in application/json, which such a client takes as run."""
    for accept in (GRAPHQL_RESPONSE, f"application/json;q=0.9, {GRAPHQL_RESPONSE}"):
        response = await client.post("/graphql", json=body, headers={"accept": accept})
        assert response.status_code == 400, (accept, response.text)
        assert response.headers["content-type"] == GRAPHQL_RESPONSE
        answer = response.json()
        assert "data" not in answer
        assert [error["extensions"]["code"] for error in answer["errors"]] == [code]
    # application/json, or no preference for the new type, keeps the legacy answer.
    for accept in ("application/json", f"{GRAPHQL_RESPONSE};q=0.5, application/json", "*/*"):
        response = await client.post("/graphql", json=body, headers={"accept": accept})
        assert response.status_code == 200, (accept, response.text)
        assert response.headers["content-type"] == "application/json"
        assert response.json()["data"] is None


@pytest.mark.parametrize(
    ("accept", "wanted"),
    [
        # Two Accept lines are one list (RFC 9110).
        ([("accept", "application/json;q=0.5"), ("accept", GRAPHQL_RESPONSE)], True),
        # q is 0 to 1: anything else counts as not acceptable; quoted, it is read.
        ([("accept", f"{GRAPHQL_RESPONSE};q=2, application/json;q=0.1")], False),
        ([("accept", f"{GRAPHQL_RESPONSE};q=inf")], False),
        ([("accept", f'{GRAPHQL_RESPONSE};q="1"')], True),
        # A range given twice counts at its best.
        ([("accept", f"{GRAPHQL_RESPONSE}, application/json;q=0.8, application/json")], True),
    ],
)
async def test_the_accept_header_is_read_as_rfc_9110_has_it(
    client: AsyncClient, accept: list[tuple[str, str]], wanted: bool
) -> None:
    response = await client.post("/graphql", json={"query": "{ __typename }"}, headers=accept)
    expected = GRAPHQL_RESPONSE if wanted else "application/json"
    assert response.headers["content-type"] == expected


async def test_a_body_of_no_type_is_refused(client: AsyncClient) -> None:
    """A cross-site page may send one with no preflight (a Blob of no type)."""
    response = await client.post("/graphql", content=b'{"query": "{ __typename }"}')
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"


async def test_a_graphql_response_client_gets_its_media_type_and_200_once_anything_ran(
    client: AsyncClient,
) -> None:
    headers = {"accept": GRAPHQL_RESPONSE}
    response = await client.post("/graphql", json={"query": "{ __typename }"}, headers=headers)
    assert (response.status_code, response.headers["content-type"]) == (200, GRAPHQL_RESPONSE)
    assert response.json() == {"data": {"__typename": "Query"}}
    # A field's error (here: no credentials) is no request error: the operation ran.
    response = await client.post("/graphql", json={"query": "{ me { id } }"}, headers=headers)
    assert (response.status_code, response.headers["content-type"]) == (200, GRAPHQL_RESPONSE)
    assert response.json()["data"] == {"me": None}
    assert code(response.json()) == ("unauthorized", 401)
    # An HTTP-level refusal keeps the service's problem shape.
    response = await client.post(
        "/graphql", content=b"{", headers={**headers, "content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    "body",
    [
        b'{"query": "{ __typename }", "query": "{ me { id } }"}',
        b'{"query": "{ __typename }", "variables": {"a": 1, "a": 2}}',
    ],
)
async def test_a_body_giving_a_key_twice_is_refused(client: AsyncClient, body: bytes) -> None:
    """It was taken as the last value: which was meant is not known."""
    response = await client.post(
        "/graphql", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert "twice" in response.json()["detail"]


NOT_JSON = {
    "UTF-16": '{"query": "{ __typename }"}'.encode("utf-16"),
    "a byte order mark": b'\xef\xbb\xbf{"query": "{ __typename }"}',
    "NaN": b'{"query": "{ __typename }", "variables": {"p": NaN}}',
    "Infinity": b'{"query": "{ __typename }", "variables": {"p": Infinity}}',
    "past a float": b'{"query": "{ __typename }", "extensions": {"x": 1e999}}',
}


@pytest.mark.parametrize("body", NOT_JSON.values(), ids=NOT_JSON.keys())
async def test_a_body_that_is_no_strict_json_is_refused(client: AsyncClient, body: bytes) -> None:
    """Python's JSON reader took them; a proxy or firewall in front would not."""
    response = await client.post(
        "/graphql", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert "not valid" in response.json()["detail"]


async def test_a_body_in_another_charset_is_refused(client: AsyncClient) -> None:
    """It was read as UTF-8 whatever the charset said."""
    body = b'{"query": "{ __typename }"}'
    for content_type in (
        "application/json; charset=latin-1",
        'application/json; charset="UTF-16"',
        "application/json; charset=utf-8; charset=utf-16",
    ):
        response = await client.post(
            "/graphql", content=body, headers={"content-type": content_type}
        )
        assert response.status_code == 400, response.text
        assert "charset" in response.json()["detail"]
    utf8 = {"content-type": "application/json; charset=utf-8"}
    response = await client.post("/graphql", content=body, headers=utf8)
    assert response.json() == {"data": {"__typename": "Query"}}


def fragment_bomb(levels: int) -> str:
    """Each fragment spreads the next twice: 2**levels fields from a few hundred bytes."""
    spreads = [f"...F{n + 1} ...F{n + 1}" for n in range(levels)]
    fragments = [
        f"fragment F{n} on Query " + "{ " + spread + " }" for n, spread in enumerate(spreads)
    ]
    last = f"fragment F{levels} on Query " + "{ me { id } }"
    return "query Q { ...F0 } " + " ".join([*fragments, last])


@pytest.mark.timeout(10)
async def test_a_document_too_large_once_spread_is_refused_before_validation(
    client: AsyncClient,
) -> None:
    """Validation walked each spread of a fragment anew: 18 levels took 2.7 s, anonymous,
    and each level doubles it; 480 `me { id }` took a second. Both are refused at once,
    and what is at the bound still validates."""
    refusal = f"more than {MAX_SELECTIONS} fields once its fragments are spread"
    for document in (
        fragment_bomb(30),
        "{ " + "me { id } " * 480 + "}",
        "{ " + "me { id } " * (MAX_SELECTIONS // 2) + "me }",
    ):
        body = await graphql(client, document)
        assert code(body) == ("graphql_validation_failed", 400)
        assert refusal in errors_of(body), errors_of(body)
    at_the_bound = await graphql(client, "{ " + "me { id } " * (MAX_SELECTIONS // 2) + "}")
    assert refusal not in errors_of(at_the_bound)
    assert code(at_the_bound) == ("unauthorized", 401)  # validated; then refused to a stranger


async def test_a_document_longer_than_its_bounds_is_refused_before_it_is_read(
    client: AsyncClient,
) -> None:
    """Tokens do not bound a document's characters (a string is one token) nor its lines
    (a line break is none): finding each error's line read every line before it, and a
    megabyte string was cached whole."""
    long_string = '{ item(id: "' + "x" * MAX_DOCUMENT_CHARS + '") { id } }'
    many_lines = "\n" * MAX_DOCUMENT_LINES + "{ __typename }"
    for document, refusal in (
        (long_string, f"longer than {MAX_DOCUMENT_CHARS} characters"),
        (many_lines, f"more than {MAX_DOCUMENT_LINES} lines"),
    ):
        body = await graphql(client, document)
        assert code(body) == ("graphql_validation_failed", 400)
        assert refusal in errors_of(body)
    at_the_bounds = "\n" * (MAX_DOCUMENT_LINES - 1) + "{ __typename }"
    assert data(await graphql(client, at_the_bounds)) == {"__typename": "Query"}


async def test_a_long_list_in_the_variables_or_a_long_operation_name_is_refused(
    client: AsyncClient,
) -> None:
    """graphql-core read a megabyte list of ids whole (a second of CPU) before `nodes`
    refused more than 100, and a name no operation had was quoted back whatever its
    length."""
    nodes = "query Q($ids: [ID!]!) { nodes(ids: $ids) { id } }"
    for request, refusal in (
        ({"query": nodes, "variables": {"ids": [1] * (MAX_LIST_VALUES + 1)}}, "more than"),
        ({"query": nodes, "variables": {"a": {"b": [[1] * (MAX_LIST_VALUES + 1)]}}}, "more than"),
        ({"query": "{ __typename }", "operationName": "Q" * (MAX_OPERATION_NAME + 1)}, "longer"),
    ):
        response = await client.post("/graphql", json=request)
        assert response.status_code == 400
        assert refusal in response.json()["detail"]
    at_the_bound = {"query": nodes, "variables": {"ids": ["x"] * MAX_LIST_VALUES}}
    assert (await client.post("/graphql", json=at_the_bound)).status_code == 200


async def test_a_document_gets_at_most_twenty_validation_errors(client: AsyncClient) -> None:
    """Each is located by reading the lines before it: 100 of them behind 2000 line
    breaks cost 0.2 s of CPU, anonymously."""
    fields = " ".join(f"x{n}" for n in range(200))
    body = await graphql(client, "\n" * (MAX_DOCUMENT_LINES - 1) + "{ " + fields + " }")
    assert {each["extensions"]["code"] for each in body["errors"]} == {"graphql_validation_failed"}
    assert len(body["errors"]) == MAX_VALIDATION_ERRORS + 1  # and "Too many ..." last
    assert "Too many validation errors" in body["errors"][-1]["message"]


@pytest.mark.timeout(10)
def test_hiding_names_takes_time_in_proportion_to_the_message() -> None:
    """A suggestion was matched from each "Did you mean" to the next `?`: a message that
    echoed a client's string of them took time in the square of its length."""
    names = SchemaNames(build_schema(introspection=False)._schema)
    hide = names.hider("{ x }", {})
    echoed = "Did you mean " * 80_000
    assert hide(f"Expected a value of type 'Int', found: {echoed}") == (
        f"Expected a value of type '…', found: {echoed}"
    )
    assert hide("Cannot query field 'itemz'. Did you mean 'items'?") == (
        "Cannot query field 'itemz'."
    )


def spreading_itself(levels: int) -> str:
    """Fragments each spreading the next twice, the last itself: no field at all."""
    chain = " ".join(
        f"fragment F{n} on Query " + "{ " + f"...F{n + 1} ...F{n + 1}" + " }" for n in range(levels)
    )
    return "{ ...F0 } " + chain + f" fragment F{levels} on Query " + "{ " + f"...F{levels}" + " }"


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    ("document", "refusal"),
    [
        (spreading_itself(30), "Cannot spread fragment 'F30' within itself."),
        ("{ ...Nope }", "Unknown fragment 'Nope'."),
        ("{ ...A } fragment A on Query { ...Nope }", "Unknown fragment 'Nope'."),
        ("{ __typename } fragment A on Query { ...B } fragment B on Query { ...A }", "within"),
    ],
)
async def test_fragments_unknown_or_spread_within_themselves_are_refused_before_validation(
    client: AsyncClient, document: str, refusal: str
) -> None:
    """A spread within itself counted no field: fragments spreading the next twice, the
    last itself, took seconds at 18 levels and doubled with each more. An unknown one was
    an internal error, from the depth rule that runs before graphql-core's."""
    body = await graphql(client, document)
    assert code(body) == ("graphql_validation_failed", 400)
    assert refusal in errors_of(body), errors_of(body)


async def test_production_answers_no_introspection_and_serves_no_ide(
    settings: Settings, services: Services
) -> None:
    production = create_app(override(settings, "app", environment="production"))
    production.state.services = services
    async with AsyncClient(transport=ASGITransport(app=production), base_url="http://t") as c:
        schema = await c.post("/graphql", json={"query": "{ __schema { types { name } } }"})
        field = await c.post("/graphql", json={"query": '{ __type(name: "Item") { name } }'})
        typename = await c.post("/graphql", json={"query": "{ __typename }"})
        ide = await c.get("/graphql", headers={"Accept": "text/html"})
    for refused in (schema, field):
        body = refused.json()
        assert body.get("data") is None
        assert "introspection" in errors_of(body).lower()
    # Naming the type of a result is not introspection: clients rely on it.
    assert typename.json()["data"] == {"__typename": "Query"}
    assert "graphiql" not in ide.text.lower()


SORT_NAMES = {sort.value: sort.name for sort in ItemSort}


@pytest.mark.parametrize(("sort", "cursor", "wrong"), forged_cursors())
async def test_forged_cursors_are_400_and_log_no_traceback(
    client: AsyncClient, account: Account, sort: str, cursor: str, wrong: str
) -> None:
    token = account.tokens.access_token
    with captured_logs() as logs:
        body = await graphql(client, ITEMS, token, first=1, after=cursor, sort=SORT_NAMES[sort])
    assert code(body) == ("bad_request", 400)
    assert body["data"] == {"items": None}
    assert_logged_small(logs)


async def test_an_overlong_cursor_is_refused_before_decoding(
    client: AsyncClient, account: Account
) -> None:
    token = account.tokens.access_token
    with captured_logs() as logs:
        body = await graphql(client, ITEMS, token, first=1, after=OVERLONG)
    assert code(body) == ("invalid_input", 422)
    assert_logged_small(logs)


# Request cost, one error shape, a schema kept to itself, and the specification's rules
# (app/api/graphql/relay.py NodeBudget, errors.py, schema.py).


async def test_aliased_nodes_lists_draw_from_one_budget_and_share_their_reads(
    client: AsyncClient, services: Services, account: Account
) -> None:
    ids = [global_id("Item", uuid4()) for _ in range(PAGE_MAX)]
    fields = " ".join(f"a{n}: nodes(ids: $ids) " + "{ id }" for n in range(MAX_ALIASES))
    query = "query N($ids: [ID!]!) { " + fields + " }"
    before = services.database.round_trips
    body = await graphql(client, query, account.tokens.access_token, ids=ids)
    reads = services.database.round_trips - before
    # Each list over the budget is null in its place; the two within it are read.
    answered = [body["data"][f"a{n}"] is not None for n in range(MAX_ALIASES)]
    assert answered == [True] * 2 + [False] * (MAX_ALIASES - 2), body["data"]
    assert {each["extensions"]["code"] for each in body["errors"]} == {"query_too_costly"}
    # One read for each distinct id at most (the same ids in every alias), not one per
    # id per alias; a little room for the background workers' own queries.
    assert reads <= PAGE_MAX + 20, reads


async def test_nodes_reads_all_its_items_in_one_query_each_refusal_in_its_place(
    client: AsyncClient, services: Services, account: Account, other_account: Account
) -> None:
    """However many items `nodes` asks for, the ones not cached are read in one query (on
    one connection: one request cannot take the pool), and answered in their places."""
    mine = [await new_item(services, account) for _ in range(31)]
    theirs = await new_item(services, other_account)
    query = "query N($ids: [ID!]!) { nodes(ids: $ids) { id ... on Item { name } } }"

    async def reads(ids: list[str]) -> tuple[dict[str, Any], int]:
        before = services.database.round_trips
        body = await graphql(client, query, account.tokens.access_token, ids=ids)
        return body, services.database.round_trips - before

    # Each request is refused one item (the refusal is recorded: a write of its own).
    async with background_paused(services):
        _, one = await reads([global_id("Item", item.id) for item in (mine[0], theirs)])
        asked = [*mine[1:], theirs]
        body, many = await reads([global_id("Item", item.id) for item in asked] + [NO_ITEM])
        _, cached = await reads([global_id("Item", item.id) for item in mine[1:]])
    assert many == one, (one, many)
    assert cached == 0
    nodes = body["data"]["nodes"]
    assert [node["name"] for node in nodes[:30]] == [item.name for item in mine[1:]]
    assert nodes[30:] == [None, None]
    assert [(error["path"], error["extensions"]["code"]) for error in body["errors"]] == [
        (["nodes", 30], "not_item_owner")
    ]


async def test_every_list_draws_its_page_size_from_the_budget(
    client: AsyncClient, account: Account
) -> None:
    page = "{ edges { cursor } }"
    full = MAX_NODES // PAGE_MAX
    lists = " ".join(f"l{n}: items(first: {PAGE_MAX}) " + page for n in range(full))
    within = await graphql(client, "{ " + lists + " }", account.tokens.access_token)
    assert "errors" not in within, within
    # A default page (20) draws too, as does `node` (1).
    over = await graphql(
        client, "{ " + lists + " more: items " + page + " }", account.tokens.access_token
    )
    assert code(over) == ("query_too_costly", 400)
    one = await graphql(
        client,
        "{ " + lists + ' n: node(id: "' + global_id("Item", uuid4()) + '") { id } }',
        account.tokens.access_token,
    )
    assert code(one) == ("query_too_costly", 400)


NUMBER_KEYS = ["²", "٣", "0", "007", "-1", "+1", " 1", "1.0", "9223372036854775808", "9" * 19]
SOME_UUID = "a5b3c2d1-0e0f-4000-8000-0000000000ef"
UUID_KEYS = [
    SOME_UUID.upper(),
    "{" + SOME_UUID + "}",
    "urn:uuid:" + SOME_UUID,
    SOME_UUID.replace("-", ""),
    "٣" * 32,
]


@pytest.mark.parametrize("key", UUID_KEYS)
async def test_an_id_whose_uuid_is_not_written_as_the_api_writes_it_is_invalid_input(
    client: AsyncClient, admin_account: Account, key: str
) -> None:
    token = admin_account.tokens.access_token
    for type_name in ("Item", "User"):
        body = await graphql(client, NODE, token, id=global_id(type_name, key))
        assert code(body) == ("invalid_input", 422)
    listing = "query U($after: String) { users(first: 1, after: $after) { edges { cursor } } }"
    assert code(await graphql(client, listing, token, after=key)) == ("bad_request", 400)


@pytest.mark.parametrize("key", NUMBER_KEYS)
def test_a_number_key_or_cursor_is_positive_ascii_digits_within_int64(key: str) -> None:
    # Keys and cursors that are sequence numbers are read by these.
    with pytest.raises(InvalidInputError):
        id_key(key, as_sequence)
    with pytest.raises(BadRequestError):
        cursor_key(key, as_sequence)
    assert id_key("9223372036854775807", as_sequence) == 2**63 - 1
    assert cursor_key("1", as_sequence) == 1


@pytest.mark.parametrize(
    "request_body",
    [
        {"query": "{ __typename }", "operationName": 5},
        {"query": "{ __typename }", "operationName": {"a": 1}},
        {"query": "{ __typename }", "operationName": ["A"]},
        {"query": "{ __typename }", "operationName": True},
        {"query": 5},
        {"query": "{ __typename }", "variables": "{}"},
        {"query": "{ __typename }", "variables": [1]},
        {"query": "{ __typename }", "extensions": 1},
    ],
)
async def test_a_request_member_of_the_wrong_json_type_is_a_400_problem(
    client: AsyncClient, request_body: dict[str, Any]
) -> None:
    response = await client.post("/graphql", json=request_body)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 400
    member = next(key for key in request_body if key != "query" or len(request_body) == 1)
    assert f"`{member}`" in problem["detail"]


@asynccontextmanager
async def production_client(settings: Settings, services: Services) -> AsyncIterator[AsyncClient]:
    """The API as production serves it: no introspection."""
    production = create_app(override(settings, "app", environment="production"))
    production.state.services = services
    async with AsyncClient(transport=ASGITransport(app=production), base_url="http://t") as c:
        yield c


SCHEMA_NAMES = """
{ __schema { types {
    name fields { name args { name } } inputFields { name } enumValues { name }
} } }
"""
# Documents with a near miss of a schema name: a field, a mutation, an argument, an input
# field, an enum value, a type condition, a variable's type, a required argument left
# out, a leaf field without its selection, a literal of the wrong type, and variables.
NEAR_MISSES: list[tuple[str, dict[str, Any]]] = [
    ("{ itemz { id } }", {}),
    ("mutation { setRol }", {}),
    ("{ items(frist: 1) { edges { cursor } } }", {}),
    ('mutation { createItem(input: {nam: "x"}) { id } }', {}),
    ("{ items(sort: NAM) { edges { cursor } } }", {}),
    ('{ node(id: "x") { ... on Iten { id } } }', {}),
    ("query Q($f: ItemFiltr) { items(filter: $f) { edges { cursor } } }", {}),
    ('mutation { login(email: "a") { accessToken } }', {}),
    ("{ me }", {}),
    ('{ items(first: "a") { edges { cursor } } }', {}),
    ("query Q($s: ItemSort!) { items(sort: $s) { edges { cursor } } }", {"s": "NAM"}),
    (
        "mutation C($input: ItemInput!) { createItem(input: $input) { id } }",
        {"input": {"nam": "x", "priceCent": 1}},
    ),
    # Words in a comment or a string name nothing: a list of guesses there showed every
    # name it held that an error quoted.
    ("mutation { createItem { __typename } }\n# input ItemInput", {}),
    ("mutation { createItem(input: {}) { __typename } }\n# name priceCents", {}),
    ("{ items }\n# ItemConnection", {}),
    ('mutation { login(email: "a", password: "ItemPatch updateItem") { nope } }', {}),
]


def named_in(document: str, variables: dict[str, Any]) -> set[str]:
    """The names a request gives: the document's words but its comments and strings,
    and the variables' keys."""
    words = set(re.findall(r"\w+", re.sub(r'#[^\n]*|"[^"]*"', " ", document)))

    def keys(value: Any) -> set[str]:
        if isinstance(value, dict):
            return set(value) | {key for item in value.values() for key in keys(item)}
        return set()

    return words | keys(variables)


@pytest.mark.parametrize(("document", "variables"), NEAR_MISSES)
async def test_without_introspection_no_error_names_what_the_request_did_not(
    client: AsyncClient,
    settings: Settings,
    services: Services,
    document: str,
    variables: dict[str, Any],
) -> None:
    types = data(await graphql(client, SCHEMA_NAMES))["__schema"]["types"]
    defined = {
        name
        for kind in types
        if not kind["name"].startswith("__")
        for name in (
            kind["name"],
            *(field["name"] for field in kind["fields"] or []),
            *(arg["name"] for field in kind["fields"] or [] for arg in field["args"]),
            *(field["name"] for field in kind["inputFields"] or []),
            *(value["name"] for value in kind["enumValues"] or []),
        )
    }
    named = named_in(document, variables)
    async with production_client(settings, services) as production:
        response = await production.post(
            "/graphql", json={"query": document, "variables": variables}
        )
    assert response.status_code == 200
    messages = [error["message"] for error in response.json()["errors"]]
    assert messages
    for message in messages:
        assert "Did you mean" not in message
        assert not (set(re.findall(r"\w+", message)) & defined) - named, message
    # Where introspection is served, the messages help: they keep their suggestions.
    if document.startswith("{ itemz"):
        assert "Did you mean" in errors_of(await graphql(client, document))


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ("{ items(first: 1) { edges ", "graphql_parse_failed"),
        ("{ me { " + "id " * MAX_TOKENS + "} }", "graphql_parse_failed"),
        ("{ itemz { id } }", "graphql_validation_failed"),
        (
            "{ " + " ".join(f"m{n}: me " + "{ id }" for n in range(MAX_ALIASES + 1)) + " }",
            "graphql_validation_failed",
        ),
        (
            "{ items { edges { node { owner { " + "a { " * 6 + "id" + " }" * 10 + " }",
            "graphql_validation_failed",
        ),
        (
            "query Q($first: Int!) { items(first: $first) { edges { cursor } } }",
            "graphql_validation_failed",
        ),
        ("query A { me { id } } query B { me { id } }", "graphql_validation_failed"),
    ],
)
async def test_every_error_of_graphql_itself_has_a_code_and_status(
    client: AsyncClient, account: Account, document: str, expected: str
) -> None:
    body = await graphql(client, document, account.tokens.access_token)
    assert body["errors"]
    for each in body["errors"]:
        assert (each["extensions"]["code"], each["extensions"]["status"]) == (expected, 400), each


async def test_refused_introspection_and_masked_errors_have_a_code_and_status(
    app: FastAPI, client: AsyncClient, settings: Settings, services: Services, account: Account
) -> None:
    async with production_client(settings, services) as production:
        refused = (
            await production.post("/graphql", json={"query": "{ __schema { queryType { name } } }"})
        ).json()
    for each in refused["errors"]:
        assert each["extensions"] == {"code": "graphql_validation_failed", "status": 400}, each
    async with serving(app, database=FailingDatabase()):
        masked = await graphql(client, ITEMS, account.tokens.access_token, first=1)
    assert error(masked)["message"] == "An unexpected error occurred."
    assert code(masked) == ("internal_error", 500)


async def test_an_operation_name_the_document_does_not_have_is_a_graphql_error(
    client: AsyncClient,
) -> None:
    """As a document of several operations and no name is; it was a 400 problem."""
    request = {"query": "query Q { __typename }", "operationName": "Z"}
    response = await client.post("/graphql", json=request)
    assert response.status_code == 200
    body = response.json()
    assert body.get("data") is None
    assert code(body) == ("graphql_validation_failed", 400)
    assert error(body)["message"] == 'Unknown operation named "Z".'


async def test_a_document_of_several_operations_runs_none_without_an_operation_name(
    client: AsyncClient, account: Account
) -> None:
    token = account.tokens.access_token
    both = "mutation Out { logout } query Me { me { id } }"
    refused = await graphql(client, both, token)
    assert refused.get("data") is None
    assert error(refused)["message"] == (
        "Must provide operation name if query contains multiple operations."
    )
    # The first operation did not run: the session is still open.
    assert data(await graphql(client, ME, token))["me"]["email"] == account.email
    response = await client.post(
        "/graphql",
        json={"query": both, "operationName": "Me"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert data(response.json())["me"]["id"]
