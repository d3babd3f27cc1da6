"""Data-subject rights and the administrators' audit query."""

from typing import Annotated

from fastapi import APIRouter, Query, Request, status

from app.api.dependencies import ServicesDep, limit_password_work
from app.api.responses import problems
from app.api.rest.dependencies import Admin, CurrentPrincipal
from app.api.rest.routing import JSONRoute
from app.api.rest.schemas import PageMeta, Paginated
from app.audit import service as audit
from app.audit.records import AuditQuery, AuditRecord
from app.audit.service import Erasure, PersonalData
from app.core.pagination import PAGE_DEFAULT, PAGE_MAX
from app.core.types import IsoDateTime, StorableInt, StorableText

router = APIRouter(route_class=JSONRoute)
TAGS = {"audit": "The tamper-evident audit trail, for administrators."}
Text = Annotated[StorableText | None, Query(max_length=64)]


@router.get("/users/me/export", tags=["users"], responses=problems(401, 404))
async def export_personal_data(principal: CurrentPrincipal, services: ServicesDep) -> PersonalData:
    """Everything held about the caller, as JSON."""
    return await audit.export_personal_data(
        database=services.database, audit=services.audit, user_id=principal.user_id
    )


@router.post(
    "/users/me/erase",
    status_code=status.HTTP_204_NO_CONTENT,
    tags=["users"],
    responses=problems(400, 401, 404, body=True),
)
async def erase_account(
    data: Erasure, principal: CurrentPrincipal, request: Request, services: ServicesDep
) -> None:
    """Delete the caller's items, anonymise the account and end every session.
    The audit trail is kept for its retention period."""
    await limit_password_work(request, services, "password")
    await audit.erase_account(
        database=services.database,
        passwords=services.passwords,
        tokens=services.tokens,
        cache=services.cache,
        user_id=principal.user_id,
        data=data,
    )


@router.get("/audit", tags=["audit"], responses=problems(401, 403, 422))
async def query_audit_trail(
    _: Admin,
    services: ServicesDep,
    actor: Text = None,
    action: Text = None,
    resource_type: Text = None,
    resource_id: Text = None,
    since: IsoDateTime | None = None,
    until: IsoDateTime | None = None,
    limit: Annotated[int, Query(ge=1, le=PAGE_MAX)] = PAGE_DEFAULT,
    cursor: Annotated[StorableInt | None, Query(ge=1)] = None,
) -> Paginated[AuditRecord]:
    """Administrators only: records newest first; `since` inclusive, `until` exclusive."""
    query = AuditQuery(
        actor=actor,
        action=action,
        resource_type=resource_type,
        resource_id=resource_id,
        since=since,
        until=until,
    )
    page, before = await audit.query_trail(
        database=services.database, audit=services.audit, query=query, before=cursor, limit=limit
    )
    return Paginated(
        data=page, meta=PageMeta(limit=limit, next_cursor=str(before) if before else None)
    )
