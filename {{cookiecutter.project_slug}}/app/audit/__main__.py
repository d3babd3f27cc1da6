"""Audit trail commands.

python -m app.audit verify    walk the chain; exit 1 at the first broken record
"""

import argparse
import asyncio
import sys

from app.services import build_services
from app.settings import get_settings


async def verify() -> int:
    services = build_services(get_settings())
    await services.database.connect()
    try:
        report = await services.audit.verify()
    finally:
        await services.database.close()
        await services.cache.close()
    if report.intact:
        print(f"audit trail intact: {report.checked} records verified")
        return 0
    print(
        f"audit trail broken at record {report.first_broken}: "
        f"{report.checked} records before it verified"
    )
    return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.audit", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("verify", help="check that no audit record was edited or removed")
    parser.parse_args(argv)
    return asyncio.run(verify())


if __name__ == "__main__":
    sys.exit(main())
