"""Data-subject rights and the audit query over REST, against the real services."""

from uuid import uuid4

from httpx import AsyncClient

from app.services import Services
from tests.conftest import Account
from tests.test_rest_api import API, ITEMS, problem


async def test_export_returns_the_callers_data(client: AsyncClient, account: Account) -> None:
    created = await client.post(ITEMS, json={"name": "exported"}, headers=account.headers)
    assert created.status_code == 201, created.text

    response = await client.get(f"{API}/users/me/export", headers=account.headers)

    assert response.status_code == 200, response.text
    data = response.json()
    assert data["user"]["email"] == account.email
    assert "password_hash" not in response.text
    assert [item["id"] for item in data["items"]] == [created.json()["id"]]
    assert {"user.register", "item.create"} <= {r["action"] for r in data["audit_trail"]}
    problem(401, await client.get(f"{API}/users/me/export"))


async def test_erasure_needs_the_password_and_ends_the_session(
    client: AsyncClient, account: Account
) -> None:
    erase = f"{API}/users/me/erase"
    wrong = await client.post(erase, json={"password": "Wrong-passw0rd!"}, headers=account.headers)
    assert problem(400, wrong)["code"] == "wrong_password"
    problem(422, await client.post(erase, json={}, headers=account.headers))
    other = {"password": account.password, "user_id": str(uuid4())}
    problem(422, await client.post(erase, json=other, headers=account.headers))

    done = await client.post(erase, json={"password": account.password}, headers=account.headers)

    assert done.status_code == 204, done.text
    problem(401, await client.get(f"{API}/users/me", headers=account.headers))
    login = await client.post(
        f"{API}/auth/token", data={"username": account.email, "password": account.password}
    )
    problem(401, login)


async def test_audit_query_is_for_administrators(
    client: AsyncClient, account: Account, admin_account: Account
) -> None:
    for name in ("a", "b", "c"):
        created = await client.post(ITEMS, json={"name": name}, headers=account.headers)
        assert created.status_code == 201, created.text
    trail = f"{API}/audit"
    params: dict[str, str | int] = {
        "actor": str(account.user.id),
        "action": "item.create",
        "limit": 2,
    }

    problem(403, await client.get(trail, params=params, headers=account.headers))
    first = await client.get(trail, params=params, headers=admin_account.headers)
    assert first.status_code == 200, first.text
    body = first.json()
    assert [r["action"] for r in body["data"]] == ["item.create", "item.create"]
    cursor = body["meta"]["next_cursor"]
    second = await client.get(
        trail, params={**params, "cursor": cursor}, headers=admin_account.headers
    )
    assert [r["action"] for r in second.json()["data"]] == ["item.create"]
    assert second.json()["meta"]["next_cursor"] is None

    for bad in ({"since": "2026-01-01T00:00:00"}, {"cursor": "abc"}, {"actor": "x" * 65}):
        problem(422, await client.get(trail, params=bad, headers=admin_account.headers))


async def test_refused_password_checks_and_admin_calls_are_audited(
    client: AsyncClient, services: Services, account: Account
) -> None:
    wrong = {"current_password": "Wrong-passw0rd!", "new_password": "Brand-new-passw0rd!"}
    change = await client.post(f"{API}/users/me/password", json=wrong, headers=account.headers)
    erase = await client.post(
        f"{API}/users/me/erase", json={"password": "Wrong-passw0rd!"}, headers=account.headers
    )
    admin = await client.get(f"{API}/audit", headers=account.headers)
    problem(400, change)
    problem(400, erase)
    problem(403, admin)
    records = await services.audit.recent(limit=200)
    by_request = {
        r.entry.request_id: (r.entry.action, r.entry.outcome, r.entry.actor) for r in records
    }
    user = str(account.user.id)
    assert by_request[change.headers["x-request-id"]] == ("user.password_change", "denied", user)
    assert by_request[erase.headers["x-request-id"]] == ("user.erase", "denied", user)
    assert by_request[admin.headers["x-request-id"]] == ("admin.access", "denied", user)
