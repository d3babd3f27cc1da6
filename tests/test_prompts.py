"""Plain cookiecutter, as a user runs it: defaults, prompts, and refused answers."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from pytest_cookies.plugin import Cookies

from tests.rendering import TEMPLATE, capture

QUESTIONS = 9


def cookiecutter(
    out: Path, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "cookiecutter", str(TEMPLATE), "-o", str(out), *args]
    return capture(command, timeout=120, stdin=stdin)


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
    # Only two answers: the slug is refused right after its question.
    result = cookiecutter(out, stdin="Billing API\nbilling/api\n")
    assert result.returncode != 0
    assert "error: project_slug 'billing/api' is invalid" in result.stderr
    assert "Traceback" not in result.stderr
    assert "[3/9]" not in result.stdout, "the slug was refused only after later questions"
    assert list(out.iterdir()) == []


def _rerun_command(stderr: str) -> list[str]:
    lines = stderr.splitlines()
    (index,) = [i for i, line in enumerate(lines) if line.startswith("Re-run with them")]
    return shlex.split(lines[index + 1])


def test_a_refusal_saves_the_answers_and_prints_the_command_that_recovers(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    result = cookiecutter(out, stdin="Billing API\nBilling_API\n")
    assert result.returncode != 0
    assert list(out.iterdir()) == []
    saved = re.search(r"Your answers are saved in (\S+)\.$", result.stderr, re.M)
    assert saved, result.stderr
    recorded = json.loads(Path(saved.group(1)).read_text())["cookiecutter"]
    assert recorded["project_name"] == "Billing API"
    assert recorded["project_slug"] == "Billing_API"

    command = _rerun_command(result.stderr)
    assert command[0] == "cookiecutter"
    assert "project_slug=billing-api" in command
    # The same command, run: Enter keeps each answer given so far; the rest are asked.
    answers = "\n\nBills things.\n" + "\n" * QUESTIONS
    rerun = capture([sys.executable, "-m", *command], timeout=120, stdin=answers)
    assert rerun.returncode == 0, rerun.stderr
    recorded = json.loads((out / "billing-api" / ".cookiecutter.json").read_text())
    assert recorded["project_name"] == "Billing API"
    assert recorded["description"] == "Bills things."


def test_a_refused_no_input_run_prints_a_no_input_command_that_works(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    result = cookiecutter(
        out, "--no-input", "project_slug=Billing API", "database=mongodb", "description=It's x"
    )
    assert result.returncode != 0
    command = _rerun_command(result.stderr)
    assert "--no-input" in command
    rerun = capture([sys.executable, "-m", *command], timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    recorded = json.loads((out / "billing-api" / ".cookiecutter.json").read_text())
    assert recorded["database"] == "mongodb"
    assert recorded["description"] == "It's x"


# --- pytest-cookies, the standard plugin for testing templates ---------------------------


def test_cookies_bake_renders_the_defaults(cookies: Cookies) -> None:
    result = cookies.bake()
    assert result.exit_code == 0, result.exception
    assert result.project_path.name == "orders-service"
    assert (result.project_path / "app/main.py").is_file()


def test_cookies_bake_refuses_a_bad_answer_with_its_message(cookies: Cookies) -> None:
    result = cookies.bake(extra_context={"author_email": "nope"})
    assert result.exit_code == 1
    assert str(result.exception) == (
        "error: author_email 'nope' is not an email address (name@example.com)."
    )
    assert result.project_path is None


def test_cookies_bake_needs_no_configuration_in_a_users_own_test_folder(tmp_path: Path) -> None:
    """A user's test module in a folder of its own (no __init__.py), run with plain
    `pytest` from the template's root: cookies.bake() must import the template's Jinja
    extension although pytest does not put the root on sys.path for that module."""
    template = tmp_path / "template"
    shutil.copytree(
        TEMPLATE, template, ignore=shutil.ignore_patterns(".git", ".venv", "__pycache__")
    )
    (template / "bake_tests").mkdir()
    (template / "bake_tests" / "test_bake.py").write_text(
        "def test_bake(cookies):\n"
        "    result = cookies.bake()\n"
        "    assert result.exit_code == 0, result.exception\n"
        "\n"
        "def test_refused(cookies):\n"
        "    result = cookies.bake(extra_context={'project_slug': 'No Good'})\n"
        "    assert result.exit_code == 1, result.exception\n"
        "    assert \"project_slug 'No Good' is invalid\" in str(result.exception)\n"
    )
    pytest_bin = Path(sys.executable).parent / "pytest"
    result = capture([str(pytest_bin), "-n", "0", "bake_tests"], template, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "2 passed" in result.stdout


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
