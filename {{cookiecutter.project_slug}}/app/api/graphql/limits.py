"""A bound on a document's size once its fragments are spread, and its fragments known and
not spread within themselves, checked before validation.

The depth and alias rules (Strawberry's) walk each fragment again at every spread of it,
and graphql-core's rule that fields can be merged compares each two fields of one name:
800 bytes of fragments spreading twice, 18 deep, took 2.7 s to validate, and 480
`me { id }` a second, both before any limit answered. The fields a document selects once
spread are counted first, each fragment counted once (so the count takes time in the
size of the document, not of its spread), and a document over the bound is refused
without being validated.
"""

import functools
from collections.abc import Iterator

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
)
from graphql.validation import ASTValidationRule, validate
from strawberry.extensions import SchemaExtension
from strawberry.schema.validation_rules.maybe_null import MaybeNullValidationRule
from strawberry.schema.validation_rules.one_of import OneOfInputValidationRule

# Distinct query documents whose parse and validation are kept.
QUERY_CACHE_SIZE = 256
# What a document may hold, read before it is parsed: tokens (GraphQL's parser counts
# them), and characters and lines, which tokens do not bound (a string is one token, a
# line break none). Locating each error reads the lines before it: 50,000 line breaks
# and 100 errors took 2.5 s; a megabyte string was kept in the caches whole.
MAX_TOKENS = 2000
# The validation errors a document gets at most (graphql-core's default: 100).
MAX_VALIDATION_ERRORS = 20
MAX_DOCUMENT_CHARS = 65_536
MAX_DOCUMENT_LINES = 2000
# Far more than a client's document selects (a page of items with all their fields and
# the page info is about 20), far less than the rules above take long on.
MAX_SELECTIONS = 300


# The longest list a request's variables may hold (the API takes 100 ids at most), and
# the longest operation name: graphql-core read a list of a megabyte whole before a
# field could refuse it (1 s), and a refusal quoted a name of a megabyte back.
MAX_LIST_VALUES = 1000
MAX_OPERATION_NAME = 256


def request_refusal(request: dict[str, object]) -> str | None:
    """Why a request is refused before its document is read, if it is."""
    name = request.get("operationName")
    if isinstance(name, str) and len(name) > MAX_OPERATION_NAME:
        return f"The operation name is longer than {MAX_OPERATION_NAME} characters."
    pending = [request.get("variables")]
    while pending:
        value = pending.pop()
        if isinstance(value, dict):
            pending.extend(value.values())
        elif isinstance(value, list):
            if len(value) > MAX_LIST_VALUES:
                return f"A list in the variables holds more than {MAX_LIST_VALUES} values."
            pending.extend(value)
    return None


def document_refusal(query: str) -> str | None:
    """Why the document is refused before it is read, if it is: too long."""
    if len(query) > MAX_DOCUMENT_CHARS:
        return f"The document is longer than {MAX_DOCUMENT_CHARS} characters."
    if query.count("\n") >= MAX_DOCUMENT_LINES:
        return f"The document has more than {MAX_DOCUMENT_LINES} lines."
    return None


def spread_refusal(document: DocumentNode, limit: int = MAX_SELECTIONS) -> str | None:
    """Why the document is refused before validation, if it is: it selects more than
    `limit` fields once its fragments are spread (counted up to a little past it), or it
    spreads a fragment it does not define or one within itself. Strawberry's rules run
    before graphql-core's, and walked the first as an unexpected error (a missing key)
    and the second without end: fragments each spreading itself and the next twice,
    which count no field, took seconds at 18 levels and twice as long at each more."""
    fragments = {
        node.name.value: node
        for node in document.definitions
        if isinstance(node, FragmentDefinitionNode)
    }
    sizes: dict[str, int] = {}
    spreading: set[str] = set()
    refusals: list[str] = []

    def count(selections: SelectionSetNode | None) -> int:
        total = 0
        for selection in selections.selections if selections else ():
            if isinstance(selection, FieldNode):
                total += 1 + count(selection.selection_set)
            elif isinstance(selection, InlineFragmentNode):
                total += count(selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode):
                total += fragment(selection.name.value)
            if total > limit or refusals:
                break
        return total

    def fragment(name: str) -> int:
        if name not in sizes:
            if name not in fragments:
                refusals.append(f"Unknown fragment '{name}'.")
                return 0
            if name in spreading:
                refusals.append(f"Cannot spread fragment '{name}' within itself.")
                return 0
            spreading.add(name)
            sizes[name] = count(fragments[name].selection_set)
            spreading.discard(name)
        return sizes[name]

    total = 0
    for node in document.definitions:
        if isinstance(node, OperationDefinitionNode):
            total += count(node.selection_set)
        elif isinstance(node, FragmentDefinitionNode):
            fragment(node.name.value)  # one no operation spreads is checked all the same
        if refusals:
            return refusals[0]
        if total > limit:
            return f"The document selects more than {limit} fields once its fragments are spread."
    return None


@functools.lru_cache(maxsize=QUERY_CACHE_SIZE)
def _validated(
    schema: GraphQLSchema, document: DocumentNode, rules: tuple[type[ASTValidationRule], ...]
) -> list[GraphQLError]:
    # Keyed by the document itself, as Strawberry's validation cache is: the parser
    # cache hands the same one over for the same text.
    refusal = spread_refusal(document)
    if refusal is not None:
        return [GraphQLError(refusal)]
    # Strawberry's validation (its own rules too), with fewer errors: each is located by
    # reading the document's lines before it, and 100 of them behind 2000 line breaks
    # cost 0.2 s.
    return validate(
        schema,
        document,
        (*rules, MaybeNullValidationRule, OneOfInputValidationRule),
        max_errors=MAX_VALIDATION_ERRORS,
    )


class BoundedValidation(SchemaExtension):
    """Strawberry's validation cache, with a document `spread_refusal` refuses refused
    first."""

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        if context.graphql_document is not None:
            context.pre_execution_errors = _validated(
                context.schema._schema, context.graphql_document, tuple(context.validation_rules)
            )
        yield
