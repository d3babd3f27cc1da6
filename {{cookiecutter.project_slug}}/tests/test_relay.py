"""The schema against the specifications it claims, checked as a client's tools would:
GraphQL itself (graphql-core's own validation of the introspected schema), Global Object
Identification (Node, node, refetching) and Cursor Connections (the shapes, and paging
compared with the specification's algorithm)."""

from base64 import b64encode
from dataclasses import dataclass
from typing import Any, cast
from uuid import uuid4

import graphql
import pytest
from httpx import AsyncClient

from tests.conftest import Account, unique
from tests.test_graphql_api import (
    CREATE,
    DELETE,
    ME,
    NODE,
    NODES,
    code,
    data,
    error,
    global_id,
)
from tests.test_graphql_api import (
    graphql as post,
)

LIST = """
query L($first: Int, $after: String, $last: Int, $before: String, $sort: ItemSort!) {
  items(first: $first, after: $after, last: $last, before: $before, sort: $sort) {
    edges { cursor node { id name } }
    pageInfo { hasPreviousPage hasNextPage startCursor endCursor }
  }
}
"""


async def introspected(client: AsyncClient, account: Account) -> graphql.GraphQLSchema:
    query = graphql.get_introspection_query(descriptions=True)
    result = data(await post(client, query, account.tokens.access_token))
    return graphql.build_client_schema(cast(graphql.IntrospectionQuery, result))


async def test_the_served_schema_is_valid_graphql(client: AsyncClient, account: Account) -> None:
    """As a client sees it: introspected, rebuilt and validated by the reference library."""
    graphql.assert_valid_schema(await introspected(client, account))


def named(field: graphql.GraphQLField | graphql.GraphQLArgument) -> str:
    return str(field.type)


async def test_the_schema_follows_both_relay_specifications(
    client: AsyncClient, account: Account
) -> None:
    schema = await introspected(client, account)
    # Global Object Identification: a Node interface of exactly one field, id: ID!...
    node = schema.get_type("Node")
    assert isinstance(node, graphql.GraphQLInterfaceType)
    assert {name: named(field) for name, field in node.fields.items()} == {"id": "ID!"}
    # ...and a root field node(id: ID!): Node.
    assert schema.query_type is not None
    roots = schema.query_type.fields
    assert named(roots["node"]) == "Node"
    assert {name: named(arg) for name, arg in roots["node"].args.items()} == {"id": "ID!"}
    implementing = {kind.name for kind in schema.get_implementations(node).objects}
    assert {"Item", "User"} <= implementing

    # Cursor Connections: every type named ...Connection is one, and every field that
    # returns one pages both ways with the same cursor type as its edges.
    connections = {
        name: kind
        for name, kind in schema.type_map.items()
        if name.endswith("Connection") and isinstance(kind, graphql.GraphQLObjectType)
    }
    assert {"ItemConnection", "UserConnection"} <= set(connections)
    for name, connection in connections.items():
        assert named(connection.fields["pageInfo"]) == "PageInfo!", name
        edges = graphql.get_nullable_type(connection.fields["edges"].type)
        assert isinstance(edges, graphql.GraphQLList), name
        edge = graphql.get_named_type(edges.of_type)
        assert isinstance(edge, graphql.GraphQLObjectType), name
        assert named(edge.fields["cursor"]) == "String!", name
        target = graphql.get_nullable_type(edge.fields["node"].type)
        assert not isinstance(target, graphql.GraphQLList), name
        assert isinstance(target, graphql.GraphQLObjectType), name
        assert node in target.interfaces, name
    page_info = schema.get_type("PageInfo")
    assert isinstance(page_info, graphql.GraphQLObjectType)
    assert {field: named(page_info.fields[field]) for field in page_info.fields} == {
        "hasPreviousPage": "Boolean!",
        "hasNextPage": "Boolean!",
        "startCursor": "String",
        "endCursor": "String",
    }
    paged = [
        field
        for kind in schema.type_map.values()
        if isinstance(kind, graphql.GraphQLObjectType)
        for field in kind.fields.values()
        if graphql.get_named_type(field.type).name in connections
    ]
    assert len(paged) >= len(connections)
    for field in paged:
        arguments = {name: named(argument) for name, argument in field.args.items()}
        assert {"first": "Int", "after": "String", "last": "Int", "before": "String"}.items() <= (
            arguments.items()
        )


@dataclass(frozen=True)
class Edge:
    cursor: str
    id: str


def expected(
    edges: list[Edge],
    first: int | None = None,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
) -> dict[str, Any]:
    """The specification's algorithm, step by step, on the whole list. Where it lets the
    server choose (hasPreviousPage when paging forward from `after`, hasNextPage when
    paging back from `before`), the service answers whether a row lies that way, the
    cursor's own row included, and so does this."""
    cursors = [edge.cursor for edge in edges]
    # ApplyCursorsToEdges
    applied = edges
    if after is not None and after in cursors:
        applied = applied[cursors.index(after) + 1 :]
    if before is not None and before in cursors:
        applied = applied[: [edge.cursor for edge in applied].index(before)]
    # EdgesToReturn
    returned = applied
    if first is not None:
        returned = returned[:first]
    if last is not None:
        returned = returned[len(returned) - last :] if len(returned) > last else returned
    if last is not None:
        has_previous = len(applied) > last
    else:
        has_previous = after is not None and after in cursors
    if first is not None:
        has_next = len(applied) > first
    else:
        has_next = before is not None and before in cursors
    return {
        "ids": [edge.id for edge in returned],
        "hasPreviousPage": has_previous,
        "hasNextPage": has_next,
        "startCursor": returned[0].cursor if returned else None,
        "endCursor": returned[-1].cursor if returned else None,
    }


def answered(body: dict[str, Any]) -> dict[str, Any]:
    connection = data(body)["items"]
    return {
        "ids": [edge["node"]["id"] for edge in connection["edges"]],
        **connection["pageInfo"],
    }


# Ascending text, and descending numbers with a tie (broken by id).
@pytest.mark.parametrize("sort", ["NAME", "PRICE_DESC"])
async def test_paging_follows_the_specifications_algorithm(
    client: AsyncClient, account: Account, sort: str
) -> None:
    """Five items of one owner, every window of them a client can ask for."""
    token = account.tokens.access_token
    for n, price in enumerate([300, 100, 300, 200, 500]):
        item = {"name": f"{n}-{unique('page')}", "priceCents": price}
        data(await post(client, CREATE, token, input=item))
    everything = data(await post(client, LIST, token, first=100, sort=sort))["items"]
    edges = [Edge(edge["cursor"], edge["node"]["id"]) for edge in everything["edges"]]
    assert len(edges) == 5
    cursors: list[str | None] = [None, edges[0].cursor, edges[2].cursor, edges[4].cursor]

    windows: list[dict[str, Any]] = []
    for size in (0, 2, 5):
        for cursor in cursors:
            windows.append({"first": size, "after": cursor})
            windows.append({"last": size, "before": cursor})
    windows += [
        {"first": 5, "after": edges[0].cursor, "before": edges[4].cursor},
        {"last": 5, "after": edges[0].cursor, "before": edges[4].cursor},
        {"first": 1, "after": edges[1].cursor, "before": edges[3].cursor},
        {"last": 1, "after": edges[1].cursor, "before": edges[3].cursor},
        {},
    ]
    for window in windows:
        body = await post(client, LIST, token, sort=sort, **window)
        # Without a size, the first page of the default size (20).
        assert answered(body) == expected(edges, **(window or {"first": 20})), window


async def test_walking_both_ways_reaches_each_end(client: AsyncClient, account: Account) -> None:
    """Forward by endCursor to the end, back by startCursor to the start: the same items,
    hasNextPage false only on the last page and hasPreviousPage false only on the first;
    and a cursor outlives the row it was made from."""
    token = account.tokens.access_token
    for n in range(7):
        data(await post(client, CREATE, token, input={"name": f"{n}-{unique('walk')}"}))
    forward: list[str] = []
    page = answered(await post(client, LIST, token, first=3, sort="NAME"))
    pages = [page]
    while page["hasNextPage"]:
        page = answered(
            await post(client, LIST, token, first=3, after=page["endCursor"], sort="NAME")
        )
        pages.append(page)
    forward = [id for page in pages for id in page["ids"]]
    assert [len(page["ids"]) for page in pages] == [3, 3, 1]
    assert [page["hasPreviousPage"] for page in pages] == [False, True, True]

    page = answered(await post(client, LIST, token, last=3, sort="NAME"))
    pages = [page]
    while page["hasPreviousPage"]:
        page = answered(
            await post(client, LIST, token, last=3, before=page["startCursor"], sort="NAME")
        )
        pages.append(page)
    assert [id for page in reversed(pages) for id in page["ids"]] == forward
    assert [page["hasNextPage"] for page in pages] == [False, True, True]

    # The first item's cursor, once the item is gone: nothing lies before it any more.
    first = data(await post(client, LIST, token, first=1, sort="NAME"))["items"]["edges"][0]
    assert data(await post(client, DELETE, token, id=first["node"]["id"]))["deleteItem"]
    after = answered(await post(client, LIST, token, first=2, after=first["cursor"], sort="NAME"))
    assert (after["ids"], after["hasPreviousPage"]) == (forward[1:3], False)
    before = answered(await post(client, LIST, token, last=2, before=first["cursor"], sort="NAME"))
    assert (before["ids"], before["hasPreviousPage"], before["hasNextPage"]) == ([], False, True)


USERS = """
query U($first: Int, $after: String, $last: Int, $before: String) {
  users(first: $first, after: $after, last: $last, before: $before) {
    edges { cursor node { id } }
    pageInfo { hasPreviousPage hasNextPage startCursor endCursor }
  }
}
"""


async def test_users_page_both_ways(client: AsyncClient, admin_account: Account) -> None:
    token = admin_account.tokens.access_token
    last = data(await post(client, USERS, token, last=2))["users"]
    assert len(last["edges"]) == 2
    assert (last["pageInfo"]["hasPreviousPage"], last["pageInfo"]["hasNextPage"]) == (True, False)
    before = data(await post(client, USERS, token, last=1, before=last["pageInfo"]["startCursor"]))
    cursor = before["users"]["edges"][0]["cursor"]
    after = data(await post(client, USERS, token, first=2, after=cursor))
    assert after["users"]["edges"] == last["edges"]
    assert after["users"]["pageInfo"]["hasPreviousPage"] is True
    assert before["users"]["pageInfo"]["hasNextPage"] is True


@pytest.mark.parametrize(
    ("window", "wanted"),
    [
        ({"first": 1, "last": 1}, ("invalid_input", 422)),
        ({"first": -1}, ("invalid_input", 422)),
        ({"last": -1}, ("invalid_input", 422)),
        ({"last": 101}, ("invalid_input", 422)),
        ({"last": 1, "before": "garbage"}, ("bad_request", 400)),
        ({"first": 1, "after": "garbage"}, ("bad_request", 400)),
        ({"last": 1, "before": "x" * 2000}, ("invalid_input", 422)),
    ],
)
@pytest.mark.parametrize("field", ["items", "users"])
async def test_bad_windows_are_refused_in_the_apis_error_shape(
    client: AsyncClient,
    admin_account: Account,
    field: str,
    window: dict[str, Any],
    wanted: tuple[str, int],
) -> None:
    query = LIST if field == "items" else USERS
    variables = {"sort": "NAME"} if field == "items" else {}
    body = await post(client, query, admin_account.tokens.access_token, **window, **variables)
    assert code(body) == wanted
    assert body["data"] == {field: None}


async def test_node_refetches_what_the_api_gave(client: AsyncClient, account: Account) -> None:
    token = account.tokens.access_token
    item = data(await post(client, CREATE, token, input={"name": unique("node")}))["createItem"]
    me = data(await post(client, ME, token))["me"]
    refetched = data(await post(client, NODE, token, id=item["id"]))["node"]
    assert refetched == {"id": item["id"], "name": item["name"]}
    assert data(await post(client, NODE, token, id=me["id"]))["node"] == {"id": me["id"]}
    assert item["ownerId"] == me["id"]

    # A well-formed id of nothing is null, in `node` and in its place in `nodes`.
    gone = global_id("Item", uuid4())
    assert data(await post(client, NODE, token, id=gone)) == {"node": None}
    found = data(await post(client, NODES, token, ids=[me["id"], gone, item["id"]]))["nodes"]
    assert found == [{"id": me["id"]}, None, {"id": item["id"]}]


@pytest.mark.parametrize(
    "malformed",
    [
        "garbage",
        "",
        b64encode(b"Item").decode(),
        b64encode(b"Item:not-a-uuid").decode(),
        b64encode(b"Query:1").decode(),
        b64encode(b"PageInfo:1").decode(),
        b64encode(b"NoSuchType:1").decode(),
        b64encode(b"\xff\xfe:1").decode(),
    ],
)
async def test_a_malformed_id_is_invalid_input(
    client: AsyncClient, account: Account, malformed: str
) -> None:
    token = account.tokens.access_token
    for query in (NODE, "query I($id: ID!) { item(id: $id) { id } }"):
        body = await post(client, query, token, id=malformed)
        assert code(body) == ("invalid_input", 422), body
        assert "id" in error(body)["message"]


async def test_an_id_is_read_in_the_one_spelling_the_api_writes(
    client: AsyncClient, account: Account
) -> None:
    """Base64 is read leniently: the same item was found by ids with padding added,
    characters that are no base64 anywhere in them, spaces or line breaks."""
    token = account.tokens.access_token
    item = data(await post(client, CREATE, token, input={"name": unique("spelt")}))["createItem"]
    written = item["id"]
    assert data(await post(client, NODE, token, id=written))["node"]["id"] == written
    middle = len(written) // 2
    for spelling in (
        written + "=",
        written + "====",
        "...." + written,
        written[:middle] + "!*!" + written[middle:],
        written[:middle] + " " + written[middle:],
        written[:middle] + "\n" + written[middle:],
        written.rstrip("=") if written.endswith("=") else written + "\t",
    ):
        body = await post(client, NODE, token, id=spelling)
        assert code(body) == ("invalid_input", 422), (spelling, body)


async def test_node_refuses_what_the_types_own_query_refuses(
    client: AsyncClient, account: Account, other_account: Account, admin_account: Account
) -> None:
    owner, stranger = account.tokens.access_token, other_account.tokens.access_token
    admin = admin_account.tokens.access_token
    item = data(await post(client, CREATE, owner, input={"name": unique("mine")}))["createItem"]
    me = data(await post(client, ME, owner))["me"]

    assert code(await post(client, NODE, stranger, id=item["id"])) == ("not_item_owner", 403)
    # Users: one's own account (as `me`), any for administrators (as `users`).
    assert code(await post(client, NODE, stranger, id=me["id"])) == ("forbidden", 403)
    assert data(await post(client, NODE, admin, id=me["id"]))["node"] == {"id": me["id"]}
    assert data(await post(client, NODE, admin, id=item["id"]))["node"]["id"] == item["id"]
    # In `nodes`, a refused id nulls its own place only.
    mixed = await post(client, NODES, stranger, ids=[item["id"], me["id"]])
    assert mixed["data"] == {"nodes": [None, None]}
    refusals = sorted((e["path"], e["extensions"]["code"]) for e in mixed["errors"])
    assert refusals == [(["nodes", 0], "not_item_owner"), (["nodes", 1], "forbidden")]
