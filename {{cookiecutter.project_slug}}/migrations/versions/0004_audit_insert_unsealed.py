"""Audit records are inserted unsealed: only audit_seal() gives one its place.

Revision ID: 0004
Revises: 0003

The service's role inserts records. One inserted with its position, link and seal
already filled took a place in the chain that the sealer then built on, and with a
position far ahead it looked like deleted records. The guard refuses that too.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # As in 0002, with the insert of an unsealed record allowed.
    op.execute(
        """
        CREATE OR REPLACE FUNCTION audit_log_guard() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            sealing constant text[] := '{position,previous,seal}';
        BEGIN
            IF TG_OP = 'INSERT' THEN
                IF NEW.position IS NULL AND NEW.previous IS NULL AND NEW.seal IS NULL THEN
                    RETURN NEW;
                END IF;
            ELSIF TG_OP = 'UPDATE' THEN
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
        "CREATE TRIGGER audit_log_inserted_unsealed BEFORE INSERT ON audit_log "
        "FOR EACH ROW EXECUTE FUNCTION audit_log_guard()"
    )


def downgrade() -> None:
    # The function's INSERT branch is reached from this trigger only.
    op.execute("DROP TRIGGER audit_log_inserted_unsealed ON audit_log")
