from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, Request, Response, status

from app.api.dependencies import ServicesDep, client_ip
from app.api.responses import problems
from app.api.rest.dependencies import CurrentPrincipal, EditableItem
from app.api.rest.idempotency import IdempotencyKey, answer, replayable
from app.api.rest.routing import JSONRoute
from app.api.rest.schemas import PageMeta, Paginated
from app.core.idempotency import scope
from app.items import service
from app.items.schemas import ItemCreate, ItemPublic, ItemQuery, ItemUpdate

router = APIRouter(prefix="/items", tags=["items"], route_class=JSONRoute)
LOCATION = {
    "Location": {
        "description": "The item's own path (`GET` it there).",
        "schema": {"type": "string", "format": "uri-reference"},
    }
}


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses=problems(401, 409, body=True) | replayable(201, "The item, created", LOCATION),
)
async def create_item(
    data: ItemCreate,
    principal: CurrentPrincipal,
    services: ServicesDep,
    request: Request,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> ItemPublic:
    """A new item owned by the caller; 409 if the caller already has one of that name.
    Send an `Idempotency-Key` to make it safe to retry."""
    outcome = await services.idempotency.run(
        key=idempotency_key,
        caller=scope(principal.user_id, address=client_ip(request)),
        operation="create_item",
        request=data,
        model=ItemPublic,
        status=status.HTTP_201_CREATED,
        create=lambda: service.create_item(database=services.database, owner=principal, data=data),
    )
    item = answer(response, outcome)
    # A path (no host, which the client's Host header would give), under the root path
    # a proxy serves the app at.
    path = request.app.url_path_for("get_item", item_id=item.id)
    response.headers["Location"] = request.scope.get("root_path", "") + path
    return item


@router.get("", responses=problems(400, 401, 403, 422))
async def list_items(
    query: Annotated[ItemQuery, Query()], principal: CurrentPrincipal, services: ServicesDep
) -> Paginated[ItemPublic]:
    """The caller's items (an admin's: everyone's, `owner_id` to pick one owner). Filter
    by `status`, sort by `sort` (a leading `-` for descending), and follow
    `meta.next_cursor` for the next page."""
    page = await service.list_items(database=services.database, query=query, principal=principal)
    return Paginated(
        data=page.items, meta=PageMeta(limit=query.limit, next_cursor=page.next_cursor)
    )


@router.get("/{item_id}", responses=problems(401, 403, 404, 422))
async def get_item(item_id: UUID, principal: CurrentPrincipal, services: ServicesDep) -> ItemPublic:
    """The owner's or an admin's: 403 for anyone else."""
    return await service.get_item(
        database=services.database,
        cache=services.cache,
        item_id=item_id,
        ttl=services.settings.cache.item_seconds,
        principal=principal,
    )


@router.patch("/{item_id}", responses=problems(401, 403, 404, 409, body=True))
async def update_item(item: EditableItem, data: ItemUpdate, services: ServicesDep) -> ItemPublic:
    """Change the fields given; the owner's or an admin's."""
    return await service.update_item(
        database=services.database, cache=services.cache, item=item, data=data
    )


@router.delete(
    "/{item_id}", status_code=status.HTTP_204_NO_CONTENT, responses=problems(401, 403, 404, 422)
)
async def delete_item(item: EditableItem, services: ServicesDep) -> None:
    """The owner's or an admin's."""
    await service.delete_item(database=services.database, cache=services.cache, item=item)
