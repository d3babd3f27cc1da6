from typing import Annotated
from uuid import UUID

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer

from app.api.dependencies import ServicesDep, authenticate
from app.auth.tokens import Principal
from app.items import service as items
from app.items.schemas import ItemPublic
from app.users import service as users
from app.users.errors import admins_only

# Declares the OAuth2 password flow in the OpenAPI document ("Authorize" in /docs).
oauth2 = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)


async def current_principal(
    request: Request, services: ServicesDep, _: Annotated[str | None, Depends(oauth2)]
) -> Principal:
    return await authenticate(request, services)


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


async def admin(principal: CurrentPrincipal, services: ServicesDep) -> Principal:
    if not principal.is_admin:
        raise admins_only(principal.user_id)
    await users.confirm_admin(database=services.database, user_id=principal.user_id)
    return principal


Admin = Annotated[Principal, Depends(admin)]


async def editable_item(
    item_id: UUID, principal: CurrentPrincipal, services: ServicesDep
) -> ItemPublic:
    """The item the caller may change: 404 if absent, 403 if neither owner nor admin."""
    return await items.editable_item(
        database=services.database, item_id=item_id, principal=principal
    )


EditableItem = Annotated[ItemPublic, Depends(editable_item)]
