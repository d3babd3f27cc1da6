"""Move the rendered projects' dependency pins to the newest releases that are a week old.

The pins live in one place: the requirement lists of `{{cookiecutter.project_slug}}/pyproject.toml`
(exact `name==version` for every direct dependency, in every Jinja branch). This script renders
each distinct dependency set of the option matrix, lets uv resolve it afresh with the pins
loosened to lower bounds (`uv lock --upgrade --exclude-newer <a week ago>`), reads the versions
chosen from the uv.lock, and writes them back as the new pins. The matrix then tests them (the
weekly workflow `.github/workflows/bump-pins.yml` does both and opens a pull request).

    uv run python -m scripts.bump_pins                  # rewrite the pins, print what moved
    uv run python -m scripts.bump_pins --cooldown-days 0 --check   # exit 1 if a pin is stale

Rendering needs no network; the resolution asks the package index, as `uv lock` does.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parent.parent
PYPROJECT = TEMPLATE / "{{cookiecutter.project_slug}}" / "pyproject.toml"
COOLDOWN_DAYS = 7

# One requirement on its own line of a requirement list: `"name[extras]==1.2.3",`.
REQUIREMENT = re.compile(
    r'^(?P<indent>\s*)"(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(?P<extras>\[[^\]]+\])?'
    r'(?:(?P<op>==|>=)(?P<version>[^",;\s]+))?"'
)
# The lists that hold requirements: [project] dependencies and the [dependency-groups].
LIST_START = re.compile(r"^(dependencies|dev)\s*=\s*\[\s*$")


def normalize(name: str) -> str:
    """PEP 503: the name as indexes and lock files compare it."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_lines(text: str) -> Iterable[tuple[int, re.Match[str]]]:
    """(line number, match) of every requirement in the requirement lists, Jinja included."""
    inside = False
    for number, line in enumerate(text.splitlines()):
        if LIST_START.match(line):
            inside = True
        elif inside and line.strip() == "]":
            inside = False
        elif inside and (match := REQUIREMENT.match(line)):
            yield number, match


def pins(text: str) -> dict[str, str | None]:
    """Normalised name -> pinned version (None where the line is not an exact pin)."""
    found: dict[str, str | None] = {}
    for _, match in requirement_lines(text):
        version = match["version"] if match["op"] == "==" else None
        name = normalize(match["name"])
        if name in found and found[name] != version:
            raise ValueError(f"{match['name']} is pinned twice, differently")
        found[name] = version
    return found


def _rewrite(text: str, replace: Mapping[int, str]) -> str:
    lines = text.splitlines(keepends=True)
    for number, line in replace.items():
        lines[number] = line + ("\n" if lines[number].endswith("\n") else "")
    return "".join(lines)


def loosened(text: str) -> str:
    """Every pin as a lower bound: uv may move up from the tested versions, never down."""
    replace = {}
    for number, match in requirement_lines(text):
        if match["op"] == "==":
            line = text.splitlines()[number]
            replace[number] = line.replace(f"=={match['version']}", f">={match['version']}", 1)
    return _rewrite(text, replace)


def repinned(text: str, versions: Mapping[str, str]) -> str:
    """The text with each requirement pinned exactly to its version in `versions`."""
    replace = {}
    lines = text.splitlines()
    for number, match in requirement_lines(text):
        name = normalize(match["name"])
        if name not in versions:
            raise KeyError(f"no resolved version for {match['name']}")
        spec = f"{match['name']}{match['extras'] or ''}=={versions[name]}"
        line = lines[number]
        replace[number] = line[: match.start("name")] + spec + line[match.end() - 1 :]
    return _rewrite(text, replace)


def locked_versions(lock: str, names: Iterable[str]) -> dict[str, str]:
    """The versions a uv.lock chose for the given (normalised) names."""
    packages = {normalize(p["name"]): p["version"] for p in tomllib.loads(lock)["package"]}
    wanted = set(names)
    missing = wanted - packages.keys()
    if missing:
        raise KeyError(f"not in the lock: {sorted(missing)}")
    return {name: packages[name] for name in wanted}


def _version_key(version: str) -> tuple[tuple[int, str], ...]:
    return tuple((int(p), "") if p.isdigit() else (-1, p) for p in re.split(r"[.+-]", version))


def merged(resolutions: Iterable[Mapping[str, str]]) -> dict[str, str]:
    """One version per package across the renders: where they differ, the lowest, which
    the most constrained render chose (the matrix then tests it in every render)."""
    result: dict[str, str] = {}
    for resolution in resolutions:
        for name, version in resolution.items():
            if name not in result or _version_key(version) < _version_key(result[name]):
                result[name] = version
    return result


def cutoff(now: datetime, days: int) -> str:
    """uv's --exclude-newer value: only releases at least `days` old are considered."""
    return (now - timedelta(days=days)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def changes(old: Mapping[str, str | None], new: Mapping[str, str]) -> list[str]:
    return [
        f"{name}: {old.get(name) or 'unpinned'} -> {version}"
        for name, version in sorted(new.items())
        if old.get(name) != version
    ]


def _run(args: list[str], cwd: Path) -> None:
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed in {cwd}:\n{result.stdout}{result.stderr}")


def resolve_renders(exclude_newer: str, workdir: Path) -> list[dict[str, str]]:
    """Render each distinct dependency set of the matrix and resolve it with the pins loosened."""
    from cookiecutter.main import cookiecutter

    from tests.combinations import ALL

    seen: set[str] = set()
    resolutions = []
    for combination in ALL:
        out = workdir / combination.id
        project = Path(
            cookiecutter(
                str(TEMPLATE),
                no_input=True,
                output_dir=str(out),
                extra_context=combination.answers(),
            )
        )
        pyproject = project / "pyproject.toml"
        requirements = "\n".join(m.group(0) for _, m in requirement_lines(pyproject.read_text()))
        if requirements in seen:
            continue
        seen.add(requirements)
        pyproject.write_text(loosened(pyproject.read_text()))
        _run(["uv", "lock", "--upgrade", "--exclude-newer", exclude_newer], cwd=project)
        names = pins(pyproject.read_text()).keys()
        resolutions.append(locked_versions((project / "uv.lock").read_text(), names))
        print(f"resolved {combination.id}'s dependency set", file=sys.stderr)
    return resolutions


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cooldown-days", type=int, default=COOLDOWN_DAYS)
    parser.add_argument(
        "--check", action="store_true", help="change nothing; exit 1 if a pin would move"
    )
    args = parser.parse_args(argv)
    exclude_newer = cutoff(datetime.now(UTC), args.cooldown_days)
    text = PYPROJECT.read_text()
    old = pins(text)
    with tempfile.TemporaryDirectory(prefix="bump-pins-") as workdir:
        versions = merged(resolve_renders(exclude_newer, Path(workdir)))
    moved = changes(old, versions)
    print(f"releases up to {exclude_newer}:", *(moved or ["every pin is current"]), sep="\n  ")
    if args.check:
        return 1 if moved else 0
    PYPROJECT.write_text(repinned(text, versions))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
