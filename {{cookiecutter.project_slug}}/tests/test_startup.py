"""A first start without the services, as the README runs it, in a subprocess: one line
naming what could not be reached, the setting (password hidden) and how to start it,
then a non-zero exit; the traceback only at debug level."""

import gc
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi import FastAPI

from app.core.startup import ServiceUnreachableError, addresses, ensure_reachable, hide_password
from app.main import YOUNG_OBJECTS
{%- if cookiecutter.database == "mongodb" %}
from app.services import build_services, command_services
{%- endif %}
from app.settings import Settings
{%- if cookiecutter.database == "mongodb" %}
from app.storage.mongodb.database import MongoDatabase, StandaloneServerError
{%- endif %}
from tests.conftest import closed_port, override
{%- if cookiecutter.database == "mongodb" %}
from tests.cursors import captured_logs
{%- endif %}

PROJECT = Path(__file__).resolve().parent.parent
PASSWORD = "s3cret-pw"
{%- if cookiecutter.database == "postgres" %}
DATABASE = "DATABASE_URL"
{%- else %}
DATABASE = "MONGODB_URL"
{%- endif %}


# Each starts a fresh interpreter importing the whole app: seconds apiece, so they run
# with the slow proofs (`pytest -m slow`), not in every quick run.
SUBPROCESS = pytest.mark.slow


def unreachable_url(setting: str) -> str:
    """The setting's URL, with a password, pointed at a port nothing listens on."""
    port = closed_port()
    urls = {
{%- if cookiecutter.database == "postgres" %}
        "DATABASE_URL": f"postgresql+asyncpg://app:{PASSWORD}@127.0.0.1:{port}/app",
{%- else %}
        "MONGODB_URL": f"mongodb://app:{PASSWORD}@127.0.0.1:{port}/app",
{%- endif %}
        "REDIS_URL": f"redis://:{PASSWORD}@127.0.0.1:{port}/0",
{%- if cookiecutter.broker == "rabbitmq" %}
        "BROKER_URL": f"amqp://app:{PASSWORD}@127.0.0.1:{port}/",
{%- else %}
        "BROKER_URL": f"127.0.0.1:{port}",
{%- endif %}
    }
    return urls[setting]


def run(command: list[str], setting: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, setting: unreachable_url(setting), **env}
    return subprocess.run(  # noqa: S603 - this interpreter, a command named by the tests
        command,
        cwd=PROJECT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def serve(setting: str, **env: str) -> subprocess.CompletedProcess[str]:
    uvicorn = [sys.executable, "-m", "uvicorn", "app.main:app", "--port", str(closed_port())]
    return run(uvicorn, setting, **env)


def assert_one_clear_line(output: str, setting: str) -> None:
    lines = [line for line in output.splitlines() if "could not be reached" in line]
    assert len(lines) == 1, output
    (line,) = lines
    assert f"at {setting}=" in line
    assert "make services" in line
    assert f"set {setting}" in line
    assert PASSWORD not in output
    assert "Traceback" not in output
    assert len(output.splitlines()) < 10, output


@SUBPROCESS
@pytest.mark.parametrize("setting", [DATABASE, "BROKER_URL"])
def test_the_app_stops_with_one_line_when_a_service_is_not_there(setting: str) -> None:
    result = serve(setting, APP_LOG_LEVEL="INFO")
    assert result.returncode != 0
    assert_one_clear_line(result.stdout + result.stderr, setting)


@SUBPROCESS
def test_the_app_stops_without_redis_when_it_may_not_serve_without_it() -> None:
    result = serve("REDIS_URL", APP_LOG_LEVEL="INFO", REDIS_FAIL_OPEN="false")
    assert result.returncode != 0
    assert_one_clear_line(result.stdout + result.stderr, "REDIS_URL")


async def test_what_startup_made_is_frozen_while_the_app_serves(app: FastAPI) -> None:
    """Out of the garbage collector's way (app/main.py): its full collections walk only
    what requests made, and its young ones come less often."""
    assert app.state.services is not None
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold()[0] == YOUNG_OBJECTS


async def test_without_redis_a_fail_open_app_is_warned_and_starts(settings: Settings) -> None:
    fail_open = override(settings, "redis", url=unreachable_url("REDIS_URL"), fail_open=True)
    await ensure_reachable(fail_open)  # a warning, no error
    closed = override(fail_open, "redis", fail_open=False)
    with pytest.raises(ServiceUnreachableError, match="at REDIS_URL=redis://:\\*\\*\\*@"):
        await ensure_reachable(closed)


@SUBPROCESS
def test_at_debug_level_the_traceback_is_there() -> None:
    result = serve(DATABASE, APP_LOG_LEVEL="DEBUG")
    assert result.returncode != 0
    assert "Traceback" in result.stdout + result.stderr
{%- if cookiecutter.database == "postgres" %}


@SUBPROCESS
def test_migrations_stop_with_one_line_when_the_database_is_not_there() -> None:
    alembic = [sys.executable, "-m", "alembic", "upgrade", "head"]
    result = run(alembic, "DATABASE_URL", APP_LOG_LEVEL="INFO")
    assert result.returncode == 1
    assert result.stderr.startswith("error: PostgreSQL could not be reached")
    assert_one_clear_line(result.stdout + result.stderr, "DATABASE_URL")
{%- endif %}


def test_urls_are_read_as_the_drivers_read_them() -> None:
    assert hide_password("redis://:pw@h:1/0") == "redis://:***@h:1/0"
    assert hide_password("scheme://u:pw@h:1/") == "scheme://u:***@h:1/"
    assert hide_password("h1:9092,h2:9093") == "h1:9092,h2:9093"
    assert addresses("db://u:p@a:1,b/db?replicaSet=rs0", 27017) == [("a", 1), ("b", 27017)]
    assert addresses("h1:9092,h2:9093", 9092) == [("h1", 9092), ("h2", 9093)]
    assert addresses("db+driver://u:p@[::1]:5433/db", 5432) == [("::1", 5433)]
{%- if cookiecutter.database == "mongodb" %}


async def test_a_server_without_transactions_is_named_at_every_start(settings: Settings) -> None:
    """On a standalone server a change and the events it writes are separate writes: it
    started saying nothing. (The test's server is a standalone one, so here it warns.)
    A command's output is its answer: it says nothing of it."""
    services = build_services(settings)
    try:
        with captured_logs() as logs:
            await services.start()
    finally:
        await services.stop()
    assert isinstance(services.database, MongoDatabase)
    warned = "mongodb_without_transactions" in logs.getvalue()
    assert warned == (not services.database.transactions)
    with captured_logs() as logs:
        async with command_services(settings):
            pass
    assert "mongodb_without_transactions" not in logs.getvalue()


async def test_production_starts_on_a_server_without_transactions_only_if_told_to(
    settings: Settings,
) -> None:
    """Production refused nothing: a create that failed between its writes on a
    standalone server was kept without its event and record. (The suite's server is a
    standalone one, so here it refuses; on a replica set it starts either way.)"""
    production = override(settings, "app", environment="production")
    for allowed in (False, True):
        services = build_services(override(production, "mongodb", allow_standalone=allowed))
        try:
            with captured_logs() as logs:
                await services.start()
        except StandaloneServerError:
            refused = True
        else:
            refused = False
        finally:
            await services.stop()
        assert isinstance(services.database, MongoDatabase)
        standalone = not services.database.transactions
        assert refused == (standalone and not allowed)
        if allowed:
            assert ("mongodb_without_transactions" in logs.getvalue()) == standalone
{%- endif %}
