"""No input makes a server error or an outsized Redis key: times are checked in UTC,
whole numbers against what the databases store, and client text never sizes a key."""

from typing import Any

import pytest
from httpx import AsyncClient
from pydantic import TypeAdapter, ValidationError
{% if cookiecutter.compliance_logging %}
from app.audit.records import Checkpoint
{%- endif %}
from app.core.errors import UnauthorizedError
from app.core.types import INT64_MAX, CursorTime, IsoDateTime, StorableInt, UtcDateTime
from app.services import Services
from tests.actions import from_a_fresh_address, login, new_request_id
from tests.conftest import Account, unique_address
from tests.test_auth import login as login_directly
{%- if cookiecutter.compliance_logging %}
{%- if cookiecutter.api == "rest" %}
from tests.test_rest_api import API, problem
{%- else %}
from tests.test_graphql_api import code, data, graphql
{%- endif %}
{%- endif %}

# Valid ISO 8601 times whose UTC form falls outside years 1 to 9999: no driver takes them.
OUT_OF_RANGE = ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"]
# The first and the last moment that have a UTC form.
EDGES = ["0001-01-01T00:00:00+00:00", "9999-12-31T23:59:59.999999+00:00"]
TIME_TYPES = [IsoDateTime, CursorTime, UtcDateTime]
# Far more than any rate-limit key needs: the prefix, the limit's name and a digest.
KEY_MAX = 120


@pytest.mark.parametrize("kind", TIME_TYPES)
@pytest.mark.parametrize("text", OUT_OF_RANGE)
def test_a_time_out_of_range_once_in_utc_is_a_validation_error(kind: Any, text: str) -> None:
    with pytest.raises(ValidationError):
        TypeAdapter(kind).validate_python(text)


@pytest.mark.parametrize("kind", TIME_TYPES)
@pytest.mark.parametrize("text", EDGES)
def test_the_first_and_last_moments_in_utc_are_accepted(kind: Any, text: str) -> None:
    assert TypeAdapter(kind).validate_python(text).utcoffset() is not None


@pytest.mark.parametrize("number", [INT64_MAX + 1, -INT64_MAX - 2, 10**20])
def test_a_whole_number_beyond_int64_is_a_validation_error(number: int) -> None:
    with pytest.raises(ValidationError):
        TypeAdapter(StorableInt).validate_python(number)
    assert TypeAdapter(StorableInt).validate_python(INT64_MAX) == INT64_MAX


async def rate_limit_keys(services: Services) -> set[str]:
    pattern = services.cache.key("ratelimit:*")
    return {key async for key in services.cache.redis.scan_iter(match=pattern)}


async def test_a_login_with_an_overlong_email_is_refused_without_a_key_of_its_size(
    services: Services,
) -> None:
    before = await rate_limit_keys(services)
    with pytest.raises(UnauthorizedError):
        await login_directly(
            services, "x" * 900_000 + "@example.com", "Wrong-passw0rd!", unique_address()
        )
    new = await rate_limit_keys(services) - before
    assert new, "the attempt still counts against the address"
    assert max(map(len, new)) <= KEY_MAX


async def test_rate_limit_keys_have_one_size_whatever_the_client_sent(
    services: Services, account: Account
) -> None:
    before = await rate_limit_keys(services)
    address = unique_address()
    long_but_valid = "y" * 64 + "@" + ".".join(["z" * 60] * 3) + ".com"
    for email in (account.email, long_but_valid):
        with pytest.raises(UnauthorizedError):
            await login_directly(services, email, "Wrong-passw0rd!", address)
    for text in ("a", "b" * 50_000):
        await services.limiter.hit(f"api:ip:{text}", limit=10)
    new = await rate_limit_keys(services) - before
    assert len(new) == 5
    assert len({len(key) for key in new if ":login-account:" in key}) == 1
    assert max(map(len, new)) <= KEY_MAX
    # No personal data in key names: the address is not in any of them.
    assert not [key for key in new if account.email in key]


async def test_a_login_over_the_api_with_an_overlong_email_writes_no_key_of_its_size(
    client: AsyncClient, services: Services
) -> None:
    before = await rate_limit_keys(services)
    async with from_a_fresh_address(client) as fresh:
        email = "x" * 5_000 + "@example.com"
        assert await login(fresh, new_request_id(), email, "Wrong-passw0rd!") is None
    new = await rate_limit_keys(services) - before
    assert new
    assert max(map(len, new)) <= KEY_MAX
{%- if cookiecutter.compliance_logging %}


def test_a_checkpoint_beyond_int64_is_refused() -> None:
    fields = {"seal": "0" * 64, "issued_at": "2026-01-01T00:00:00+00:00"}
    for name in ("position", "purged_through"):
        with pytest.raises(ValidationError):
            Checkpoint.model_validate({"position": 1, **fields, name: INT64_MAX + 1})
    assert Checkpoint.model_validate({"position": INT64_MAX, **fields})
{%- if cookiecutter.api == "rest" %}


async def trail(client: AsyncClient, admin: Account, **params: str) -> Any:
    return await client.get(f"{API}/audit", params=params, headers=admin.headers)


async def test_an_audit_query_with_a_time_out_of_range_in_utc_is_a_422(
    client: AsyncClient, admin_account: Account
) -> None:
    for name in ("since", "until"):
        for text in OUT_OF_RANGE:
            problem(422, await trail(client, admin_account, **{name: text}))
        for text in EDGES:
            answer = await trail(client, admin_account, **{name: text})
            assert answer.status_code == 200, answer.text


async def test_an_audit_cursor_beyond_int64_is_a_422(
    client: AsyncClient, admin_account: Account
) -> None:
    for cursor in ("99999999999999999999", str(INT64_MAX + 1)):
        problem(422, await trail(client, admin_account, cursor=cursor))
    answer = await trail(client, admin_account, cursor=str(INT64_MAX))
    assert answer.status_code == 200, answer.text
{%- else %}


TRAIL = """
query T($filter: AuditFilter) { auditRecords(first: 1, filter: $filter) { edges { cursor } } }
"""


async def test_an_audit_query_with_a_time_out_of_range_in_utc_is_a_422(
    client: AsyncClient, admin_account: Account
) -> None:
    admin = admin_account.tokens.access_token
    for name in ("since", "until"):
        for text in OUT_OF_RANGE:
            answer = await graphql(client, TRAIL, admin, filter={name: text})
            assert code(answer) == ("invalid_input", 422), answer
        for text in EDGES:
            assert data(await graphql(client, TRAIL, admin, filter={name: text}))
{%- endif %}
{%- endif %}
