"""Audit trail commands.

python -m app.audit verify   walk the chain; exit 1 at the first broken record
python -m app.audit purge    remove the records older than AUDIT_RETENTION_DAYS; the
                             purge is itself recorded. Exit 2 when the retention is
                             shorter than AUDIT_LEGAL_MINIMUM_DAYS, 1 when the trail
                             is broken (nothing is removed then).
"""

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from app.audit.records import AuditLog, BrokenTrailError
from app.services import build_services
from app.settings import AuditSettings, get_settings


async def verify(audit: AuditLog, _: AuditSettings) -> int:
    report = await audit.verify()
    if not report.intact:
        print(
            f"audit trail broken at record {report.first_broken}: "
            f"{report.checked} records before it verified"
        )
        return 1
    purged = f" (records up to {report.anchor_sequence} purged)" if report.anchor_sequence else ""
    print(f"audit trail intact: {report.checked} records verified{purged}")
    return 0


async def purge(audit: AuditLog, settings: AuditSettings) -> int:
    if settings.retention_days < settings.legal_minimum_days:
        print(
            f"refused: AUDIT_RETENTION_DAYS={settings.retention_days} is shorter than the "
            f"legal minimum AUDIT_LEGAL_MINIMUM_DAYS={settings.legal_minimum_days}",
            file=sys.stderr,
        )
        return 2
    before = datetime.now(UTC) - timedelta(days=settings.retention_days)
    try:
        report = await audit.purge(before=before)
    except BrokenTrailError as exc:
        print(f"refused: {exc}; run `verify` and investigate first", file=sys.stderr)
        return 1
    print(f"audit trail purged: {report.removed} records older than {before:%Y-%m-%d} removed")
    return 0


COMMANDS: dict[str, Callable[[AuditLog, AuditSettings], Awaitable[int]]] = {
    "verify": verify,
    "purge": purge,
}


async def run(command: str) -> int:
    settings = get_settings()
    services = build_services(settings)
    await services.database.connect()
    try:
        return await COMMANDS[command](services.audit, settings.audit)
    finally:
        await services.database.close()
        await services.cache.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m app.audit",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=sorted(COMMANDS))
    return asyncio.run(run(parser.parse_args(argv).command))


if __name__ == "__main__":
    sys.exit(main())
