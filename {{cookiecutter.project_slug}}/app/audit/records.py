"""Audit records and their chain.

A record is appended unsealed, in the transaction of the change it describes, with
no lock. One sealer at a time then gives the committed records their place in the
chain (`position`: 1, 2, 3, ... without gaps) and seals each with an HMAC over its
place, its content and the previous record's seal. Editing or reordering a sealed
record breaks the chain, and without the key nobody can re-seal what follows.

Removing records is caught by continuity and by checkpoints: a signed statement of
the chain's head (its position and seal) kept outside the database. `verify` checks
that positions run without a gap from the purge anchor to the head, that every
checkpoint's head is still there with the same seal, and that no record has waited
to be sealed longer than the window.
"""

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.audit.events import AccountErased, AuditTrailRead, ErasureRefused, PersonalDataExported
from app.core.context import current_request
from app.core.types import IsoDateTime, StorableInt, StorableText
from app.events.schemas import (
    AdminAccessDenied,
    DomainEvent,
    ItemAccessDenied,
    ItemCreated,
    ItemDeleted,
    ItemsReadByAdmin,
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


def seal(key: bytes, previous: str, position: int, entry: AuditEntry) -> str:
    message = f"{previous}\n{position}\n".encode() + entry.canonical()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


# Audited events: the action recorded, the kind of resource it touched, the outcome.
AUDITED: dict[type[DomainEvent], tuple[str, str, Outcome]] = {
    ItemCreated: ("item.create", "item", "success"),
    ItemUpdated: ("item.update", "item", "success"),
    ItemDeleted: ("item.delete", "item", "success"),
    UserRegistered: ("user.register", "user", "success"),
    PasswordChanged: ("user.password_change", "user", "success"),
    UsersListed: ("user.list", "user", "success"),
    ItemsReadByAdmin: ("admin.read_items", "user", "success"),
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


# Fields of an event the record keeps besides its id: what a record alone must tell.
RECORDED_FIELDS: dict[type[DomainEvent], tuple[str, ...]] = {
    RoleChanged: ("role",),
    ItemsReadByAdmin: ("count",),
    UsersListed: ("count",),
    AuditTrailRead: ("count",),
    AccountErased: ("items_deleted",),
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
        detail={
            "event_id": str(event.id),
            **{name: getattr(event, name) for name in RECORDED_FIELDS.get(type(event), ())},
        },
    )


def entries_for(events: Sequence[DomainEvent]) -> list[AuditEntry]:
    return [entry for event in events if (entry := entry_for(event)) is not None]


@dataclass(frozen=True)
class SealedEntry:
    """A stored record: appended unsealed, then given its place in the chain and its seal."""

    # Order of appending, from the database; it can skip numbers (a rolled-back append).
    sequence: int
    entry: AuditEntry
    # Place in the chain, without gaps; None until the sealer reaches the record.
    position: int | None = None
    previous: str | None = None
    seal: str | None = None
    # The fields that could not be read back as a record's (a value of another type or
    # outside its choices, written behind the service's back); None for a sound record.
    unreadable: str | None = None


def stored_record(
    sequence: object,
    entry: object,
    *,
    position: object,
    previous: object,
    seal: object,
    from_attributes: bool = False,
) -> SealedEntry:
    """A record read back from the database, whatever was written there: one that is not
    a record's shape is kept as unreadable (its fields named, never its values), for
    verify to report and the sealer to leave, instead of failing whoever reads it."""
    wrong: list[str] = []
    try:
        read = AuditEntry.model_validate(entry, from_attributes=from_attributes)
    except ValidationError as exc:
        wrong += sorted({".".join(map(str, error["loc"])) or "record" for error in exc.errors()})
        read = AuditEntry(
            occurred_at=datetime(1970, 1, 1, tzinfo=UTC),
            actor="unknown",
            action="unreadable",
            resource_type="unknown",
            outcome="failed",
        )

    def field(name: str, value: object, kind: type) -> Any:
        # bool is an int to Python, not to a record.
        if value is None or (isinstance(value, kind) and not isinstance(value, bool)):
            return value
        wrong.append(name)
        return None

    checked = (
        field("sequence", sequence, int),
        field("position", position, int),
        field("previous", previous, str),
        field("seal", seal, str),
    )
    number, place, before, sealed_with = checked
    return SealedEntry(
        sequence=number or 0,
        entry=read,
        position=place,
        previous=before,
        seal=sealed_with,
        unreadable=", ".join(wrong) or None,
    )


class AuditRecord(AuditEntry):
    """A stored record as the API shows it: the entry, its place in the chain, its seal."""

    sequence: int
    position: int | None = None
    seal: str | None = None

    @classmethod
    def of(cls, record: SealedEntry) -> "AuditRecord":
        return cls(
            **record.entry.model_dump(),
            sequence=record.sequence,
            position=record.position,
            seal=record.seal,
        )


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
class Head:
    """The newest sealed record: its position and seal (0 and GENESIS for an empty chain)."""

    position: int = 0
    seal: str = GENESIS


def seal_batch(key: bytes, head: Head, pending: Sequence[SealedEntry]) -> list[SealedEntry]:
    """Chain `pending`, in the order given, after `head`."""
    sealed: list[SealedEntry] = []
    position, previous = head.position, head.seal
    for record in pending:
        if record.unreadable:
            continue  # not vouched for: left unsealed, and verify names it
        position += 1
        current = seal(key, previous, position, record.entry)
        sealed.append(replace(record, position=position, previous=previous, seal=current))
        previous = current
    return sealed


def _ms(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


class Checkpoint(BaseModel):
    """A signed statement of the chain's head, kept outside the database.

    While one is kept, removing the head (or everything) is caught: `verify` finds the
    checkpoint's position missing or holding another seal.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Bounded as stored: a checkpoint is read back from Redis or pasted in by an operator.
    position: StorableInt = Field(ge=0)
    seal: str = Field(min_length=64, max_length=64)
    # Positions up to this one were removed by a retention purge.
    purged_through: StorableInt = Field(default=0, ge=0)
    issued_at: datetime
    signature: str = ""

    def _message(self) -> str:
        fields = (self.position, self.seal, self.purged_through, _ms(self.issued_at))
        return "audit-checkpoint\n" + "\n".join(map(str, fields))

    @classmethod
    def issue(cls, key: bytes, head: Head, *, purged_through: int) -> "Checkpoint":
        unsigned = cls(
            position=head.position,
            seal=head.seal,
            purged_through=purged_through,
            issued_at=_now_ms(),
        )
        signature = hmac.new(key, unsigned._message().encode(), hashlib.sha256).hexdigest()
        return unsigned.model_copy(update={"signature": signature})

    def authentic(self, key: bytes) -> bool:
        expected = hmac.new(key, self._message().encode(), hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, self.signature)

    def token(self) -> str:
        """One opaque word (base64url JSON): survives log masking and copy-paste."""
        return base64.urlsafe_b64encode(self.model_dump_json().encode()).decode()

    @classmethod
    def parse(cls, text: str) -> "Checkpoint":
        """A checkpoint from its JSON or its token."""
        text = text.strip()
        if text.startswith("{"):
            return cls.model_validate_json(text)
        try:
            return cls.model_validate_json(base64.urlsafe_b64decode(text.encode()))
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise ValueError("not a checkpoint: neither JSON nor a checkpoint token") from exc


@dataclass(frozen=True)
class ChainReport:
    # Sealed records whose seal and link hold.
    checked: int
    # The sequence of the first record found broken (edited, reordered, or after a gap).
    first_broken: int | None = None
    # The last position a retention purge removed; the chain starts from its seal.
    anchor_position: int = 0
    head: Head = Head()
    # Records not sealed yet (normally only those appended in the last second or two).
    unsealed: int = 0
    # One line per problem found; empty when the trail is intact.
    problems: tuple[str, ...] = ()

    @property
    def intact(self) -> bool:
        return not self.problems


def chain_anchor(sealed: Sequence[SealedEntry]) -> tuple[int, str]:
    """Where the stored chain starts: after the positions the latest purge removed.

    The purge record is sealed like any other (by the purge itself, never by the
    sealer), so its anchor cannot be forged; removing older records by other means
    leaves a first position that does not follow the anchor.
    """
    for record in reversed(sealed):
        if record.entry.action == PURGE:
            return int(record.entry.detail["anchor_position"]), str(
                record.entry.detail["anchor_seal"]
            )
    return 0, GENESIS


def _span(first: int, last: int) -> str:
    return f"position {first}" if first == last else f"positions {first} to {last}"


def verify_chain(
    key: bytes,
    records: Sequence[SealedEntry],
    *,
    checkpoints: Sequence[Checkpoint] = (),
    now: datetime | None = None,
    window: timedelta | None = None,
) -> ChainReport:
    """Check the sealed records in position order, the checkpoints, and the unsealed ones.

    Unsealed records count as a problem only when older than `window` (when given).
    """
    sealed = sorted((r for r in records if r.position is not None), key=lambda r: r.position or 0)
    pending = sorted((r for r in records if r.position is None), key=lambda r: r.sequence)
    anchor_position, previous = chain_anchor(sealed)
    problems: list[str] = []
    broken: list[int] = []
    expected, checked = anchor_position + 1, 0
    seals: dict[int, str] = {}
    for record in sealed:
        position = record.position or 0
        if position < expected:
            problems.append(
                f"record {record.sequence} at position {position} should have been removed "
                f"by the purge through position {anchor_position}"
            )
            broken.append(record.sequence)
            continue
        if position > expected:
            problems.append(
                f"missing: {_span(expected, position - 1)} (before record {record.sequence})"
            )
            broken.append(record.sequence)
        elif record.previous != previous:
            problems.append(
                f"record {record.sequence} at position {position} does not follow the record "
                "before it: a record was replaced or reordered"
            )
            broken.append(record.sequence)
        if record.unreadable:
            problems.append(
                f"record {record.sequence} at position {position} was altered: "
                f"it cannot be read ({record.unreadable})"
            )
            broken.append(record.sequence)
        elif hmac.compare_digest(
            record.seal or "", seal(key, record.previous or "", position, record.entry)
        ):
            checked += 1
        else:
            problems.append(
                f"record {record.sequence} at position {position} was altered: "
                "its seal does not match its content"
            )
            broken.append(record.sequence)
        previous, expected = record.seal or "", position + 1
        seals[position] = previous
    head = Head(expected - 1, previous)
    for checkpoint in checkpoints:
        issued = _ms(checkpoint.issued_at)
        if not checkpoint.authentic(key):
            problems.append(f"checkpoint of {issued} is not signed with this AUDIT_SECRET_KEY")
        elif checkpoint.position <= anchor_position:
            continue  # purged since: nothing left to compare
        elif checkpoint.position > head.position:
            first = max(head.position, checkpoint.purged_through) + 1
            problems.append(
                f"missing: {_span(first, checkpoint.position)} "
                f"(the checkpoint of {issued} has the chain reach position {checkpoint.position})"
            )
        elif seals.get(checkpoint.position, checkpoint.seal) != checkpoint.seal:
            problems.append(
                f"record at position {checkpoint.position} is not the one the checkpoint "
                f"of {issued} sealed"
            )
    for record in pending:
        if record.unreadable:
            problems.append(
                f"record {record.sequence} (unsealed) was altered: "
                f"it cannot be read ({record.unreadable})"
            )
            broken.append(record.sequence)
    pending = [r for r in pending if not r.unreadable]
    if window is not None and pending:
        cut_off = (now or datetime.now(UTC)) - window
        stale = [r for r in pending if r.entry.occurred_at < cut_off]
        if stale:
            problems.append(
                f"unsealed: {len(stale)} records older than {window.total_seconds():g} s, "
                f"the oldest record {stale[0].sequence} of {_ms(stale[0].entry.occurred_at)} "
                "(is the sealer running?)"
            )
    return ChainReport(
        checked=checked,
        first_broken=min(broken) if broken else None,
        anchor_position=anchor_position,
        head=head,
        unsealed=len(pending),
        problems=tuple(problems),
    )


class BrokenTrailError(Exception):
    def __init__(self, report: ChainReport) -> None:
        super().__init__(
            f"the audit trail is broken at record {report.first_broken}: "
            + "; ".join(report.problems)
        )
        self.report = report


class ChainTruncatedError(Exception):
    """The stored chain ends before a checkpoint's head: records were removed."""


@dataclass(frozen=True)
class PurgePlan:
    """Records to remove (position up to `through`) and the record that says so."""

    through: int
    removed: int
    record: AuditEntry


def plan_purge(key: bytes, sealed: Sequence[SealedEntry], *, before: datetime) -> PurgePlan:
    """Remove the oldest records, up to the first one not older than `before`.

    Only a prefix of the chain goes, so what stays is still one unbroken chain; a
    broken trail is not purged at all, so the evidence of tampering is kept.
    """
    report = verify_chain(key, sealed)
    if not report.intact:
        raise BrokenTrailError(report)
    chain = sorted(sealed, key=lambda r: r.position or 0)
    expired = 0
    while expired < len(chain) and chain[expired].entry.occurred_at < before:
        expired += 1
    if expired:
        anchor_position, anchor_seal = chain[expired - 1].position or 0, chain[expired - 1].seal
    else:
        anchor_position, anchor_seal = chain_anchor(chain)
    record = AuditEntry(
        actor="system",
        action=PURGE,
        resource_type="audit_log",
        detail={
            "before": before.astimezone(UTC).isoformat(),
            "removed": expired,
            "anchor_position": anchor_position,
            "anchor_seal": anchor_seal,
        },
    )
    return PurgePlan(through=anchor_position, removed=expired, record=record)


class PurgeRefusedError(Exception):
    """The database refused the purge (its own legal minimum, or a record too young)."""


@dataclass(frozen=True)
class PurgeReport:
    removed: int
    before: datetime
    # The chain after the purge, for the checkpoint issued at purge time.
    head: Head = Head()
    purged_through: int = 0


@dataclass(frozen=True)
class SealRound:
    """What one sealing round did, and the chain it left."""

    sealed: int
    head: Head
    purged_through: int


class AuditLog(Protocol):
    async def recent(self, *, limit: int) -> list[SealedEntry]: ...

    async def query(
        self,
        query: AuditQuery,
        *,
        before_sequence: int | None,
        limit: int,
        after_sequence: int | None = None,
        oldest_first: bool = False,
        resource_ids: Sequence[str] = (),
    ) -> list[SealedEntry]:
        """Matching records, newest first (or oldest first), older than `before_sequence`
        and newer than `after_sequence` when given, and about one of `resource_ids` when
        any is given."""
        ...

    async def verify(
        self, *, checkpoints: Sequence[Checkpoint] = (), window: timedelta | None = None
    ) -> ChainReport: ...

    async def seal_pending(self, *, limit: int, expect: Head | None = None) -> SealRound | None:
        """Seal up to `limit` committed records; None while another sealer holds the turn.

        Raises ChainTruncatedError, sealing nothing, when the stored chain does not
        reach `expect` (the head last sealed or checkpointed) with the same seal.
        """
        ...

    async def purge(self, *, before: datetime) -> PurgeReport:
        """Remove the records older than `before` and append a record of the purge."""
        ...

    async def oldest_unsealed(self) -> datetime | None:
        """When the oldest record not sealed yet was appended; None when all are sealed."""
        ...
