"""Audit trail, append-only.

Revision ID: 0002
Revises: 0001

Core tables belong in 0001; this optional migration stays last in the chain.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("sequence", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("resource_type", sa.String(length=64), nullable=False),
        sa.Column("resource_id", sa.String(length=64), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("client_ip", sa.String(length=45), nullable=True),
        sa.Column("user_agent", sa.String(length=256), nullable=True),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.Column("detail", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=True),
        sa.Column("previous", sa.String(length=64), nullable=True),
        sa.Column("seal", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("sequence", name=op.f("pk_audit_log")),
        sa.UniqueConstraint("position", name=op.f("uq_audit_log_position")),
    )
    op.create_index(op.f("ix_audit_log_action"), "audit_log", ["action"])
    op.create_index(op.f("ix_audit_log_actor"), "audit_log", ["actor"])
    op.create_index(op.f("ix_audit_log_occurred_at"), "audit_log", ["occurred_at"])
    op.create_index(op.f("ix_audit_log_resource_id"), "audit_log", ["resource_id"])
    op.create_index(
        "ix_audit_log_unsealed",
        "audit_log",
        ["sequence"],
        postgresql_where=sa.text("position IS NULL"),
    )
    # The shortest retention the law allows, held by the database itself: the purge
    # function refuses a cut-off inside it, whatever the caller says. The table's owner
    # changes it with CREATE OR REPLACE (a new migration).
    op.execute(
        "CREATE FUNCTION audit_legal_minimum() RETURNS interval LANGUAGE sql STABLE "
        "AS $$ SELECT interval '1826 days' $$"
    )
    # Refuses every change to a record but one: filling the seal of an unsealed record.
    # Deleting is refused too, but for a sealed record older than the legal minimum (what
    # audit_purge removes). No session setting opens it: only privileges and this check.
    op.execute(
        """
        CREATE FUNCTION audit_log_guard() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            sealing constant text[] := '{position,previous,seal}';
        BEGIN
            IF TG_OP = 'UPDATE' THEN
                IF OLD.position IS NULL AND NEW.position IS NOT NULL
                    AND NEW.previous IS NOT NULL AND NEW.seal IS NOT NULL
                    AND to_jsonb(OLD) - sealing = to_jsonb(NEW) - sealing THEN
                    RETURN NEW;
                END IF;
            ELSIF TG_OP = 'DELETE' THEN
                IF OLD.position IS NOT NULL
                    AND OLD.occurred_at < now() - audit_legal_minimum() THEN
                    RETURN OLD;
                END IF;
            END IF;
            RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP;
        END;
        $$
        """
    )
    op.execute(
        "CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log "
        "FOR EACH ROW EXECUTE FUNCTION audit_log_guard()"
    )
    op.execute(
        "CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log "
        "FOR EACH STATEMENT EXECUTE FUNCTION audit_log_guard()"
    )
    # The sealer's only write: fill the seal of unsealed records, as the table's owner.
    op.execute(
        """
        CREATE FUNCTION audit_seal(
            p_sequences bigint[], p_positions bigint[], p_previous text[], p_seals text[]
        ) RETURNS bigint LANGUAGE sql SECURITY DEFINER SET search_path FROM CURRENT AS $$
            WITH sealed AS (
                UPDATE audit_log AS a
                SET position = s.pos, previous = s.prev, seal = s.mac
                FROM unnest(p_sequences, p_positions, p_previous, p_seals)
                    AS s(seq, pos, prev, mac)
                WHERE a.sequence = s.seq AND a.position IS NULL
                RETURNING 1
            )
            SELECT count(*) FROM sealed
        $$
        """
    )
    # The retention purge: a prefix of the sealed chain, all older than the cut-off,
    # and the cut-off older than the legal minimum.
    op.execute(
        """
        CREATE FUNCTION audit_purge(p_before timestamptz, p_through bigint)
        RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
        DECLARE
            removed bigint;
        BEGIN
            IF p_before > now() - audit_legal_minimum() THEN
                RAISE EXCEPTION 'audit purge refused: % is inside the legal minimum retention %',
                    p_before, audit_legal_minimum();
            END IF;
            IF EXISTS (
                SELECT 1 FROM audit_log WHERE position <= p_through AND occurred_at >= p_before
            ) THEN
                RAISE EXCEPTION 'audit purge refused: records up to position % are not all '
                    'older than %', p_through, p_before;
            END IF;
            DELETE FROM audit_log WHERE position <= p_through;
            GET DIAGNOSTICS removed = ROW_COUNT;
            RETURN removed;
        END;
        $$
        """
    )
    # Functions are executable by PUBLIC by default: only roles granted it may call these.
    op.execute("REVOKE ALL ON FUNCTION audit_seal(bigint[], bigint[], text[], text[]) FROM PUBLIC")
    op.execute("REVOKE ALL ON FUNCTION audit_purge(timestamptz, bigint) FROM PUBLIC")


def downgrade() -> None:
    op.execute("DROP FUNCTION audit_purge(timestamptz, bigint)")
    op.execute("DROP FUNCTION audit_seal(bigint[], bigint[], text[], text[])")
    op.execute("DROP TRIGGER audit_log_no_truncate ON audit_log")
    op.execute("DROP TRIGGER audit_log_append_only ON audit_log")
    op.execute("DROP FUNCTION audit_log_guard()")
    op.execute("DROP FUNCTION audit_legal_minimum()")
    op.drop_table("audit_log")
