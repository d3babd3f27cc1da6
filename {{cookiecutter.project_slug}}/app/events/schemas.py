"""Domain events: what happened, as typed messages other services can rely on."""

from datetime import UTC, datetime
from typing import ClassVar
from uuid import UUID, uuid4

from pydantic import BaseModel, ConfigDict, Field

from app.core.context import current_request


def _correlation_id() -> str | None:
    context = current_request()
    return context.request_id if context else None


def _actor_id() -> str | None:
    context = current_request()
    return context.actor_id if context else None


class DomainEvent(BaseModel):
    # The schema describes the JSON sent, where every field is present (defaults too).
    model_config = ConfigDict(
        frozen=True,
        json_schema_mode_override="serialization",
        json_schema_serialization_defaults_required=True,
    )

    # Names the event on the broker (routing key or topic); stable across versions.
    event_type: ClassVar[str]

    id: UUID = Field(default_factory=uuid4)
    version: int = 1
    occurred_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    correlation_id: str | None = Field(default_factory=_correlation_id)
    # Who caused it: the authenticated user's id, None for anonymous or system actions.
    actor_id: str | None = Field(default_factory=_actor_id)

    @property
    def aggregate_id(self) -> str:
        """Events of one aggregate share a key, so the broker keeps them in order."""
        return str(self.id)


class ItemEvent(DomainEvent):
    item_id: UUID

    @property
    def aggregate_id(self) -> str:
        return str(self.item_id)


class ItemCreated(ItemEvent):
    """Ids only: consumers read what they need by id, so an event keeps no copy of what
    a person wrote (an item's name) after they erase it."""

    event_type: ClassVar[str] = "item.created"

    owner_id: UUID


class ItemUpdated(ItemEvent):
    event_type: ClassVar[str] = "item.updated"

    changed: list[str]


class ItemDeleted(ItemEvent):
    event_type: ClassVar[str] = "item.deleted"


class ItemAccessDenied(ItemEvent):
    """Someone other than the owner or an admin tried to see or change the item."""

    event_type: ClassVar[str] = "item.access_denied"


class UserEvent(DomainEvent):
    user_id: UUID

    @property
    def aggregate_id(self) -> str:
        return str(self.user_id)


class UserRegistered(UserEvent):
    event_type: ClassVar[str] = "user.registered"


class PasswordChanged(UserEvent):
    event_type: ClassVar[str] = "user.password_changed"


class PasswordChangeRefused(UserEvent):
    """A password change with a wrong current password."""

    event_type: ClassVar[str] = "user.password_change_refused"


class RoleChanged(UserEvent):
    """The user's role was set; every session of theirs ended with it."""

    event_type: ClassVar[str] = "user.role_changed"

    role: str


class AdminAccessDenied(UserEvent):
    """A user who is not an administrator called an administrators' operation."""

    event_type: ClassVar[str] = "user.admin_access_denied"


class SessionEvent(DomainEvent):
    """Security events of sign-in sessions, for monitoring and records of who did what."""

    # None when a login names no known account.
    user_id: UUID | None

    @property
    def aggregate_id(self) -> str:
        return str(self.user_id) if self.user_id else "anonymous"


class LoginSucceeded(SessionEvent):
    event_type: ClassVar[str] = "session.login_succeeded"


class LoginFailed(SessionEvent):
    event_type: ClassVar[str] = "session.login_failed"


class LoggedOut(SessionEvent):
    event_type: ClassVar[str] = "session.logged_out"


class TokenRefreshed(SessionEvent):
    event_type: ClassVar[str] = "session.token_refreshed"


class RefreshReuseDetected(SessionEvent):
    event_type: ClassVar[str] = "session.refresh_reuse_detected"


class TokenRejected(SessionEvent):
    """A request carried an invalid or expired token, or one of an ended session."""

    event_type: ClassVar[str] = "session.token_rejected"


class LoginRateLimited(SessionEvent):
    """A login refused by a rate limit, before any password was checked."""

    event_type: ClassVar[str] = "session.login_rate_limited"


class ItemsReadByAdmin(UserEvent):
    """An administrator read items of another user (by id, in a list, or by `node`): one
    event per owner and request, so that whose data was read, and by whom, is kept."""

    event_type: ClassVar[str] = "user.items_read_by_admin"

    count: int


class UsersListed(DomainEvent):
    """An administrator read other users' personal data."""

    event_type: ClassVar[str] = "user.listed"

    count: int


# Every event type the service publishes, by its name on the broker.
EVENT_TYPES: dict[str, type[DomainEvent]] = {
    cls.event_type: cls
    for cls in (
        ItemCreated,
        ItemUpdated,
        ItemDeleted,
        ItemAccessDenied,
        UserRegistered,
        PasswordChanged,
        PasswordChangeRefused,
        RoleChanged,
        AdminAccessDenied,
        ItemsReadByAdmin,
        LoginSucceeded,
        LoginFailed,
        LoggedOut,
        TokenRefreshed,
        RefreshReuseDetected,
        TokenRejected,
        LoginRateLimited,
        UsersListed,
    )
}


# Fields that hold personal data in events this service wrote before its events carried
# ids only, or that a project's own events may add: erasing an account removes them from
# its events still waiting in the outbox (the rest of those events is still delivered).
PERSONAL_FIELDS = frozenset({"name", "description", "email"})


class Envelope(BaseModel):
    """An event as stored in the outbox and sent to the broker: the JSON is kept as
    written, so what is published is exactly what was committed."""

    model_config = ConfigDict(frozen=True)

    event_id: UUID
    event_type: str
    aggregate_id: str
    correlation_id: str | None
    payload: str
    # The W3C trace context of the span that wrote the event (app/observability/tracing.py):
    # the relay publishes under it, so the consumer continues the request's trace.
    traceparent: str | None = None

    @classmethod
    def of(cls, event: DomainEvent, *, traceparent: str | None = None) -> "Envelope":
        return cls(
            event_id=event.id,
            event_type=event.event_type,
            aggregate_id=event.aggregate_id,
            correlation_id=event.correlation_id,
            payload=event.model_dump_json(),
            traceparent=traceparent,
        )
