"""Refuse bad answers before anything is written.

The checks run twice with the same code: at the prompts, through the Jinja
filter ``check_answers`` (so a bad slug never reaches the disk, not even as a
directory cookiecutter would create before this hook runs), and here as the
pre-generation hook, for tools that skip the prompts' rendering.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

# Rendered by cookiecutter; tojson escapes quotes, so no answer can end the string.
RAW_ANSWERS = r"""{{ cookiecutter | tojson }}"""

SLUG = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
SLUG_MAX = 63
EMAIL = re.compile(r"[^@\s]+@[^@\s.]+(?:\.[^@\s.]+)+")
EMAIL_MAX = 254
# The name is the API's title in the code; longer would not fit a line.
NAME_MAX = 60
CHOICES = {
    "database": ("postgres", "mongodb"),
    "api": ("rest", "graphql"),
    "broker": ("rabbitmq", "kafka"),
}


def problems(answers: Mapping[str, Any]) -> list[str]:
    """Return one sentence per invalid answer; empty when all are valid."""
    found = []
    slug = str(answers.get("project_slug", ""))
    if len(slug) > SLUG_MAX or not SLUG.fullmatch(slug):
        found.append(
            f"project_slug {slug!r} is invalid: use lowercase letters and digits "
            f"joined by single hyphens, at most {SLUG_MAX} characters "
            "(for example 'orders-service')."
        )
    email = str(answers.get("author_email", ""))
    if len(email) > EMAIL_MAX or not EMAIL.fullmatch(email):
        found.append(f"author_email {email!r} is not an email address (name@example.com).")
    name = str(answers.get("project_name", ""))
    if not name.strip():
        found.append("project_name is empty: give the service a name.")
    elif len(name) > NAME_MAX:
        found.append(f"project_name is longer than {NAME_MAX} characters: shorten it.")
    for key, allowed in CHOICES.items():
        if answers.get(key) not in allowed:
            found.append(f"{key} {answers.get(key)!r} is not one of {', '.join(allowed)}.")
    if not isinstance(answers.get("compliance_logging"), bool):
        found.append("compliance_logging must be yes or no.")
    return found


def fail_on_problems(answers: Mapping[str, Any]) -> None:
    found = problems(answers)
    if found:
        # SystemExit carries the message to stderr and a non-zero status,
        # and it passes through cookiecutter untouched.
        raise SystemExit("\n".join(f"error: {sentence}" for sentence in found))


try:
    from jinja2.ext import Extension
except ImportError:  # the hook itself runs under any interpreter
    pass
else:

    class AnswerChecks(Extension):
        """Jinja extension giving cookiecutter.json the ``check_answers`` filter."""

        def __init__(self, environment: Any) -> None:
            super().__init__(environment)
            environment.filters["check_answers"] = _check_answers

    def _check_answers(answers: Mapping[str, Any]) -> str:
        fail_on_problems(answers)
        return "yes"


if __name__ == "__main__":
    fail_on_problems(json.loads(RAW_ANSWERS))
