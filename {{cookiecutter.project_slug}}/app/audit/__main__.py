"""Audit trail commands.

python -m app.audit verify [--checkpoint C ...]
    check the chain: every seal, positions without gaps from the purge anchor, no record
    unsealed longer than AUDIT_WINDOW_SECONDS, and the head against every checkpoint:
    the one the service keeps in Redis, and each C given (a checkpoint token, its JSON,
    or a file of them, one a line; log lines of the `audit_checkpoint` event work too).
    Exit 1 with one line per problem.
python -m app.audit purge
    remove the records older than AUDIT_RETENTION_DAYS; the purge is itself recorded
    and checkpointed. Exit 2 when the retention is shorter than
    AUDIT_LEGAL_MINIMUM_DAYS (or the database's own minimum), 1 when the trail is
    broken (nothing is removed then).
"""

import argparse
import asyncio
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pydantic import ValidationError

from app.audit.metrics import record_verification
from app.audit.records import BrokenTrailError, Checkpoint, PurgeRefusedError
from app.audit.sealer import publish_checkpoint, stored_checkpoint
from app.services import Services, command_services


def _checkpoint_of(line: str) -> Checkpoint:
    if line.startswith("{"):
        data = json.loads(line)
        if isinstance(data, dict) and isinstance(data.get("checkpoint"), str):
            return Checkpoint.parse(data["checkpoint"])  # a log line
    return Checkpoint.parse(line)


def parse_checkpoints(argument: str) -> list[Checkpoint]:
    """A checkpoint token or JSON, or a file holding them one a line."""
    path = Path(argument)
    text = path.read_text() if len(argument) < 4096 and path.is_file() else argument
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    try:
        return [_checkpoint_of(line) for line in lines]
    except (ValueError, ValidationError) as exc:
        raise argparse.ArgumentTypeError(f"not a checkpoint: {argument[:80]!r}") from exc


async def verify(services: Services, given: list[Checkpoint]) -> int:
    settings = services.settings.audit
    stored = await stored_checkpoint(services.cache)
    checkpoints = [*given, *([stored] if stored else [])]
    if not checkpoints:
        print(
            "warning: no checkpoint in Redis nor given (--checkpoint): removing the newest "
            "records cannot be detected",
            file=sys.stderr,
        )
    report = await services.audit.verify(
        checkpoints=checkpoints, window=timedelta(seconds=settings.window_seconds)
    )
    await record_verification(services.cache, intact=report.intact)
    if not report.intact:
        for problem in report.problems:
            print(f"audit trail broken: {problem}")
        return 1
    purged = f", positions up to {report.anchor_position} purged" if report.anchor_position else ""
    print(
        f"audit trail intact: {report.checked} records verified, head at position "
        f"{report.head.position}, {len(checkpoints)} checkpoints matched, "
        f"{report.unsealed} records not sealed yet{purged}"
    )
    return 0


async def purge(services: Services, _: list[Checkpoint]) -> int:
    settings = services.settings.audit
    if settings.retention_days < settings.legal_minimum_days:
        print(
            f"refused: AUDIT_RETENTION_DAYS={settings.retention_days} is shorter than the "
            f"legal minimum AUDIT_LEGAL_MINIMUM_DAYS={settings.legal_minimum_days}",
            file=sys.stderr,
        )
        return 2
    before = datetime.now(UTC) - timedelta(days=settings.retention_days)
    try:
        report = await services.audit.purge(before=before)
    except BrokenTrailError as exc:
        print(f"refused: {exc}; run `verify` and investigate first", file=sys.stderr)
        return 1
    except PurgeRefusedError as exc:
        print(f"refused by the database: {exc}", file=sys.stderr)
        return 2
    checkpoint = Checkpoint.issue(
        settings.secret_key.get_secret_value().encode(),
        report.head,
        purged_through=report.purged_through,
    )
    await publish_checkpoint(checkpoint, database=services.database, cache=services.cache)
    print(f"audit trail purged: {report.removed} records older than {before:%Y-%m-%d} removed")
    return 0


COMMANDS = {"verify": verify, "purge": purge}


async def run(command: str, checkpoints: list[Checkpoint]) -> int:
    from app.settings import get_settings

    async with command_services(get_settings()) as services:
        return await COMMANDS[command](services, checkpoints)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m app.audit",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=sorted(COMMANDS))
    parser.add_argument(
        "--checkpoint",
        action="extend",
        type=parse_checkpoints,
        default=[],
        metavar="C",
        help="a checkpoint (token or JSON) or a file of them; repeatable",
    )
    arguments = parser.parse_args(argv)
    return asyncio.run(run(arguments.command, arguments.checkpoint))


if __name__ == "__main__":
    sys.exit(main())
