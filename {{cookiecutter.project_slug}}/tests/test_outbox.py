"""What the README promises of the outbox: every action writes its event, and the event
is written in the transaction of its change: with it, and only with it.

The outbox is read back from the database itself, where the relay reads it: an event
that never reached it is never published.
"""

import asyncio
import json
from dataclasses import dataclass
from typing import Any
from uuid import UUID{% if cookiecutter.database == "postgres" %}, uuid4{% endif %}

import pytest
from httpx import AsyncClient
{%- if cookiecutter.database == "postgres" %}
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError
{%- else %}
from pymongo.errors import BulkWriteError
{%- endif %}
{% if cookiecutter.compliance_logging %}
from app.audit.events import AUDIT_EVENT_TYPES, AuditCheckpointed
from app.audit.sealer import AuditSealer
{%- endif %}
{%- if cookiecutter.database == "postgres" or cookiecutter.compliance_logging %}
from app.core.context import RequestContext, set_current_request
{%- endif %}
from app.events.schemas import EVENT_TYPES, ItemCreated, ItemUpdated
from app.items.schemas import ItemCreate
from app.services import Services
{%- if cookiecutter.database == "postgres" %}
from app.storage.postgres.database import PostgresDatabase
{%- else %}
from app.storage.mongodb.database import MongoDatabase
{%- endif %}
from tests.actions import ACTIONS
from tests.conftest import Account, {% if cookiecutter.compliance_logging %}background_paused, eventually, in_turn, {% endif %}new_item, unique
{%- if cookiecutter.compliance_logging %}

# Published, but caused by no request: the audit sealer writes `audit.checkpoint` in the
# background after sealing records, so no action of the API makes it happen. Its event
# is checked by test_the_sealer_writes_its_checkpoint_to_the_outbox below, and the
# checkpoint itself by test_verify_checks_a_checkpoint_kept_elsewhere (tests/test_audit.py).
NOT_CAUSED_BY_A_REQUEST = {AuditCheckpointed.event_type}
{%- endif %}


@dataclass(frozen=True)
class Written:
    """An event as the outbox holds it."""

    event_id: str
    event_type: str
    aggregate_id: str
    payload: dict[str, Any]


{% if cookiecutter.database == "postgres" -%}
_SELECT = "SELECT event_id, event_type, aggregate_id, payload FROM outbox WHERE "
_OUTBOX_BY = {
    "correlation_id": _SELECT + "correlation_id = :value ORDER BY sequence",
    "event_id": _SELECT + "event_id = :value ORDER BY sequence",
    "aggregate_id": _SELECT + "aggregate_id = :value ORDER BY sequence",
}


{% endif -%}
async def outbox(services: Services, field: str, value: str) -> list[Written]:
    """The outbox entries whose `field` (correlation_id, event_id, aggregate_id) is `value`."""
    assert field in {"correlation_id", "event_id", "aggregate_id"}, field
{%- if cookiecutter.database == "postgres" %}
    assert isinstance(services.database, PostgresDatabase)
    query = text(_OUTBOX_BY[field])
    parameter: Any = UUID(value) if field == "event_id" else value
    async with services.database.engine.connect() as connection:
        rows = (await connection.execute(query, {"value": parameter})).all()
    return [
        Written(str(row.event_id), row.event_type, row.aggregate_id, json.loads(row.payload))
        for row in rows
    ]
{%- else %}
    assert isinstance(services.database, MongoDatabase)
    cursor = services.database.db["outbox"].find({field: value}).sort("sequence", 1)
    return [
        Written(
            str(document["event_id"]),
            document["event_type"],
            document["aggregate_id"],
            json.loads(document["payload"]),
        )
        async for document in cursor
    ]
{%- endif %}


async def item_exists(services: Services, item_id: UUID) -> bool:
    async with services.database.unit_of_work(read_only=True) as uow:
        return await uow.items.get(item_id) is not None


{% if cookiecutter.database == "mongodb" -%}
async def runs_transactions(services: Services) -> bool:
    """Whether the server can commit a change and its events together.

    Multi-document transactions need a replica set or a sharded cluster. The stand-in
    server some test machines use (nx-27017) is a standalone server without them: there
    the events follow the change, as the README says, and atomicity cannot be shown.
    The tests then check what the README promises of a standalone server instead.
    """
    assert isinstance(services.database, MongoDatabase)
    hello: dict[str, Any] = await services.database.db.command("hello")
    return "setName" in hello or hello.get("msg") == "isdbgrid"


{% endif -%}
def test_every_event_type_has_an_action() -> None:
    """A new event type fails here until tests/actions.py can make it happen."""
{%- if cookiecutter.compliance_logging %}
    published = (set(EVENT_TYPES) | set(AUDIT_EVENT_TYPES)) - NOT_CAUSED_BY_A_REQUEST
{%- else %}
    published = set(EVENT_TYPES)
{%- endif %}
    assert set(ACTIONS) == published


@pytest.mark.parametrize("event_type", sorted(ACTIONS))
async def test_each_action_writes_its_event_to_the_outbox(
    client: AsyncClient, services: Services, event_type: str
) -> None:
    done = await ACTIONS[event_type](client, services)

    written = await outbox(services, "correlation_id", done.request_id)
    events = [event for event in written if event.event_type == event_type]
    assert len(events) == 1, f"{event_type} expected, written: {[e.event_type for e in written]}"
    (event,) = events
    # Keyed by the aggregate it is about (an event about no single one: by its own id).
    assert event.aggregate_id == (done.resource_id or event.event_id)
    assert event.payload["id"] == event.event_id
{%- if cookiecutter.compliance_logging %}


async def test_the_sealer_writes_its_checkpoint_to_the_outbox(
    services: Services, account: Account
) -> None:
    """A sealer's first round that seals records publishes a checkpoint of the head it
    made (a sealer signs only heads it sealed: the app's own is paused, so the record is
    this one's to seal)."""
    sealer = AuditSealer(
        services.audit,
        database=services.database,
        cache=services.cache,
        settings=services.settings.audit,
        key=services.sealer.key,
    )
    request_id = unique("checkpoint")
    async with background_paused(services):
        await new_item(services, account)
        set_current_request(RequestContext(request_id=request_id))
        try:
            # None while another instance's sealer holds the turn.
            round_ = await eventually(lambda: in_turn(sealer.run_once))
        finally:
            set_current_request(None)
    assert round_.sealed >= 1
    written = await outbox(services, "correlation_id", request_id)
    assert [event.event_type for event in written] == [AuditCheckpointed.event_type]
    (event,) = written
    assert event.aggregate_id == event.event_id
    assert event.payload["token"]
{%- endif %}


async def test_a_committed_change_has_its_event_in_the_same_database(
    services: Services, account: Account
) -> None:
    """Several changes at once: each one committed has its event, none has two."""
    items = await asyncio.gather(*(new_item(services, account) for _ in range(8)))
    for item in items:
        assert await item_exists(services, item.id)
        written = await outbox(services, "aggregate_id", str(item.id))
        assert [event.event_type for event in written] == [ItemCreated.event_type]
        assert written[0].payload["item_id"] == str(item.id)


class DoomedError(Exception):
    """Raised by a test inside a unit of work, after the event was emitted."""


async def fail_after_emitting(services: Services, owner: Account, emitted: list[Any]) -> None:
    async with services.database.unit_of_work() as uow:
        item = await uow.items.add(ItemCreate(name=unique("doomed")), owner_id=owner.user.id)
        event = ItemCreated(item_id=item.id, owner_id=item.owner_id, name=item.name)
        uow.emit(event)
        emitted.extend([item, event])
        raise DoomedError


async def test_a_unit_of_work_that_fails_after_emitting_leaves_neither(
    services: Services, account: Account
) -> None:
    emitted: list[Any] = []
    with pytest.raises(DoomedError):
        await fail_after_emitting(services, account, emitted)
    item, event = emitted

    # No event without its change, on any server.
    assert await outbox(services, "event_id", str(event.id)) == []
{%- if cookiecutter.database == "mongodb" %}
    if not await runs_transactions(services):
        # A standalone server (the stand-in) cannot undo the change; what the README
        # says of it holds: the change is kept, and as its unit of work failed, no event.
        assert await item_exists(services, item.id)
        return
{%- endif %}
    assert not await item_exists(services, item.id)


async def emit_the_same_event_twice(services: Services, owner: Account, emitted: list[Any]) -> None:
    async with services.database.unit_of_work() as uow:
        item = await uow.items.add(ItemCreate(name=unique("torn")), owner_id=owner.user.id)
        first = ItemCreated(item_id=item.id, owner_id=item.owner_id, name=item.name)
        emitted.extend([item, first])
        uow.emit(first)
        uow.emit(ItemUpdated(id=first.id, item_id=item.id, changed=["name"]))


async def test_a_transaction_failing_after_its_outbox_write_leaves_neither(
    services: Services, account: Account
) -> None:
    """The second event reuses the first one's id: the outbox's unique event id refuses
    it, after the first event was written. An outbox written in a transaction (or
    session) of its own would keep the change, or the first event, or both."""
    emitted: list[Any] = []
    with pytest.raises({% if cookiecutter.database == "postgres" %}IntegrityError{% else %}BulkWriteError{% endif %}):
        await emit_the_same_event_twice(services, account, emitted)
    item, first = emitted
{%- if cookiecutter.database == "mongodb" %}
    if not await runs_transactions(services):
        # A standalone server (the stand-in) cannot undo the change: the events are
        # written right after it, as the README says. A replica set shows atomicity.
        assert await item_exists(services, item.id)
        return
{%- endif %}

    assert not await item_exists(services, item.id)
    assert await outbox(services, "event_id", str(first.id)) == []
    assert await outbox(services, "aggregate_id", str(item.id)) == []
{%- if cookiecutter.database == "postgres" %}


async def test_a_change_refused_at_commit_leaves_no_event(
    services: Services, account: Account
) -> None:
    """A deferred constraint refuses the change at COMMIT, after every statement of the
    transaction (the outbox insert too) ran: an outbox committed on its own, before the
    change, would keep an event of a change that never happened."""
    assert isinstance(services.database, PostgresDatabase)
    engine = services.database.engine
    name = unique("refused")
    function = f"refuse_{uuid4().hex}"
    async with engine.begin() as connection:
        await connection.execute(
            text(
                f"CREATE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
                f" IF NEW.name = '{name}' THEN RAISE EXCEPTION 'injected failure at commit'"
                " USING ERRCODE = 'check_violation'; END IF; RETURN NULL; END $$"
            )
        )
        await connection.execute(
            text(
                f"CREATE CONSTRAINT TRIGGER {function} AFTER INSERT ON items"
                f" DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION {function}()"
            )
        )
    set_current_request(RequestContext(request_id=name))
    try:
        with pytest.raises(DBAPIError, match="injected failure at commit"):
            await new_item(services, account, name=name)
    finally:
        set_current_request(None)
        async with engine.begin() as connection:
            await connection.execute(text(f"DROP TRIGGER {function} ON items"))
            await connection.execute(text(f"DROP FUNCTION {function}()"))

    async with engine.connect() as connection:
        count = await connection.scalar(
            text("SELECT count(*) FROM items WHERE name = :name"), {"name": name}
        )
    assert count == 0
    assert await outbox(services, "correlation_id", name) == []
{%- endif %}
