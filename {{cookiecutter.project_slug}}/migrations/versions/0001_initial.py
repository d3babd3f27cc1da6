"""Initial schema: users, their items, the event outbox and its relay's lease.

Revision ID: 0001
Revises:
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column(
            "previous_password_hashes", postgresql.JSONB(astext_type=sa.Text()), nullable=False
        ),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("token_version", sa.Integer(), server_default="0", nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("email", name=op.f("uq_users_email")),
    )
    op.create_table(
        "items",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("price_cents", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(["owner_id"], ["users.id"], name=op.f("fk_items_owner_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_items")),
        sa.UniqueConstraint("owner_id", "name", name="uq_items_owner_id_name"),
    )
    op.create_index("ix_items_created_at_id", "items", ["created_at", "id"])
    op.create_index("ix_items_name_id", "items", ["name", "id"])
    op.create_index("ix_items_owner_id_created_at_id", "items", ["owner_id", "created_at", "id"])
    op.create_index("ix_items_owner_id_price_cents_id", "items", ["owner_id", "price_cents", "id"])
    op.create_index(
        "ix_items_owner_id_status_created_at_id",
        "items",
        ["owner_id", "status", "created_at", "id"],
    )
    op.create_index("ix_items_price_cents_id", "items", ["price_cents", "id"])
    op.create_index("ix_items_status_created_at_id", "items", ["status", "created_at", "id"])

    op.create_table(
        "outbox",
        sa.Column("sequence", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("event_type", sa.String(length=100), nullable=False),
        sa.Column("aggregate_id", sa.String(length=64), nullable=False),
        sa.Column("correlation_id", sa.String(length=64), nullable=True),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("sequence", name=op.f("pk_outbox")),
        sa.UniqueConstraint("event_id", name=op.f("uq_outbox_event_id")),
    )
    op.create_index("ix_outbox_sent_at_sequence", "outbox", ["sent_at", "sequence"])

    op.create_table(
        "leases",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("owner", sa.String(length=64), nullable=False),
        sa.Column("until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("fence", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_leases")),
    )


def downgrade() -> None:
    op.drop_table("leases")
    op.drop_index("ix_outbox_sent_at_sequence", table_name="outbox")
    op.drop_table("outbox")
    op.drop_index("ix_items_status_created_at_id", table_name="items")
    op.drop_index("ix_items_price_cents_id", table_name="items")
    op.drop_index("ix_items_owner_id_created_at_id", table_name="items")
    op.drop_index("ix_items_name_id", table_name="items")
    op.drop_index("ix_items_created_at_id", table_name="items")
    op.drop_table("items")
    op.drop_table("users")
