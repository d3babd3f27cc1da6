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


# Each option's answer key and values, in the order Combination takes them.
OPTIONS: tuple[tuple[str, tuple[Any, ...]], ...] = (
    ("database", DATABASES),
    ("api", APIS),
    ("broker", BROKERS),
    ("compliance_logging", COMPLIANCE),
)
ALL = [Combination(*values) for values in itertools.product(DATABASES, APIS, BROKERS, COMPLIANCE)]

# Command 2 runs the rendered suite in full for these five: every value of every option
# next to every value of every other option (a pairwise covering set; the matrix test
# `test_the_full_suites_in_command_2_pair_every_two_option_values` checks it). The other
# eleven run a smoke part of their suite there (smoke_tests) and their full suite in
# command 3: all sixteen suites would take command 2 past its five minutes on two cores.
FULL_IN_COMMAND_2 = (
    "postgres-rest-rabbitmq-plain",
    "postgres-graphql-kafka-audit",
    "mongodb-rest-kafka-audit",
    "mongodb-graphql-rabbitmq-audit",
    "mongodb-graphql-kafka-plain",
)


# Command 2 type-checks these two, opposite in every option, so that each value of each
# option is checked there; command 3 type-checks all sixteen (a render's own modules cost
# mypy 7 s of CPU after another combination's, 20 s or more with a cold cache).
MYPY_IN_COMMAND_2 = ("postgres-graphql-kafka-audit", "mongodb-rest-rabbitmq-plain")


def smoke_tests(combination: Combination) -> list[str]:
    """The part of a rendered suite command 2 runs where it does not run it all: the app
    started against the real services and its readiness, the API's scripted flow, an
    event through the outbox to the consumer (once, a duplicate ignored, a malformed one
    dead-lettered), and the migrations or each audited action's record if chosen."""
    events = "tests/test_events.py::test_"
    tests = [
        "tests/test_health.py",
        f"tests/test_{combination.api}_api.py::test_scripted_flow",
        f"{events}an_action_produces_one_event_processed_once",
        f"{events}duplicate_deliveries_are_ignored",
        f"{events}malformed_message_is_dead_lettered_and_consuming_goes_on",
    ]
    if combination.database == "postgres":
        tests.append("tests/test_migrations.py")
    if combination.compliance_logging:
        tests.append("tests/test_audited_actions.py")
    return tests
