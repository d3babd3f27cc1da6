"""The API the tests call, in the style this project serves: one request per action."""

from typing import Any

from httpx import AsyncClient, Response
{%- if cookiecutter.api == "graphql" %}
from strawberry.relay import GlobalID
{%- endif %}

from tests.conftest import Account
{%- if cookiecutter.api == "rest" %}


async def create_item(
    client: AsyncClient, account: Account, name: str, headers: dict[str, str] | None = None
) -> Response:
    headers = account.headers | (headers or {})
    return await client.post("/api/v1/items", json={"name": name}, headers=headers)


async def read_item(client: AsyncClient, account: Account, item_id: str) -> Response:
    return await client.get(f"/api/v1/items/{item_id}", headers=account.headers)


async def list_page(client: AsyncClient, account: Account) -> Response:
    return await client.get("/api/v1/items", params={"limit": 5}, headers=account.headers)


async def list_of_owner(client: AsyncClient, account: Account, owner: Account) -> Response:
    params = {"owner_id": str(owner.user.id)}
    return await client.get("/api/v1/items", params=params, headers=account.headers)


def succeeded(response: Response) -> bool:
    return response.status_code in {200, 201}


def item_id(response: Response) -> str:
    return str(response.json()["id"])


def stored_id(response: Response) -> str:
    """The created item's id as the database keeps it."""
    return item_id(response)


async def create_with_key(
    client: AsyncClient, account: Account, key: str, **fields: object
) -> Response:
    """A create sent with an idempotency key; `fields` as the item's schema names them."""
    headers = {**account.headers, "Idempotency-Key": key}
    return await client.post("/api/v1/items", json=fields, headers=headers)


def replayed(response: Response) -> bool:
    return bool(response.headers.get("idempotent-replayed") == "true")


# A malformed key fails the header's own validation: a validation problem, code invalid_input.
BAD_KEY_CODE = "invalid_input"


def refusal(response: Response) -> tuple[int, str | None]:
    """The status and code of a refused request (a problem)."""
    assert response.headers["content-type"] == "application/problem+json", response.text
    body: dict[str, Any] = response.json()
    assert body["status"] == response.status_code
    return response.status_code, body.get("code")
{%- else %}


async def _graphql(
    client: AsyncClient,
    account: Account,
    query: str,
    headers: dict[str, str] | None = None,
    **variables: Any,
) -> Response:
    return await client.post(
        "/graphql",
        json={"query": query, "variables": variables},
        headers=account.headers | (headers or {}),
    )


async def create_item(
    client: AsyncClient, account: Account, name: str, headers: dict[str, str] | None = None
) -> Response:
    query = "mutation C($name: String!) { createItem(input: {name: $name}) { id } }"
    return await _graphql(client, account, query, headers, name=name)


async def read_item(client: AsyncClient, account: Account, item_id: str) -> Response:
    query = "query I($id: ID!) { item(id: $id) { id } }"
    return await _graphql(client, account, query, id=item_id)


async def list_page(client: AsyncClient, account: Account) -> Response:
    return await _graphql(client, account, "{ items(first: 5) { edges { node { id } } } }")


async def list_of_owner(client: AsyncClient, account: Account, owner: Account) -> Response:
    query = "query L($owner: ID!) { items(filter: {ownerId: $owner}) { edges { cursor } } }"
    owner_id = str(GlobalID("User", str(owner.user.id)))
    return await _graphql(client, account, query, owner=owner_id)


def succeeded(response: Response) -> bool:
    return response.status_code == 200 and "errors" not in response.json()


def item_id(response: Response) -> str:
    return str(response.json()["data"]["createItem"]["id"])


def stored_id(response: Response) -> str:
    """The created item's id as the database keeps it: the key inside its global id."""
    return GlobalID.from_id(item_id(response)).node_id


CREATE_WITH_KEY = (
    "mutation C($input: ItemInput!, $key: String) "
    "{ createItem(input: $input, idempotencyKey: $key) { id name description priceCents } }"
)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word.title() for word in rest)


async def create_with_key(
    client: AsyncClient, account: Account, key: str, **fields: object
) -> Response:
    """A create sent with an idempotency key; `fields` as the item's schema names them."""
    item = {_camel(name): value for name, value in fields.items()}
    return await _graphql(client, account, CREATE_WITH_KEY, input=item, key=key)


def replayed(response: Response) -> bool:
    return bool(response.headers.get("idempotent-replayed") == "true")


BAD_KEY_CODE = "invalid_idempotency_key"


def refusal(response: Response) -> tuple[int, str | None]:
    """The status and code of a refused request (the API's error)."""
    assert response.status_code == 200, response.text
    extensions: dict[str, Any] = response.json()["errors"][0]["extensions"]
    return int(extensions["status"]), extensions["code"]
{%- endif %}


def unavailable(response: Response) -> bool:
    """A clean 503: problem details over HTTP, or the same code in an error of the API."""
    if response.status_code == 503:
        return bool(
            response.headers["content-type"] == "application/problem+json"
            and response.json()["code"] == "service_unavailable"
            and response.headers["retry-after"]
        )
    errors: list[dict[str, Any]] = response.json().get("errors") or []
    # When to try again: in the error, and in the answer's header as over REST.
    expected = {"code": "service_unavailable", "status": 503}
    return response.status_code == 200 and any(
        error["extensions"] == {**expected, "retryAfter": int(response.headers["retry-after"])}
        for error in errors
    )
