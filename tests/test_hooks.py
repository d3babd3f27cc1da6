"""The hooks' logic, imported and tested directly."""

from __future__ import annotations

import importlib.util
import shlex
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.combinations import ALL, Combination
from tests.rendering import TEMPLATE


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, TEMPLATE / "hooks" / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


pre_gen = _load("pre_gen_project")
post_gen = _load("post_gen_project")

VALID: dict[str, Any] = {
    "project_name": "Orders Service",
    "project_slug": "orders-service",
    "author_email": "jane.doe@example.com",
    "database": "postgres",
    "api": "rest",
    "broker": "rabbitmq",
    "compliance_logging": True,
}


def test_valid_answers_have_no_problems() -> None:
    assert pre_gen.problems(VALID) == []


@pytest.mark.parametrize(
    "slug",
    ["orders", "orders-service", "svc2", "a1-b2-c3", "x" * 63],
)
def test_good_slugs(slug: str) -> None:
    assert pre_gen.problems({**VALID, "project_slug": slug}) == []


@pytest.mark.parametrize(
    "slug",
    [
        "",
        "Orders",
        "orders service",
        "orders_service",
        "orders/service",
        "..",
        "../orders",
        "orders;rm -rf ~",
        "$(id)",
        "órders",
        "-orders",
        "orders-",
        "orders--service",
        "x" * 64,
    ],
)
def test_bad_slugs(slug: str) -> None:
    (problem,) = pre_gen.problems({**VALID, "project_slug": slug})
    assert problem.startswith(f"project_slug {slug!r} is invalid")


@pytest.mark.parametrize(
    "email", ["", "jane", "jane@", "@example.com", "jane@example", "ja ne@example.com", "a@b@c.de"]
)
def test_bad_emails(email: str) -> None:
    (problem,) = pre_gen.problems({**VALID, "author_email": email})
    assert problem == f"author_email {email!r} is not an email address (name@example.com)."


def test_every_problem_is_reported_at_once() -> None:
    answers = {**VALID, "project_slug": "Bad Slug", "author_email": "nope", "database": "mysql"}
    assert len(pre_gen.problems(answers)) == 3


def test_problems_exit_non_zero_with_one_sentence_each(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        pre_gen.fail_on_problems({**VALID, "project_slug": "Bad Slug"})
    # A numeric status (pytest-cookies reports it as the exit code), the sentence as the
    # exception's text and on stderr.
    assert exited.value.code == 1
    message = str(exited.value)
    assert message.startswith("error: project_slug 'Bad Slug' is invalid")
    assert message.count("\n") == 0
    assert capsys.readouterr().err.strip() == message


def test_the_rerun_command_corrects_what_it_can_and_keeps_the_rest() -> None:
    argv = ["/usr/bin/cookiecutter", "gh:org/repo", "-o", "out", "--no-input", "author_name=Kim"]
    answers = {
        **VALID,
        "project_slug": "Billing_API",
        "author_name": "Kim",
        "description": 'It\'s "quoted"',
        "_template": "x",
    }
    command = pre_gen.rerun_command(answers, ["project_slug"], argv=argv)
    args = shlex.split(command)
    assert args[:5] == ["cookiecutter", "gh:org/repo", "-o", "out", "--no-input"]
    pairs = dict(arg.split("=", 1) for arg in args[5:])
    assert pairs["project_slug"] == "billing-api"
    assert pairs["description"] == 'It\'s "quoted"'
    assert pairs["compliance_logging"] == "yes"
    assert "_template" not in pairs
    # No valid email follows from a bad one: it is left out and asked again, so the
    # command prompts (every other answer as the default) instead of --no-input.
    bad_email = {**answers, "author_email": "nope"}
    args = shlex.split(pre_gen.rerun_command(bad_email, ["author_email"], argv=argv))
    assert "--no-input" not in args
    assert not [arg for arg in args if arg.startswith("author_email=")]
    assert "author_name=Kim" in args


def test_called_as_a_library_the_command_names_the_template_dir() -> None:
    command = pre_gen.rerun_command({"project_slug": "x y"}, ["project_slug"], argv=["pytest"])
    assert shlex.split(command) == ["cookiecutter", str(TEMPLATE), "project_slug=x-y"]


@pytest.mark.parametrize("combination", ALL, ids=lambda c: c.id)
def test_prune_table_removes_exactly_the_unchosen_variants(combination: Combination) -> None:
    pruned = set(post_gen.paths_to_prune(combination.answers()))
    for (option, value), paths in post_gen.PRUNE.items():
        assert (set(paths) <= pruned) is combination.chosen(option, value)


def test_prune_table_names_real_template_paths() -> None:
    project = TEMPLATE / "{{cookiecutter.project_slug}}"
    for paths in post_gen.PRUNE.values():
        for path in paths:
            assert (project / path).exists(), path


def test_prune_removes_files_and_folders(tmp_path: Path) -> None:
    (tmp_path / "app/storage/mongodb").mkdir(parents=True)
    (tmp_path / "app/storage/mongodb/database.py").write_text("")
    (tmp_path / "app/storage/postgres").mkdir(parents=True)
    post_gen.prune(tmp_path, {**VALID, "database": "postgres"})
    assert not (tmp_path / "app/storage/mongodb").exists()
    assert (tmp_path / "app/storage/postgres").is_dir()


def test_fresh_secrets_replace_only_placeholders() -> None:
    example = "A_SECRET_KEY=change-me\nB_SECRET_KEY=change-me\nURL=redis://x\n# C=change-me\n"
    lines = post_gen.with_fresh_secrets(example).splitlines()
    a, b = (line.split("=", 1)[1] for line in lines[:2])
    assert len(a) >= 48
    assert len(b) >= 48
    assert a != b
    assert lines[2:] == ["URL=redis://x", "# C=change-me"]
    assert post_gen.with_fresh_secrets(example) != post_gen.with_fresh_secrets(example)


def test_env_file_is_private(tmp_path: Path) -> None:
    (tmp_path / ".env.example").write_text("AUTH_SECRET_KEY=change-me\n")
    post_gen.write_env(tmp_path)
    env = tmp_path / ".env"
    assert "change-me" not in env.read_text()
    assert env.stat().st_mode & 0o077 == 0
