"""Drive a served render with the client openapi-python-client generated from its
OpenAPI document: `python -m tests.contract_client BASE_URL` with the generated
`contract_client` package importable. Prints what each call parsed into, as JSON."""

from __future__ import annotations

import importlib
import json
import sys
import uuid
from typing import Any


def _module(name: str) -> Any:
    return importlib.import_module(f"contract_client.{name}")


def main(base_url: str) -> None:
    client_module = _module("client")
    models = _module("models")
    api = "api.{}.{}".format
    seen: dict[str, Any] = {}

    client = client_module.Client(base_url=base_url, raise_on_unexpected_status=True)
    # An address whose name the password does not hold (registration refuses that).
    email = f"client-{uuid.uuid4().hex[:12]}@example.com"
    password = "Contract-test-passw0rd!"
    registered = _module(api("auth", "register")).sync_detailed(
        client=client, body=models.UserCreate(email=email, password=password)
    )
    seen["register"] = [registered.status_code, type(registered.parsed).__name__]
    login = _module(api("auth", "token")).sync_detailed(
        client=client, body=models.TokenForm(username=email, password=password)
    )
    seen["login"] = [login.status_code, type(login.parsed).__name__]

    authed = client_module.AuthenticatedClient(
        base_url=base_url, token=login.parsed.access_token, raise_on_unexpected_status=True
    )
    created = _module(api("items", "create_item")).sync_detailed(
        client=authed, body=models.ItemCreate(name=f"contract-{uuid.uuid4().hex[:8]}")
    )
    seen["create"] = [created.status_code, type(created.parsed).__name__]
    missing = _module(api("items", "get_item")).sync_detailed(uuid.uuid4(), client=authed)
    problem = missing.parsed
    seen["not_found"] = [missing.status_code, type(problem).__name__, problem.status, problem.code]
    invalid = _module(api("items", "list_items")).sync_detailed(client=authed, limit=0)
    problem = invalid.parsed
    seen["invalid"] = [
        invalid.status_code,
        type(problem).__name__,
        problem.status,
        [type(error).__name__ for error in problem.errors],
        [error.loc for error in problem.errors],
    ]
    print(json.dumps(seen))


if __name__ == "__main__":
    main(sys.argv[1])
