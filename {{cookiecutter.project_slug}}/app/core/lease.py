"""Leases: one instance at a time does a background job (the outbox relay), fenced.

A lease is held by an owner token (one per process) until an expiry, renewed by every
round of its job, and carries a fencing counter that goes up whenever it changes hands.
The job's writes check the lease as they write (see the database adapter's lease.py),
so a holder whose lease lapsed, for instance after a pause longer than the lease, can
no longer write once another instance took over.

A killed holder is replaced within the lease's time plus one poll of the others.
"""

import secrets

from app.core.errors import ServiceUnavailableError


class LeaseLostError(ServiceUnavailableError):
    """The write was refused: the lease lapsed, or another instance holds it now."""

    def __init__(self, name: str) -> None:
        super().__init__(f"{name} lease")
        self.name = name


def owner_token() -> str:
    """A new owner: a lease is this process's only while it carries this token."""
    return secrets.token_hex(8)
