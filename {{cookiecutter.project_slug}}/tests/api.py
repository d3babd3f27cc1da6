"""The API the tests call, in the style this project serves: one request per action."""

from typing import Any

from httpx import AsyncClient, Response

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


def succeeded(response: Response) -> bool:
    return response.status_code in {200, 201}


def item_id(response: Response) -> str:
    return str(response.json()["id"])
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
    query = "query I($id: UUID!) { item(id: $id) { id } }"
    return await _graphql(client, account, query, id=item_id)


async def list_page(client: AsyncClient, account: Account) -> Response:
    return await _graphql(client, account, "{ items(first: 5) { edges { node { id } } } }")


def succeeded(response: Response) -> bool:
    return response.status_code == 200 and "errors" not in response.json()


def item_id(response: Response) -> str:
    return str(response.json()["data"]["createItem"]["id"])
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
    return response.status_code == 200 and any(
        error["extensions"] == {"code": "service_unavailable", "status": 503} for error in errors
    )
