"""What can be done with items, whichever database and API serve them."""

from collections import Counter
from collections.abc import Sequence
from uuid import UUID

from app.auth.tokens import Principal
from app.core.errors import AppError, with_event
from app.core.pagination import Cursor, Page, Slice, Window, reversed_sort, slice_window, to_page
from app.events.schemas import (
    AdminAccessDenied,
    ItemAccessDenied,
    ItemCreated,
    ItemDeleted,
    ItemsReadByAdmin,
    ItemUpdated,
)
from app.items.errors import ItemNotFoundError, NotItemOwnerError
from app.items.schemas import ItemCreate, ItemPublic, ItemQuery, ItemUpdate
from app.storage.cache import Cache
from app.storage.unit_of_work import Database


def cache_key(item_id: UUID) -> str:
    return f"item:{item_id}"


async def create_item(*, database: Database, owner: Principal, data: ItemCreate) -> ItemPublic:
    async with database.unit_of_work() as uow:
        item = await uow.items.add(data, owner_id=owner.user_id)
        uow.emit(ItemCreated(item_id=item.id, owner_id=item.owner_id))
    return item


async def _record_reads_of_others(
    database: Database, principal: Principal, items: Sequence[ItemPublic]
) -> None:
    """An administrator's read of other users' items: one event, and with compliance
    logging one record, per owner whose items the answer holds."""
    owners = Counter(item.owner_id for item in items if item.owner_id != principal.user_id)
    if not owners:
        return  # only an administrator is shown other users' items
    async with database.unit_of_work() as uow:
        for owner, count in owners.items():
            uow.emit(ItemsReadByAdmin(user_id=owner, count=count))


def _check_access(item: ItemPublic, principal: Principal) -> None:
    """Items are their owner's: other users can neither see nor change them."""
    if item.owner_id != principal.user_id and not principal.is_admin:
        raise with_event(NotItemOwnerError(), ItemAccessDenied(item_id=item.id))


async def get_item(
    *, database: Database, cache: Cache, item_id: UUID, ttl: int, principal: Principal
) -> ItemPublic:
    """Cache-aside: Redis first, the database on a miss; writes invalidate."""
    (found,) = await get_items(
        database=database, cache=cache, item_ids=[item_id], ttl=ttl, principal=principal
    )
    if isinstance(found, AppError):
        raise found
    return found


async def get_items(
    *, database: Database, cache: Cache, item_ids: Sequence[UUID], ttl: int, principal: Principal
) -> list[ItemPublic | AppError]:
    """`get_item` for each id, in the same order, each refusal in its place: one cache
    round trip, and one database read for all the misses (one connection, however many)."""
    names = [cache_key(item_id) for item_id in item_ids]
    cached = await cache.lookup_many(names, ItemPublic)
    missed = [item_id for item_id, hit in zip(item_ids, cached, strict=True) if hit.value is None]
    read: dict[UUID, ItemPublic] = {}
    if missed:
        async with database.unit_of_work(read_only=True) as uow:
            read = {item.id: item for item in await uow.items.by_ids(missed)}
        fills = [
            (hit, read[item_id])
            for item_id, hit in zip(item_ids, cached, strict=True)
            if hit.value is None and item_id in read
        ]
        await cache.fill_many(fills, seconds=ttl)
    answers: list[ItemPublic | AppError] = []
    for item_id, hit in zip(item_ids, cached, strict=True):
        item = hit.value if hit.value is not None else read.get(item_id)
        try:
            if item is None:
                raise ItemNotFoundError
            _check_access(item, principal)
        except AppError as refusal:
            answers.append(refusal)
        else:
            answers.append(item)
    await _record_reads_of_others(
        database, principal, [item for item in answers if isinstance(item, ItemPublic)]
    )
    return answers


async def editable_item(*, database: Database, item_id: UUID, principal: Principal) -> ItemPublic:
    """The item, read fresh from the database, if the caller may change it."""
    async with database.unit_of_work(read_only=True) as uow:
        item = await uow.items.get(item_id)
    if item is None:
        raise ItemNotFoundError
    _check_access(item, principal)
    return item


async def update_item(
    *, database: Database, cache: Cache, item: ItemPublic, data: ItemUpdate
) -> ItemPublic:
    changes = data.changes()
    async with database.unit_of_work() as uow:
        updated = await uow.items.update(item.id, changes) if changes else item
        if updated is None:
            raise ItemNotFoundError
        if changes:
            uow.emit(ItemUpdated(item_id=item.id, changed=sorted(changes)))
    await cache.delete(cache_key(item.id))
    return updated


async def delete_item(*, database: Database, cache: Cache, item: ItemPublic) -> None:
    async with database.unit_of_work() as uow:
        if not await uow.items.delete(item.id):
            raise ItemNotFoundError
        uow.emit(ItemDeleted(item_id=item.id))
    await cache.delete(cache_key(item.id))


def _visible(query: ItemQuery, principal: Principal) -> ItemQuery:
    """Admins list everyone's items; other users only their own: asking for another
    owner's is refused, and recorded as an administrators' operation refused."""
    if not principal.is_admin:
        if query.owner_id not in (None, principal.user_id):
            raise with_event(NotItemOwnerError(), AdminAccessDenied(user_id=principal.user_id))
        query = query.model_copy(update={"owner_id": principal.user_id})
    return query


async def list_items(
    *, database: Database, query: ItemQuery, principal: Principal
) -> Page[ItemPublic]:
    """Admins list everyone's items; other users only their own."""
    query = _visible(query, principal)
    after = None
    if query.cursor:
        after = Cursor.decode(query.cursor, sort=query.sort).typed(query.sort_type)
    async with database.unit_of_work(read_only=True) as uow:
        rows = await uow.items.find(query, after=after, limit=query.limit + 1)
    page = to_page(rows, limit=query.limit, sort=query.sort, field=query.sort_field)
    await _record_reads_of_others(database, principal, page.items)
    return page


async def window_items(
    *, database: Database, query: ItemQuery, window: Window, principal: Principal
) -> Slice[ItemPublic]:
    """A Relay window onto the list `list_items` pages through, the same items visible."""
    query = _visible(query, principal)
    after, before = (
        None if token is None else Cursor.decode(token, sort=query.sort).typed(query.sort_type)
        for token in (window.after, window.before)
    )
    backward = query.model_copy(update={"sort": reversed_sort(query.sort)})

    def key(item: ItemPublic) -> Cursor:
        return Cursor(sort=query.sort, value=getattr(item, query.sort_field), id=item.id)

    async with database.unit_of_work(read_only=True) as uow:

        async def travel(
            *, reverse: bool, beyond: Cursor | None, stop: Cursor | None, limit: int
        ) -> list[ItemPublic]:
            way = backward if reverse else query
            return await uow.items.find(way, after=beyond, before=stop, limit=limit)

        window_slice = await slice_window(travel, key, window, after=after, before=before)
    await _record_reads_of_others(database, principal, window_slice.rows)
    return window_slice
