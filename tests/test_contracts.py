"""The published contracts, checked with the tools a user points at them.

REST renders: the OpenAPI document passes openapi-spec-validator, Redocly's recommended
rules and Spectral's `spectral:oas` with no error, and openapi-python-client generates a
client from it with no warning, which then registers, logs in, creates an item and gets
a 404 and a 422 parsed into the typed problem models from a served render. GraphQL
renders: a served render passes graphql-http's GraphQL over HTTP audit. Every render:
the AsyncAPI document passes `asyncapi validate`. Each tool runs once per combination,
over a file.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from openapi_spec_validator import validate

from tests.combinations import ALL, Combination
from tests.contract_tools import npm_modules, npm_tool
from tests.rendering import EVERY, capture, clean_env, params, run, service_env
from tests.serving import serving

REST = params([c for c in ALL if c.api == "rest"])
GRAPHQL = params([c for c in ALL if c.api == "graphql"])
TEMPLATE = Path(__file__).resolve().parent.parent

_DUMP_OPENAPI = "import json, sys; from app.main import app; json.dump(app.openapi(), sys.stdout)"
_DUMP_ASYNCAPI = (
    "import json, sys; from app.services import build_services; "
    "from app.settings import get_settings; "
    "json.dump(build_services(get_settings()).bus.specification(environment='production'), "
    "sys.stdout)"
)
# Every audit of graphql-http's `serverAudits`, one JSON line each: {id, name, status, reason}.
_GRAPHQL_HTTP_AUDIT = """
const { serverAudits } = require("graphql-http");
(async () => {
  for (const audit of serverAudits({ url: process.argv[1] })) {
    const { status, reason } = await audit.fn();
    console.log(JSON.stringify({ id: audit.id, name: audit.name, status, reason }));
  }
})();
"""
# The audits a render does not pass, on purpose: queries over GET, which a cross-site
# link or image could send with the user's cookies, are refused (POST only). All three
# are MAYs of the specification.
_GET_QUERIES = {"5A70", "D6D5", "6A70"}
_CLIENT_CONFIG = "project_name_override: contract-client\npackage_name_override: contract_client\n"


def _dump(project: Path, code: str, env: dict[str, str], target: Path) -> dict[str, Any]:
    output = capture(["uv", "run", "--no-sync", "python", "-c", code], project, env, timeout=120)
    assert output.returncode == 0, output.stderr[-4000:]
    target.write_text(output.stdout)
    document: dict[str, Any] = json.loads(output.stdout)
    return document


def _tool(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return capture(args, cwd, clean_env(), timeout=300)


def _served(combination: Combination, project: Path, env: dict[str, str]) -> dict[str, str]:
    """The environment a render is served in for a tool's calls: its own broker prefix,
    migrated, and no rate limit in the tool's way."""
    env |= {
        "APP_ENVIRONMENT": "test",
        "BROKER_PREFIX": f"contract-{uuid.uuid4().hex[:8]}.",
        "RATE_LIMIT_API_PER_MINUTE": "100000",
    }
    if combination.database == "postgres":
        run(["uv", "run", "--no-sync", "alembic", "upgrade", "head"], cwd=project, env=env)
    return env


@pytest.mark.slow
@pytest.mark.parametrize("combination", REST)
def test_openapi_document_satisfies_standard_tools(
    combination: Combination,
    project: Path,
    tmp_path: Path,
    record_property: Callable[[str, object], None],
) -> None:
    env = service_env(combination)
    path = tmp_path / "openapi.json"
    document = _dump(project, _DUMP_OPENAPI, env, path)
    validate(document)

    redocly = _tool(
        [npm_tool("redocly"), "lint", "--extends=recommended", "--format=json", str(path)],
        tmp_path,
    )
    totals = json.loads(redocly.stdout[redocly.stdout.index("{") :])["totals"]
    record_property("redocly", totals)
    assert totals["errors"] == 0, redocly.stdout[-6000:]

    ruleset = tmp_path / "spectral.yaml"
    ruleset.write_text('extends: ["spectral:oas"]\n')
    report = tmp_path / "spectral.json"
    spectral = [npm_tool("spectral"), "lint", "-r", str(ruleset), "-f", "json", "-o", str(report)]
    _tool([*spectral, str(path)], tmp_path)
    findings = json.loads(report.read_text())
    record_property("spectral", [f["severity"] for f in findings])
    # Severity 0 is an error; warnings (1) are style, but none are expected either.
    assert not [f for f in findings if f["severity"] == 0], findings

    config = tmp_path / "client.yaml"
    config.write_text(_CLIENT_CONFIG)
    generator = Path(sys.executable).with_name("openapi-python-client")
    output = ["--output-path", str(tmp_path / "client")]
    generated = run(
        [str(generator), "generate", "--path", str(path), "--config", str(config), *output],
        cwd=tmp_path,
        env=clean_env(),
    )
    # It omits what it cannot type ("Invalid property in union", ...) with a warning.
    assert "warning" not in generated.lower(), generated

    with serving(project, _served(combination, project, env), tmp_path / "service.log") as port:
        used = run(
            [sys.executable, "-m", "tests.contract_client", f"http://127.0.0.1:{port}"],
            cwd=TEMPLATE,
            env=clean_env() | {"PYTHONPATH": f"{tmp_path / 'client'}:{TEMPLATE}"},
        )
    seen = json.loads(used.strip().splitlines()[-1])
    assert seen["register"] == [202, "RegistrationAccepted"]
    assert seen["login"] == [200, "TokenPair"]
    assert seen["create"] == [201, "ItemPublic"]
    assert seen["not_found"] == [404, "Problem", 404, "item_not_found"]
    status, model, body_status, error_models, locations = seen["invalid"]
    assert (status, model, body_status) == (422, "ValidationProblem", 422)
    assert error_models == ["FieldError"]
    assert locations == [["query", "limit"]]


@pytest.mark.slow
@pytest.mark.parametrize("combination", GRAPHQL)
def test_graphql_endpoint_passes_the_graphql_over_http_audit(
    combination: Combination, project: Path, tmp_path: Path
) -> None:
    """graphql-http's audit, as a user checks a server against GraphQL over HTTP: every
    MUST and SHOULD holds, with `application/json` and with
    `application/graphql-response+json`."""
    env = _served(combination, project, service_env(combination))
    modules = npm_modules("graphql-http", "graphql")
    with serving(project, env, tmp_path / "service.log") as port:
        audit = capture(
            ["node", "-e", _GRAPHQL_HTTP_AUDIT, f"http://127.0.0.1:{port}/graphql"],
            tmp_path,
            clean_env() | {"NODE_PATH": modules},
            timeout=120,
        )
    assert audit.returncode == 0, audit.stderr[-3000:]
    results = [json.loads(line) for line in audit.stdout.splitlines()]
    assert len(results) > 50, audit.stdout  # the audit ran, all of it
    failed = {result["id"]: result for result in results if result["status"] != "ok"}
    assert set(failed) <= _GET_QUERIES, [failed[key] for key in set(failed) - _GET_QUERIES]


@pytest.mark.slow
@pytest.mark.parametrize("combination", EVERY)
def test_asyncapi_document_validates(
    combination: Combination, project: Path, tmp_path: Path
) -> None:
    path = tmp_path / "asyncapi.json"
    document = _dump(project, _DUMP_ASYNCAPI, service_env(combination), path)
    assert list(document["servers"]) == ["production"]
    validate = [npm_tool("asyncapi"), "validate", "--fail-severity=warn", str(path)]
    result = _tool(validate, tmp_path)
    # Fails on a warning too; the one finding left is informational (3.0 rather than 3.1,
    # the version FastStream writes).
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
