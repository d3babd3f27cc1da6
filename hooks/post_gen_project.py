"""Prune the variants that were not chosen and write fresh secrets into .env.

Needs no network, no Docker and no git: it only removes paths and writes a file.
"""

from __future__ import annotations

import json
import secrets
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

RAW_ANSWERS = r"""{{ cookiecutter | tojson }}"""

# (option, value) -> paths that exist only when that option has another value.
PRUNE: dict[tuple[str, Any], list[str]] = {
    ("database", "postgres"): ["app/storage/mongodb"],
    ("database", "mongodb"): [
        "app/storage/postgres",
        "migrations",
        "alembic.ini",
        "deploy/base/migrate.yaml",
    ],
    ("api", "rest"): [
        "app/api/graphql",
        "tests/test_graphql_api.py",
        "tests/test_audit_graphql.py",
        "tests/test_fuzz_graphql.py",
    ],
    ("api", "graphql"): [
        "app/api/rest",
        "tests/test_rest_api.py",
        "tests/test_audit_rest.py",
        "tests/test_fuzz_rest.py",
    ],
    ("broker", "rabbitmq"): ["app/events/kafka.py", "tests/test_wire_kafka.py"],
    ("broker", "kafka"): ["app/events/rabbitmq.py", "tests/test_wire_rabbitmq.py"],
    ("compliance_logging", False): [
        "app/audit",
        "app/api/rest/audit.py",
        "app/api/graphql/audit.py",
        "app/storage/postgres/audit.py",
        "app/storage/mongodb/audit.py",
        "migrations/versions/0002_audit_log.py",
        "tests/test_audit.py",
        "tests/test_audit_rest.py",
        "tests/test_audit_graphql.py",
        "tests/test_audited_actions.py",
        "deploy/base/audit-purge.yaml",
        "deploy/base/audit-verify.yaml",
    ],
}

# Every secret in .env.example carries this value; each one gets its own token.
PLACEHOLDER = "change-me"


def paths_to_prune(answers: Mapping[str, Any]) -> list[str]:
    return [
        path
        for (option, value), paths in PRUNE.items()
        if answers.get(option) == value
        for path in paths
    ]


def prune(project: Path, answers: Mapping[str, Any]) -> None:
    for relative in paths_to_prune(answers):
        path = project / relative
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def with_fresh_secrets(env_example: str) -> str:
    lines = []
    for line in env_example.splitlines():
        key, sep, value = line.partition("=")
        if sep and value == PLACEHOLDER and not key.lstrip().startswith("#"):
            line = f"{key}={secrets.token_urlsafe(48)}"
        lines.append(line)
    return "\n".join(lines) + "\n"


def write_env(project: Path) -> None:
    env = project / ".env"
    env.write_text(with_fresh_secrets((project / ".env.example").read_text()))
    env.chmod(0o600)


def main(project: Path, answers: Mapping[str, Any]) -> None:
    prune(project, answers)
    write_env(project)


if __name__ == "__main__":
    main(Path.cwd(), json.loads(RAW_ANSWERS))
