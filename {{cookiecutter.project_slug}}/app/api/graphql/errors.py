"""GraphQL's error shape: the message, plus `code` and `status` in the extensions.

Errors the application raised on purpose (AppError), and outages of a dependency,
keep their message; anything else is logged with the request id and masked.
"""

from collections.abc import AsyncIterator

from graphql import GraphQLError
from strawberry.extensions import MaskErrors, SchemaExtension

from app.core.errors import as_app_error
from app.core.problems import record_refusal

UNEXPECTED = "An unexpected error occurred."


class AppErrorExtensions(SchemaExtension):
    async def on_execute(self) -> AsyncIterator[None]:
        yield
        result = self.execution_context.result
        for error in (result.errors if result else None) or []:
            known = as_app_error(error.original_error) if error.original_error else None
            if known is not None:
                error.message = known.detail
                error.extensions = {"code": known.code, "status": known.status}
                if known.security_event is not None:
                    # Each refused operation of the document is recorded, aliases too.
                    await record_refusal(self.execution_context.context.http_request, known)


def is_unexpected(error: GraphQLError) -> bool:
    # GraphQL's own errors (syntax, unknown field, bad variables) are safe to show.
    original = error.original_error
    return (
        original is not None
        and not isinstance(original, GraphQLError)
        and as_app_error(original) is None
    )


def mask_unexpected_errors() -> MaskErrors:
    """A factory: Strawberry builds a fresh extension for each request."""
    return MaskErrors(should_mask_error=is_unexpected, error_message=UNEXPECTED)
