"""Fixtures: the real application, started once, against the services in the environment.

Set {% if cookiecutter.database == "postgres" %}DATABASE_URL{% else %}MONGODB_URL{% endif %}, REDIS_URL and BROKER_URL (or `.env`). Each run uses its own
Redis key prefix and broker prefix, so runs can share servers.
"""

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from pydantic import SecretStr

from app.main import create_app
from app.services import Services
from app.settings import MIN_SECRET_LENGTH, Settings

RUN_ID = uuid.uuid4().hex[:8]
# Used where the configured secret is too weak to pass the checks of a non-development
# environment. Fixed, so records sealed in one run still verify in the next.
TEST_SECRET = SecretStr("test-only-secret-" + "0" * MIN_SECRET_LENGTH)


def strong(secret: SecretStr) -> SecretStr:
    return secret if len(secret.get_secret_value()) >= MIN_SECRET_LENGTH else TEST_SECRET


def closed_port() -> int:
    """A loopback port nothing listens on: connecting to it is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def override(settings: Settings, section: str, **values: Any) -> Settings:
    current = getattr(settings, section)
    return settings.model_copy(update={section: current.model_copy(update=values)})


def unreachable(settings: Settings, dependency: str) -> Settings:
    """A copy of the settings with one dependency pointed at a closed port."""
    port = closed_port()
    urls = {
{%- if cookiecutter.database == "postgres" %}
        "database": ("database", f"postgresql+asyncpg://nobody:nothing@127.0.0.1:{port}/none"),
{%- else %}
        "database": ("mongodb", f"mongodb://127.0.0.1:{port}/none"),
{%- endif %}
        "redis": ("redis", f"redis://127.0.0.1:{port}/0"),
{%- if cookiecutter.broker == "rabbitmq" %}
        "broker": ("broker", f"amqp://guest:guest@127.0.0.1:{port}/"),
{%- else %}
        "broker": ("broker", f"127.0.0.1:{port}"),
{%- endif %}
    }
    section, url = urls[dependency]
    return override(settings, section, url=url)


@pytest.fixture(scope="session")
def settings() -> Settings:
    settings = Settings()
    settings = override(settings, "app", environment="test")
    settings = override(settings, "redis", key_prefix=f"test-{RUN_ID}:")
    settings = override(settings, "broker", prefix=f"test-{RUN_ID}.")
    settings = override(settings, "auth", secret_key=strong(settings.auth.secret_key))
{%- if cookiecutter.compliance_logging %}
    settings = override(settings, "audit", secret_key=strong(settings.audit.secret_key))
{%- endif %}
    # Validate the assembled copy: the test environment must pass the production checks.
    return Settings.model_validate(settings.model_dump())
{% if cookiecutter.database == "postgres" %}

@pytest.fixture(scope="session", autouse=True)
def migrated_database(settings: Settings) -> None:
    """The schema comes from the migrations, as in production, not from the models."""
    from alembic import command
    from alembic.config import Config

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DATABASE_URL", settings.database.url)
        from app.settings import get_settings

        get_settings.cache_clear()
        command.upgrade(Config("alembic.ini"), "head")
        get_settings.cache_clear()
{% endif %}

@pytest.fixture(scope="session")
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture(scope="session")
async def client(app: FastAPI) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://test") as client:
        yield client


@pytest.fixture
def services(app: FastAPI) -> Services:
    services: Services = app.state.services
    return services


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:12]}"


async def eventually(check: Any, *, within: float = 30.0) -> Any:
    """Poll an async check until it returns something truthy, or fail after `within` s."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        result = await check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"condition not met within {within} s")
        await asyncio.sleep(0.1)
