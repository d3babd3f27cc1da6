"""The GraphQL framework floor: the checked baseline's work, written as a FastAPI +
Strawberry user would.

The GraphQL counterpart of benchmarks/fastapi_floor.py. It answers the very documents the
benchmark sends the service (`item(id:)`, `items(first:, filter:)` as a Relay
connection, `createItem(input:)`) with the baseline's functions (the bearer token verified
with PyJWT and the one Redis script for session and rate limit, the cache-aside read, the
list query, the insert, on the same drivers), in Strawberry's idiom: Relay `Node` types
with global ids, an enum and an input type, pydantic models for what is read and written,
the checks a dependency of the GraphQL router, and Strawberry's parser and validation
caches (the service has them too). No logging, metrics, middleware or other extensions.
Its cost over the checked baseline is what FastAPI and Strawberry themselves cost; what
the service costs beyond it is the service's own.

Served like the baseline, by uvicorn with the rendered project's interpreter, from a copy
of this package (`benchmarks.strawberry_floor:app`). Routes: GET /health/ready, POST
/graphql.
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any
from uuid import UUID

import strawberry
from fastapi import Depends, FastAPI, HTTPException, Request
from strawberry import relay
from strawberry.extensions import ParserCache, ValidationCache
from strawberry.fastapi import GraphQLRouter

from benchmarks.baseline_app import cached_item, insert_item, lifespan, select_items, verify
from benchmarks.fastapi_floor import Item as ItemModel
from benchmarks.fastapi_floor import ItemCreate


async def checks(request: Request) -> None:
    _, _, token = request.headers.get("authorization", "").partition(" ")
    error = await verify(token)
    if error is not None:
        raise HTTPException(401, error)


@strawberry.enum
class ItemStatus(Enum):
    DRAFT = "draft"
    ACTIVE = "active"
    ARCHIVED = "archived"


@strawberry.type
class Item(relay.Node):
    id: relay.NodeID[UUID]
    owner_id: relay.GlobalID
    name: str
    description: str
    price_cents: int
    status: ItemStatus
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, item: ItemModel) -> Item:
        return cls(
            id=item.id,
            owner_id=relay.GlobalID("User", str(item.owner_id)),
            name=item.name,
            description=item.description,
            price_cents=item.price_cents,
            status=ItemStatus(item.status),
            created_at=item.created_at,
            updated_at=item.updated_at,
        )


@strawberry.input
class ItemFilter:
    status: ItemStatus | None = None


@strawberry.input
class ItemInput:
    name: str
    description: str = ""
    price_cents: int = 0
    status: ItemStatus = ItemStatus.DRAFT


def _cursor(item: Item) -> str:
    return relay.to_base64("cursor", f"{item.created_at.isoformat()}|{item.id}")


@strawberry.type
class Query:
    @strawberry.field
    async def item(self, id: relay.GlobalID) -> Item | None:
        raw = await cached_item(id.node_id)
        return None if raw is None else Item.of(ItemModel.model_validate_json(raw))

    @strawberry.field
    async def items(
        self, first: int = 20, filter: ItemFilter | None = None
    ) -> relay.Connection[Item]:
        status = filter.status if filter and filter.status else ItemStatus.ACTIVE
        rows = await select_items(status.value, first + 1)
        nodes = [Item.of(ItemModel.model_validate(row)) for row in rows[:first]]
        edges = [relay.Edge(cursor=_cursor(node), node=node) for node in nodes]
        return relay.Connection(
            edges=edges,
            page_info=relay.PageInfo(
                has_previous_page=False,
                has_next_page=len(rows) > first,
                start_cursor=edges[0].cursor if edges else None,
                end_cursor=edges[-1].cursor if edges else None,
            ),
        )


@strawberry.type
class Mutation:
    @strawberry.mutation
    async def create_item(self, input: ItemInput) -> Item:
        data = ItemCreate(
            name=input.name,
            description=input.description,
            price_cents=input.price_cents,
            status=input.status.value,
        )
        return Item.of(ItemModel.model_validate(await insert_item(data.model_dump())))


schema = strawberry.Schema(
    query=Query,
    mutation=Mutation,
    extensions=[ParserCache(maxsize=256), ValidationCache(maxsize=256)],
)


async def context() -> dict[str, Any]:
    # Async, as the service's: Strawberry's default context getter is a plain function,
    # which FastAPI runs in its thread pool, a thread hop on every request.
    return {}


graphql: GraphQLRouter[Any, Any] = GraphQLRouter(
    schema, path="/graphql", context_getter=context, graphql_ide=None
)
app = FastAPI(lifespan=lifespan)
app.include_router(graphql, dependencies=[Depends(checks)])


@app.get("/health/ready")
async def ready() -> dict[str, str]:
    return {"status": "ok"}
