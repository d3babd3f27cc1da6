"""What an erased account looks like in storage: its email moves to the reserved
`.invalid` domain. Registration refuses that domain (email validation refuses
special-use names), so the address alone tells an erased account from a live one, and
the storage can check it in the very statement that needs to know (an item's insert)."""

from uuid import UUID

ERASED_DOMAIN = "erased.invalid"
ERASED_SUFFIX = f"@{ERASED_DOMAIN}"


def erased_email(user_id: UUID) -> str:
    # No mail is ever sent to .invalid, and nobody can register it.
    return f"erased-{user_id}{ERASED_SUFFIX}"


def is_erased(email: str) -> bool:
    return email.endswith(ERASED_SUFFIX)
