"""The audit trail's guards, against what the service's own role could do.

Revision ID: 0004
Revises: 0003

- A record is inserted unsealed, and at the time it is inserted: one inserted with its
  position, link and seal filled took a place in the chain that the sealer then built
  on, and one could be dated years back (or at infinity).
- audit_seal() only extends the chain: each position the next after the head, each link
  the seal before it, each seal 64 hex digits, each record there to seal. Given any, it
  could stop all sealing, or leave a gap.
- The functions name their search path, the catalog first and temporary objects last,
  and the built-ins they call by schema: with `FROM CURRENT` the caller's temporary
  tables came first, and a temporary `audit_log` with a trigger ran the caller's code
  as the owner. The insert's time is the clock's, not the transaction's start.
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
                    AND NEW.occurred_at BETWEEN pg_catalog.clock_timestamp() - interval 'SKEW'
                        AND pg_catalog.clock_timestamp() + interval 'SKEW' THEN
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
                    AND OLD.occurred_at < pg_catalog.now() - audit_legal_minimum() THEN
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
            head_seal text := pg_catalog.repeat('0', 64);
            given bigint := pg_catalog.cardinality(p_sequences);
            sealed bigint;
        BEGIN
            SELECT position, seal INTO head_position, head_seal FROM audit_log
                WHERE position IS NOT NULL ORDER BY position DESC LIMIT 1;
            IF NOT FOUND THEN
                head_position := 0;
                head_seal := pg_catalog.repeat('0', 64);
            END IF;
            -- Each record once, each the next place in the chain, each link the seal before
            -- it, in the order given (ordinality: whatever the arrays' bounds).
            IF given IS NULL OR given = 0 THEN
                RETURN 0;
            END IF;
            IF pg_catalog.cardinality(p_positions) IS DISTINCT FROM given
                OR pg_catalog.cardinality(p_previous) IS DISTINCT FROM given
                OR pg_catalog.cardinality(p_seals) IS DISTINCT FROM given
                OR EXISTS (
                    SELECT 1
                    FROM ROWS FROM (
                        pg_catalog.unnest(p_sequences), pg_catalog.unnest(p_positions),
                        pg_catalog.unnest(p_previous), pg_catalog.unnest(p_seals)
                    ) WITH ORDINALITY AS s(seq, pos, prev, mac, n)
                    LEFT JOIN pg_catalog.unnest(p_seals) WITH ORDINALITY AS b(mac, n)
                        ON b.n = s.n - 1
                    WHERE seq IS NULL
                        OR pos IS DISTINCT FROM head_position + s.n
                        OR s.mac IS NULL OR s.mac !~ '^[0-9a-f]{64}$'
                        OR prev IS DISTINCT FROM
                            CASE WHEN s.n = 1 THEN head_seal ELSE b.mac END
                ) THEN
                RAISE EXCEPTION
                    'audit_seal refused: the seals do not extend the chain from position %',
                    head_position;
            END IF;
            WITH done AS (
                UPDATE audit_log AS a
                SET position = s.pos, previous = s.prev, seal = s.mac
                FROM ROWS FROM (
                    pg_catalog.unnest(p_sequences), pg_catalog.unnest(p_positions),
                    pg_catalog.unnest(p_previous), pg_catalog.unnest(p_seals)
                ) AS s(seq, pos, prev, mac)
                WHERE a.sequence = s.seq AND a.position IS NULL
                RETURNING 1
            )
            SELECT pg_catalog.count(*) INTO sealed FROM done;
            -- A record not there, sealed already or given twice would leave a gap.
            IF sealed <> given THEN
                RAISE EXCEPTION
                    'audit_seal refused: % of the % records given are not there to seal',
                    given - sealed, given;
            END IF;
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
            EXECUTE format(
                'ALTER FUNCTION audit_log_guard() '
                'SET search_path = pg_catalog, %I, pg_temp', current_schema());
        END;
        $$
        """
    )


def downgrade() -> None:
    # The functions stay as they are: they take everything the service writes.
    op.execute("DROP TRIGGER audit_log_inserted_unsealed ON audit_log")
