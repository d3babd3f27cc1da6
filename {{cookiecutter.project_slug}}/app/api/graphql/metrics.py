"""GraphQL operations in the metrics: the HTTP metrics see one route answering 200, so
each operation is counted here by name, type and outcome, and timed.

Outcomes: `success`; `client_error` when the operation had errors that are the
request's (a syntax or validation error, not found, forbidden, invalid input);
`server_error` when any error was unexpected or an outage (what the HTTP metrics would
count as a 5xx). Operation names come from clients, so they are bounded (BoundedNames).
"""

import time
from collections.abc import AsyncIterator

from graphql import GraphQLError
from prometheus_client import Counter, Histogram
from strawberry.extensions import SchemaExtension

from app.api.graphql.errors import is_unexpected
from app.core.errors import as_app_error
from app.core.metrics import BoundedNames

# Distinct operation names kept as label values; later ones are counted as "other".
MAX_OPERATION_NAMES = 100
OPERATIONS = Counter(
    "graphql_operations_total",
    "GraphQL operations by operation name, type and outcome.",
    ["operation", "operation_type", "outcome"],
)
DURATION = Histogram(
    "graphql_operation_duration_seconds",
    "Time to parse, validate and execute a GraphQL operation.",
    ["operation", "operation_type"],
)
operation_names = BoundedNames(MAX_OPERATION_NAMES)


def outcome(errors: list[GraphQLError]) -> str:
    if not errors:
        return "success"
    for error in errors:
        known = as_app_error(error.original_error) if error.original_error else None
        if is_unexpected(error) or (known is not None and known.status >= 500):
            return "server_error"
    return "client_error"


class OperationMetrics(SchemaExtension):
    """Sees the errors as raised: they are masked and shaped after the operation
    (Schema.execute)."""

    async def on_operation(self) -> AsyncIterator[None]:
        started = time.perf_counter()
        errors: list[GraphQLError] = []
        try:
            yield
            errors = list(self.execution_context.pre_execution_errors or [])
        except Exception:
            errors = [GraphQLError("refused")]
            raise
        finally:
            context = self.execution_context
            try:
                operation_type = context.operation_type.value
                name = operation_names(context.operation_name)
            except RuntimeError:  # not parsed, or no operation of that name
                # A name no operation has takes none of the kept names.
                operation_type, name = "unknown", BoundedNames.OTHER
            OPERATIONS.labels(name, operation_type, outcome(errors)).inc()
            DURATION.labels(name, operation_type).observe(time.perf_counter() - started)
