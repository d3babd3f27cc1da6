"""Events of the data-subject rights and of reading the audit trail.

They are audited like every other event and published like them: a service that
keeps its own copy of personal data learns from `user.erased` to erase it too.
"""

from typing import ClassVar

from app.events.schemas import DomainEvent, UserEvent


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


AUDIT_EVENT_TYPES: dict[str, type[DomainEvent]] = {
    cls.event_type: cls
    for cls in (PersonalDataExported, AccountErased, ErasureRefused, AuditTrailRead)
}
