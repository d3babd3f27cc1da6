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


class BearerPrincipal(OAuth2PasswordBearer):
    """The caller of a route that needs one, from its bearer token. As FastAPI's
    OAuth2PasswordBearer, whose scheme name it keeps, it declares the password flow in
    the OpenAPI document ("Authorize" in /docs). One dependency, not that one and another
    that authenticates: each one FastAPI solves costs a request about 20 µs."""

    async def __call__(self, request: Request) -> Principal:  # type: ignore[override]
        return await authenticate(request, request.app.state.services)


current_principal = BearerPrincipal(
    tokenUrl="/api/v1/auth/token", scheme_name="OAuth2PasswordBearer", auto_error=False
)
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
