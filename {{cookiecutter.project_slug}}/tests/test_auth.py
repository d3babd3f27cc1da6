"""Accounts, passwords, tokens and sessions, against the real database and Redis."""

import asyncio
import itertools
import threading
import time
import unicodedata
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import jwt
import pytest
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from pydantic import ValidationError

from app.auth import service as auth
from app.auth.passwords import PasswordHasher
from app.auth.tokens import TokenPair, Tokens
from app.core.errors import ForbiddenError, RateLimitedError, UnauthorizedError
from app.services import Services
from app.settings import RateLimitSettings, Settings
from app.storage.cache import Cache
from app.users import service as user_service
from app.users.errors import EmailTakenError, PasswordReusedError, WrongPasswordError
from app.users.schemas import PasswordChange, User, UserCreate
from tests.conftest import (
    PASSWORD,
    Account,
    FailingDatabase,
    new_account,
    override,
    set_role,
    unique,
    unique_address,
    unreachable,
)
from tests.test_outbox import outbox


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


async def refresh(services: Services, refresh_token: str) -> TokenPair:
    return await auth.refresh(
        database=services.database, tokens=services.tokens, refresh_token=refresh_token
    )


async def change_password(services: Services, account: Account, new: str, tokens: Tokens) -> None:
    await user_service.change_password(
        database=services.database,
        passwords=services.passwords,
        tokens=tokens,
        user_id=account.user.id,
        data=PasswordChange(current_password=account.password, new_password=new),
    )


ZERO_WIDTH = "\u200b"
# The test password typed with full-width letters and digits (East Asian input methods).
FULL_WIDTH = "".join(chr(ord(c) + 0xFEE0) for c in "Corr3ct") + "-horse-battery!"


@pytest.mark.parametrize(
    "password",
    [
        "short1!",
        "longenough-but-no-digit",
        "1234567890!!",
        "NoSymbol12345",
        "x" * 129 + "1!",
        # Invisible characters and padding do not make a password longer.
        "a1!" + ZERO_WIDTH * 8,
        "a1!\u2060\u2060\u2060\u2060\u2060\u2060\u2060",
        "a1!b" + "\u00ad" * 7,
        "a1!b" + " " * 7,
        "a1!b      c",
        "Tab\there-pass1!",
        "Line\u2028sep-pass1!",
        # Among the most common passwords, whatever the case.
        "Password123!",
        "P@ssw0rd2024!",
        "QWERTY123!",
    ],
)
def test_weak_passwords_are_refused(password: str) -> None:
    with pytest.raises(ValidationError):
        UserCreate(email="a@example.com", password=password)


# Past the rules and the list, and guessed in few tries all the same: words dressed up,
# keyboard walks, repetitions, the account's own address.
GUESSABLE = ["Passw0rd!!", "P@ssw0rd2024", "qwer1234!!", "1q2w3e4r!!", "zxcv1234!@", "a1!a1!a1!a1!"]


@pytest.mark.parametrize("password", GUESSABLE)
def test_passwords_that_pass_the_rules_but_are_easy_to_guess_are_refused(password: str) -> None:
    with pytest.raises(ValidationError, match="too easy to guess"):
        UserCreate(email="a@example.com", password=password)
    with pytest.raises(ValidationError, match="too easy to guess"):
        PasswordChange(current_password="anything", new_password=password)


def test_a_password_made_of_the_accounts_address_is_refused() -> None:
    for email, password in (
        ("minji.kim@example.com", "Minji.Kim2024!"),
        ("pwtest0@example.com", "pwtest@example.com1"),
    ):
        with pytest.raises(ValidationError, match="name of the email address"):
            UserCreate(email=email, password=password)
    assert UserCreate(email="someone@example.com", password="Minji.Kim2024!")


def test_passwords_are_normalised() -> None:
    # Full-width letters and digits (an East Asian input method) are the same password.
    assert UserCreate(email="a@example.com", password=FULL_WIDTH).password == PASSWORD
    assert unicodedata.is_normalized(
        "NFKC", UserCreate(email="a@e.com", password=PASSWORD).password
    )
    # Spaces inside a passphrase are fine.
    assert UserCreate(email="a@example.com", password="correct horse 9 battery!")


async def test_a_normalised_password_logs_in_as_typed_either_way(services: Services) -> None:
    email = f"{unique('nfkc')}@example.com"
    data = UserCreate(email=email, password=FULL_WIDTH)
    await user_service.register(database=services.database, passwords=services.passwords, data=data)
    assert await login(services, email, PASSWORD)
    assert await login(services, email, FULL_WIDTH)


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
    assert claims["iss"] == f"{settings.app.name}/test"
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
        # Signed with this key, for the same service in another environment, or another.
        "other environment": _forged(
            {**claims, "iss": f"{settings.app.name}/production"}, key, "HS256"
        ),
        "other service": _forged({**claims, "iss": "another-service/test"}, key, "HS256"),
        "no issuer": _forged({k: v for k, v in claims.items() if k != "iss"}, key, "HS256"),
        "garbage": "not.a.token",
        **NOT_ASCII,
    }
    for name, token in bad.items():
        try:
            await services.tokens.authenticate(token)
        except UnauthorizedError:
            continue
        pytest.fail(f"a token with {name} was accepted")


async def test_a_token_accepted_before_is_refused_once_it_expires(
    services: Services, settings: Settings, account: Account
) -> None:
    """Verified access tokens are kept, not checked again (app/auth/tokens.py): a kept
    one is still refused from the second it expires."""
    key = settings.auth.secret_key.get_secret_value()
    claims = services.tokens.decode(account.tokens.access_token, kind="access")
    expires = int(time.time()) + 1
    token = _forged({**claims, "exp": expires}, key, "HS256")
    for _ in range(2):  # checked, then kept
        assert await services.tokens.authenticate(token) == account.principal
    await asyncio.sleep(expires - time.time() + 0.01)
    with pytest.raises(UnauthorizedError):
        await services.tokens.authenticate(token)


# Tokens that are not ASCII: a lone surrogate (JSON's escapes carry one) made PyJWT fail
# to encode the token, a server error on the refresh.
NOT_ASCII = {
    "a lone surrogate": "\ud800",
    "a surrogate pair's half in the signature": "eyJhbGciOiJIUzI1NiJ9.e30.\udc80",
    "other letters": "\u00e9.\u00e9.\u00e9",
}


@pytest.mark.parametrize("token", NOT_ASCII.values(), ids=NOT_ASCII.keys())
async def test_a_refresh_with_a_token_that_is_not_ascii_is_refused(
    services: Services, account: Account, token: str
) -> None:
    with pytest.raises(UnauthorizedError):
        await refresh(services, token)
    with pytest.raises(UnauthorizedError):
        await refresh(services, account.tokens.refresh_token + token)


async def test_refresh_rotates_and_reuse_revokes_every_session(
    services: Services, account: Account
) -> None:
    second_session = await login(services, account.email, PASSWORD)
    rotated = await refresh(services, account.tokens.refresh_token)
    assert rotated.refresh_token != account.tokens.refresh_token
    await services.tokens.authenticate(rotated.access_token)

    with pytest.raises(UnauthorizedError, match="reuse"):
        await refresh(services, account.tokens.refresh_token)
    for token in (rotated.access_token, second_session.access_token):
        with pytest.raises(UnauthorizedError):
            await services.tokens.authenticate(token)
    with pytest.raises(UnauthorizedError):
        await refresh(services, rotated.refresh_token)


def _index_key(services: Services, account: Account) -> str:
    return services.cache.key(f"user-sessions:{account.user.id}")


def _session_key(services: Services, pair: TokenPair) -> str:
    sid = services.tokens.decode(pair.access_token, kind="access")["sid"]
    return services.cache.key(f"session:{sid}")


async def test_a_refreshed_session_is_revoked_however_old_its_login(
    services: Services, account: Account
) -> None:
    """Refreshing keeps the user's session index alive as long as the session: a login
    older than the index's first lifetime, kept alive by refreshing, still ends with a
    password change. The index's expiry is simulated by deleting it."""
    redis = services.cache.redis
    await redis.delete(_index_key(services, account))
    rotated = await refresh(services, account.tokens.refresh_token)
    assert await redis.ttl(_index_key(services, account)) >= await redis.ttl(
        _session_key(services, rotated)
    )

    await change_password(services, account, "Brand-new-passw0rd!", services.tokens)

    with pytest.raises(UnauthorizedError):
        await services.tokens.authenticate(rotated.access_token)
    with pytest.raises(UnauthorizedError):
        await refresh(services, rotated.refresh_token)


async def test_reuse_ends_the_replayed_session_even_without_its_index(
    services: Services, account: Account
) -> None:
    rotated = await refresh(services, account.tokens.refresh_token)
    await services.cache.redis.delete(_index_key(services, account))
    with pytest.raises(UnauthorizedError, match="reuse"):
        await refresh(services, account.tokens.refresh_token)
    with pytest.raises(UnauthorizedError):
        await services.tokens.authenticate(rotated.access_token)
    with pytest.raises(UnauthorizedError):
        await refresh(services, rotated.refresh_token)


async def test_a_password_change_committed_while_redis_is_down_still_ends_every_session(
    services: Services, settings: Settings, account: Account
) -> None:
    """Redis cannot be reached when the change commits: the change succeeds (that is the
    truth), and no session can be refreshed any more; the first refresh tried also ends
    the sessions Redis still holds."""
    other = await login(services, account.email, PASSWORD)
    down = Cache(unreachable(settings, "redis").redis)
    try:
        await change_password(
            services,
            account,
            "Brand-new-passw0rd!",
            Tokens(settings.auth, down, issuer=services.tokens.issuer),
        )
    finally:
        await down.close()

    for pair in (account.tokens, other):
        with pytest.raises(UnauthorizedError):
            await refresh(services, pair.refresh_token)
    for pair in (account.tokens, other):
        with pytest.raises(UnauthorizedError):
            await services.tokens.authenticate(pair.access_token)
    assert await login(services, account.email, "Brand-new-passw0rd!")


async def test_a_refresh_that_fails_for_a_database_outage_can_be_retried(
    services: Services, account: Account
) -> None:
    with pytest.raises(RuntimeError, match="secret-detail"):
        await auth.refresh(
            database=FailingDatabase(),  # type: ignore[arg-type]
            tokens=services.tokens,
            refresh_token=account.tokens.refresh_token,
        )
    # The same token again, once the database is back: no reuse, a fresh pair.
    retried = await refresh(services, account.tokens.refresh_token)
    await services.tokens.authenticate(retried.access_token)
    await services.tokens.authenticate(account.tokens.access_token)


async def test_refreshes_racing_with_one_token_leave_one_record_of_a_refresh(
    services: Services, account: Account
) -> None:
    """Each was checked before any rotated, and each recorded a refresh before the
    rotation that refused all but one: refused refreshes left records of success."""
    token = account.tokens.refresh_token
    attempts = await asyncio.gather(
        *(refresh(services, token) for _ in range(4)), return_exceptions=True
    )
    assert sum(isinstance(attempt, TokenPair) for attempt in attempts) == 1, attempts
    assert all(isinstance(a, TokenPair | UnauthorizedError) for a in attempts), attempts
    written = await outbox(services, "aggregate_id", str(account.user.id))
    kinds = [event.event_type for event in written]
    assert kinds.count("session.token_refreshed") == 1, kinds
    # The first refused is reuse; the others may find every session already ended.
    assert kinds.count("session.refresh_reuse_detected") >= 1, kinds


class CommitFails:
    """The real database, whose units of work all fail as they commit (rolled back)."""

    def __init__(self, database: Any) -> None:
        self.database = database

    @asynccontextmanager
    async def unit_of_work(self, *, read_only: bool = False) -> AsyncIterator[Any]:
        async with self.database.unit_of_work(read_only=read_only) as uow:
            yield uow
            raise RuntimeError(FailingDatabase.SECRET)


async def test_a_refresh_whose_record_fails_to_commit_can_be_retried(
    services: Services, account: Account
) -> None:
    """The rotation happens before the commit, and is undone when the commit fails."""
    with pytest.raises(RuntimeError, match="secret-detail"):
        await auth.refresh(
            database=CommitFails(services.database),  # type: ignore[arg-type]
            tokens=services.tokens,
            refresh_token=account.tokens.refresh_token,
        )
    retried = await refresh(services, account.tokens.refresh_token)
    await services.tokens.authenticate(retried.access_token)
    await services.tokens.authenticate(account.tokens.access_token)
    written = await outbox(services, "aggregate_id", str(account.user.id))
    assert [event.event_type for event in written].count("session.token_refreshed") == 1


async def test_a_role_change_ends_the_users_sessions(services: Services) -> None:
    admin = await new_account(services, admin=True)
    assert admin.principal.is_admin
    await set_role(services, admin.user.id, "user")
    with pytest.raises(UnauthorizedError):
        await services.tokens.authenticate(admin.tokens.access_token)
    with pytest.raises(UnauthorizedError):
        await refresh(services, admin.tokens.refresh_token)
    demoted = await login(services, admin.email, PASSWORD)
    assert not (await services.tokens.authenticate(demoted.access_token)).is_admin


async def test_a_login_racing_a_role_change_gets_no_session_with_the_old_role(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A login reads the account, then spends its hashing time: a demotion that commits
    and ends the sessions meanwhile must not leave it a session with the old role."""
    admin = await new_account(services, admin=True)
    hashed, demoted = asyncio.Event(), asyncio.Event()
    verify = services.passwords.verify_and_update

    async def slow_verify(password: str, stored: str | None) -> tuple[bool, str | None]:
        outcome = await verify(password, stored)
        hashed.set()
        await demoted.wait()
        return outcome

    monkeypatch.setattr(services.passwords, "verify_and_update", slow_verify)
    attempt = asyncio.create_task(login(services, admin.email, PASSWORD))
    await hashed.wait()
    await set_role(services, admin.user.id, "user")
    demoted.set()
    with pytest.raises(UnauthorizedError):
        await attempt
    again = await login(services, admin.email, PASSWORD)
    assert not (await services.tokens.authenticate(again.access_token)).is_admin


async def test_a_refresh_racing_a_role_change_gets_no_session_with_the_old_role(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same between a refresh's check of the account and its new session: the
    rotation needs the old session still stored, and the demotion has ended it."""
    admin = await new_account(services, admin=True)
    rotate = services.tokens.rotate

    async def demoted_meanwhile(claims: dict[str, Any], *, user: User) -> TokenPair:
        await set_role(services, user.id, "user")
        return await rotate(claims, user=user)

    monkeypatch.setattr(services.tokens, "rotate", demoted_meanwhile)
    with pytest.raises(UnauthorizedError):
        await refresh(services, admin.tokens.refresh_token)


async def demote_while_redis_is_down(
    services: Services, settings: Settings, admin: Account
) -> None:
    """A demotion that commits while Redis cannot be reached: no session is deleted."""
    down = Cache(unreachable(settings, "redis").redis)
    try:
        await user_service.set_role(
            database=services.database,
            tokens=Tokens(settings.auth, down, issuer=services.tokens.issuer),
            user_id=admin.user.id,
            role="user",
            by=None,
        )
    finally:
        await down.close()


async def test_a_role_change_committed_while_redis_is_down_ends_sessions_at_refresh(
    services: Services, settings: Settings
) -> None:
    admin = await new_account(services, admin=True)
    await demote_while_redis_is_down(services, settings, admin)
    with pytest.raises(UnauthorizedError):
        await refresh(services, admin.tokens.refresh_token)
    with pytest.raises(UnauthorizedError):
        await services.tokens.authenticate(admin.tokens.access_token)


async def test_a_demoted_admins_old_token_cannot_change_roles(
    services: Services, settings: Settings, account: Account
) -> None:
    """A demotion Redis could not be told of leaves the admin's access token working
    until it expires (or its refresh): role changes check the caller in the database."""
    admin = await new_account(services, admin=True)
    await demote_while_redis_is_down(services, settings, admin)
    assert (await services.tokens.authenticate(admin.tokens.access_token)).is_admin
    for target in (admin.user.id, account.user.id):
        with pytest.raises(ForbiddenError):
            await user_service.set_role(
                database=services.database,
                tokens=services.tokens,
                user_id=target,
                role="admin",
                by=admin.user.id,
            )
    assert (await user_service.get_user(database=services.database, user_id=target)).role == "user"


async def test_logout_ends_only_that_session(services: Services, account: Account) -> None:
    other = await login(services, account.email, PASSWORD)
    await auth.logout(
        database=services.database, tokens=services.tokens, principal=account.principal
    )
    with pytest.raises(UnauthorizedError):
        await services.tokens.authenticate(account.tokens.access_token)
    with pytest.raises(UnauthorizedError):
        await refresh(services, account.tokens.refresh_token)
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


async def test_login_is_rate_limited_per_account_and_address(
    services: Services, settings: Settings, account: Account
) -> None:
    """Guessing from one address is stopped there; the owner still gets in from another."""
    limits = override(settings, "rate_limit", login_per_account_per_minute=3).rate_limit
    attacker, owner = unique_address(), unique_address()
    for _ in range(3):
        with pytest.raises(UnauthorizedError):
            await login(services, account.email, "Wrong-passw0rd!", attacker, limits)
    with pytest.raises(RateLimitedError) as limited:
        await login(services, account.email, PASSWORD, attacker, limits)
    assert 1 <= int(limited.value.headers["Retry-After"]) <= 60
    # A correct password from a new address gets through, and clears that address's count.
    for _ in range(4):
        assert await login(services, account.email, PASSWORD, owner, limits)


async def test_login_is_rate_limited_per_address(services: Services, settings: Settings) -> None:
    """Every attempt from one address counts, whichever accounts it tries."""
    limits = override(settings, "rate_limit", login_per_ip_per_minute=3).rate_limit
    # Every other login in the suite comes from 192.0.2.1: a fixed or clock-picked address
    # here could share its count.
    address = unique_address()
    accounts = [await new_account(services) for _ in range(4)]
    for account in accounts[:3]:
        assert await login(services, account.email, PASSWORD, address, limits)
    with pytest.raises(RateLimitedError):
        await login(services, accounts[3].email, PASSWORD, address, limits)
    assert await login(services, accounts[3].email, PASSWORD, unique_address(), limits)


async def test_login_checks_and_renews_hashes_made_with_older_parameters(
    services: Services, settings: Settings, account: Account
) -> None:
    """A hash made with other Argon2 parameters is still checked properly, and a correct
    login stores it again with the current ones."""
    older = PasswordHash((Argon2Hasher(time_cost=2, memory_cost=4096),)).hash(PASSWORD)
    async with services.database.unit_of_work() as uow:
        await uow.users.set_password(account.user.id, password_hash=older, previous=[])

    for wrong in ("Wrong-passw0rd!", PASSWORD + "x", ""):
        with pytest.raises(UnauthorizedError):
            await login(services, account.email, wrong)
    async with services.database.unit_of_work(read_only=True) as uow:
        stored = await uow.users.get(account.user.id)
    assert stored is not None
    assert stored.password_hash == older

    assert await login(services, account.email, PASSWORD)
    async with services.database.unit_of_work(read_only=True) as uow:
        renewed = await uow.users.get(account.user.id)
    assert renewed is not None
    assert renewed.password_hash != older
    memory = settings.auth.password_memory_kib
    assert f"m={memory},t={settings.auth.password_time_cost}," in renewed.password_hash
    assert await login(services, account.email, PASSWORD)
    with pytest.raises(UnauthorizedError):
        await login(services, account.email, "Wrong-passw0rd!")


def test_password_hashing_runs_at_most_the_configured_number_at_once(settings: Settings) -> None:
    """A burst of hashes queues for the hasher instead of taking every thread."""
    limit = 2
    hasher = PasswordHasher(override(settings, "auth", password_concurrency=limit).auth)
    running, most = 0, 0
    lock = threading.Lock()
    real_hash = hasher._hasher.hash

    def counted(password: str) -> str:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        try:
            return real_hash(password)
        finally:
            with lock:
                running -= 1

    hasher._hasher.hash = counted  # type: ignore[method-assign,assignment]

    async def burst() -> list[str]:
        return await asyncio.gather(*(hasher.hash(f"burst-{n}-Passw0rd!") for n in range(8)))

    hashes = asyncio.run(burst())
    assert len(set(hashes)) == 8
    assert most == limit


async def test_logins_do_not_queue_behind_a_burst_of_registrations(settings: Settings) -> None:
    """New hashes (registrations, password changes) and verifications (logins) queue
    apart: with every hashing slot held by a burst, a login still verifies."""
    hasher = PasswordHasher(override(settings, "auth", password_concurrency=1).auth)
    stored = await hasher.hash(PASSWORD)
    release = threading.Event()
    real_hash = hasher._hasher.hash

    def held(password: str) -> str:
        release.wait(30)
        return real_hash(password)

    hasher._hasher.hash = held  # type: ignore[method-assign,assignment]
    burst = [asyncio.create_task(hasher.hash(f"burst-{n}-Passw0rd!")) for n in range(4)]
    try:
        # Sharing the burst's queue, this would wait until the burst is released.
        assert await asyncio.wait_for(hasher.verify(PASSWORD, stored), timeout=20)
    finally:
        release.set()
        await asyncio.gather(*burst)


async def test_sliding_window(services: Services) -> None:
    key = unique("window")
    results = [await services.limiter.hit(key, limit=3, window=2) for _ in range(4)]
    assert [r.allowed for r in results] == [True, True, True, False]
    assert [r.remaining for r in results] == [2, 1, 0, 0]
    assert results[-1].headers()["Retry-After"] in {"1", "2"}
