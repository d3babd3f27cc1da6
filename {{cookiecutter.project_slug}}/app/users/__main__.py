"""Account commands, for what no request can do yet, such as making the first administrator.

python -m app.users set-role EMAIL {user,admin}
    set the role of the account with this email; its sessions end. The change's event
    (`user.role_changed`) names as its actor `command-line:` with the operating system
    account and host that ran it. Exit 1 when no account has the email.
"""

import argparse
import asyncio
import getpass
import os
import socket
import sys
import uuid
from typing import get_args

from app.core.context import RequestContext, set_current_request
from app.services import command_services
from app.settings import Settings, get_settings
from app.users import service
from app.users.schemas import Role


def operator() -> str:
    """Who ran the command, as the records name them: the system account and the host."""
    try:
        account = getpass.getuser()
    except (KeyError, OSError):  # a uid with no name, as containers often run
        account = f"uid-{os.getuid()}"
    return f"command-line:{account}@{socket.gethostname()}"[:64]


async def set_role(settings: Settings, email: str, role: Role) -> int:
    async with command_services(settings) as services:
        set_current_request(RequestContext(request_id=uuid.uuid4().hex, actor_id=operator()))
        try:
            user = await service.user_by_email(database=services.database, email=email)
            if user is None:
                print(f"no account has the email {email!r}", file=sys.stderr)
                return 1
            await service.set_role(
                database=services.database,
                tokens=services.tokens,
                user_id=user.id,
                role=role,
                by=None,
            )
            print(f"{user.email}: role {role} (was {user.role})")
            return 0
        finally:
            set_current_request(None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m app.users",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    command = commands.add_parser("set-role", help="set the role of an account")
    command.add_argument("email")
    command.add_argument("role", choices=get_args(Role))
    arguments = parser.parse_args(argv)
    return asyncio.run(set_role(get_settings(), arguments.email, arguments.role))


if __name__ == "__main__":
    sys.exit(main())
