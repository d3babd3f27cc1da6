"""Alembic environment: runs migrations with the application's own engine settings."""

import asyncio
import importlib
import pkgutil

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

import app.storage.postgres
from app.core.startup import ServiceUnreachableError, ensure_reachable
from app.settings import get_settings
from app.storage.postgres.models import Base

# Import every module of the storage package, so every table is in the metadata
# that `alembic check` and autogenerate compare with the database.
for module in pkgutil.iter_modules(app.storage.postgres.__path__):
    importlib.import_module(f"app.storage.postgres.{module.name}")

target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


async def _run_online() -> None:
    settings = get_settings()
    try:
        await ensure_reachable(settings, database_only=True)
    except ServiceUnreachableError as error:
        if settings.app.log_level == "DEBUG":
            raise
        # One line, no traceback: SystemExit prints it to stderr and exits with 1.
        raise SystemExit(f"error: {error}") from None
    engine = create_async_engine(settings.database.url)
    async with engine.connect() as connection:
        await connection.run_sync(_run)
    await engine.dispose()


if context.is_offline_mode():
    context.configure(url=get_settings().database.url, target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run_online())
