"""Tables. Alembic compares these with the migrations (`alembic check`)."""

import uuid
from datetime import datetime
from typing import cast

from sqlalchemy import (
    BigInteger,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from uuid_utils.compat import uuid7

from app.items.schemas import NAME_MAX


class Base(DeclarativeBase):
    # Named constraints make migrations reproducible and reviewable.
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(column_0_label)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


def table_of(model: type[Base]) -> Table:
    """A model's table, for SQLAlchemy Core statements: rows that are only written, or
    only read into schemas, need no ORM objects, identity map or flush."""
    return cast(Table, model.__table__)


class UserRow(Base):
    __tablename__ = "users"

    # UUIDv7 ids grow with time, so id order is creation order.
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid7)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(Text)
    previous_password_hashes: Mapped[list[str]] = mapped_column(JSONB, default=list)
    role: Mapped[str] = mapped_column(String(16), default="user")
    # Raised by every change that must end the user's sessions (see app/auth/tokens.py).
    token_version: Mapped[int] = mapped_column(default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ItemRow(Base):
    __tablename__ = "items"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid7)
    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    name: Mapped[str] = mapped_column(String(NAME_MAX))
    description: Mapped[str] = mapped_column(Text, default="")
    price_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    status: Mapped[str] = mapped_column(String(16), default="draft")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )

    # One index per list query, always ending with the id that breaks ties for the
    # cursor. Users list their own items (owner first: each sort order, and the status
    # filter with the default order; by name, the unique constraint serves); admins list
    # everyone's (each sort order, and the status filter).
    __table_args__ = (
        UniqueConstraint("owner_id", "name", name="uq_items_owner_id_name"),
        Index("ix_items_owner_id_created_at_id", "owner_id", "created_at", "id"),
        Index("ix_items_owner_id_price_cents_id", "owner_id", "price_cents", "id"),
        Index("ix_items_owner_id_status_created_at_id", "owner_id", "status", "created_at", "id"),
        Index("ix_items_created_at_id", "created_at", "id"),
        Index("ix_items_status_created_at_id", "status", "created_at", "id"),
        Index("ix_items_name_id", "name", "id"),
        Index("ix_items_price_cents_id", "price_cents", "id"),
    )


class OutboxRow(Base):
    """Events waiting to be published, written in the transaction that caused them."""

    __tablename__ = "outbox"

    sequence: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    event_id: Mapped[uuid.UUID] = mapped_column(unique=True)
    event_type: Mapped[str] = mapped_column(String(100))
    aggregate_id: Mapped[str] = mapped_column(String(64))
    correlation_id: Mapped[str | None] = mapped_column(String(64))
    # The JSON exactly as it will be published.
    payload: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The W3C trace context the event was written in (None while tracing is off).
    traceparent: Mapped[str | None] = mapped_column(String(64))

    # The relay's query: pending rows (sent_at IS NULL) in sequence order.
    __table_args__ = (Index("ix_outbox_sent_at_sequence", "sent_at", "sequence"),)


class LeaseRow(Base):
    """Who runs a one-at-a-time background job (the outbox relay), until when, and how
    many times it changed hands (the fencing counter its writes check)."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner: Mapped[str] = mapped_column(String(64))
    until: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    fence: Mapped[int] = mapped_column(BigInteger)
