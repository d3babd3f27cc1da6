from uuid import uuid4

import pytest
from httpx import AsyncClient, Response

from tests.conftest import unique

ITEMS = "/api/v1/items"


async def test_create_read_list(client: AsyncClient) -> None:
    name = unique("rest")
    created = await client.post(ITEMS, json={"name": name, "description": "d"})
    assert created.status_code == 201, created.text
    item = created.json()
    assert item["name"] == name
    assert item["description"] == "d"

    fetched = await client.get(f"{ITEMS}/{item['id']}")
    assert fetched.status_code == 200
    assert fetched.json() == item

    listed = await client.get(ITEMS, params={"limit": 5})
    assert listed.status_code == 200
    assert listed.json()[0] == item


def _problem(response_status: int, response: Response) -> dict[str, object]:
    assert response.status_code == response_status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, object] = response.json()
    assert body["status"] == response_status
    assert body["request_id"] == response.headers["x-request-id"]
    return body


async def test_unknown_item_is_404(client: AsyncClient) -> None:
    body = _problem(404, await client.get(f"{ITEMS}/{uuid4()}"))
    assert body["code"] == "item_not_found"


async def test_duplicate_name_is_409(client: AsyncClient) -> None:
    name = unique("dup")
    assert (await client.post(ITEMS, json={"name": name})).status_code == 201
    body = _problem(409, await client.post(ITEMS, json={"name": name}))
    assert body["code"] == "item_name_taken"


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"name": ""},
        {"name": "x" * 101},
        {"name": "ok", "description": "d" * 2001},
        {"name": "ok", "owner": "someone-else"},
        {"name": 42},
    ],
)
async def test_invalid_input_is_422(client: AsyncClient, payload: dict[str, object]) -> None:
    body = _problem(422, await client.post(ITEMS, json=payload))
    assert body["errors"]
    # The rejected input is never echoed back.
    assert "someone-else" not in str(body)


@pytest.mark.parametrize("query", ["limit=0", "limit=101", "limit=abc"])
async def test_page_size_is_bounded(client: AsyncClient, query: str) -> None:
    _problem(422, await client.get(f"{ITEMS}?{query}"))


async def test_malformed_id_is_422(client: AsyncClient) -> None:
    _problem(422, await client.get(f"{ITEMS}/not-a-uuid"))


async def test_openapi_documents_the_versioned_api(client: AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    assert {"/api/v1/items", "/api/v1/items/{item_id}", "/health/ready"} <= set(document["paths"])
