"""A span for each GraphQL operation, named by it (`mutation CreateItem`, `query`), while
tracing is on: Strawberry's OpenTelemetry extension, less what could carry personal
data (the query text, the resolvers' arguments)."""

from collections.abc import Generator
from typing import Any

from graphql import GraphQLResolveInfo
from opentelemetry.trace import SpanKind, Status, StatusCode
from strawberry.extensions import LifecycleStep
from strawberry.extensions.tracing import OpenTelemetryExtension
from strawberry.types import ExecutionContext

from app.observability.tracing import tracer_provider


def _no_arguments(_: dict[str, Any], __: GraphQLResolveInfo[Any]) -> dict[str, Any]:
    return {}


# A name is the client's to choose: a span's name stays short whatever it sent.
MAX_NAME = 100


def operation_of(context: ExecutionContext) -> tuple[str, str | None]:
    """The operation's type and name, as the span is named; `operation` and no name for
    a document that did not parse or has no operation of the name asked for."""
    try:
        kind = context.operation_type.value
    except (RuntimeError, ValueError):
        return "operation", None
    name = context.operation_name
    return kind, name[:MAX_NAME] if name and isinstance(name, str) else None


class OperationSpans(OpenTelemetryExtension):
    def __init__(self, *, execution_context: ExecutionContext | None = None) -> None:
        super().__init__(
            execution_context=execution_context,
            arg_filter=_no_arguments,
            tracer_provider=tracer_provider(),
        )

    def on_operation(self) -> Generator[None, None, None]:
        # The resolvers' spans are its children (Strawberry's extension sets them so);
        # the name is known once the document is parsed.
        span = self._tracer.start_span("graphql", kind=SpanKind.INTERNAL)
        self._span_holder[LifecycleStep.OPERATION] = span
        yield
        kind, name = operation_of(self.execution_context)
        span.update_name(f"{kind} {name}" if name else kind)
        span.set_attribute("graphql.operation.type", kind)
        if name:
            span.set_attribute("graphql.operation.name", name)
        result = self.execution_context.result
        errors = self.execution_context.pre_execution_errors or (result.errors if result else None)
        if errors:
            span.set_status(Status(StatusCode.ERROR, f"{len(errors)} GraphQL errors"))
        span.end()
