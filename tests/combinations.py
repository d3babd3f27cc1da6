"""The option matrix: every combination the template supports, and what each option brings."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

DATABASES = ("postgres", "mongodb")
APIS = ("rest", "graphql")
BROKERS = ("rabbitmq", "kafka")
COMPLIANCE = (True, False)

# Words that appear in a rendered project only when that option value was chosen;
# their absence elsewhere shows an unchosen option left no trace.
TRACES: dict[tuple[str, Any], tuple[str, ...]] = {
    ("database", "postgres"): ("sqlalchemy", "alembic", "asyncpg", "postgres"),
    ("database", "mongodb"): ("pymongo", "mongodb", "mongo"),
    ("api", "graphql"): ("strawberry", "graphql"),
    ("api", "rest"): ("/api/v1",),
    ("broker", "rabbitmq"): ("rabbit", "amqp"),
    ("broker", "kafka"): ("kafka",),
    ("compliance_logging", True): ("audit",),
}


@dataclass(frozen=True)
class Combination:
    database: str
    api: str
    broker: str
    compliance_logging: bool

    @property
    def id(self) -> str:
        audit = "audit" if self.compliance_logging else "plain"
        return f"{self.database}-{self.api}-{self.broker}-{audit}"

    @property
    def slug(self) -> str:
        # As long as a slug may be, so every line that carries it is tested at its widest.
        return f"svc-{self.id}-".ljust(63, "x")

    def answers(self) -> dict[str, Any]:
        return {
            "project_name": f"{self.id} service".ljust(60, "!"),
            "project_slug": self.slug,
            # Quotes, a backslash and non-ASCII: free text must never break a rendered file.
            "description": 'Serves "things" \\ en français, naïvement.',
            "author_name": "Renée O'Brien",
            "database": self.database,
            "api": self.api,
            "broker": self.broker,
            "compliance_logging": self.compliance_logging,
        }

    def chosen(self, option: str, value: Any) -> bool:
        return bool(self.answers()[option] == value)


ALL = [Combination(*values) for values in itertools.product(DATABASES, APIS, BROKERS, COMPLIANCE)]
