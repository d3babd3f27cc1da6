"""Data-subject rights and the audit query over GraphQL, against the real services."""

import pytest
from httpx import AsyncClient

from app.services import Services
from tests import actions
from tests.conftest import Account, new_account, unique
from tests.test_graphql_api import (
    CREATE,
    ME,
    NODE,
    NUMBER_KEYS,
    code,
    data,
    global_id,
    graphql,
    key_of,
)

EXPORT = "{ myPersonalData }"
ERASE = "mutation E($password: String!) { eraseMyAccount(password: $password) }"
TRAIL = """
query T($first: Int, $after: String, $last: Int, $before: String, $filter: AuditFilter) {
  auditRecords(first: $first, after: $after, last: $last, before: $before, filter: $filter) {
    edges { cursor node { id sequence action actor resourceId outcome occurredAt detail } }
    pageInfo { hasPreviousPage hasNextPage startCursor endCursor }
  }
}
"""


async def test_export_returns_the_callers_data(client: AsyncClient, account: Account) -> None:
    token = account.tokens.access_token
    created = data(await graphql(client, CREATE, token, input={"name": "exported"}))

    exported = data(await graphql(client, EXPORT, token))["myPersonalData"]

    assert exported["user"]["email"] == account.email
    assert "password_hash" not in str(exported)
    # The export is a document of its own, with the stored ids inside the API's global ones.
    assert [item["id"] for item in exported["items"]] == [key_of(created["createItem"]["id"])]
    assert {"user.register", "item.create"} <= {r["action"] for r in exported["audit_trail"]}
    assert code(await graphql(client, EXPORT)) == ("unauthorized", 401)


async def test_one_export_takes_the_whole_request(client: AsyncClient, account: Account) -> None:
    """Fifteen aliased exports of an account of 300 items took 16 s and answered 5.7 MB:
    the export takes the request's whole node budget, so a second one is refused."""
    token = account.tokens.access_token
    twice = await graphql(client, "{ a: myPersonalData b: myPersonalData }", token)
    assert code(twice) == ("query_too_costly", 400)
    beside = "{ myPersonalData items(first: 1) { edges { cursor } } }"
    assert code(await graphql(client, beside, token)) == ("query_too_costly", 400)
    assert "myPersonalData" in data(await graphql(client, EXPORT, token))


async def test_erasure_needs_the_password_and_ends_the_session(
    client: AsyncClient, account: Account
) -> None:
    token = account.tokens.access_token
    wrong = await graphql(client, ERASE, token, password="Wrong-passw0rd!")
    assert code(wrong) == ("wrong_password", 400)

    assert data(await graphql(client, ERASE, token, password=account.password)) == {
        "eraseMyAccount": True
    }
    assert code(await graphql(client, ME, token)) == ("unauthorized", 401)


async def test_audit_query_is_for_administrators(
    client: AsyncClient, account: Account, admin_account: Account
) -> None:
    for name in ("a", "b", "c"):
        data(await graphql(client, CREATE, account.tokens.access_token, input={"name": name}))
    admin = admin_account.tokens.access_token
    wanted = {"actor": str(account.user.id), "action": "item.create"}

    denied = await graphql(client, TRAIL, account.tokens.access_token, first=2, filter=wanted)
    assert code(denied) == ("forbidden", 403)
    first = data(await graphql(client, TRAIL, admin, first=2, filter=wanted))["auditRecords"]
    assert [edge["node"]["action"] for edge in first["edges"]] == ["item.create"] * 2
    assert first["pageInfo"]["hasNextPage"] is True
    after = first["pageInfo"]["endCursor"]
    second = data(await graphql(client, TRAIL, admin, first=2, after=after, filter=wanted))
    assert len(second["auditRecords"]["edges"]) == 1
    assert second["auditRecords"]["pageInfo"]["hasNextPage"] is False
    assert second["auditRecords"]["pageInfo"]["hasPreviousPage"] is True

    # Backwards: the last two (the oldest, newest first), and the one before them.
    everything = first["edges"] + second["auditRecords"]["edges"]
    last = data(await graphql(client, TRAIL, admin, last=2, filter=wanted))["auditRecords"]
    assert last["edges"] == everything[1:]
    assert (last["pageInfo"]["hasPreviousPage"], last["pageInfo"]["hasNextPage"]) == (True, False)
    start = last["pageInfo"]["startCursor"]
    back = data(await graphql(client, TRAIL, admin, last=2, before=start, filter=wanted))
    assert back["auditRecords"]["edges"] == everything[:1]
    assert back["auditRecords"]["pageInfo"]["hasPreviousPage"] is False

    # A record is a node: administrators fetch it again by its id, nobody else.
    record = everything[0]["node"]
    assert data(await graphql(client, NODE, admin, id=record["id"]))["node"] == {"id": record["id"]}
    denied = await graphql(client, NODE, account.tokens.access_token, id=record["id"])
    assert code(denied) == ("forbidden", 403)

    naive = {**wanted, "since": "2026-01-01T00:00:00"}
    assert code(await graphql(client, TRAIL, admin, first=2, filter=naive))[1] == 422
    assert code(await graphql(client, TRAIL, admin, first=2, after="x"))[1] == 400
    assert code(await graphql(client, TRAIL, admin, first=101))[1] == 422


@pytest.mark.parametrize("key", NUMBER_KEYS)
async def test_an_audit_record_id_that_is_no_int64_in_ascii_digits_is_invalid_input(
    client: AsyncClient, admin_account: Account, key: str
) -> None:
    body = await graphql(
        client, NODE, admin_account.tokens.access_token, id=global_id("AuditRecord", key)
    )
    assert code(body) == ("invalid_input", 422)


@pytest.mark.parametrize("key", [str(2**63 - 1), str(2**63 - 2)])
async def test_an_audit_record_id_at_the_end_of_int64_finds_nothing(
    client: AsyncClient, admin_account: Account, key: str
) -> None:
    """The largest sequence both databases store: its record was read as the one before
    the next, which is past int64, an unexpected error."""
    body = await graphql(
        client, NODE, admin_account.tokens.access_token, id=global_id("AuditRecord", key)
    )
    assert body == {"data": {"node": None}}


async def test_an_audit_cursor_that_is_no_stored_position_is_a_bad_request(
    client: AsyncClient, admin_account: Account
) -> None:
    admin = admin_account.tokens.access_token
    # Not ASCII digits (a superscript two passes str.isdigit), or past a 64-bit integer.
    for cursor in ("\u00b2", "\u0663", "9999999999999999999", str(2**63)):
        for arguments in ({"first": 2, "after": cursor}, {"last": 2, "before": cursor}):
            answer = await graphql(client, TRAIL, admin, **arguments)
            assert code(answer) == ("bad_request", 400), (cursor, arguments)


async def test_refused_password_checks_and_admin_calls_are_audited(
    client: AsyncClient, services: Services, account: Account
) -> None:
    token = account.tokens.access_token
    change = (
        'mutation { changePassword(currentPassword: "Wrong-passw0rd!", '
        'newPassword: "Brand-new-passw0rd!") }'
    )
    assert code(await graphql(client, change, token)) == ("wrong_password", 400)
    assert code(await graphql(client, ERASE, token, password="Wrong-passw0rd!")) == (
        "wrong_password",
        400,
    )
    assert code(await graphql(client, TRAIL, token, first=1)) == ("forbidden", 403)
    records = await services.audit.recent(limit=200)
    mine = {
        (r.entry.action, r.entry.outcome) for r in records if r.entry.actor == str(account.user.id)
    }
    assert {
        ("user.password_change", "denied"),
        ("user.erase", "denied"),
        ("admin.access", "denied"),
    } <= mine


async def test_every_refused_field_is_recorded_when_one_nulls_the_response(
    client: AsyncClient, services: Services, account: Account
) -> None:
    """A non-null field's error nulled the whole response and cancelled the fields still
    running beside it: of the refusals here, one was recorded."""
    owner = await new_account(services)
    mine = [
        data(await graphql(client, CREATE, owner.tokens.access_token, input={"name": name}))
        for name in (unique("a"), unique("b"))
    ]
    x, y = (created["createItem"]["id"] for created in mine)
    document = (
        "query($x: ID!, $y: ID!) { a: item(id: $x) { id } b: item(id: $y) { id } "
        "u: users(first: 1) { edges { cursor } } c: node(id: $x) { id } }"
    )
    request_id = actions.new_request_id("refusals")
    headers = {"Authorization": f"Bearer {account.tokens.access_token}", "X-Request-ID": request_id}
    response = await client.post(
        "/graphql", json={"query": document, "variables": {"x": x, "y": y}}, headers=headers
    )
    assert response.json()["data"] == {"a": None, "b": None, "u": None, "c": None}
    records = await services.audit.recent(limit=100)
    found = sorted(
        (r.entry.action, r.entry.resource_id or "")
        for r in records
        if r.entry.request_id == request_id
    )
    # `node(id: $x)` refuses the item `a` refused: a refusal of its own.
    item = "item.access"
    assert found == sorted(
        [
            ("admin.access", str(account.user.id)),
            (item, key_of(x)),
            (item, key_of(x)),
            (item, key_of(y)),
        ]
    ), found
