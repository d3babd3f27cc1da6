from typing import Any
from uuid import uuid4

import pytest
from httpx import AsyncClient

from tests.conftest import unique

CREATE = """
mutation Create($name: String!, $description: String! = "") {
  createItem(input: {name: $name, description: $description}) { id name description createdAt }
}
"""
ITEM = "query Item($id: UUID!) { item(id: $id) { id name description createdAt } }"
ITEMS = "query Items($limit: Int!) { items(limit: $limit) { id name } }"


async def graphql(client: AsyncClient, query: str, **variables: Any) -> dict[str, Any]:
    response = await client.post("/graphql", json={"query": query, "variables": variables})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def only_error(body: dict[str, Any]) -> dict[str, Any]:
    assert body["data"] is None
    (error,) = body["errors"]
    return dict(error)


async def test_create_read_list(client: AsyncClient) -> None:
    name = unique("gql")
    created = await graphql(client, CREATE, name=name, description="d")
    assert "errors" not in created, created
    item = created["data"]["createItem"]
    assert (item["name"], item["description"]) == (name, "d")

    fetched = await graphql(client, ITEM, id=item["id"])
    assert fetched["data"]["item"] == item

    listed = await graphql(client, ITEMS, limit=5)
    assert listed["data"]["items"][0] == {"id": item["id"], "name": name}


async def test_unknown_item_is_a_typed_error(client: AsyncClient) -> None:
    error = only_error(await graphql(client, ITEM, id=str(uuid4())))
    assert error["extensions"] == {"code": "item_not_found", "status": 404}
    assert error["message"] == "No item has this id."


async def test_duplicate_name_is_a_typed_error(client: AsyncClient) -> None:
    name = unique("dup")
    assert "errors" not in await graphql(client, CREATE, name=name)
    error = only_error(await graphql(client, CREATE, name=name))
    assert error["extensions"] == {"code": "item_name_taken", "status": 409}


@pytest.mark.parametrize(("name", "description"), [("", ""), ("x" * 101, ""), ("ok", "d" * 2001)])
async def test_invalid_input_is_a_typed_error(
    client: AsyncClient, name: str, description: str
) -> None:
    error = only_error(await graphql(client, CREATE, name=name, description=description))
    assert error["extensions"] == {"code": "invalid_input", "status": 422}


@pytest.mark.parametrize("limit", [0, 101])
async def test_page_size_is_bounded(client: AsyncClient, limit: int) -> None:
    error = only_error(await graphql(client, ITEMS, limit=limit))
    assert error["extensions"]["code"] == "invalid_input"


async def test_malformed_query_is_refused(client: AsyncClient) -> None:
    response = await client.post("/graphql", json={"query": "{ items(limit: 1) { id "})
    (error,) = response.json()["errors"]
    assert error["message"].startswith("Syntax Error")
