"""Argon2id password hashing (pwdlib), off the event loop and bounded.

A hash costs tens of milliseconds of CPU and tens of MiB of memory on purpose. Each
runs in a worker thread, and at most `AUTH_PASSWORD_CONCURRENCY` at a time: a burst of
logins or registrations queues for the hasher instead of taking every core and thread
from the requests that need no hash. Verifying (logins) and making new hashes
(registration, password changes) queue separately, so an anonymous burst of
registrations, which each address may send a few of, never makes honest logins wait
behind it.
"""

import asyncio
import secrets
from collections.abc import Callable
from typing import TypeVar

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from app.settings import AuthSettings
from app.users.schemas import normalise_password

T = TypeVar("T")


class PasswordHasher:
    def __init__(self, settings: AuthSettings) -> None:
        self._hasher = PasswordHash(
            (
                Argon2Hasher(
                    time_cost=settings.password_time_cost,
                    memory_cost=settings.password_memory_kib,
                ),
            )
        )
        self._hash_slots = asyncio.Semaphore(settings.password_concurrency)
        self._verify_slots = asyncio.Semaphore(settings.password_concurrency)
        # Verified against when the account does not exist, so a login costs the same
        # whether or not the email is known.
        self._dummy = self._hasher.hash(secrets.token_urlsafe(16))

    @staticmethod
    async def _run(slots: asyncio.Semaphore, work: Callable[[], T]) -> T:
        async with slots:
            return await asyncio.to_thread(work)

    async def hash(self, password: str) -> str:
        password = normalise_password(password)
        return await self._run(self._hash_slots, lambda: self._hasher.hash(password))

    async def verify(self, password: str, password_hash: str | None) -> bool:
        valid, _ = await self.verify_and_update(password, password_hash)
        return valid

    async def verify_and_update(
        self, password: str, password_hash: str | None
    ) -> tuple[bool, str | None]:
        """Whether the password matches, and a new hash when the stored one was made with
        other parameters than the current ones (None when it is current)."""
        password = normalise_password(password)
        stored = password_hash or self._dummy
        valid, updated = await self._run(
            self._verify_slots, lambda: self._hasher.verify_and_update(password, stored)
        )
        if password_hash is None or not valid:
            return False, None
        return True, updated
