"""`python -m app.users`, the account commands: here in process, as the command runs them."""

import pytest

from app.auth import service as auth
from app.core.errors import UnauthorizedError
from app.services import Services
from app.settings import Settings
from app.users import service as user_service
from app.users.__main__ import main, {% if cookiecutter.compliance_logging %}operator, {% endif %}set_role
from tests.conftest import Account


async def test_set_role_makes_an_admin_and_ends_the_sessions(
    services: Services, settings: Settings, account: Account, capsys: pytest.CaptureFixture[str]
) -> None:
    # The email as typed: the lookup is case-insensitive, as signing in is.
    assert await set_role(settings, f"  {account.email.upper()} ", "admin") == 0
    assert f"{account.email}: role admin (was user)" in capsys.readouterr().out
    user = await user_service.get_user(database=services.database, user_id=account.user.id)
    assert user.role == "admin"
    with pytest.raises(UnauthorizedError):
        await auth.refresh(
            database=services.database,
            tokens=services.tokens,
            refresh_token=account.tokens.refresh_token,
        )
{%- if cookiecutter.compliance_logging %}
    records = [
        record.entry
        for record in await services.audit.recent(limit=200)
        if record.entry.resource_id == str(account.user.id)
    ]
    changes = [entry for entry in records if entry.action == "user.role_change"]
    assert [(entry.actor, entry.detail["role"]) for entry in changes] == [(operator(), "admin")]
{%- endif %}


async def test_set_role_refuses_an_unknown_email(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await set_role(settings, "nobody-at-all@example.com", "admin") == 1
    assert "no account has the email 'nobody-at-all@example.com'" in capsys.readouterr().err


@pytest.mark.parametrize(
    "arguments", [["set-role", "a@example.com", "root"], ["set-role", "a@example.com"], []]
)
def test_bad_arguments_are_refused_before_anything_runs(
    arguments: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(arguments)
    assert exited.value.code == 2
    assert "usage: python -m app.users" in capsys.readouterr().err
