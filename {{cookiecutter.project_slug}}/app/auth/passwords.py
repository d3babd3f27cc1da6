"""Argon2id password hashing (pwdlib), off the event loop."""

import asyncio
import secrets

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from app.settings import AuthSettings


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
        # Verified against when the account does not exist, so a login costs the same
        # whether or not the email is known.
        self._dummy = self._hasher.hash(secrets.token_urlsafe(16))

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, password: str, password_hash: str | None) -> bool:
        valid = await asyncio.to_thread(self._hasher.verify, password, password_hash or self._dummy)
        return valid and password_hash is not None
