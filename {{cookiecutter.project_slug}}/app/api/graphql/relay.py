"""Relay's two specifications, on Strawberry's own types.

Global Object Identification: every object with an id implements `Node`; its `id` is
opaque, base64 of "Type:key", and `node(id:)` (or `nodes(ids:)`) fetches it again, with
the same checks as the type's own query. An id that does not decode to a Node type and
a key of that type is refused with the API's one error shape (`invalid_input`); a
well-formed id of nothing answers null.

Cursor Connections: every list is a connection with `edges { cursor node }` and a full
`pageInfo`, taking `first`/`after` and `last`/`before`; cursors are opaque strings.
"""

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Self, TypeVar
from uuid import UUID

import strawberry
from strawberry import relay
from strawberry.types import Info

from app.core.errors import InvalidInputError, NotFoundError
from app.core.pagination import PAGE_MAX, Slice

N = TypeVar("N", bound=relay.Node)
T = TypeVar("T")
INVALID_ID = "The id is not valid."


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
    try:
        return relay.GlobalID.from_id(id)
    except (relay.GlobalIDValueError, ValueError) as exc:
        raise InvalidInputError(INVALID_ID) from exc


def uuid_of(id: str, type_name: str) -> UUID:
    """The key of a global id that must be of the given type."""
    decoded = _decoded(id)
    if decoded.type_name != type_name:
        raise InvalidInputError(f"The id is not one of a {type_name}.")
    return uuid_key(decoded.node_id)


def uuid_key(key: str) -> UUID:
    try:
        return UUID(key)
    except ValueError as exc:
        raise InvalidInputError(INVALID_ID) from exc


def int_key(key: str) -> int:
    if not key.isdigit() or len(key) > 19:
        raise InvalidInputError(INVALID_ID)
    return int(key)


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
        return await refetch(info, id)

    @strawberry.field
    def nodes(self, info: Info[Any, Any], ids: list[strawberry.ID]) -> list[relay.Node | None]:
        """Objects by their ids, in the same order: each one answered as `node` would."""
        if len(ids) > PAGE_MAX:
            raise InvalidInputError(f"At most {PAGE_MAX} ids at once.")
        # Each one resolved on its own: one refused id nulls its own place only.
        pending: Sequence[Awaitable[relay.Node | None]] = [refetch(info, id) for id in ids]
        return pending  # type: ignore[return-value]
