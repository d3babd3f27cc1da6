"""GraphQL operations in the metrics: by root field, type and outcome, errors counted as
errors although the HTTP answer is 200, and no label value a client chooses."""

from uuid import uuid4

import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from prometheus_client import REGISTRY, generate_latest

from tests.conftest import Account, FailingDatabase, serving
from tests.test_graphql_api import ITEMS, graphql


def operations(operation: str, operation_type: str, outcome: str) -> float:
    labels = {"operation": operation, "operation_type": operation_type, "outcome": outcome}
    return REGISTRY.get_sample_value("graphql_operations_total", labels) or 0.0


@pytest.mark.parametrize(
    ("document", "token", "expected"),
    [
        ("query Probe { __typename }", False, ("__typename", "query", "success")),
        ("{ __typename }", False, ("__typename", "query", "success")),
        # Not signed in: an error of the request's, in a 200 answer.
        ("query Whoami { me { id } }", False, ("me", "query", "client_error")),
        ("query Twice { a: me { id } b: me { email } }", True, ("me", "query", "success")),
        ("query F { ...Q } fragment Q on Query { me { id } }", True, ("me", "query", "success")),
        ("query Both { me { id } __typename }", True, ("multiple", "query", "success")),
        # A document that does not parse or validate: its fields may be anything.
        ("query Broken { me { id ", False, ("other", "unknown", "client_error")),
        ("query Unknown { noSuchField }", True, ("other", "query", "client_error")),
        ("mutation Out { logout }", True, ("logout", "mutation", "success")),
    ],
)
async def test_operations_are_counted_by_root_field_type_and_outcome(
    client: AsyncClient, account: Account, document: str, token: bool, expected: tuple[str, ...]
) -> None:
    name, operation_type, outcome = expected
    before = operations(name, operation_type, outcome)
    body_token = account.tokens.access_token if token else None
    headers = {"Authorization": f"Bearer {body_token}"} if body_token else {}
    response = await client.post("/graphql", json={"query": document}, headers=headers)
    assert response.status_code == 200
    assert ("errors" in response.json()) == (outcome != "success")
    assert operations(name, operation_type, outcome) == before + 1


async def test_a_name_no_operation_has_is_counted_as_other(client: AsyncClient) -> None:
    name = f"Missing{uuid4().hex[:8]}"
    before = operations("other", "unknown", "client_error")
    for document in ("query Known { __typename }", "query Broken { me { id "):
        response = await client.post("/graphql", json={"query": document, "operationName": name})
        assert response.status_code == 200
        assert response.json()["errors"]
    assert operations("other", "unknown", "client_error") == before + 2


async def test_an_unexpected_failure_is_a_server_error(
    app: FastAPI, client: AsyncClient, account: Account
) -> None:
    before = operations("items", "query", "server_error")
    async with serving(app, database=FailingDatabase()):
        body = await graphql(client, ITEMS, account.tokens.access_token, first=1)
    assert body["errors"]
    assert operations("items", "query", "server_error") == before + 1
    labels = {"operation": "items", "operation_type": "query"}
    assert (REGISTRY.get_sample_value("graphql_operation_duration_seconds_count", labels)) or 0


async def test_no_operation_name_reaches_the_metrics(client: AsyncClient) -> None:
    """Names were label values, the first hundred seen kept: anonymous junk names took
    them all (real operations then counted as `other`), and a name holding a card
    number was exported as it was sent."""
    names = [f"Junk{uuid4().hex}" for _ in range(120)] + ["card_4111111111111111"]
    before = operations("__typename", "query", "success")
    for name in names:
        query = "query " + name + " { __typename }"
        response = await client.post("/graphql", json={"query": query, "operationName": name})
        assert response.status_code == 200
    assert operations("__typename", "query", "success") == before + len(names)
    exported = generate_latest(REGISTRY).decode()
    assert not [name for name in names if name in exported]
