"""GraphQL operations in the metrics: by name, type and outcome, errors counted as errors
although the HTTP answer is 200, and operation names bounded."""

from uuid import uuid4

import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from prometheus_client import REGISTRY

from app.api.graphql import metrics
from app.core.metrics import BoundedNames
from tests.conftest import Account, FailingDatabase, serving
from tests.test_graphql_api import ITEMS, graphql


def operations(operation: str, operation_type: str, outcome: str) -> float:
    labels = {"operation": operation, "operation_type": operation_type, "outcome": outcome}
    return REGISTRY.get_sample_value("graphql_operations_total", labels) or 0.0


@pytest.mark.parametrize(
    ("document", "token", "expected"),
    [
        ("query Probe { __typename }", False, ("Probe", "query", "success")),
        ("{ __typename }", False, ("anonymous", "query", "success")),
        # Not signed in: an error of the request's, in a 200 answer.
        ("query Whoami { me { id } }", False, ("Whoami", "query", "client_error")),
        # A document that does not parse names no operation: its name takes no kept one.
        ("query Broken { me { id ", False, ("other", "unknown", "client_error")),
        ("query Unknown { noSuchField }", True, ("Unknown", "query", "client_error")),
        ("mutation Out { logout }", True, ("Out", "mutation", "success")),
    ],
)
async def test_operations_are_counted_by_name_type_and_outcome(
    client: AsyncClient, account: Account, document: str, token: bool, expected: tuple[str, ...]
) -> None:
    name, operation_type, outcome = expected
    before = operations(name, operation_type, outcome)
    body_token = account.tokens.access_token if token else None
    headers = {"Authorization": f"Bearer {body_token}"} if body_token else {}
    operation_name = name if name != "anonymous" else None
    response = await client.post(
        "/graphql", json={"query": document, "operationName": operation_name}, headers=headers
    )
    assert response.status_code == 200
    assert ("errors" in response.json()) == (outcome != "success")
    assert operations(name, operation_type, outcome) == before + 1


async def test_a_name_no_operation_has_takes_none_of_the_kept_names(client: AsyncClient) -> None:
    """A name the document does not define, or sent with one that does not parse, took
    one of the names kept as label values: anonymous requests could use them all up."""
    name = f"Missing{uuid4().hex[:8]}"
    before = operations("other", "unknown", "client_error")
    for document in ("query Known { __typename }", "query Broken { me { id "):
        response = await client.post("/graphql", json={"query": document, "operationName": name})
        assert response.status_code == 200
        assert response.json()["errors"]
    assert operations(name, "unknown", "client_error") == 0
    assert operations("other", "unknown", "client_error") == before + 2


async def test_an_unexpected_failure_is_a_server_error(
    app: FastAPI, client: AsyncClient, account: Account
) -> None:
    before = operations("Items", "query", "server_error")
    async with serving(app, database=FailingDatabase()):
        body = await graphql(client, ITEMS, account.tokens.access_token, first=1)
    assert body["errors"]
    assert operations("Items", "query", "server_error") == before + 1
    labels = {"operation": "Items", "operation_type": "query"}
    assert (REGISTRY.get_sample_value("graphql_operation_duration_seconds_count", labels)) or 0


async def test_operation_names_are_bounded(
    client: AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """However many names clients send, the label has at most the limit plus the two
    fixed values: the first names seen are kept, the rest are `other`."""
    monkeypatch.setattr(metrics, "operation_names", BoundedNames(2))
    names = [f"Op{uuid4().hex}" for _ in range(5)]
    other = operations("other", "query", "success")
    for name in names:
        query = "query " + name + " { __typename }"
        response = await client.post("/graphql", json={"query": query})
        assert response.status_code == 200
    assert [operations(name, "query", "success") for name in names] == [1, 1, 0, 0, 0]
    assert operations("other", "query", "success") == other + 3
