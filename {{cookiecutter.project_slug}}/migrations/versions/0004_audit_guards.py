"""The audit trail's guards, against what the service's own role could do.

Revision ID: 0004
Revises: 0003

- A record is inserted unsealed, and at the time it is inserted: one inserted with its
  position, link and seal filled took a place in the chain that the sealer then built
  on, and one could be dated years back (or at infinity).
- audit_seal() only extends the chain: each position the next after the head, each link
  the seal before it, each seal 64 hex digits. Given any, it could stop all sealing.
- Both functions that run as the table's owner name their search path, temporary
  objects last: with `FROM CURRENT` the caller's temporary tables came first, and a
  temporary `audit_log` with a trigger ran the caller's code as the owner.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# How far a record's time may be from the database's when it is inserted: the clocks of
# the service and of the database may differ a little, and a transaction takes a while.
INSERT_CLOCK_SKEW = "5 minutes"


def upgrade() -> None:
    # As in 0002, with the insert of a record of now, unsealed, allowed.
    op.execute(
        """
        CREATE OR REPLACE FUNCTION audit_log_guard() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            sealing constant text[] := '{position,previous,seal}';
        BEGIN
            IF TG_OP = 'INSERT' THEN
                IF NEW.position IS NULL AND NEW.previous IS NULL AND NEW.seal IS NULL
                    AND NEW.occurred_at BETWEEN now() - interval 'SKEW'
                        AND now() + interval 'SKEW' THEN
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
        """.replace("SKEW", INSERT_CLOCK_SKEW)
    )
    op.execute(
        "CREATE TRIGGER audit_log_inserted_unsealed BEFORE INSERT ON audit_log "
        "FOR EACH ROW EXECUTE FUNCTION audit_log_guard()"
    )
    op.execute(
        """
        CREATE OR REPLACE FUNCTION audit_seal(
            p_sequences bigint[], p_positions bigint[], p_previous text[], p_seals text[]
        ) RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER AS $$
        DECLARE
            head_position bigint := 0;
            head_seal text := repeat('0', 64);
            sealed bigint;
        BEGIN
            SELECT position, seal INTO head_position, head_seal FROM audit_log
                WHERE position IS NOT NULL ORDER BY position DESC LIMIT 1;
            IF NOT FOUND THEN
                head_position := 0;
                head_seal := repeat('0', 64);
            END IF;
            IF cardinality(p_sequences) IS DISTINCT FROM cardinality(p_positions)
                OR cardinality(p_sequences) IS DISTINCT FROM cardinality(p_previous)
                OR cardinality(p_sequences) IS DISTINCT FROM cardinality(p_seals)
                OR EXISTS (
                    SELECT 1
                    FROM unnest(p_positions, p_previous, p_seals) WITH ORDINALITY
                        AS s(pos, prev, mac, n)
                    WHERE pos IS DISTINCT FROM head_position + n
                        OR mac IS NULL OR mac !~ '^[0-9a-f]{64}$'
                        OR prev IS DISTINCT FROM
                            CASE WHEN n = 1 THEN head_seal ELSE p_seals[n - 1] END
                ) THEN
                RAISE EXCEPTION
                    'audit_seal refused: the seals do not extend the chain from position %',
                    head_position;
            END IF;
            WITH done AS (
                UPDATE audit_log AS a
                SET position = s.pos, previous = s.prev, seal = s.mac
                FROM unnest(p_sequences, p_positions, p_previous, p_seals)
                    AS s(seq, pos, prev, mac)
                WHERE a.sequence = s.seq AND a.position IS NULL
                RETURNING 1
            )
            SELECT count(*) INTO sealed FROM done;
            RETURN sealed;
        END;
        $$
        """
    )
    # The schema the tables are in, then temporary objects, never first.
    op.execute(
        """
        DO $$
        BEGIN
            EXECUTE format(
                'ALTER FUNCTION audit_seal(bigint[], bigint[], text[], text[]) '
                'SET search_path = pg_catalog, %I, pg_temp', current_schema());
            EXECUTE format(
                'ALTER FUNCTION audit_purge(timestamptz, bigint) '
                'SET search_path = pg_catalog, %I, pg_temp', current_schema());
        END;
        $$
        """
    )


def downgrade() -> None:
    # The functions stay as they are: they take everything the service writes.
    op.execute("DROP TRIGGER audit_log_inserted_unsealed ON audit_log")
