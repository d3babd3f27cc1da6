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

from app.audit.events import AccountErased, AuditTrailRead, ErasureRefused, PersonalDataExported
from app.core.context import current_request
from app.core.types import IsoDateTime, StorableText
from app.events.schemas import (
    AdminAccessDenied,
    DomainEvent,
    ItemAccessDenied,
    ItemCreated,
    ItemDeleted,
    ItemUpdated,
    LoggedOut,
    LoginFailed,
    LoginRateLimited,
    LoginSucceeded,
    PasswordChanged,
    PasswordChangeRefused,
    RefreshReuseDetected,
    RoleChanged,
    TokenRefreshed,
    TokenRejected,
    UserRegistered,
    UsersListed,
)

GENESIS = "0" * 64
# The action of the record a retention purge leaves: it anchors the chain's new start.
PURGE = "audit.purge"
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
    PersonalDataExported: ("user.export", "user", "success"),
    AccountErased: ("user.erase", "user", "success"),
    AuditTrailRead: ("audit.read", "audit_log", "success"),
    RoleChanged: ("user.role_change", "user", "success"),
    PasswordChangeRefused: ("user.password_change", "user", "denied"),
    ErasureRefused: ("user.erase", "user", "denied"),
    ItemAccessDenied: ("item.access", "item", "denied"),
    AdminAccessDenied: ("admin.access", "user", "denied"),
    TokenRejected: ("session.authenticate", "user", "failed"),
    LoginRateLimited: ("session.login", "user", "denied"),
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


class AuditRecord(AuditEntry):
    """A stored record as the API shows it: the entry, its place in the chain, its seal."""

    sequence: int
    seal: str

    @classmethod
    def of(cls, record: SealedEntry) -> "AuditRecord":
        return cls(**record.entry.model_dump(), sequence=record.sequence, seal=record.seal)


class AuditQuery(BaseModel):
    """Filters of the administrators' audit query; all optional, combined with AND."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    actor: StorableText | None = Field(default=None, max_length=64)
    action: StorableText | None = Field(default=None, max_length=64)
    resource_type: StorableText | None = Field(default=None, max_length=64)
    resource_id: StorableText | None = Field(default=None, max_length=64)
    since: IsoDateTime | None = None
    until: IsoDateTime | None = None


@dataclass(frozen=True)
class ChainReport:
    checked: int
    first_broken: int | None = None
    # The last record a retention purge removed; the chain starts from its seal.
    anchor_sequence: int = 0

    @property
    def intact(self) -> bool:
        return self.first_broken is None


def chain_anchor(records: Sequence[SealedEntry]) -> tuple[int, str]:
    """Where the stored chain starts: after the records the latest purge removed.

    The purge record is sealed like any other, so its anchor cannot be forged; removing
    older records by other means leaves a first record that does not fit the anchor.
    """
    for record in reversed(records):
        if record.entry.action == PURGE:
            return int(record.entry.detail["anchor_sequence"]), str(
                record.entry.detail["anchor_seal"]
            )
    return 0, GENESIS


def verify_chain(key: bytes, records: Sequence[SealedEntry]) -> ChainReport:
    """Walk records in sequence order; report the first one whose seal does not hold."""
    anchor_sequence, previous = chain_anchor(records)
    for checked, record in enumerate(records):
        if record.previous != previous or not hmac.compare_digest(
            record.seal, seal(key, previous, record.entry)
        ):
            return ChainReport(checked, record.sequence, anchor_sequence)
        previous = record.seal
    return ChainReport(len(records), None, anchor_sequence)


class BrokenTrailError(Exception):
    def __init__(self, report: ChainReport) -> None:
        super().__init__(f"the audit trail is broken at record {report.first_broken}")
        self.report = report


@dataclass(frozen=True)
class PurgePlan:
    """Records to remove (sequence up to `through`) and the record that says so."""

    through: int
    removed: int
    record: AuditEntry


def plan_purge(key: bytes, records: Sequence[SealedEntry], *, before: datetime) -> PurgePlan:
    """Remove the oldest records, up to the first one not older than `before`.

    Only a prefix of the chain goes, so what stays is still one unbroken chain; a
    broken trail is not purged at all, so the evidence of tampering is kept.
    """
    report = verify_chain(key, records)
    if not report.intact:
        raise BrokenTrailError(report)
    expired = 0
    while expired < len(records) and records[expired].entry.occurred_at < before:
        expired += 1
    if expired:
        anchor_sequence, anchor_seal = records[expired - 1].sequence, records[expired - 1].seal
    else:
        anchor_sequence, anchor_seal = chain_anchor(records)
    record = AuditEntry(
        actor="system",
        action=PURGE,
        resource_type="audit_log",
        detail={
            "before": before.astimezone(UTC).isoformat(),
            "removed": expired,
            "anchor_sequence": anchor_sequence,
            "anchor_seal": anchor_seal,
        },
    )
    return PurgePlan(through=anchor_sequence, removed=expired, record=record)


@dataclass(frozen=True)
class PurgeReport:
    removed: int
    before: datetime


class AuditLog(Protocol):
    async def recent(self, *, limit: int) -> list[SealedEntry]: ...

    async def query(
        self, query: AuditQuery, *, before_sequence: int | None, limit: int
    ) -> list[SealedEntry]:
        """Matching records, newest first, older than `before_sequence` when given."""
        ...

    async def verify(self) -> ChainReport: ...

    async def purge(self, *, before: datetime) -> PurgeReport:
        """Remove the records older than `before` and append a record of the purge."""
        ...
