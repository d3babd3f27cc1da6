"""Data-subject rights and the administrators' audit query, in GraphQL."""

from datetime import datetime
from typing import Self

import strawberry
from strawberry import relay
from strawberry.scalars import JSON

from app.api.dependencies import limit_password_work
from app.api.graphql.relay import Refetchable, as_sequence, connection, cursor_key, id_key, window
from app.api.graphql.schema import MAX_NODES, GraphQLInfo, validated
from app.audit import service
from app.audit.records import AuditQuery, AuditRecord
from app.audit.service import Erasure


@strawberry.type(name="AuditRecord")
class AuditRecordType(relay.Node, Refetchable):
    sequence: int
    occurred_at: datetime
    actor: str
    action: str
    resource_type: str
    resource_id: str | None
    outcome: str
    client_ip: str | None
    user_agent: str | None
    request_id: str | None
    detail: JSON
    # Null until the sealer has chained the record (normally within a second or two).
    position: int | None
    seal: str | None

    @classmethod
    def of(cls, record: AuditRecord) -> "AuditRecordType":
        return cls(**record.model_dump())

    @classmethod
    def resolve_id(cls, root: Self, *, info: strawberry.Info) -> str:
        return str(root.sequence)

    @classmethod
    async def refetch(cls, info: GraphQLInfo, key: str) -> Self | None:
        """As `auditRecords`: administrators only."""
        await info.context.admin()
        services = info.context.services
        record = await service.trail_record(
            database=services.database, audit=services.audit, sequence=id_key(key, as_sequence)
        )
        return None if record is None else cls(**record.model_dump())


@strawberry.input
class AuditFilter:
    actor: str | None = None
    action: str | None = None
    resource_type: str | None = None
    resource_id: str | None = None
    # Inclusive and exclusive bounds; with a UTC offset.
    since: datetime | None = None
    until: datetime | None = None


@strawberry.type
class Query:
    @strawberry.field
    async def my_personal_data(self, info: GraphQLInfo) -> JSON | None:
        """Everything held about the caller. It reads every item and record about them,
        so it takes the request's whole node budget: one export a request, and nothing
        else that fetches beside it."""
        principal = await info.context.principal()
        info.context.budget.draw(MAX_NODES)
        services = info.context.services
        data = await service.export_personal_data(
            database=services.database, audit=services.audit, user_id=principal.user_id
        )
        return JSON(data.model_dump(mode="json"))

    @strawberry.field
    async def audit_records(
        self,
        info: GraphQLInfo,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
        filter: AuditFilter | None = None,
    ) -> relay.Connection[AuditRecordType] | None:
        """Administrators only: records newest first."""
        await info.context.admin()
        page = window(info, first=first, after=after, last=last, before=before)
        query = validated(AuditQuery, **vars(filter) if filter else {})
        services = info.context.services
        records = await service.trail_window(
            database=services.database,
            audit=services.audit,
            query=query,
            window=page,
            after=cursor_key(after, as_sequence),
            before=cursor_key(before, as_sequence),
        )
        return connection(records, AuditRecordType.of, lambda record: str(record.sequence))


@strawberry.type
class Mutation:
    @strawberry.mutation
    async def erase_my_account(self, info: GraphQLInfo, password: str) -> bool | None:
        """Delete the caller's items, anonymise the account and end every session."""
        principal = await info.context.principal()
        services = info.context.services
        await limit_password_work(info.context.http_request, services, "password")
        await service.erase_account(
            database=services.database,
            passwords=services.passwords,
            tokens=services.tokens,
            cache=services.cache,
            user_id=principal.user_id,
            data=validated(Erasure, password=password),
        )
        info.context.end_session()
        return True
