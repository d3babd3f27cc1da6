"""Plain cookiecutter, as a user runs it: defaults, prompts, and refused answers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.rendering import TEMPLATE

QUESTIONS = 9


def cookiecutter(
    out: Path, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cookiecutter", str(TEMPLATE), "-o", str(out), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_no_input_renders_the_default_project(tmp_path: Path) -> None:
    result = cookiecutter(tmp_path, "--no-input")
    assert result.returncode == 0, result.stderr
    project = tmp_path / "orders-service"
    assert (project / "app/main.py").is_file()
    assert (project / "app/storage/postgres").is_dir()
    assert (project / "app/api/rest").is_dir()
    assert (project / "app/events/rabbitmq.py").is_file()
    assert (project / "app/audit").is_dir()
    assert (project / ".env").is_file()
    recorded = json.loads((project / ".cookiecutter.json").read_text())
    assert recorded["database"] == "postgres"
    assert recorded["compliance_logging"] is True


def test_prompts_accept_the_defaults(tmp_path: Path) -> None:
    result = cookiecutter(tmp_path, stdin="\n" * QUESTIONS)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "orders-service/app/main.py").is_file()


def test_prompts_take_typed_answers(tmp_path: Path) -> None:
    answers = ["Billing API", "", "Bills things.", "Kim", "kim@example.org", "2", "2", "2", "n"]
    result = cookiecutter(tmp_path, stdin="\n".join(answers) + "\n")
    assert result.returncode == 0, result.stderr
    project = tmp_path / "billing-api"
    assert (project / "app/storage/mongodb").is_dir()
    assert (project / "app/api/graphql").is_dir()
    assert (project / "app/events/kafka.py").is_file()
    assert not (project / "app/audit").exists()


def test_a_bad_typed_slug_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    result = cookiecutter(out, stdin="Billing API\nbilling/api\n" + "\n" * QUESTIONS)
    assert result.returncode != 0
    assert "error: project_slug 'billing/api' is invalid" in result.stderr
    assert list(out.iterdir()) == []


OUR_ERRORS = [
    ("project_slug=My Service", "error: project_slug 'My Service' is invalid"),
    ("project_slug=MyService", "error: project_slug 'MyService' is invalid"),
    ("project_slug=my_service", "error: project_slug 'my_service' is invalid"),
    ("project_slug=a/b", "error: project_slug 'a/b' is invalid"),
    ("project_slug=../escape", "error: project_slug '../escape' is invalid"),
    ("project_slug=..", "error: project_slug '..' is invalid"),
    ("project_slug=svc;rm -rf ~", "error: project_slug 'svc;rm -rf ~' is invalid"),
    ("project_slug=$(id)", "error: project_slug '$(id)' is invalid"),
    ("project_slug=sérvice", "error: project_slug 'sérvice' is invalid"),
    ("project_slug=-svc", "error: project_slug '-svc' is invalid"),
    ("project_slug=svc-", "error: project_slug 'svc-' is invalid"),
    ("project_slug=", "error: project_slug '' is invalid"),
    ("project_name=", "error: project_name is empty"),
    ("project_name=" + "n" * 61, "error: project_name is longer than 60 characters"),
    ("author_email=not-an-email", "error: author_email 'not-an-email' is not an email address"),
    ("author_email=jane@localhost", "error: author_email 'jane@localhost' is not an email address"),
]
COOKIECUTTER_ERRORS = [
    ("database=mysql", "mysql provided for choice variable database"),
    ("api=soap", "soap provided for choice variable api"),
    ("broker=nats", "nats provided for choice variable broker"),
    ("compliance_logging=maybe", "maybe provided for variable compliance_logging could not be"),
]


def _assert_nothing_left(tmp_path: Path, out: Path) -> None:
    assert list(out.iterdir()) == []
    assert [p.name for p in (tmp_path / "parent").iterdir()] == ["out"]


def _nested_out(tmp_path: Path) -> Path:
    # Nested, so a slug that climbs out ('../escape') would show up as a sibling.
    out = tmp_path / "parent" / "out"
    out.mkdir(parents=True)
    return out


@pytest.mark.parametrize(("answer", "message"), OUR_ERRORS)
def test_bad_answers_exit_non_zero_and_leave_nothing(
    tmp_path: Path, answer: str, message: str
) -> None:
    out = _nested_out(tmp_path)
    result = cookiecutter(out, "--no-input", answer)
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    _assert_nothing_left(tmp_path, out)


@pytest.mark.parametrize(("answer", "message"), COOKIECUTTER_ERRORS)
def test_bad_choices_on_the_command_line_leave_nothing(
    tmp_path: Path, answer: str, message: str
) -> None:
    # At the prompts a choice is picked from a menu; on the command line cookiecutter
    # itself refuses an unknown value, with its own message as the last line.
    out = _nested_out(tmp_path)
    result = cookiecutter(out, "--no-input", answer)
    assert result.returncode != 0
    assert message in result.stderr.strip().splitlines()[-1]
    _assert_nothing_left(tmp_path, out)
