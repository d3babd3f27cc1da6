"""Relay's two specifications, on Strawberry's own types.

Global Object Identification: every object with an id implements `Node`; its `id` is
opaque, base64 of "Type:key", and `node(id:)` (or `nodes(ids:)`) fetches it again, with
the same checks as the type's own query. An id that does not decode to a Node type and
a key of that type is refused with the API's one error shape (`invalid_input`); a
well-formed id of nothing answers null.

Cursor Connections: every list is a connection with `edges { cursor node }` and a full
`pageInfo`, taking `first`/`after` and `last`/`before`; cursors are opaque strings.

Each request may fetch at most a fixed number of nodes in all (`NodeBudget`): every field
that fetches some draws what it asks for (`nodes` its ids, a list its page size), so
aliases and list variables cannot multiply one request's work.
"""

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Self, TypeVar
from uuid import UUID

import strawberry
from strawberry import relay
from strawberry.types import Info

from app.api.graphql.errors import TooCostlyError
from app.core.errors import BadRequestError, InvalidInputError, NotFoundError
from app.core.pagination import PAGE_MAX, Slice, Window

N = TypeVar("N", bound=relay.Node)
T = TypeVar("T")
K = TypeVar("K")
INVALID_ID = "The id is not valid."
INVALID_CURSOR = "The cursor is not valid."
# The largest key either database stores as a number (a signed 64-bit integer).
INT64_MAX = 2**63 - 1


class NodeBudget:
    """The nodes one request may still fetch. Each field that fetches draws what it asks
    for before it reads anything; a field that would overdraw is refused instead
    (`query_too_costly`), and reads nothing."""

    def __init__(self, nodes: int) -> None:
        self.total = nodes
        self.left = nodes

    def draw(self, nodes: int) -> None:
        if nodes > self.left:
            raise TooCostlyError(
                f"The request asks for more than {self.total} nodes in all; "
                "split it into several requests."
            )
        self.left -= nodes


class Refetchable:
    """A Node type that `node(id:)` can fetch, by the key its global id holds."""

    @classmethod
    async def refetch(cls, info: Info[Any, Any], key: str) -> Self | None:
        """The object, or None if there is none; raises what the type's own query
        raises for a caller who may not see it."""
        raise NotImplementedError


def global_id(type_name: str, key: object) -> relay.GlobalID:
    return relay.GlobalID(type_name=type_name, node_id=str(key))


def _decoded(id: str) -> relay.GlobalID:
    """A global id in the one spelling the API writes. (Base64 is read leniently: padding
    added, characters that are no base64 skipped; so one object would have countless ids,
    and a cache or a block list keyed by them could be gone round.)"""
    try:
        decoded = relay.GlobalID.from_id(id)
    except (relay.GlobalIDValueError, ValueError) as exc:
        raise InvalidInputError(INVALID_ID) from exc
    if str(decoded) != id:
        raise InvalidInputError(INVALID_ID)
    return decoded


def uuid_of(id: str, type_name: str) -> UUID:
    """The key of a global id that must be of the given type."""
    decoded = _decoded(id)
    if decoded.type_name != type_name:
        raise InvalidInputError("The id is not one of the type this field takes.")
    return uuid_key(decoded.node_id)


# Every key in a global id, and every cursor that is a key (a user's id, a sequence), is
# read by one of these two, in the one spelling the API writes: so a key names one
# object, and nothing else reaches a query.
def as_uuid(text: str) -> UUID | None:
    """A UUID as `str(uuid)` writes it (`UUID()` also takes braces, a `urn:` prefix,
    upper case, and any script's digits)."""
    try:
        value = UUID(text)
    except ValueError:
        return None
    return value if str(value) == text else None


def as_sequence(text: str) -> int | None:
    """A positive number in ASCII digits with no leading zero, that both databases can
    store (`str.isdigit` takes "²", which `int` refuses; `int` takes "٣" and "007")."""
    if not (text.isascii() and text.isdigit()) or text.startswith("0") or len(text) > 19:
        return None
    value = int(text)
    return value if value <= INT64_MAX else None


def id_key(text: str, parse: Callable[[str], K | None]) -> K:
    """The key of a global id, or `invalid_input`."""
    value = parse(text)
    if value is None:
        raise InvalidInputError(INVALID_ID)
    return value


def cursor_key(cursor: str | None, parse: Callable[[str], K | None]) -> K | None:
    """A cursor that is a key, or `bad_request` (as a list's other cursors)."""
    if cursor is None:
        return None
    value = parse(cursor)
    if value is None:
        raise BadRequestError(INVALID_CURSOR)
    return value


def uuid_key(text: str) -> UUID:
    return id_key(text, as_uuid)


def window(
    info: Info[Any, Any],
    *,
    first: int | None,
    after: str | None,
    last: int | None,
    before: str | None,
) -> Window:
    """A connection's arguments, checked, its page size drawn from the request's budget."""
    chosen = Window(first=first, after=after, last=last, before=before)
    info.context.budget.draw(chosen.size)
    return chosen


async def refetch(info: Info[Any, Any], id: str) -> relay.Node | None:
    decoded = _decoded(id)
    try:
        node_type = decoded.resolve_type(info)
    except relay.GlobalIDValueError as exc:
        raise InvalidInputError(INVALID_ID) from exc
    if not issubclass(node_type, Refetchable):
        raise InvalidInputError(INVALID_ID)
    try:
        found = await node_type.refetch(info, decoded.node_id)
    except NotFoundError:
        return None
    return found if isinstance(found, relay.Node) else None


def connection(
    window: Slice[T], node: Callable[[T], N], cursor: Callable[[T], str]
) -> relay.Connection[N]:
    edges = [relay.Edge(cursor=cursor(row), node=node(row)) for row in window.rows]
    return relay.Connection(
        edges=edges,
        page_info=relay.PageInfo(
            has_previous_page=window.has_previous,
            has_next_page=window.has_next,
            start_cursor=edges[0].cursor if edges else None,
            end_cursor=edges[-1].cursor if edges else None,
        ),
    )


@strawberry.type
class Query:
    @strawberry.field
    async def node(
        self,
        info: Info[Any, Any],
        id: strawberry.ID,
    ) -> relay.Node | None:
        """Any object by its id: null if there is none, refused like the object's own
        query for a caller who may not see it."""
        info.context.budget.draw(1)
        return await refetch(info, id)

    @strawberry.field
    def nodes(
        self, info: Info[Any, Any], ids: list[strawberry.ID]
    ) -> list[relay.Node | None] | None:
        """Objects by their ids, in the same order: each one answered as `node` would.
        Every id counts towards the nodes one request may fetch, as a list's page does."""
        if len(ids) > PAGE_MAX:
            raise InvalidInputError(f"At most {PAGE_MAX} ids at once.")
        info.context.budget.draw(len(ids))
        # Each one resolved on its own: one refused id nulls its own place only. They
        # load through the request's loaders: users in one read, items in one cache round
        # trip and one read, and an id asked twice (in another alias, say) is read once.
        pending: Sequence[Awaitable[relay.Node | None]] = [refetch(info, id) for id in ids]
        return pending  # type: ignore[return-value]
