"""Every action that emits an event, done once through the API as a client does it.

Each action is one request with an `X-Request-ID` of its own: its events in the outbox
(their correlation id){% if cookiecutter.compliance_logging %} and its audit records (their request id){% endif %} are found by it, and
by nothing else. Setting up (accounts, items) goes through the services and uses other
ids. A new event type needs an entry in ACTIONS: test_outbox.py fails until it has one.

A refusal (403, 401, wrong password, 429) is recorded only up to an allowance per client
address a minute (RATE_LIMIT_FAILURE_RECORDS_PER_IP_PER_MINUTE): each refusal here comes
from an address of its own, so the rest of the suite cannot have used it up.
"""

{% if cookiecutter.api == "graphql" -%}
import base64
{% endif -%}
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from httpx import ASGITransport, AsyncClient

from app.api.dependencies import address_key
{% if cookiecutter.compliance_logging -%}
from app.audit.events import (
    AccountErased,
    AuditTrailRead,
    ErasureRefused,
    PersonalDataExported,
)
{% endif -%}
from app.events.schemas import (
    AdminAccessDenied,
    ItemAccessDenied,
    ItemCreated,
    ItemDeleted,
    ItemsReadByAdmin,
    ItemUpdated,
    LoggedOut,
    LoginFailed,
    LoginRateLimited,
    LoginSucceeded,
    PasswordChanged,
    PasswordChangeRefused,
    RefreshReuseDetected,
    RoleChanged,
    TokenRefreshed,
    TokenRejected,
    UserRegistered,
    UsersListed,
)
from app.services import Services
from tests.conftest import PASSWORD, new_account, new_item, unique, unique_address

NEW_PASSWORD = "N3w-and-unrelated-phrase!"
WRONG_PASSWORD = "Wr0ng-but-plausible!"


@dataclass(frozen=True)
class Performed:
    """What a client did: the request's id, the aggregate its event is about (None for
    an event about no single resource), and who did it ("anonymous": nobody signed in)."""

    request_id: str
    resource_id: str | None
    actor: str


# Hex digits written as letters: an id whose digits masking would take for personal
# data (a run like a card or phone number, about one id in a few hundred) is replaced by
# the service with one of its own, and the action's records were then not found by it.
_LETTERS = str.maketrans("0123456789", "ghijklmnop")


def new_request_id(prefix: str = "act") -> str:
    return f"{prefix}-{uuid.uuid4().hex.translate(_LETTERS)}"


@asynccontextmanager
async def from_a_fresh_address(client: AsyncClient) -> AsyncIterator[AsyncClient]:
    """A client of the same app calling from an address no other request used."""
    transport = client._transport
    assert isinstance(transport, ASGITransport)
    fresh = ASGITransport(app=transport.app, client=(unique_address(), 4321))
    async with AsyncClient(transport=fresh, base_url=str(client.base_url)) as other:
        yield other


def _headers(request_id: str, token: str | None) -> dict[str, str]:
    headers = {"X-Request-ID": request_id}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return headers
{%- if cookiecutter.api == "rest" %}


async def _call(
    client: AsyncClient, request_id: str, method: str, path: str, token: str | None, **kw: Any
) -> Any:
    """The answer's JSON (True when it has no body), or None when it was refused."""
    response = await client.request(
        method, f"/api/v1{path}", headers=_headers(request_id, token), **kw
    )
    if response.status_code >= 400:
        return None
    return response.json() if response.content else True


async def login(client: AsyncClient, request_id: str, email: str, password: str) -> Any:
    form = {"username": email, "password": password}
    return await _call(client, request_id, "POST", "/auth/token", None, data=form)


async def refresh(client: AsyncClient, request_id: str, refresh_token: str) -> Any:
    body = {"refresh_token": refresh_token}
    return await _call(client, request_id, "POST", "/auth/refresh", None, json=body)


async def logout(client: AsyncClient, request_id: str, token: str) -> Any:
    return await _call(client, request_id, "POST", "/auth/logout", token)


async def register(client: AsyncClient, request_id: str, email: str, password: str) -> Any:
    body = {"email": email, "password": password}
    return await _call(client, request_id, "POST", "/auth/register", None, json=body)


async def change_password(
    client: AsyncClient, request_id: str, token: str, current: str, new: str
) -> Any:
    body = {"current_password": current, "new_password": new}
    return await _call(client, request_id, "POST", "/users/me/password", token, json=body)


async def create_item(client: AsyncClient, request_id: str, token: str, name: str) -> str | None:
    created = await _call(client, request_id, "POST", "/items", token, json={"name": name})
    return str(created["id"]) if created else None


async def update_item(
    client: AsyncClient, request_id: str, token: str, item_id: str, name: str
) -> Any:
    return await _call(client, request_id, "PATCH", f"/items/{item_id}", token, json={"name": name})


async def delete_item(client: AsyncClient, request_id: str, token: str, item_id: str) -> Any:
    return await _call(client, request_id, "DELETE", f"/items/{item_id}", token)


async def read_item(client: AsyncClient, request_id: str, token: str, item_id: str) -> Any:
    return await _call(client, request_id, "GET", f"/items/{item_id}", token)


async def me(client: AsyncClient, request_id: str, token: str) -> Any:
    return await _call(client, request_id, "GET", "/users/me", token)


async def list_users(client: AsyncClient, request_id: str, token: str) -> Any:
    return await _call(client, request_id, "GET", "/users", token, params={"limit": 2})


async def set_role(
    client: AsyncClient, request_id: str, token: str, user_id: str, role: str
) -> Any:
    body = {"role": role}
    return await _call(client, request_id, "PUT", f"/users/{user_id}/role", token, json=body)
{%- if cookiecutter.compliance_logging %}


async def export_data(client: AsyncClient, request_id: str, token: str) -> Any:
    return await _call(client, request_id, "GET", "/users/me/export", token)


async def erase_account(client: AsyncClient, request_id: str, token: str, password: str) -> Any:
    body = {"password": password}
    return await _call(client, request_id, "POST", "/users/me/erase", token, json=body)


async def read_trail(client: AsyncClient, request_id: str, token: str) -> Any:
    return await _call(client, request_id, "GET", "/audit", token, params={"limit": 2})
{%- endif %}
{%- else %}


async def _call(
    client: AsyncClient, request_id: str, query: str, token: str | None, **variables: Any
) -> Any:
    """The answer's data, or None when it was refused."""
    response = await client.post(
        "/graphql",
        json={"query": query, "variables": variables},
        headers=_headers(request_id, token),
    )
    body: dict[str, Any] = response.json()
    if response.status_code != 200 or body.get("errors"):
        return None
    return body["data"]


def _global_id(type_name: str, key: str) -> str:
    """The API's id of a node: the actions here take and give stored ids."""
    return base64.b64encode(f"{type_name}:{key}".encode()).decode()


def _pair(answer: Any, field: str) -> Any:
    if answer is None:
        return None
    pair = answer[field]
    return {"access_token": pair["accessToken"], "refresh_token": pair["refreshToken"]}


async def login(client: AsyncClient, request_id: str, email: str, password: str) -> Any:
    query = (
        "mutation L($e: String!, $p: String!) "
        "{ login(email: $e, password: $p) { accessToken refreshToken } }"
    )
    return _pair(await _call(client, request_id, query, None, e=email, p=password), "login")


async def refresh(client: AsyncClient, request_id: str, refresh_token: str) -> Any:
    query = (
        "mutation R($t: String!) { refreshToken(refreshToken: $t) { accessToken refreshToken } }"
    )
    return _pair(await _call(client, request_id, query, None, t=refresh_token), "refreshToken")


async def logout(client: AsyncClient, request_id: str, token: str) -> Any:
    return await _call(client, request_id, "mutation { logout }", token)


async def register(client: AsyncClient, request_id: str, email: str, password: str) -> Any:
    query = "mutation G($e: String!, $p: String!) { register(email: $e, password: $p) { detail } }"
    return await _call(client, request_id, query, None, e=email, p=password)


async def change_password(
    client: AsyncClient, request_id: str, token: str, current: str, new: str
) -> Any:
    query = (
        "mutation P($c: String!, $n: String!) "
        "{ changePassword(currentPassword: $c, newPassword: $n) }"
    )
    return await _call(client, request_id, query, token, c=current, n=new)


async def create_item(client: AsyncClient, request_id: str, token: str, name: str) -> str | None:
    query = "mutation C($n: String!) { createItem(input: {name: $n}) { id } }"
    created = await _call(client, request_id, query, token, n=name)
    if not created:
        return None
    return base64.b64decode(created["createItem"]["id"]).decode().split(":", 1)[1]


async def update_item(
    client: AsyncClient, request_id: str, token: str, item_id: str, name: str
) -> Any:
    query = "mutation U($id: ID!, $n: String!) { updateItem(id: $id, input: {name: $n}) { id } }"
    return await _call(client, request_id, query, token, id=_global_id("Item", item_id), n=name)


async def delete_item(client: AsyncClient, request_id: str, token: str, item_id: str) -> Any:
    query = "mutation D($id: ID!) { deleteItem(id: $id) }"
    return await _call(client, request_id, query, token, id=_global_id("Item", item_id))


async def read_item(client: AsyncClient, request_id: str, token: str, item_id: str) -> Any:
    query = "query I($id: ID!) { item(id: $id) { id } }"
    return await _call(client, request_id, query, token, id=_global_id("Item", item_id))


async def me(client: AsyncClient, request_id: str, token: str) -> Any:
    return await _call(client, request_id, "{ me { id } }", token)


async def list_users(client: AsyncClient, request_id: str, token: str) -> Any:
    return await _call(client, request_id, "{ users(first: 2) { edges { cursor } } }", token)


async def set_role(
    client: AsyncClient, request_id: str, token: str, user_id: str, role: str
) -> Any:
    query = "mutation R($id: ID!, $r: UserRole!) { setRole(userId: $id, role: $r) { role } }"
    user = _global_id("User", user_id)
    return await _call(client, request_id, query, token, id=user, r=role.upper())
{%- if cookiecutter.compliance_logging %}


async def export_data(client: AsyncClient, request_id: str, token: str) -> Any:
    return await _call(client, request_id, "{ myPersonalData }", token)


async def erase_account(client: AsyncClient, request_id: str, token: str, password: str) -> Any:
    query = "mutation E($p: String!) { eraseMyAccount(password: $p) }"
    return await _call(client, request_id, query, token, p=password)


async def read_trail(client: AsyncClient, request_id: str, token: str) -> Any:
    return await _call(client, request_id, "{ auditRecords(first: 2) { edges { cursor } } }", token)
{%- endif %}
{%- endif %}


# Each action: set up what it needs, do it in one request, say what was done.
Action = Callable[[AsyncClient, Services], Awaitable[Performed]]


async def _create_item(client: AsyncClient, services: Services) -> Performed:
    owner = await new_account(services)
    request_id = new_request_id()
    item_id = await create_item(client, request_id, owner.tokens.access_token, unique("item"))
    assert item_id, "creating an item was refused"
    return Performed(request_id, item_id, str(owner.user.id))


async def _update_item(client: AsyncClient, services: Services) -> Performed:
    owner = await new_account(services)
    item = await new_item(services, owner)
    request_id = new_request_id()
    token = owner.tokens.access_token
    assert await update_item(client, request_id, token, str(item.id), unique("renamed"))
    return Performed(request_id, str(item.id), str(owner.user.id))


async def _delete_item(client: AsyncClient, services: Services) -> Performed:
    owner = await new_account(services)
    item = await new_item(services, owner)
    request_id = new_request_id()
    assert await delete_item(client, request_id, owner.tokens.access_token, str(item.id))
    return Performed(request_id, str(item.id), str(owner.user.id))


async def _register(client: AsyncClient, services: Services) -> Performed:
    email = f"{unique('registered')}@example.com"
    request_id = new_request_id()
    assert await register(client, request_id, email, PASSWORD), "registration was refused"
    async with services.database.unit_of_work(read_only=True) as uow:
        user = await uow.users.by_email(email)
    assert user is not None, "a registration that was answered left no account"
    return Performed(request_id, str(user.id), "anonymous")


async def _change_password(client: AsyncClient, services: Services) -> Performed:
    account = await new_account(services)
    request_id = new_request_id()
    token = account.tokens.access_token
    assert await change_password(client, request_id, token, account.password, NEW_PASSWORD)
    return Performed(request_id, str(account.user.id), str(account.user.id))


async def _login(client: AsyncClient, services: Services) -> Performed:
    account = await new_account(services)
    request_id = new_request_id()
    assert await login(client, request_id, account.email, account.password), "login refused"
    return Performed(request_id, str(account.user.id), str(account.user.id))


async def _login_failed(client: AsyncClient, services: Services) -> Performed:
    account = await new_account(services)
    request_id = new_request_id()
    assert await login(client, request_id, account.email, WRONG_PASSWORD) is None
    return Performed(request_id, str(account.user.id), "anonymous")


async def _logout(client: AsyncClient, services: Services) -> Performed:
    account = await new_account(services)
    request_id = new_request_id()
    assert await logout(client, request_id, account.tokens.access_token)
    return Performed(request_id, str(account.user.id), str(account.user.id))


async def _refresh(client: AsyncClient, services: Services) -> Performed:
    account = await new_account(services)
    request_id = new_request_id()
    assert await refresh(client, request_id, account.tokens.refresh_token), "refresh refused"
    return Performed(request_id, str(account.user.id), str(account.user.id))


async def _refresh_reuse(client: AsyncClient, services: Services) -> Performed:
    account = await new_account(services)
    assert await refresh(client, new_request_id(), account.tokens.refresh_token)
    request_id = new_request_id()
    # The token already spent: a replay, refused.
    assert await refresh(client, request_id, account.tokens.refresh_token) is None
    return Performed(request_id, str(account.user.id), "anonymous")


async def _list_users(client: AsyncClient, services: Services) -> Performed:
    admin = await new_account(services, admin=True)
    request_id = new_request_id()
    assert await list_users(client, request_id, admin.tokens.access_token)
    return Performed(request_id, None, str(admin.user.id))


async def _change_role(client: AsyncClient, services: Services) -> Performed:
    admin = await new_account(services, admin=True)
    account = await new_account(services)
    request_id = new_request_id()
    user_id = str(account.user.id)
    assert await set_role(client, request_id, admin.tokens.access_token, user_id, "admin")
    return Performed(request_id, user_id, str(admin.user.id))


async def _change_password_refused(client: AsyncClient, services: Services) -> Performed:
    account = await new_account(services)
    request_id = new_request_id()
    token = account.tokens.access_token
    async with from_a_fresh_address(client) as fresh:
        assert await change_password(fresh, request_id, token, WRONG_PASSWORD, NEW_PASSWORD) is None
    return Performed(request_id, str(account.user.id), str(account.user.id))


async def _item_access_denied(client: AsyncClient, services: Services) -> Performed:
    owner = await new_account(services)
    other = await new_account(services)
    item = await new_item(services, owner)
    request_id = new_request_id()
    async with from_a_fresh_address(client) as fresh:
        assert await read_item(fresh, request_id, other.tokens.access_token, str(item.id)) is None
    return Performed(request_id, str(item.id), str(other.user.id))


async def _admin_reads_an_item(client: AsyncClient, services: Services) -> Performed:
    owner = await new_account(services)
    admin = await new_account(services, admin=True)
    item = await new_item(services, owner)
    request_id = new_request_id()
    assert await read_item(client, request_id, admin.tokens.access_token, str(item.id))
    return Performed(request_id, str(owner.user.id), str(admin.user.id))


async def _admin_access_denied(client: AsyncClient, services: Services) -> Performed:
    account = await new_account(services)
    request_id = new_request_id()
    async with from_a_fresh_address(client) as fresh:
        assert await list_users(fresh, request_id, account.tokens.access_token) is None
    return Performed(request_id, str(account.user.id), str(account.user.id))


async def _token_rejected(client: AsyncClient, services: Services) -> Performed:
    request_id = new_request_id()
    async with from_a_fresh_address(client) as fresh:
        assert await me(fresh, request_id, "not.a.token") is None
    # Nobody is signed in: the event is about no known user (its key: "anonymous").
    return Performed(request_id, "anonymous", "anonymous")


async def _login_rate_limited(client: AsyncClient, services: Services) -> Performed:
    account = await new_account(services)
    allowed = services.settings.rate_limit.login_per_account_per_minute
    async with from_a_fresh_address(client) as fresh:
        # The account's attempts from this address used up (counted as the login counts
        # them: a hundred real attempts at the suite's limit cost seconds of hashing)...
        transport = fresh._transport
        assert isinstance(transport, ASGITransport)
        address = address_key(transport.client[0])
        for _ in range(allowed):
            used = await services.limiter.hit(
                f"login-account:{account.email}:{address}", limit=allowed
            )
            assert used.allowed
        request_id = new_request_id()
        # ...then one more, refused before its password is checked, even a correct one.
        assert await login(fresh, request_id, account.email, account.password) is None
    # Refused before the account is looked up: about no known user.
    return Performed(request_id, "anonymous", "anonymous")
{%- if cookiecutter.compliance_logging %}


async def _export(client: AsyncClient, services: Services) -> Performed:
    account = await new_account(services)
    request_id = new_request_id()
    assert await export_data(client, request_id, account.tokens.access_token)
    return Performed(request_id, str(account.user.id), str(account.user.id))


async def _erase(client: AsyncClient, services: Services) -> Performed:
    account = await new_account(services)
    request_id = new_request_id()
    token = account.tokens.access_token
    assert await erase_account(client, request_id, token, account.password)
    return Performed(request_id, str(account.user.id), str(account.user.id))


async def _read_trail(client: AsyncClient, services: Services) -> Performed:
    admin = await new_account(services, admin=True)
    request_id = new_request_id()
    assert await read_trail(client, request_id, admin.tokens.access_token)
    return Performed(request_id, None, str(admin.user.id))


async def _erase_refused(client: AsyncClient, services: Services) -> Performed:
    account = await new_account(services)
    request_id = new_request_id()
    token = account.tokens.access_token
    async with from_a_fresh_address(client) as fresh:
        assert await erase_account(fresh, request_id, token, WRONG_PASSWORD) is None
    return Performed(request_id, str(account.user.id), str(account.user.id))
{%- endif %}


# By event type: the action of the API that emits it.
ACTIONS: dict[str, Action] = {
    ItemCreated.event_type: _create_item,
    ItemUpdated.event_type: _update_item,
    ItemDeleted.event_type: _delete_item,
    UserRegistered.event_type: _register,
    PasswordChanged.event_type: _change_password,
    LoginSucceeded.event_type: _login,
    LoginFailed.event_type: _login_failed,
    LoggedOut.event_type: _logout,
    TokenRefreshed.event_type: _refresh,
    RefreshReuseDetected.event_type: _refresh_reuse,
    UsersListed.event_type: _list_users,
    RoleChanged.event_type: _change_role,
    PasswordChangeRefused.event_type: _change_password_refused,
    ItemAccessDenied.event_type: _item_access_denied,
    AdminAccessDenied.event_type: _admin_access_denied,
    ItemsReadByAdmin.event_type: _admin_reads_an_item,
    TokenRejected.event_type: _token_rejected,
    LoginRateLimited.event_type: _login_rate_limited,
{%- if cookiecutter.compliance_logging %}
    PersonalDataExported.event_type: _export,
    AccountErased.event_type: _erase,
    ErasureRefused.event_type: _erase_refused,
    AuditTrailRead.event_type: _read_trail,
{%- endif %}
}
