"""Refuse bad answers before anything is written.

The checks run twice with the same code: at the prompts, through the Jinja
filter ``check_answers`` (so a bad slug never reaches the disk, not even as a
directory cookiecutter would create before this hook runs), and here as the
pre-generation hook, for tools that skip the prompts' rendering.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

# Rendered by cookiecutter; tojson escapes quotes, so no answer can end the string.
RAW_ANSWERS = r"""{{ cookiecutter | tojson }}"""

SLUG = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
SLUG_MAX = 63
EMAIL = re.compile(r"[^@\s]+@[^@\s.]+(?:\.[^@\s.]+)+")
EMAIL_MAX = 254
# The questions cookiecutter.json asks (its keys without a leading underscore).
QUESTIONS = 9
# The name is the API's title in the code; longer would not fit a line.
NAME_MAX = 60
CHOICES = {
    "database": ("postgres", "mongodb"),
    "api": ("rest", "graphql"),
    "broker": ("rabbitmq", "kafka"),
}


def _name_problems(answers: Mapping[str, Any]) -> list[str]:
    name = str(answers.get("project_name", ""))
    if not name.strip():
        return ["project_name is empty: give the service a name."]
    if len(name) > NAME_MAX:
        return [f"project_name is longer than {NAME_MAX} characters: shorten it."]
    return []


def _slug_problems(answers: Mapping[str, Any]) -> list[str]:
    slug = str(answers.get("project_slug", ""))
    if len(slug) > SLUG_MAX or not SLUG.fullmatch(slug):
        return [
            f"project_slug {slug!r} is invalid: use lowercase letters and digits "
            f"joined by single hyphens, at most {SLUG_MAX} characters "
            "(for example 'orders-service')."
        ]
    return []


def _email_problems(answers: Mapping[str, Any]) -> list[str]:
    email = str(answers.get("author_email", ""))
    if len(email) > EMAIL_MAX or not EMAIL.fullmatch(email):
        return [f"author_email {email!r} is not an email address (name@example.com)."]
    return []


def _choice_problems(key: str) -> Callable[[Mapping[str, Any]], list[str]]:
    def check(answers: Mapping[str, Any]) -> list[str]:
        allowed = CHOICES[key]
        if answers.get(key) not in allowed:
            return [f"{key} {answers.get(key)!r} is not one of {', '.join(allowed)}."]
        return []

    return check


def _flag_problems(answers: Mapping[str, Any]) -> list[str]:
    if not isinstance(answers.get("compliance_logging"), bool):
        return ["compliance_logging must be yes or no."]
    return []


# One check per answer, in the order the problems are reported.
CHECKS: dict[str, Callable[[Mapping[str, Any]], list[str]]] = {
    "project_slug": _slug_problems,
    "author_email": _email_problems,
    "project_name": _name_problems,
    **{key: _choice_problems(key) for key in CHOICES},
    "compliance_logging": _flag_problems,
}


def problems(answers: Mapping[str, Any], keys: Iterable[str] = CHECKS) -> list[str]:
    """Return one sentence per invalid answer among ``keys``; empty when all are valid."""
    wanted = set(keys)
    return [
        sentence for key, check in CHECKS.items() if key in wanted for sentence in check(answers)
    ]


class AnswersRefused(SystemExit):
    """Exit status 1, the sentences as its text; passes through cookiecutter untouched."""

    def __init__(self, message: str) -> None:
        super().__init__(1)
        self.message = message

    def __str__(self) -> str:
        return self.message


def refusal(found: list[str]) -> str:
    return "\n".join(f"error: {sentence}" for sentence in found)


def fail_on_problems(answers: Mapping[str, Any]) -> None:
    found = problems(answers)
    if found:
        message = refusal(found)
        print(message, file=sys.stderr)
        raise AnswersRefused(message)


# --- recovery: the answers given, saved, and the command that re-runs with them ---------


def suggestion(key: str, value: Any) -> str | None:
    """A valid replacement for a refused answer, when one follows from it."""
    if key == "project_slug":
        words = re.findall(r"[a-z0-9]+", str(value).lower())
        slug = "-".join(words)[:SLUG_MAX].strip("-")
        return slug if slug and not _slug_problems({"project_slug": slug}) else None
    if key == "project_name" and str(value).strip():
        return str(value).strip()[:NAME_MAX].rstrip() or None
    return None


def corrected_answers(
    answers: Mapping[str, Any], refused: Iterable[str]
) -> tuple[dict[str, Any], list[str]]:
    """The visible answers with refused ones replaced by a suggestion, or left out
    (to be asked again); and the keys left out."""
    refused = set(refused)
    kept: dict[str, Any] = {}
    dropped = []
    for key, value in answers.items():
        if key.startswith("_"):
            continue
        if key in refused:
            value = suggestion(key, value)
            if value is None:
                dropped.append(key)
                continue
        kept[key] = value
    return kept, dropped


def _as_argument(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


EXTRA_CONTEXT = re.compile(r"([A-Za-z_]\w*)=(.*)", re.S)


def _invocation(argv: list[str]) -> tuple[list[str], dict[str, str], bool]:
    """How cookiecutter was started: its arguments without the answers, the answers
    given on its command line, and whether it was asked not to prompt."""
    program = Path(argv[0]) if argv else Path()
    if program.name != "cookiecutter" and program.parent.name != "cookiecutter":
        # Called as a library (pytest-cookies, cookiecutter()): the template is this file's.
        return ["cookiecutter", str(Path(__file__).resolve().parent.parent)], {}, False
    kept = ["cookiecutter"]
    given: dict[str, str] = {}
    skip_value = False
    for arg in argv[1:]:
        if skip_value:
            skip_value = False
        elif arg == "--replay-file":
            skip_value = True
        elif (match := EXTRA_CONTEXT.fullmatch(arg)) and not arg.startswith("-"):
            given[match.group(1)] = match.group(2)
        elif arg not in {"--no-input", "--replay"} and not arg.startswith("--replay-file="):
            kept.append(arg)
    return kept, given, "--no-input" in argv


def rerun_command(
    answers: Mapping[str, Any], refused: Iterable[str], argv: list[str] | None = None
) -> str:
    """The command that renders again with the answers given so far, corrected."""
    invocation, given, no_input = _invocation(sys.argv if argv is None else argv)
    kept, dropped = corrected_answers(answers, refused)
    pairs = {key: _as_argument(value) for key, value in kept.items()}
    pairs |= {key: value for key, value in given.items() if key not in answers}
    for key in dropped:
        pairs.pop(key, None)
    # Every question answered: no prompt at all. Otherwise cookiecutter asks the rest,
    # with these answers as the defaults (Enter keeps each).
    complete = not dropped and (no_input or len(pairs) == QUESTIONS)
    flags = ["--no-input"] if complete else []
    return shlex.join([*invocation, *flags, *(f"{key}={value}" for key, value in pairs.items())])


def save_answers(answers: Mapping[str, Any]) -> Path:
    """The answers given so far, in cookiecutter's replay layout, in a private file."""
    visible = {key: value for key, value in answers.items() if not key.startswith("_")}
    folder = Path(tempfile.gettempdir()) / f"cookiecutter-answers-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    text = json.dumps({"cookiecutter": visible}, indent=2, ensure_ascii=False) + "\n"
    # A file of its own for each refusal: two renders refused at once keep their answers.
    with tempfile.NamedTemporaryFile(
        "w", dir=folder, prefix="answers-", suffix=".json", delete=False
    ) as file:
        file.write(text)
    return Path(file.name)


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
            # Cookiecutter renders a hook with the template dir as the working directory
            # (and runs it in the project's): the post-generation hook reads the template
            # commit from there. `_repo_dir` may be relative to a directory left by then.
            environment.globals["template_dir"] = os.getcwd

    def _check_answers(answers: Mapping[str, Any], *keys: str) -> str:
        """Refuse right after the question whose answer is wrong (``keys``), or, with no
        keys, check every answer; print the answers saved and the command to re-run."""
        found_keys = [key for key in (keys or CHECKS) if problems(answers, [key])]
        if not found_keys:
            return "yes"
        message = refusal(problems(answers, found_keys))
        path = save_answers(answers)
        command = rerun_command(answers, found_keys)
        kept, dropped = corrected_answers(answers, found_keys)
        fixed = [key for key in found_keys if key in kept]
        notes = []
        if fixed:
            notes.append(f"corrected: {', '.join(f'{k}={kept[k]}' for k in fixed)}")
        if dropped:
            notes.append(f"asked again: {', '.join(dropped)}")
        print(
            f"{message}\nNothing was written. Your answers are saved in {path}.\n"
            f"Re-run with them ({'; '.join(notes)}):\n  {command}",
            file=sys.stderr,
        )
        raise AnswersRefused(message)


if __name__ == "__main__":
    fail_on_problems(json.loads(RAW_ANSWERS))
