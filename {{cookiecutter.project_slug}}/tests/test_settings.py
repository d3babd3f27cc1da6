import os
import re
import secrets
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from app.settings import Settings

STRONG = "s" * 40
SECRETS = ["auth"{% if cookiecutter.compliance_logging %}, "audit"{% endif %}]


def _with_secrets(environment: str, **overrides: str) -> dict[str, Any]:
    data: dict[str, Any] = {"app": {"environment": environment}}
    for section in SECRETS:
        data[section] = {"secret_key": overrides.get(section, STRONG)}
    data["metrics"] = {"token": overrides.get("metrics", STRONG)}
    return data


def test_environment_variables_fill_the_sections(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://cache.internal:6380/3")
    monkeypatch.setenv("BROKER_PREFIX", "billing.")
    monkeypatch.setenv("APP_LOG_LEVEL", "WARNING")
    settings = Settings()
    assert settings.redis.url == "redis://cache.internal:6380/3"
    assert settings.broker.prefix == "billing."
    assert settings.app.log_level == "WARNING"


def test_development_accepts_the_placeholder_secrets() -> None:
    settings = Settings.model_validate(_with_secrets("development", auth="change-me"))
    assert settings.auth.secret_key.get_secret_value() == "change-me"


@pytest.mark.parametrize("section", SECRETS)
@pytest.mark.parametrize("secret", ["", "change-me", "too-short"])
@pytest.mark.parametrize("environment", ["test", "production"])
def test_weak_secrets_refused_outside_development(
    environment: str, secret: str, section: str
) -> None:
    with pytest.raises(ValidationError, match=f"{section.upper()}_SECRET_KEY"):
        Settings.model_validate(_with_secrets(environment, **{section: secret}))


@pytest.mark.parametrize("token", ["", "change-me", "too-short"])
def test_weak_metrics_token_refused_in_production(token: str) -> None:
    with pytest.raises(ValidationError, match="METRICS_TOKEN"):
        Settings.model_validate(_with_secrets("production", metrics=token))


def test_strong_secrets_accepted_in_production() -> None:
    assert Settings.model_validate(_with_secrets("production")).app.environment == "production"


def test_a_deployment_made_as_the_readme_says_starts(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The settings the README's Kubernetes Secret and the base's ConfigMap give, and no
    other: production's checks pass. (The Secret lacked the token of /metrics, so every
    pod, the migration and the jobs refused to start.)"""
    root = Path(__file__).parents[1]
    readme = (root / "README.md").read_text()
    command = readme[readme.index("create secret generic app-secrets") :]
    command = command[: command.index("```")]
    literals = re.findall(r"--from-literal=(\w+)=(?:'([^']*)'|\"\$\(.*?\)\")", command)
    assert len(literals) >= 4, command
    config = (root / "deploy" / "base" / "kustomization.yaml").read_text()
    given = dict(re.findall(r"^ *- ([A-Z][A-Z0-9_]*)=(.*)$", config, re.MULTILINE))
    given |= {name: value or secrets.token_urlsafe(48) for name, value in literals}
    for name in list(os.environ):
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no .env
    for name, value in given.items():
        monkeypatch.setenv(name, value)
    assert Settings().app.environment == "production"
