"""The outbox keeps the W3C trace context each event was written in.

Revision ID: 0003
Revises: {% if cookiecutter.compliance_logging %}0002{% else %}0001{% endif %}

Nullable: events written before, or while tracing is off, have none.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
{%- if cookiecutter.compliance_logging %}
down_revision: str | None = "0002"
{%- else %}
down_revision: str | None = "0001"
{%- endif %}
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("outbox", sa.Column("traceparent", sa.String(length=64), nullable=True))


def downgrade() -> None:
    op.drop_column("outbox", "traceparent")
