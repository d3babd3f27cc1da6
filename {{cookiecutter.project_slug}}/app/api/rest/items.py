from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, status

from app.api.dependencies import ServicesDep
from app.items import service
from app.items.repository import PAGE_MAX
from app.items.schemas import ItemCreate, ItemPublic

router = APIRouter(prefix="/items", tags=["items"])


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_item(data: ItemCreate, services: ServicesDep) -> ItemPublic:
    return await service.create_item(database=services.database, data=data)


@router.get("")
async def list_items(
    services: ServicesDep, limit: Annotated[int, Query(ge=1, le=PAGE_MAX)] = 20
) -> list[ItemPublic]:
    return await service.list_items(database=services.database, limit=limit)


@router.get("/{item_id}")
async def get_item(item_id: UUID, services: ServicesDep) -> ItemPublic:
    return await service.get_item(database=services.database, item_id=item_id)
