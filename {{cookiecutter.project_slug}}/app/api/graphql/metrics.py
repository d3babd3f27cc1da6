"""GraphQL operations in the metrics: the HTTP metrics see one route answering 200, so
each operation is counted here by what it asks for, its type and outcome, and timed.

An operation is labelled by the schema's root field it selects (`items`, `createItem`),
`multiple` when it selects several, and `other` when its document did not parse or
validate. Never by its name: clients choose names, so any set of them kept as label
values is theirs to fill (a hundred junk names, and real operations counted as
`other`), and a name can hold personal data (`query card_4111111111111111`). The
names go to traces, one span per operation.

Outcomes: `success`; `client_error` when the operation had errors that are the
request's (a syntax or validation error, not found, forbidden, invalid input);
`server_error` when any error was unexpected or an outage (what the HTTP metrics would
count as a 5xx).
"""

import time
from collections.abc import AsyncIterator

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    SelectionSetNode,
    get_operation_ast,
)
from prometheus_client import Counter, Histogram
from strawberry.extensions import SchemaExtension

from app.api.graphql.errors import is_unexpected
from app.core.errors import as_app_error

OPERATIONS = Counter(
    "graphql_operations_total",
    "GraphQL operations by root field selected, type and outcome.",
    ["operation", "operation_type", "outcome"],
)
DURATION = Histogram(
    "graphql_operation_duration_seconds",
    "Time to parse, validate and execute a GraphQL operation.",
    ["operation", "operation_type"],
)
MULTIPLE = "multiple"
OTHER = "other"


def root_field(document: DocumentNode, operation_name: str | None) -> str:
    """The root field a valid operation selects, however aliased or spread into it, or
    `multiple`. Only for a document that validated: its fields are the schema's."""
    operation = get_operation_ast(document, operation_name)
    if operation is None:
        return OTHER
    fragments = {
        definition.name.value: definition.selection_set
        for definition in document.definitions
        if isinstance(definition, FragmentDefinitionNode)
    }
    fields: set[str] = set()
    pending: list[SelectionSetNode] = [operation.selection_set]
    spread: set[str] = set()
    while pending:
        for selection in pending.pop().selections:
            if isinstance(selection, FieldNode):
                fields.add(selection.name.value)
                if len(fields) > 1:
                    return MULTIPLE
            elif isinstance(selection, InlineFragmentNode):
                pending.append(selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                if name not in spread and name in fragments:
                    spread.add(name)
                    pending.append(fragments[name])
    return fields.pop() if fields else OTHER


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
                # Run, so valid: every query field and mutation result is nullable, so
                # an operation that ran has data, and one refused before it ran none.
                ran = context.result is not None and context.result.data is not None
                document = context.graphql_document
                name = OTHER
                if ran and document is not None:
                    name = root_field(document, context.operation_name)
            except RuntimeError:  # not parsed, or no operation of that name
                operation_type, name = "unknown", OTHER
            OPERATIONS.labels(name, operation_type, outcome(errors)).inc()
            DURATION.labels(name, operation_type).observe(time.perf_counter() - started)
