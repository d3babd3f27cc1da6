"""The REST API end to end, over HTTP against the real services."""

import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode
from uuid import uuid4

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from httpx import ASGITransport, AsyncClient, Response
from prometheus_client import REGISTRY
from starlette.routing import BaseRoute

from app.api.rest import auth, items, query_names, users
from app.api.rest.routing import JSONRoute
from app.core.problems import MAX_LISTED_ERRORS
from app.items.schemas import PRICE_MAX
from app.services import Services
from app.settings import Settings
from tests.conftest import (
    PASSWORD,
    Account,
    FailingDatabase,
    override,
    serving,
    unique,
    unique_address,
)
from tests.cursors import OVERLONG, assert_logged_small, captured_logs, forged_cursors
from tests.test_auth import demote_while_redis_is_down

API = "/api/v1"
ITEMS = f"{API}/items"


def problem(status: int, response: Response) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["request_id"] == response.headers["x-request-id"]
    return body


async def register_and_login(client: AsyncClient) -> tuple[str, dict[str, Any]]:
    email = f"{unique('Flow')}@Example.com"
    registered = await client.post(
        f"{API}/auth/register", json={"email": email, "password": PASSWORD}
    )
    assert registered.status_code == 202, registered.text
    assert "password" not in registered.text
    token = await client.post(f"{API}/auth/token", data={"username": email, "password": PASSWORD})
    assert token.status_code == 200, token.text
    return email.lower(), token.json()


def bearer(tokens: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


async def test_scripted_flow(
    app: FastAPI, client: AsyncClient, settings: Settings, services: Services
) -> None:
    email, tokens = await register_and_login(client)
    me = await client.get(f"{API}/users/me", headers=bearer(tokens))
    assert (me.status_code, me.json()["email"], me.json()["role"]) == (200, email, "user")

    # Refresh rotates; presenting the used refresh token again revokes every session.
    refreshed = (
        await client.post(f"{API}/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    ).json()
    reuse = await client.post(
        f"{API}/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert "reuse" in problem(401, reuse)["detail"]
    problem(401, await client.get(f"{API}/users/me", headers=bearer(refreshed)))

    _, tokens = await register_and_login(client)
    auth = bearer(tokens)
    created = []
    for name, price, status in [
        ("apple", 300, "active"),
        ("pear", 100, "active"),
        ("fig", 200, "draft"),
    ]:
        response = await client.post(
            ITEMS, json={"name": name, "price_cents": price, "status": status}, headers=auth
        )
        assert response.status_code == 201, response.text
        created.append(response.json())
    owner_id = created[0]["owner_id"]

    params = {"owner_id": owner_id, "status": "active", "sort": "price_cents", "limit": 1}
    first = (await client.get(ITEMS, params=params, headers=auth)).json()
    assert [item["name"] for item in first["data"]] == ["pear"]
    assert first["meta"] == {"limit": 1, "next_cursor": first["meta"]["next_cursor"]}
    second = (
        await client.get(
            ITEMS, params={**params, "cursor": first["meta"]["next_cursor"]}, headers=auth
        )
    ).json()
    assert [item["name"] for item in second["data"]] == ["apple"]
    assert second["meta"]["next_cursor"] is None

    item_url = f"{ITEMS}/{created[2]['id']}"
    patched = await client.patch(item_url, json={"status": "active"}, headers=auth)
    assert (patched.status_code, patched.json()["status"], patched.json()["name"]) == (
        200,
        "active",
        "fig",
    )
    assert (await client.get(item_url, headers=auth)).json()["status"] == "active"

    stranger = (await register_and_login(client))[1]
    problem(403, await client.get(item_url, headers=bearer(stranger)))
    assert problem(
        403, await client.patch(item_url, json={"name": "mine"}, headers=bearer(stranger))
    )
    problem(403, await client.delete(item_url, headers=bearer(stranger)))

    assert (await client.delete(item_url, headers=auth)).status_code == 204
    problem(404, await client.get(item_url, headers=auth))

    strict = override(settings, "rate_limit", login_per_account_per_minute=2)
    async with serving(app, settings=strict):
        for _ in range(2):
            await client.post(
                f"{API}/auth/token", data={"username": email, "password": "Wrong-passw0rd!"}
            )
        limited = await client.post(
            f"{API}/auth/token", data={"username": email, "password": PASSWORD}
        )
    problem(429, limited)
    assert limited.headers["x-ratelimit-limit"] == "2"
    assert limited.headers["x-ratelimit-remaining"] == "0"
    assert 1 <= int(limited.headers["retry-after"]) <= 60


async def test_api_rate_limit_per_user(
    app: FastAPI, client: AsyncClient, settings: Settings, account: Account
) -> None:
    strict = override(settings, "rate_limit", api_per_minute=3)
    async with serving(app, settings=strict):
        responses = [await client.get(f"{API}/users/me", headers=account.headers) for _ in range(4)]
    assert [r.status_code for r in responses] == [200, 200, 200, 429]
    assert [r.headers["x-ratelimit-remaining"] for r in responses] == ["2", "1", "0", "0"]
    assert "retry-after" in responses[-1].headers


async def test_logout(client: AsyncClient, account: Account) -> None:
    assert (await client.post(f"{API}/auth/logout", headers=account.headers)).status_code == 204
    problem(401, await client.get(f"{API}/users/me", headers=account.headers))


async def test_password_change(client: AsyncClient, account: Account) -> None:
    url = f"{API}/users/me/password"
    wrong = {"current_password": "Not-it-0000!", "new_password": "Another-passw0rd!"}
    assert (
        problem(400, await client.post(url, json=wrong, headers=account.headers))["code"]
        == "wrong_password"
    )
    same = {"current_password": PASSWORD, "new_password": PASSWORD}
    assert (
        problem(400, await client.post(url, json=same, headers=account.headers))["code"]
        == "password_reused"
    )
    good = {"current_password": PASSWORD, "new_password": "Another-passw0rd!"}
    assert (await client.post(url, json=good, headers=account.headers)).status_code == 204
    problem(401, await client.get(f"{API}/users/me", headers=account.headers))


async def test_admin_lists_users_others_may_not(
    client: AsyncClient, account: Account, admin_account: Account
) -> None:
    problem(403, await client.get(f"{API}/users", headers=account.headers))
    first = await client.get(f"{API}/users", params={"limit": 1}, headers=admin_account.headers)
    assert first.status_code == 200
    assert len(first.json()["data"]) == 1
    cursor = first.json()["meta"]["next_cursor"]
    second = await client.get(
        f"{API}/users", params={"limit": 1, "cursor": cursor}, headers=admin_account.headers
    )
    assert second.json()["data"][0]["id"] > first.json()["data"][0]["id"]
    problem(
        422, await client.get(f"{API}/users", params={"limit": 101}, headers=admin_account.headers)
    )


async def test_a_demoted_admins_old_token_is_refused_by_admin_operations(
    client: AsyncClient, services: Services, settings: Settings, admin_account: Account
) -> None:
    """Demoted while Redis could not be told: the session lives on and the token still
    says admin, but administrators' operations ask the database."""
    await demote_while_redis_is_down(services, settings, admin_account)
    me = await client.get(f"{API}/users/me", headers=admin_account.headers)
    assert (me.status_code, me.json()["role"]) == (200, "user")
    problem(403, await client.get(f"{API}/users", headers=admin_account.headers))


async def test_an_admin_sets_roles_and_the_old_sessions_end(
    client: AsyncClient, account: Account, other_account: Account, admin_account: Account
) -> None:
    role = f"{API}/users/{other_account.user.id}/role"
    problem(403, await client.put(role, json={"role": "admin"}, headers=account.headers))
    problem(401, await client.put(role, json={"role": "admin"}))
    for wrong in ({"role": "root"}, {"role": "ADMIN"}, {}, {"role": "admin", "extra": 1}):
        problem(422, await client.put(role, json=wrong, headers=admin_account.headers))
    missing = f"{API}/users/{uuid4()}/role"
    problem(404, await client.put(missing, json={"role": "admin"}, headers=admin_account.headers))
    # Refused attempts changed nothing: the user's session still works, as a user's.
    problem(403, await client.get(f"{API}/users", headers=other_account.headers))

    # The same role again changes nothing either, and ends no session.
    same = await client.put(role, json={"role": "user"}, headers=admin_account.headers)
    assert (same.status_code, same.json()["role"]) == (200, "user")
    assert (await client.get(f"{API}/users/me", headers=other_account.headers)).status_code == 200

    promoted = await client.put(role, json={"role": "admin"}, headers=admin_account.headers)
    assert promoted.status_code == 200
    assert promoted.json() == {**same.json(), "role": "admin"}
    # The old token carried the old role: it is refused, and a new sign-in carries the new.
    problem(401, await client.get(f"{API}/users/me", headers=other_account.headers))
    signed_in = await client.post(
        f"{API}/auth/token", data={"username": other_account.email, "password": PASSWORD}
    )
    headers = {"Authorization": f"Bearer {signed_in.json()['access_token']}"}
    assert (await client.get(f"{API}/users", headers=headers)).status_code == 200


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer nonsense"}, {"Authorization": "Basic dXNlcjpwYXNz"}],
)
async def test_protected_routes_need_a_valid_token(
    client: AsyncClient, headers: dict[str, str]
) -> None:
    response = await client.get(ITEMS, headers=headers)
    problem(401, response)
    assert response.headers["www-authenticate"] == "Bearer"


async def test_registration_answers_the_same_whether_or_not_the_email_is_taken(
    client: AsyncClient, account: Account
) -> None:
    register = f"{API}/auth/register"
    taken = await client.post(register, json={"email": account.email.upper(), "password": PASSWORD})
    new = await client.post(
        register, json={"email": f"{unique('new')}@example.com", "password": PASSWORD}
    )
    assert taken.status_code == new.status_code == 202, (taken.text, new.text)
    assert taken.json() == new.json()
    assert set(new.json()) == {"detail"}
    # The existing account is untouched: its password still logs in.
    login = await client.post(
        f"{API}/auth/token", data={"username": account.email, "password": account.password}
    )
    assert login.status_code == 200, login.text


def from_address(app: FastAPI, address: str) -> AsyncClient:
    return AsyncClient(
        transport=ASGITransport(app=app, client=(address, 4321)), base_url="http://t"
    )


async def test_registration_and_password_checks_are_limited_per_address(
    app: FastAPI, settings: Settings, account: Account
) -> None:
    strict = override(
        settings, "rate_limit", register_per_ip_per_minute=2, password_per_ip_per_minute=2
    )
    address = unique_address()
    async with serving(app, settings=strict), from_address(app, address) as client:
        register = [
            await client.post(
                f"{API}/auth/register",
                json={"email": f"{unique('burst')}@example.com", "password": PASSWORD},
            )
            for _ in range(3)
        ]
        change = [
            await client.post(
                f"{API}/users/me/password",
                json={"current_password": "Wrong-passw0rd!", "new_password": "Brand-new-passw0rd!"},
                headers=account.headers,
            )
            for _ in range(3)
        ]
    assert [r.status_code for r in register] == [202, 202, 429]
    assert problem(429, register[-1])["code"] == "rate_limited"
    assert [r.status_code for r in change] == [400, 400, 429]


async def test_duplicate_item_names_are_409(client: AsyncClient, account: Account) -> None:
    name = unique("dup")
    assert (
        await client.post(ITEMS, json={"name": name}, headers=account.headers)
    ).status_code == 201
    body = problem(409, await client.post(ITEMS, json={"name": name}, headers=account.headers))
    assert body["code"] == "item_name_taken"


async def test_unknown_item_is_404(client: AsyncClient, account: Account) -> None:
    body = problem(404, await client.get(f"{ITEMS}/{uuid4()}", headers=account.headers))
    assert body["code"] == "item_not_found"
    problem(404, await client.patch(f"{ITEMS}/{uuid4()}", json={}, headers=account.headers))


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"name": ""},
        {"name": "x" * 101},
        {"name": "ok", "description": "d" * 2001},
        {"name": "ok", "price_cents": -1},
        {"name": "ok", "status": "sold"},
        {"name": "ok", "owner_id": "someone-else"},
        {"name": 42},
        {"name": {"$gt": ""}},
        {"name": "ok", "status": {"$ne": "draft"}},
    ],
)
async def test_invalid_item_is_422(
    client: AsyncClient, account: Account, payload: dict[str, object]
) -> None:
    body = problem(422, await client.post(ITEMS, json=payload, headers=account.headers))
    assert body["errors"]
    # The rejected input is never echoed back.
    assert "someone-else" not in str(body)


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=101",
        "limit=abc",
        "sort=password",
        "status=sold",
        "owner_id=1",
        "color=red",
        # Injection attempts: each parameter is typed or whitelisted, so each is refused.
        "status=active' OR '1'='1",
        "sort=name; DROP TABLE items",
        "sort[$natural]=1",
        "owner_id=' OR 1=1 --",
        "owner_id[$ne]=1",
        "status[$ne]=draft",
    ],
)
async def test_list_parameters_are_validated(
    client: AsyncClient, account: Account, query: str
) -> None:
    problem(422, await client.get(f"{ITEMS}?{query}", headers=account.headers))


async def test_bad_cursor_is_400(client: AsyncClient, account: Account) -> None:
    body = problem(400, await client.get(f"{ITEMS}?cursor=garbage", headers=account.headers))
    assert body["code"] == "bad_request"


@pytest.mark.parametrize("password", ["short1!", "no-digits-here!", "NoSymbolHere123"])
async def test_weak_password_is_422(client: AsyncClient, password: str) -> None:
    body = {"email": f"{unique('weak')}@example.com", "password": password}
    problem(422, await client.post(f"{API}/auth/register", json=body))


async def test_oversized_body_is_413(
    client: AsyncClient, settings: Settings, account: Account
) -> None:
    big = {"name": "big", "description": "d" * settings.app.max_body_bytes}
    problem(413, await client.post(ITEMS, json=big, headers=account.headers))


async def test_oversized_streamed_body_is_413(
    app: FastAPI, settings: Settings, account: Account
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(settings.app.max_body_bytes // 65536 + 2):
            yield b"x" * 65536

    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://test") as client:
        response = await client.post(ITEMS, content=chunks(), headers=account.headers)
    problem(413, response)


async def test_unexpected_failure_is_a_generic_500(
    app: FastAPI, client: AsyncClient, account: Account
) -> None:
    async with serving(app, database=FailingDatabase()):
        response = await client.get(ITEMS, headers=account.headers)
    body = problem(500, response)
    assert body["detail"] == "An unexpected error occurred."
    assert "secret-detail" not in response.text


async def test_openapi_documents_the_versioned_api(client: AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    assert {
        "/api/v1/auth/token",
        "/api/v1/auth/refresh",
        "/api/v1/users/me",
        "/api/v1/items",
        "/api/v1/items/{item_id}",
        "/health/ready",
    } <= set(document["paths"])
    assert "OAuth2PasswordBearer" in document["components"]["securitySchemes"]


async def test_every_operation_taking_a_body_documents_its_refusals(client: AsyncClient) -> None:
    """A body can be unreadable (400), too large (413) or invalid (422) on any operation
    that reads one: each must say so, or generated clients and fuzzers meet statuses the
    document never mentioned (`problems(..., body=True)` in app/api/responses.py)."""
    document = (await client.get("/openapi.json")).json()
    reading = [
        (method, path, operation)
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        if "requestBody" in operation
    ]
    assert len(reading) >= 7
    for method, path, operation in reading:
        assert {"400", "413", "422"} <= set(operation["responses"]), (method, path)


async def test_a_created_item_is_found_where_its_location_says(
    app: FastAPI, client: AsyncClient, account: Account
) -> None:
    created = await client.post(
        f"{API}/items", json={"name": unique("located")}, headers=account.headers
    )
    assert created.status_code == 201
    location = created.headers["location"]
    assert location == f"{API}/items/{created.json()['id']}"
    found = await client.get(location, headers=account.headers)
    assert found.json() == created.json()
    document = (await client.get("/openapi.json")).json()
    assert "Location" in document["paths"][f"{API}/items"]["post"]["responses"]["201"]["headers"]
    # Behind a proxy that serves the app under a prefix (uvicorn's --root-path).
    transport = ASGITransport(app=app, root_path="/orders")
    async with AsyncClient(transport=transport, base_url="http://t") as prefixed:
        again = await prefixed.post(
            f"{API}/items", json={"name": unique("located")}, headers=account.headers
        )
    assert again.headers["location"] == f"/orders{API}/items/{again.json()['id']}"


async def test_the_document_declares_the_headers_errors_carry_and_no_null_parameter(
    client: AsyncClient,
) -> None:
    """`WWW-Authenticate` on a 401 and `Retry-After` on a 429 or 503 were sent but not
    declared; an optional parameter's `null` branch, which HTTP cannot carry, had
    generated tests send an empty header."""
    document = (await client.get("/openapi.json")).json()
    declared = {"401": "WWW-Authenticate", "429": "Retry-After", "503": "Retry-After"}
    checked = 0
    for operations in document["paths"].values():
        for operation in operations.values():
            for status, header in declared.items():
                if status in operation["responses"]:
                    assert header in operation["responses"][status]["headers"]
                    checked += 1
            for parameter in operation.get("parameters", []):
                assert {"type": "null"} not in parameter["schema"].get("anyOf", []), parameter
    assert checked >= 20
    refused = await client.get(f"{API}/users/me")
    assert refused.headers["www-authenticate"] == "Bearer"


async def test_every_body_refuses_fields_it_does_not_declare(client: AsyncClient) -> None:
    """A misspelt or unexpected field is a 422, never silently dropped (the refresh body
    and the login form took any): each body's schema says so, for generated clients too."""
    document = (await client.get("/openapi.json")).json()
    schemas = document["components"]["schemas"]
    bodies = [
        (path, content["schema"]["$ref"])
        for path, operations in document["paths"].items()
        for operation in operations.values()
        for content in operation.get("requestBody", {}).get("content", {}).values()
    ]
    assert len(bodies) >= 6
    for path, ref in bodies:
        schema = schemas[ref.rsplit("/", 1)[-1]]
        assert schema.get("additionalProperties") is False, (path, ref)


def api_routes(app: FastAPI) -> list[tuple[BaseRoute, str]]:
    """The API's routes, each with its full path template."""
    contexts = iter_route_contexts(app.routes)
    paths = [(context.original_route, context.path_format or "") for context in contexts]
    return [(route, path) for route, path in paths if path.startswith(API)]


def test_each_operation_refuses_the_query_parameters_it_does_not_document(app: FastAPI) -> None:
    """The parameters `single_values` lets through are those the document lists."""
    document = app.openapi()
    checked = 0
    for route, path in api_routes(app):
        assert isinstance(route, APIRoute), path
        for method in route.methods or ():
            operation = document["paths"][path][method.lower()]
            parameters = operation.get("parameters", [])
            documented = {found["name"] for found in parameters if found["in"] == "query"}
            assert query_names(route.dependant) == documented, (method, path)
            checked += 1
    assert checked >= 10


async def test_the_login_form_refuses_a_field_it_does_not_have_or_given_twice(
    client: AsyncClient, account: Account
) -> None:
    """Both were taken: an unknown field dropped, a repeated one read as its last value."""
    login = {"username": account.email, "password": account.password}
    for sent, refused in (
        ([*login.items(), ("evil", "1")], {"loc": ["body", "evil"], "type": "extra_forbidden"}),
        (
            [*login.items(), ("username", "b@example.com")],
            {"loc": ["body", "username"], "type": "repeated"},
        ),
    ):
        response = await client.post(
            f"{API}/auth/token",
            content=urlencode(sent),
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert response.status_code == 422, response.text
        errors = [{"loc": e["loc"], "type": e["type"]} for e in response.json()["errors"]]
        assert errors == [refused]
    # The grant's other fields, as OAuth2 clients send them, are taken.
    form = login | {"grant_type": "password", "scope": "", "client_id": "docs"}
    assert (await client.post(f"{API}/auth/token", data=form)).status_code == 200


async def test_the_login_forms_document_refuses_the_empty_fields_the_service_refuses(
    app: FastAPI, client: AsyncClient
) -> None:
    """An empty field is a missing one to the form parser, but the document allowed it:
    generated tests sent `username=&password=` as valid and got a 422."""
    refused = await client.post(f"{API}/auth/token", data={"username": "", "password": ""})
    assert [e["loc"] for e in problem(422, refused)["errors"]] == [
        ["body", "username"],
        ["body", "password"],
    ]
    schema = app.openapi()["components"]["schemas"]["TokenForm"]["properties"]
    assert (schema["username"]["minLength"], schema["password"]["minLength"]) == (1, 1)
    # Nor does it offer null, which a form cannot send.
    assert "null" not in json.dumps(schema)


async def test_a_query_parameter_the_operation_does_not_read_is_refused(
    client: AsyncClient, account: Account, admin_account: Account
) -> None:
    """It was dropped: a misspelt filter answered as if there were none."""
    refused = {"loc": ["query", "bogus"], "msg": "Not a parameter of this operation."}
    for path, caller in (
        (f"{API}/users/me", account),
        (ITEMS, account),
        (f"{API}/users", admin_account),
{%- if cookiecutter.compliance_logging %}
        (f"{API}/audit", admin_account),
{%- endif %}
    ):
        response = await client.get(path, params={"bogus": "1"}, headers=caller.headers)
        errors = problem(422, response)["errors"]
        assert [{"loc": e["loc"], "msg": e["msg"]} for e in errors] == [refused], path
{%- if cookiecutter.compliance_logging %}
    # A filter in another framework's spelling is no filter here: refused, not ignored.
    spelt = await client.get(
        f"{API}/audit", params={"actor[$ne]": "x"}, headers=admin_account.headers
    )
    problem(422, spelt)
{%- endif %}


async def test_a_patch_refuses_null_and_its_schema_offers_none(
    app: FastAPI, client: AsyncClient, account: Account
) -> None:
    """`{"name": null}` was taken (200) and changed nothing."""
    created = await client.post(ITEMS, json={"name": unique("kept")}, headers=account.headers)
    item = created.json()
    for field in ("name", "description", "price_cents", "status"):
        response = await client.patch(
            f"{ITEMS}/{item['id']}", json={field: None}, headers=account.headers
        )
        assert [e["loc"] for e in problem(422, response)["errors"]] == [["body", field]]
    unchanged = await client.get(f"{ITEMS}/{item['id']}", headers=account.headers)
    assert unchanged.json() == item
    schema = app.openapi()["components"]["schemas"]["ItemUpdate"]
    assert "null" not in str(schema["properties"]), schema
    # Bounds as JSON Schema writes them (they were `ge` and `le`, which it does not know).
    price = schema["properties"]["price_cents"]
    assert (price["minimum"], price["maximum"], "ge" in price) == (0, PRICE_MAX, False)


async def test_a_body_giving_a_key_twice_is_refused_on_every_operation(
    app: FastAPI, client: AsyncClient, account: Account
) -> None:
    """`{"name": "a", "name": "b"}` was taken as its last value."""
    twice = b'{"name": "first", "name": "second"}'
    response = await client.post(
        ITEMS, content=twice, headers=account.headers | {"content-type": "application/json"}
    )
    assert [e["type"] for e in problem(422, response)["errors"]] == ["json_invalid"]
    # The same key spelt with a JSON escape is the same key.
    escaped = b'{"name": "x", "status": "draft", "st\\u0061tus": "active"}'
    response = await client.post(
        ITEMS, content=escaped, headers=account.headers | {"content-type": "application/json"}
    )
    problem(422, response)
    # Every operation of the API reads its body so (a router added later too).
    routes = api_routes(app)
    assert len(routes) >= 10
    assert all(isinstance(route, JSONRoute) for route, _ in routes)


async def test_an_integer_is_any_number_without_a_fraction_and_nothing_else(
    client: AsyncClient, account: Account
) -> None:
    """The document says `integer`, which JSON Schema takes 5.0 to be (and a client's
    float serialises to): it was refused. A fraction, text or a boolean still are."""
    created = await client.post(
        ITEMS, json={"name": unique("float"), "price_cents": 500.0}, headers=account.headers
    )
    assert created.status_code == 201, created.text
    assert created.json()["price_cents"] == 500
    path = f"{ITEMS}/{created.json()['id']}"
    patched = await client.patch(path, json={"price_cents": 7.0}, headers=account.headers)
    assert patched.json()["price_cents"] == 7
    for wrong in (5.5, "5", True, 1e300):
        refused = await client.patch(path, json={"price_cents": wrong}, headers=account.headers)
        assert [e["loc"] for e in problem(422, refused)["errors"]] == [["body", "price_cents"]]


# What `json.loads` took that is no JSON (RFC 8259) or that another reader would take
# otherwise, and what failed as a 400 of another shape: each a 422, `json_invalid`.
NOT_JSON = {
    "UTF-16": '{"name": "utf16"}'.encode("utf-16"),
    "UTF-16 without a mark": '{"name": "utf16"}'.encode("utf-16-le"),
    "a byte order mark": b'\xef\xbb\xbf{"name": "bom"}',
    "NaN": b'{"name": "nan", "price_cents": NaN}',
    "Infinity": b'{"name": "inf", "price_cents": -Infinity}',
    "not UTF-8": b'{"name": "\xff"}',
    "nested too deeply": b'{"name": "deep", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    "a number too long": b'{"name": "long", "price_cents": ' + b"9" * 5000 + b"}",
    "past a float": b'{"name": "huge", "price_cents": 1e999}',
}


@pytest.mark.parametrize("body", NOT_JSON.values(), ids=NOT_JSON.keys())
async def test_a_body_that_is_no_strict_json_is_refused_in_the_one_shape(
    client: AsyncClient, account: Account, body: bytes
) -> None:
    """Taken (UTF-16, a BOM, NaN) or a 400 of another shape (the others)."""
    headers = account.headers | {"content-type": "application/json"}
    response = await client.post(ITEMS, content=body, headers=headers)
    assert [e["type"] for e in problem(422, response)["errors"]] == ["json_invalid"]


async def test_a_json_body_in_another_charset_is_refused(
    client: AsyncClient, account: Account
) -> None:
    """It was read as UTF-8 whatever the charset said."""
    body = '{"name": "caf\u00e9"}'.encode("latin-1")
    for content_type in (
        "application/json; charset=latin-1",
        "application/json;charset=UTF-16",
        "application/json; charset=utf-8; charset=utf-16",
    ):
        headers = account.headers | {"content-type": content_type}
        response = await client.post(ITEMS, content=body, headers=headers)
        assert [e["type"] for e in problem(422, response)["errors"]] == ["json_invalid"]
    headers = account.headers | {"content-type": "application/json; charset=UTF-8"}
    accepted = await client.post(ITEMS, json={"name": unique("utf8")}, headers=headers)
    assert accepted.status_code == 201, accepted.text


async def test_a_422_lists_a_bounded_number_of_errors_and_says_how_many(
    client: AsyncClient, account: Account
) -> None:
    """Every unknown field is an error: a body of 85,000 was answered 7.6 MB."""
    body = {f"k{n}": 0 for n in range(1000)} | {"name": unique("bounded")}
    response = await client.post(ITEMS, json=body, headers=account.headers)
    refused = problem(422, response)
    assert len(refused["errors"]) == MAX_LISTED_ERRORS
    listed = f"the first {MAX_LISTED_ERRORS} listed"
    assert refused["detail"] == f"The request is invalid: 1000 errors, {listed}."
    assert len(response.content) < 5000
    one = problem(422, await client.post(ITEMS, json={"name": 7}, headers=account.headers))
    assert (one["detail"], len(one["errors"])) == ("The request is invalid.", 1)


async def test_a_refresh_with_an_undeclared_field_or_a_token_that_is_not_ascii_is_refused(
    client: AsyncClient, account: Account
) -> None:
    token = account.tokens.refresh_token
    extra = await client.post(f"{API}/auth/refresh", json={"refresh_token": token, "x": 1})
    problem(422, extra)
    # A lone surrogate, which has no UTF-8 form: a server error once, from inside PyJWT.
    surrogate = await client.post(
        f"{API}/auth/refresh",
        content=b'{"refresh_token": "\\ud800"}',
        headers={"content-type": "application/json"},
    )
    problem(422, surrogate)


async def test_no_endpoint_taking_an_id_lets_a_stranger_in(
    app: FastAPI, client: AsyncClient, account: Account, other_account: Account
) -> None:
    created = await client.post(ITEMS, json={"name": unique("private")}, headers=account.headers)
    item = created.json()
    # Every documented operation with a path parameter is tried: a new one must name
    # its resource here, with the body it takes and the refusal a stranger gets. The
    # stranger tries the owner's item, and to make themself an admin.
    refusals = {
        ITEMS + "/{item_id}": ({"name": "taken"}, "not_item_owner"),
        API + "/users/{user_id}/role": ({"role": "admin"}, "forbidden"),
    }
    ids = {"item_id": item["id"], "user_id": other_account.user.id}
    routes = [
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        if "{" in path
        for method in operations
    ]
    assert {path for _, path in routes} == set(refusals)
    assert len(routes) == 4
    for method, path in routes:
        body, refusal = refusals[path]
        response = await client.request(
            method,
            path.format(**ids),
            json=body if method in {"PATCH", "PUT", "POST"} else None,
            headers=other_account.headers,
        )
        assert problem(403, response)["code"] == refusal, (method, path)
    assert (await client.get(f"{ITEMS}/{item['id']}", headers=account.headers)).json() == item


async def test_injection_looking_input_is_stored_as_plain_text(
    client: AsyncClient, account: Account
) -> None:
    for name in ("x'); DROP TABLE items; --", '{"$where": "sleep(1000)"}', "$ne"):
        created = await client.post(ITEMS, json={"name": name}, headers=account.headers)
        assert created.status_code == 201, created.text
        read = await client.get(f"{ITEMS}/{created.json()['id']}", headers=account.headers)
        assert read.json()["name"] == name


@pytest.mark.parametrize(("sort", "cursor", "wrong"), forged_cursors())
async def test_forged_cursors_are_400_and_log_no_traceback(
    client: AsyncClient, account: Account, sort: str, cursor: str, wrong: str
) -> None:
    with captured_logs() as logs:
        response = await client.get(
            ITEMS, params={"sort": sort, "cursor": cursor}, headers=account.headers
        )
    assert problem(400, response)["code"] == "bad_request"
    assert_logged_small(logs)


async def test_an_overlong_cursor_is_refused_before_decoding(
    client: AsyncClient, account: Account
) -> None:
    with captured_logs() as logs:
        response = await client.get(ITEMS, params={"cursor": OVERLONG}, headers=account.headers)
    problem(422, response)
    assert_logged_small(logs)


async def test_metrics_label_each_request_with_its_full_route_template(
    app: FastAPI, client: AsyncClient, account: Account
) -> None:
    """The route label is the template a request matched, prefixes included: the routers
    are included under /api/v1, so the label is not the inner router's own path."""
    labels = {"method": "GET", "route": "/api/v1/items/{item_id}", "status": "404"}
    before = REGISTRY.get_sample_value("http_requests_total", labels) or 0
    response = await client.get(f"/api/v1/items/{uuid4()}", headers=account.headers)
    assert response.status_code == 404
    assert REGISTRY.get_sample_value("http_requests_total", labels) == before + 1
    routes = {
        sample.labels["route"]
        for family in REGISTRY.collect()
        if family.name == "http_requests"
        for sample in family.samples
    }
    templates = {context.path_format for context in iter_route_contexts(app.routes)}
    assert "/api/v1/items/{item_id}" in templates
    # No label is an included router's own path, without its prefix (other apps the
    # suite makes share the registry, with routes of their own: those may appear).
    inner = {route.path for part in (auth, users, items) for route in part.router.routes}
    assert not routes & (inner - templates)
