"""Fuzzing of the REST API from its own OpenAPI document (`pytest -m fuzz`).

Schemathesis generates requests for every operation, valid and invalid, and each
answer must be no server error, with a status, content type and body the document
promises. The app runs in-process, on the event loop its services are bound to.
"""

import asyncio
import base64
import json
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar
from uuid import UUID

import pytest
import schemathesis
from fastapi import FastAPI
from httpx import AsyncClient, Response
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from app.main import app as documented_app
from app.services import Services
from tests.conftest import Account, new_item

# Hundreds of generated requests a test: more than the suite's default per-test limit.
pytestmark = [pytest.mark.fuzz, pytest.mark.timeout(300)]
T = TypeVar("T")
Case = schemathesis.Case[Any]

MIN_REQUESTS = 1000
# Examples per operation in the fuzzing phase; the coverage phase adds its own.
EXAMPLES = 80
# Operations documented as for administrators only are fuzzed with an administrator's token.
ADMIN_ONLY = "Administrators only"
# Operations that end the caller's session: each of their requests gets a session of its own.
ENDS_SESSION = {"POST /api/v1/auth/logout"}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    # Input the document calls invalid must be refused, not coerced.
    negative_data_rejection,
]
FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    # One account serves every example of an operation, as the fixtures are meant to.
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.function_scoped_fixture,
    ],
)

# The operations come from the document; the `fuzzer` fixture checks the running app
# serves the same one at /openapi.json.
schema = schemathesis.openapi.from_dict(
    documented_app.openapi(), config=schemathesis.Config(seed=0)
)
# Requests sent, by operation: checked by the last test of the module.
SENT: Counter[str] = Counter()


@dataclass(frozen=True, repr=False)
class Fuzzer:
    """Sends schemathesis' cases to the app. The tests are synchronous (Hypothesis drives
    them), so each request runs to completion on the session's loop, idle in between."""

    loop: asyncio.AbstractEventLoop
    client: AsyncClient
    services: Services

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coroutine)

    def send(self, case: Case, credentials: dict[str, str]) -> Response:
        request = case.as_transport_kwargs(base_url=str(self.client.base_url))
        # Generated values as the bytes a client puts on the wire (httpx takes only ASCII
        # text): a header outside ASCII must get the API's answer, not fail in the client.
        given = {
            name: value
            for name, value in request["headers"].items()
            if name.lower() not in {"authorization", "cookie"}
        } | credentials
        if request.get("cookies"):
            given["Cookie"] = "; ".join(f"{k}={v}" for k, v in request["cookies"].items())
        headers = [(name.encode(), str(value).encode()) for name, value in given.items()]
        body: dict[str, Any] = {}
        if "json" in request:
            body["json"] = request["json"]
        elif isinstance(request.get("data"), dict):
            body["data"] = request["data"]
        elif "data" in request:
            body["content"] = request["data"]
        response = self.run(
            self.client.request(
                request["method"],
                request["url"],
                params=request["params"],
                headers=headers,
                **body,
            )
        )
        SENT[case.operation.label] += 1
        return response

    def credentials(self, case: Case, user: Account, admin: Account) -> dict[str, str]:
        if ADMIN_ONLY in case.operation.definition.raw.get("description", ""):
            return admin.headers
        if case.operation.label in ENDS_SESSION:
            tokens = self.run(self.services.tokens.open_session(user.user))
            return {"Authorization": f"Bearer {tokens.access_token}"}
        return user.headers

    def new_item(self, owner: Account) -> UUID:
        return self.run(new_item(self.services, owner)).id


@pytest.fixture(scope="module")
async def fuzzer(app: FastAPI, client: AsyncClient) -> Fuzzer:
    served = await client.get("/openapi.json")
    assert served.json() == schema.raw_schema, "the app serves another document"
    return Fuzzer(loop=asyncio.get_running_loop(), client=client, services=app.state.services)


@schema.parametrize()
@FUZZ_SETTINGS
def test_every_operation(
    case: Case, fuzzer: Fuzzer, account: Account, admin_account: Account
) -> None:
    """One test per operation of the document, with every phase: its examples, the
    coverage phase's boundary and invalid values, then random valid and invalid input."""
    credentials = fuzzer.credentials(case, account, admin_account)
    response = fuzzer.send(case, credentials)
    case.validate_response(response, checks=CHECKS)


item_operations = schema.include(path_regex=r"\{item_id\}")


@item_operations.parametrize()
@item_operations.given(whose=st.sampled_from(["own", "another's"]))
@FUZZ_SETTINGS
def test_existing_items(
    case: Case,
    whose: str,
    fuzzer: Fuzzer,
    account: Account,
    other_account: Account,
) -> None:
    """Random ids only ever find nothing: here the id is of a real item, the caller's
    own or someone else's, so the success and refusal answers are checked too."""
    owner = account if whose == "own" else other_account
    case.path_parameters = {**(case.path_parameters or {}), "item_id": str(fuzzer.new_item(owner))}
    response = fuzzer.send(case, account.headers)
    case.validate_response(response, checks=CHECKS)


def forged_cursor(value: str) -> str:
    """A cursor as the API makes them (they are opaque, not signed), holding `value`."""
    raw = json.dumps({"sort": "name", "value": value, "id": str(UUID(int=0))}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    ("method", "path", "request_data", "status"),
    [
        # NUL, which some databases refuse: were server errors.
        ("POST", "/api/v1/items", {"json": {"name": "a\x00b"}}, 422),
        ("POST", "/api/v1/auth/token", {"data": {"username": "a\x00@x.io", "password": "x"}}, 401),
        (
            "GET",
            "/api/v1/items",
            {"params": {"sort": "name", "cursor": forged_cursor("\x00")}},
            400,
        ),
        # A lone surrogate, which has no UTF-8 form: was a server error.
        (
            "GET",
            "/api/v1/items",
            {"params": {"sort": "name", "cursor": forged_cursor("\ud800")}},
            400,
        ),
        # A boolean is no price: was taken as 0.
        ("POST", "/api/v1/items", {"json": {"name": "x", "price_cents": True}}, 422),
    ],
)
async def test_what_fuzzing_found_stays_fixed(
    method: str,
    path: str,
    request_data: dict[str, Any],
    status: int,
    client: AsyncClient,
    account: Account,
) -> None:
    response = await client.request(method, path, headers=account.headers, **request_data)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"


def test_every_operation_was_fuzzed_with_enough_requests(
    record_property: Callable[[str, object], None],
) -> None:
    """Runs last: the fuzzing above is worth something only if it reached every
    operation and sent many requests."""
    documented = schema.raw_schema["paths"].items()
    operations = {f"{method.upper()} {path}" for path, methods in documented for method in methods}
    assert set(SENT) == operations
    total = sum(SENT.values())
    record_property("fuzz_requests", total)
    assert total >= MIN_REQUESTS, f"only {total} requests were generated: {dict(SENT)}"
