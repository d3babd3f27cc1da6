from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, status

from app.api.dependencies import ServicesDep
from app.api.rest.dependencies import CurrentPrincipal, EditableItem
from app.api.rest.schemas import PageMeta, Paginated
from app.items import service
from app.items.schemas import ItemCreate, ItemPublic, ItemQuery, ItemUpdate

router = APIRouter(prefix="/items", tags=["items"])


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_item(
    data: ItemCreate, principal: CurrentPrincipal, services: ServicesDep
) -> ItemPublic:
    return await service.create_item(database=services.database, owner=principal, data=data)


@router.get("")
async def list_items(
    query: Annotated[ItemQuery, Query()], _: CurrentPrincipal, services: ServicesDep
) -> Paginated[ItemPublic]:
    """Filter by `status` and `owner_id`, sort by `sort` (a leading `-` for descending),
    and follow `meta.next_cursor` for the next page."""
    page = await service.list_items(database=services.database, query=query)
    return Paginated(
        data=page.items, meta=PageMeta(limit=query.limit, next_cursor=page.next_cursor)
    )


@router.get("/{item_id}")
async def get_item(item_id: UUID, _: CurrentPrincipal, services: ServicesDep) -> ItemPublic:
    return await service.get_item(
        database=services.database,
        cache=services.cache,
        item_id=item_id,
        ttl=services.settings.cache.item_seconds,
    )


@router.patch("/{item_id}")
async def update_item(item: EditableItem, data: ItemUpdate, services: ServicesDep) -> ItemPublic:
    return await service.update_item(
        database=services.database, cache=services.cache, item=item, data=data
    )


@router.delete("/{item_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_item(item: EditableItem, services: ServicesDep) -> None:
    await service.delete_item(database=services.database, cache=services.cache, item=item)
