"""Events of the data-subject rights and of reading the audit trail.

They are audited like every other event and published like them: a service that
keeps its own copy of personal data learns from `user.erased` to erase it too.
"""

from datetime import datetime
from typing import TYPE_CHECKING, ClassVar

from app.events.schemas import DomainEvent, UserEvent

if TYPE_CHECKING:
    from app.audit.records import Checkpoint


class PersonalDataExported(UserEvent):
    event_type: ClassVar[str] = "user.data_exported"


class AccountErased(UserEvent):
    event_type: ClassVar[str] = "user.erased"

    items_deleted: int


class ErasureRefused(UserEvent):
    """An erasure asked with a wrong password."""

    event_type: ClassVar[str] = "user.erase_refused"


class AuditTrailRead(DomainEvent):
    """An administrator read the audit trail, which holds other users' personal data."""

    event_type: ClassVar[str] = "audit.read"

    count: int


class AuditCheckpointed(DomainEvent):
    """A signed checkpoint of the audit chain's head: keep these outside the database.

    `python -m app.audit verify --checkpoint TOKEN` checks the table against one;
    `token` is the whole checkpoint in one word.
    """

    event_type: ClassVar[str] = "audit.checkpoint"

    position: int
    seal: str
    purged_through: int
    issued_at: datetime
    signature: str
    token: str

    @classmethod
    def of(cls, checkpoint: "Checkpoint") -> "AuditCheckpointed":
        return cls(**checkpoint.model_dump(), token=checkpoint.token())


AUDIT_EVENT_TYPES: dict[str, type[DomainEvent]] = {
    cls.event_type: cls
    for cls in (
        PersonalDataExported,
        AccountErased,
        ErasureRefused,
        AuditTrailRead,
        AuditCheckpointed,
    )
}
