from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, Request, status

from app.api.dependencies import ServicesDep, limit_password_work
from app.api.responses import problems
from app.api.rest.dependencies import Admin, CurrentPrincipal
from app.api.rest.routing import JSONRoute
from app.api.rest.schemas import PageMeta, Paginated
from app.core.pagination import PAGE_DEFAULT, PAGE_MAX
from app.users import service as users
from app.users.schemas import PasswordChange, RoleChange, UserPublic

router = APIRouter(prefix="/users", tags=["users"], route_class=JSONRoute)


@router.get("/me", responses=problems(401, 404))
async def me(principal: CurrentPrincipal, services: ServicesDep) -> UserPublic:
    """The caller's account."""
    return await users.get_user(database=services.database, user_id=principal.user_id)


@router.post(
    "/me/password",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problems(400, 401, 404, body=True),
)
async def change_password(
    data: PasswordChange, principal: CurrentPrincipal, request: Request, services: ServicesDep
) -> None:
    """Every session ends with the change: log in again with the new password."""
    await limit_password_work(request, services, "password")
    await users.change_password(
        database=services.database,
        passwords=services.passwords,
        tokens=services.tokens,
        user_id=principal.user_id,
        data=data,
    )


@router.get("", responses=problems(401, 403, 422))
async def list_users(
    _: Admin,
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=PAGE_MAX)] = PAGE_DEFAULT,
    cursor: UUID | None = None,
) -> Paginated[UserPublic]:
    """Administrators only."""
    page, after = await users.list_users(database=services.database, after=cursor, limit=limit)
    return Paginated(
        data=page, meta=PageMeta(limit=limit, next_cursor=str(after) if after else None)
    )


@router.put("/{user_id}/role", responses=problems(401, 403, 404, body=True))
async def set_role(
    user_id: UUID, data: RoleChange, admin: Admin, services: ServicesDep
) -> UserPublic:
    """Administrators only. The user's sessions end with a change: the role is in every
    access token, so it holds from their next sign-in. Setting the role the user already
    has changes nothing."""
    return await users.set_role(
        database=services.database,
        tokens=services.tokens,
        user_id=user_id,
        role=data.role,
        by=admin.user_id,
    )
