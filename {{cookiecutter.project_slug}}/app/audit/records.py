"""Audit records and their chain.

Each record is sealed with an HMAC over its content and the previous record's
seal. Editing, inserting or deleting a stored record breaks the chain from that
point on, and without the key nobody can re-seal what follows.
"""

import hashlib
import hmac
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from app.core.context import current_request
from app.events.schemas import (
    DomainEvent,
    ItemCreated,
    ItemDeleted,
    ItemUpdated,
    LoggedOut,
    LoginFailed,
    LoginSucceeded,
    PasswordChanged,
    RefreshReuseDetected,
    TokenRefreshed,
    UserRegistered,
    UsersListed,
)

GENESIS = "0" * 64
Outcome = Literal["success", "denied", "failed"]


def _now_ms() -> datetime:
    # Milliseconds: the precision every supported database stores, so the seal re-computes.
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


class AuditEntry(BaseModel):
    model_config = ConfigDict(frozen=True)

    occurred_at: datetime = Field(default_factory=_now_ms)
    actor: str = "anonymous"
    action: str
    resource_type: str
    resource_id: str | None = None
    outcome: Outcome = "success"
    client_ip: str | None = None
    user_agent: str | None = None
    request_id: str | None = None
    detail: dict[str, Any] = Field(default_factory=dict)

    def canonical(self) -> bytes:
        data = self.model_dump(mode="json")
        data["occurred_at"] = self.occurred_at.astimezone(UTC).isoformat(timespec="milliseconds")
        return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()


def seal(key: bytes, previous: str, entry: AuditEntry) -> str:
    return hmac.new(key, previous.encode() + b"\n" + entry.canonical(), hashlib.sha256).hexdigest()


# Audited events: the action recorded, the kind of resource it touched, the outcome.
AUDITED: dict[type[DomainEvent], tuple[str, str, Outcome]] = {
    ItemCreated: ("item.create", "item", "success"),
    ItemUpdated: ("item.update", "item", "success"),
    ItemDeleted: ("item.delete", "item", "success"),
    UserRegistered: ("user.register", "user", "success"),
    PasswordChanged: ("user.password_change", "user", "success"),
    UsersListed: ("user.list", "user", "success"),
    LoginSucceeded: ("session.login", "user", "success"),
    LoginFailed: ("session.login", "user", "failed"),
    LoggedOut: ("session.logout", "user", "success"),
    TokenRefreshed: ("session.refresh", "user", "success"),
    RefreshReuseDetected: ("session.refresh_reuse", "user", "denied"),
}


def entry_for(event: DomainEvent) -> AuditEntry | None:
    """The audit record of an event, or None for events that are not audited."""
    if type(event) not in AUDITED:
        return None
    action, resource_type, outcome = AUDITED[type(event)]
    context = current_request()
    return AuditEntry(
        actor=event.actor_id or "anonymous",
        action=action,
        resource_type=resource_type,
        resource_id=event.aggregate_id,
        outcome=outcome,
        client_ip=context.client_ip if context else None,
        user_agent=context.user_agent if context else None,
        request_id=event.correlation_id,
        detail={"event_id": str(event.id)},
    )


def entries_for(events: Sequence[DomainEvent]) -> list[AuditEntry]:
    return [entry for event in events if (entry := entry_for(event)) is not None]


@dataclass(frozen=True)
class SealedEntry:
    sequence: int
    entry: AuditEntry
    previous: str
    seal: str


@dataclass(frozen=True)
class ChainReport:
    checked: int
    first_broken: int | None = None

    @property
    def intact(self) -> bool:
        return self.first_broken is None


def verify_chain(key: bytes, records: Sequence[SealedEntry]) -> ChainReport:
    """Walk records in sequence order; report the first one whose seal does not hold."""
    previous = GENESIS
    for checked, record in enumerate(records):
        if record.previous != previous or not hmac.compare_digest(
            record.seal, seal(key, previous, record.entry)
        ):
            return ChainReport(checked=checked, first_broken=record.sequence)
        previous = record.seal
    return ChainReport(checked=len(records))


class AuditLog(Protocol):
    async def recent(self, *, limit: int) -> list[SealedEntry]: ...

    async def verify(self) -> ChainReport: ...
