"""Prune the variants that were not chosen, write fresh secrets into .env, and record
in .cookiecutter.json the template commit the project was rendered from.

Needs no network, no Docker and no git: it only removes paths, writes files, and reads
the template checkout's own git files when there are any.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

RAW_ANSWERS = r"""{{ cookiecutter | tojson }}"""
TEMPLATE_DIR = r"""{{ template_dir() }}"""

# (option, value) -> paths that exist only when that option has another value.
PRUNE: dict[tuple[str, Any], list[str]] = {
    ("database", "postgres"): ["app/storage/mongodb", "tests/tamper_mongodb.py"],
    ("database", "mongodb"): [
        "app/storage/postgres",
        "migrations",
        "alembic.ini",
        "deploy/base/migrate.yaml",
        "tests/test_migrations.py",
        "tests/tamper_postgres.py",
    ],
    ("api", "rest"): [
        "app/api/graphql",
        "tests/test_graphql_api.py",
        "tests/test_graphql_metrics.py",
        "tests/test_audit_graphql.py",
        "tests/test_fuzz_graphql.py",
        "tests/test_relay.py",
        "observability/prometheus/rules/graphql.yml",
        "observability/grafana/dashboards/graphql.json",
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
        "migrations/versions/0004_audit_guards.py",
        "tests/test_audit.py",
        "tests/test_audit_rest.py",
        "tests/test_audit_graphql.py",
        "tests/test_audited_actions.py",
        "tests/test_audit_metrics.py",
        "tests/test_erasure.py",
        "tests/tamper_postgres.py",
        "tests/tamper_mongodb.py",
        "observability/prometheus/rules/audit.yml",
        "observability/grafana/dashboards/audit.json",
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


SHA = re.compile(r"[0-9a-f]{40}")


def _git_dir(start: Path) -> Path | None:
    """The git directory of the checkout holding ``start`` (a worktree's ``.git`` is a
    file naming it)."""
    for folder in (start, *start.parents):
        dot_git = folder / ".git"
        if dot_git.is_dir():
            return dot_git
        if dot_git.is_file():
            text = dot_git.read_text().strip()
            if text.startswith("gitdir:"):
                return (folder / text.removeprefix("gitdir:").strip()).resolve()
            return None
    return None


def template_commit(template_dir: Path) -> str | None:
    """The commit checked out in the template's git checkout, read from its files (no
    git command needed); None when it is not a checkout or the commit cannot be told."""
    try:
        git_dir = _git_dir(template_dir.resolve())
        if git_dir is None:
            return None
        head = (git_dir / "HEAD").read_text().strip()
        if SHA.fullmatch(head):
            return head
        ref = head.removeprefix("ref:").strip()
        common = git_dir
        if (git_dir / "commondir").is_file():
            common = (git_dir / (git_dir / "commondir").read_text().strip()).resolve()
        for base in (git_dir, common):
            if (base / ref).is_file():
                sha = (base / ref).read_text().strip()
                return sha if SHA.fullmatch(sha) else None
        if (common / "packed-refs").is_file():
            for line in (common / "packed-refs").read_text().splitlines():
                sha, _, name = line.partition(" ")
                if name == ref and SHA.fullmatch(sha):
                    return sha
    except (OSError, UnicodeDecodeError):
        return None
    return None


def record_commit(project: Path, answers: Mapping[str, Any], template_dir: Path) -> None:
    """Add ``_commit`` to .cookiecutter.json: what `cruft link --checkout` needs to link
    the project to the template version it came from, not to the latest one."""
    commit = answers.get("_commit") or template_commit(template_dir)  # cruft passes it
    record = project / ".cookiecutter.json"
    if not commit or not record.is_file():
        return
    recorded = json.loads(record.read_text())
    recorded["_commit"] = commit
    record.write_text(json.dumps(recorded, indent=2, ensure_ascii=False) + "\n")


def main(project: Path, answers: Mapping[str, Any], template_dir: Path) -> None:
    prune(project, answers)
    write_env(project)
    record_commit(project, answers, template_dir)


if __name__ == "__main__":
    main(Path.cwd(), json.loads(RAW_ANSWERS), Path(TEMPLATE_DIR))
