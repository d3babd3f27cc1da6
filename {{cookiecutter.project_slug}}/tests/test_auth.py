"""Accounts, passwords, tokens and sessions, against the real database and Redis."""

import itertools
import time
from typing import Any

import jwt
import pytest
from pydantic import ValidationError

from app.auth import service as auth
from app.core.errors import RateLimitedError, UnauthorizedError
from app.services import Services
from app.settings import RateLimitSettings, Settings
from app.users import service as user_service
from app.users.errors import EmailTakenError, PasswordReusedError, WrongPasswordError
from app.users.schemas import PasswordChange, UserCreate
from tests.conftest import PASSWORD, Account, override, unique


async def login(
    services: Services,
    email: str,
    password: str,
    ip: str = "192.0.2.1",
    limits: RateLimitSettings | None = None,
) -> Any:
    return await auth.login(
        database=services.database,
        passwords=services.passwords,
        tokens=services.tokens,
        limiter=services.limiter,
        limits=limits or services.settings.rate_limit,
        email=email,
        password=password,
        client_ip=ip,
    )


@pytest.mark.parametrize(
    "password",
    ["short1!", "longenough-but-no-digit", "1234567890!!", "NoSymbol12345", "x" * 129 + "1!"],
)
def test_weak_passwords_are_refused(password: str) -> None:
    with pytest.raises(ValidationError):
        UserCreate(email="a@example.com", password=password)


def test_email_is_normalised() -> None:
    assert UserCreate(email="Mixed.Case@Example.COM", password=PASSWORD).email == (
        "mixed.case@example.com"
    )


async def test_email_is_unique(services: Services, account: Account) -> None:
    data = UserCreate(email=account.email.upper(), password=PASSWORD)
    with pytest.raises(EmailTakenError):
        await user_service.register(
            database=services.database, passwords=services.passwords, data=data
        )


async def test_passwords_are_hashed_with_argon2id(services: Services, account: Account) -> None:
    async with services.database.unit_of_work() as uow:
        stored = await uow.users.get(account.user.id)
    assert stored is not None
    assert stored.password_hash.startswith("$argon2id$")
    assert PASSWORD not in stored.password_hash


async def test_login_gives_the_same_answer_for_unknown_email_and_wrong_password(
    services: Services, account: Account
) -> None:
    with pytest.raises(UnauthorizedError) as wrong:
        await login(services, account.email, "Wrong-passw0rd!")
    with pytest.raises(UnauthorizedError) as unknown:
        await login(services, f"{unique('nobody')}@example.com", "Wrong-passw0rd!")
    assert wrong.value.detail == unknown.value.detail == "Incorrect email or password."


async def test_login_accepts_any_case_of_the_email(services: Services, account: Account) -> None:
    pair = await login(services, account.email.upper(), PASSWORD)
    principal = await services.tokens.authenticate(pair.access_token)
    assert principal.user_id == account.user.id


async def test_access_token_claims(
    services: Services, settings: Settings, account: Account
) -> None:
    claims = services.tokens.decode(account.tokens.access_token, kind="access")
    assert claims["sub"] == str(account.user.id)
    assert claims["type"] == "access"
    assert claims["exp"] - claims["iat"] == settings.auth.access_token_minutes * 60 == 900
    assert len(claims["jti"]) == 32
    refresh = services.tokens.decode(account.tokens.refresh_token, kind="refresh")
    assert refresh["exp"] - refresh["iat"] == 7 * 86400


def _forged(claims: dict[str, Any], key: str, algorithm: str) -> str:
    return jwt.encode(claims, key, algorithm=algorithm)


async def test_bad_tokens_are_refused(
    services: Services, settings: Settings, account: Account
) -> None:
    key = settings.auth.secret_key.get_secret_value()
    claims = services.tokens.decode(account.tokens.access_token, kind="access")
    header, payload, signature = account.tokens.access_token.split(".")
    tampered_payload = jwt.utils.base64url_encode(
        jwt.utils.base64url_decode(payload).replace(b'"access"', b'"admin!"')
    ).decode()
    bad = {
        "alg none": _forged(claims, "", "none"),
        "other algorithm": _forged(claims, key, "HS512"),
        "wrong key": _forged(claims, "k" * 40, "HS256"),
        "expired": _forged({**claims, "exp": int(time.time()) - 1}, key, "HS256"),
        "refresh as access": account.tokens.refresh_token,
        "tampered": f"{header}.{tampered_payload}.{signature}",
        "missing claim": _forged({k: v for k, v in claims.items() if k != "jti"}, key, "HS256"),
        "garbage": "not.a.token",
    }
    for name, token in bad.items():
        try:
            await services.tokens.authenticate(token)
        except UnauthorizedError:
            continue
        pytest.fail(f"a token with {name} was accepted")


async def test_refresh_rotates_and_reuse_revokes_every_session(
    services: Services, account: Account
) -> None:
    second_session = await login(services, account.email, PASSWORD)
    rotated = await services.tokens.rotate(account.tokens.refresh_token)
    assert rotated.refresh_token != account.tokens.refresh_token
    await services.tokens.authenticate(rotated.access_token)

    with pytest.raises(UnauthorizedError, match="reuse"):
        await services.tokens.rotate(account.tokens.refresh_token)
    for token in (rotated.access_token, second_session.access_token):
        with pytest.raises(UnauthorizedError):
            await services.tokens.authenticate(token)
    with pytest.raises(UnauthorizedError):
        await services.tokens.rotate(rotated.refresh_token)


async def test_logout_ends_only_that_session(services: Services, account: Account) -> None:
    other = await login(services, account.email, PASSWORD)
    await auth.logout(
        database=services.database, tokens=services.tokens, principal=account.principal
    )
    with pytest.raises(UnauthorizedError):
        await services.tokens.authenticate(account.tokens.access_token)
    with pytest.raises(UnauthorizedError):
        await services.tokens.rotate(account.tokens.refresh_token)
    assert (await services.tokens.authenticate(other.access_token)).user_id == account.user.id


async def test_password_change_rules(services: Services, account: Account) -> None:
    async def change(current: str, new: str) -> None:
        await user_service.change_password(
            database=services.database,
            passwords=services.passwords,
            tokens=services.tokens,
            user_id=account.user.id,
            data=PasswordChange(current_password=current, new_password=new),
        )

    with pytest.raises(WrongPasswordError):
        await change("Not-the-passw0rd", "Brand-new-passw0rd!")
    history = [PASSWORD, "Second-passw0rd!", "Third-passw0rd!", "Fourth-passw0rd!"]
    for current, new in itertools.pairwise(history):
        await change(current, new)
    # The current password and the two before it are refused; the oldest is free again.
    for reused in history[1:]:
        with pytest.raises(PasswordReusedError):
            await change(history[-1], reused)
    await change(history[-1], history[0])

    with pytest.raises(UnauthorizedError):
        await services.tokens.authenticate(account.tokens.access_token)
    assert await login(services, account.email, history[0])


async def test_login_is_rate_limited_per_account(
    services: Services, settings: Settings, account: Account
) -> None:
    strict = override(settings, "rate_limit", login_per_account_per_minute=3)
    limits = strict.rate_limit
    for attempt in range(3):
        with pytest.raises(UnauthorizedError):
            await login(services, account.email, "Wrong-passw0rd!", f"198.51.100.{attempt}", limits)
    with pytest.raises(RateLimitedError) as limited:
        await login(services, account.email, PASSWORD, "198.51.100.9", limits)
    assert 1 <= int(limited.value.headers["Retry-After"]) <= 60


async def test_sliding_window(services: Services) -> None:
    key = unique("window")
    results = [await services.limiter.hit(key, limit=3, window=2) for _ in range(4)]
    assert [r.allowed for r in results] == [True, True, True, False]
    assert [r.remaining for r in results] == [2, 1, 0, 0]
    assert results[-1].headers()["Retry-After"] in {"1", "2"}
