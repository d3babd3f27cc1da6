"""The item service against the real database and Redis."""

from collections.abc import Sequence
from uuid import UUID, uuid4

import pytest

from app.core.errors import AppError, BadRequestError
from app.events.schemas import ItemDeleted
from app.items import service
from app.items.errors import ItemNameTakenError, ItemNotFoundError, NotItemOwnerError
from app.items.schemas import ItemPublic, ItemQuery, ItemUpdate
from app.services import Services
from app.storage.cache import Cached
from app.storage.unit_of_work import ReadOnlyError
from tests.conftest import Account, background_paused, new_item
from tests.cursors import forged_cursors

TTL = 60


async def get(services: Services, item: ItemPublic, reader: Account) -> ItemPublic:
    return await service.get_item(
        database=services.database,
        cache=services.cache,
        item_id=item.id,
        ttl=TTL,
        principal=reader.principal,
    )


async def test_a_read_only_unit_of_work_reads_but_cannot_emit(
    services: Services, account: Account
) -> None:
    item = await new_item(services, account)
    async with services.database.unit_of_work(read_only=True) as uow:
        assert await uow.items.get(item.id) == item
        with pytest.raises(ReadOnlyError):
            uow.emit(ItemDeleted(item_id=item.id))


async def test_create_then_get(services: Services, account: Account) -> None:
    created = await new_item(services, account, description="blue", price_cents=250)
    assert created.owner_id == account.user.id
    assert (created.description, created.price_cents, created.status) == ("blue", 250, "draft")
    assert await get(services, created, account) == created


async def test_names_are_unique_per_owner(
    services: Services, account: Account, other_account: Account
) -> None:
    item = await new_item(services, account)
    with pytest.raises(ItemNameTakenError):
        await new_item(services, account, name=item.name)
    assert (await new_item(services, other_account, name=item.name)).name == item.name


async def test_missing_item(services: Services, account: Account) -> None:
    with pytest.raises(ItemNotFoundError):
        await service.get_item(
            database=services.database,
            cache=services.cache,
            item_id=uuid4(),
            ttl=TTL,
            principal=account.principal,
        )


async def test_second_read_comes_from_the_cache(services: Services, account: Account) -> None:
    item = await new_item(services, account)
    await get(services, item, account)
    async with background_paused(services):
        before = services.database.round_trips
        assert await get(services, item, account) == item
        assert services.database.round_trips == before


async def test_many_items_are_read_in_one_query_each_refusal_in_its_place(
    services: Services, account: Account, other_account: Account
) -> None:
    mine = [await new_item(services, account) for _ in range(5)]
    await get(services, mine[0], account)  # one already cached
    theirs = await new_item(services, other_account)

    async def read(item_ids: list[UUID]) -> tuple[list[ItemPublic | AppError], int]:
        before = services.database.round_trips
        found = await service.get_items(
            database=services.database,
            cache=services.cache,
            item_ids=item_ids,
            ttl=TTL,
            principal=account.principal,
        )
        return found, services.database.round_trips - before

    async with background_paused(services):
        _, one = await read([uuid4()])
        found, many = await read([*(item.id for item in mine), theirs.id, uuid4()])
        again, cached = await read([item.id for item in mine])
    assert many == one, (one, many)
    assert found[:5] == again == mine
    assert cached == 0
    assert isinstance(found[5], NotItemOwnerError)
    assert isinstance(found[6], ItemNotFoundError)


async def test_updates_are_visible_at_once_and_deletes_too(
    services: Services, account: Account
) -> None:
    item = await new_item(services, account, price_cents=100)
    await get(services, item, account)  # now cached
    editable = await service.editable_item(
        database=services.database, item_id=item.id, principal=account.principal
    )
    updated = await service.update_item(
        database=services.database,
        cache=services.cache,
        item=editable,
        data=ItemUpdate(price_cents=150, status="active"),
    )
    assert (updated.price_cents, updated.status, updated.name) == (150, "active", item.name)
    assert updated.updated_at >= item.updated_at
    assert await get(services, item, account) == updated

    await service.delete_item(database=services.database, cache=services.cache, item=updated)
    with pytest.raises(ItemNotFoundError):
        await get(services, item, account)


@pytest.mark.parametrize("change", ["update", "delete"])
async def test_a_read_that_raced_a_change_does_not_cache_what_the_change_replaced(
    services: Services, account: Account, monkeypatch: pytest.MonkeyPatch, change: str
) -> None:
    """A read misses the cache and reads the database; a change commits and drops the
    cached item; only then does the read fill the cache: that fill is refused, so the next
    read sees the change, not the item as it was."""
    item = await new_item(services, account, price_cents=100)
    await services.cache.delete(service.cache_key(item.id))
    fill = services.cache.fill_many

    async def change_then_fill(
        fills: Sequence[tuple[Cached[ItemPublic], ItemPublic]], *, seconds: int
    ) -> None:
        monkeypatch.undo()
        ((_, read),) = fills
        if change == "update":
            data = ItemUpdate(price_cents=150)
            await service.update_item(
                database=services.database, cache=services.cache, item=read, data=data
            )
        else:
            await service.delete_item(database=services.database, cache=services.cache, item=read)
        await fill(fills, seconds=seconds)

    monkeypatch.setattr(services.cache, "fill_many", change_then_fill)
    assert await get(services, item, account) == item  # the racing read answers what it read
    if change == "update":
        assert (await get(services, item, account)).price_cents == 150
    else:
        with pytest.raises(ItemNotFoundError):
            await get(services, item, account)


async def test_only_the_owner_or_an_admin_may_see_or_change_an_item(
    services: Services, account: Account, other_account: Account, admin_account: Account
) -> None:
    item = await new_item(services, account)
    await get(services, item, account)  # cached: the check holds for cached reads too
    with pytest.raises(NotItemOwnerError):
        await get(services, item, other_account)
    with pytest.raises(NotItemOwnerError):
        await service.editable_item(
            database=services.database, item_id=item.id, principal=other_account.principal
        )
    assert await get(services, item, admin_account) == item
    for allowed in (account, admin_account):
        editable = await service.editable_item(
            database=services.database, item_id=item.id, principal=allowed.principal
        )
        assert editable == item


async def page_through(services: Services, query: ItemQuery, reader: Account) -> list[ItemPublic]:
    seen: list[ItemPublic] = []
    while True:
        page = await service.list_items(
            database=services.database, query=query, principal=reader.principal
        )
        seen.extend(page.items)
        if page.next_cursor is None:
            return seen
        query = query.model_copy(update={"cursor": page.next_cursor})


@pytest.mark.parametrize("sort", ["price_cents", "-price_cents", "name", "-name", "-created_at"])
async def test_filter_sort_and_cursor_pages(
    services: Services, account: Account, other_account: Account, sort: str
) -> None:
    mine = [
        await new_item(services, account, price_cents=p % 3 * 100, status="active")
        for p in range(7)
    ]
    await new_item(services, account, status="archived")
    await new_item(services, other_account, status="active")

    query = ItemQuery.model_validate(
        {"owner_id": account.user.id, "status": "active", "sort": sort, "limit": 2}
    )
    listed = await page_through(services, query, account)

    field, descending = sort.lstrip("-"), sort.startswith("-")
    expected = sorted(mine, key=lambda i: (getattr(i, field), i.id), reverse=descending)
    assert [item.id for item in listed] == [item.id for item in expected]


async def test_users_list_only_their_own_items_and_admins_everyones(
    services: Services, account: Account, other_account: Account, admin_account: Account
) -> None:
    mine = await new_item(services, account)
    theirs = await new_item(services, other_account)

    listed = await page_through(services, ItemQuery(), account)
    assert [item.id for item in listed] == [mine.id]
    with pytest.raises(NotItemOwnerError):
        await page_through(services, ItemQuery(owner_id=other_account.user.id), account)
    by_admin = await page_through(
        services, ItemQuery(owner_id=other_account.user.id), admin_account
    )
    assert [item.id for item in by_admin] == [theirs.id]


async def test_page_size_default_and_cap() -> None:
    assert ItemQuery().limit == 20
    with pytest.raises(ValueError, match="less than or equal to 100"):
        ItemQuery(limit=101)


async def test_bad_cursors_are_refused(services: Services, account: Account) -> None:
    for _ in range(3):
        await new_item(services, account)
    query = ItemQuery(owner_id=account.user.id, sort="name", limit=1)
    page = await service.list_items(
        database=services.database, query=query, principal=account.principal
    )
    assert page.next_cursor is not None
    for cursor, sort in [("not-base64!", "name"), ("e30", "name"), (page.next_cursor, "-name")]:
        bad = ItemQuery.model_validate(
            {"owner_id": account.user.id, "sort": sort, "cursor": cursor}
        )
        with pytest.raises(BadRequestError):
            await service.list_items(
                database=services.database, query=bad, principal=account.principal
            )


@pytest.mark.parametrize(("sort", "cursor", "wrong"), forged_cursors())
async def test_forged_cursor_values_are_refused(
    services: Services, account: Account, sort: str, cursor: str, wrong: str
) -> None:
    """Every value decoded from a cursor is checked against the sort field's type and
    range before it reaches the database."""
    query = ItemQuery.model_validate({"owner_id": account.user.id, "sort": sort, "cursor": cursor})
    with pytest.raises(BadRequestError):
        await service.list_items(
            database=services.database, query=query, principal=account.principal
        )
