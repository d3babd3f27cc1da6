from datetime import datetime
from typing import Annotated
from uuid import UUID

import strawberry
import structlog
from graphql import GraphQLError
from pydantic import ValidationError
from strawberry.fastapi import BaseContext
from strawberry.types import ExecutionContext, Info

from app.api.graphql.errors import AppErrorExtensions, mask_unexpected_errors
from app.core.errors import AppError, InvalidInputError
from app.items import service
from app.items.repository import PAGE_MAX
from app.items.schemas import ItemCreate, ItemPublic
from app.services import Services

log = structlog.get_logger(__name__)


class Context(BaseContext):
    def __init__(self, services: Services) -> None:
        super().__init__()
        self.services = services


GraphQLInfo = Info[Context, None]


@strawberry.type
class Item:
    id: UUID
    name: str
    description: str
    created_at: datetime

    @classmethod
    def from_public(cls, item: ItemPublic) -> "Item":
        return cls(
            id=item.id, name=item.name, description=item.description, created_at=item.created_at
        )


@strawberry.input
class ItemInput:
    name: str
    description: str = ""


def _validated_item(data: ItemInput) -> ItemCreate:
    try:
        return ItemCreate(name=data.name, description=data.description)
    except ValidationError as exc:
        fields = ", ".join(".".join(map(str, error["loc"])) for error in exc.errors())
        raise InvalidInputError(f"Invalid input: {fields}.") from exc


@strawberry.type
class Query:
    @strawberry.field
    async def item(self, info: GraphQLInfo, id: UUID) -> Item:
        item = await service.get_item(database=info.context.services.database, item_id=id)
        return Item.from_public(item)

    @strawberry.field
    async def items(
        self,
        info: GraphQLInfo,
        limit: Annotated[int, strawberry.argument(description=f"1 to {PAGE_MAX}")] = 20,
    ) -> list[Item]:
        if not 1 <= limit <= PAGE_MAX:
            raise InvalidInputError(f"limit must be between 1 and {PAGE_MAX}.")
        items = await service.list_items(database=info.context.services.database, limit=limit)
        return [Item.from_public(item) for item in items]


@strawberry.type
class Mutation:
    @strawberry.mutation
    async def create_item(self, info: GraphQLInfo, input: ItemInput) -> Item:
        item = await service.create_item(
            database=info.context.services.database, data=_validated_item(input)
        )
        return Item.from_public(item)


class Schema(strawberry.Schema):
    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        # Expected errors are answers, not incidents: log only the unexpected ones.
        for error in errors:
            if error.original_error is not None and not isinstance(error.original_error, AppError):
                log.error("graphql_unexpected_error", exc_info=error.original_error)


schema = Schema(
    query=Query,
    mutation=Mutation,
    extensions=[AppErrorExtensions, mask_unexpected_errors],
)
