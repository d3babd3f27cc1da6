"""The rendered projects' pins: exact, in one place, and the bump script that moves them.

The script's parts that need no network are tested here; its resolution is `uv lock`
itself, run by the weekly workflow (.github/workflows/bump-pins.yml). That a render
installs exactly these versions is checked per combination in test_matrix.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from scripts.bump_pins import (
    PYPROJECT,
    changes,
    cutoff,
    locked_versions,
    loosened,
    merged,
    pins,
    repinned,
)

SAMPLE = """\
[project]
dependencies = [
    "fastapi==0.100.0",
    "uvicorn[standard]==0.30.1",
{%- if cookiecutter.database == "postgres" %}
    "sqlalchemy[asyncio]==2.0.1",
{%- else %}
    "pymongo==4.10.0",
{%- endif %}
]

[dependency-groups]
dev = [
    # A comment stays.
    "pytest==8.3.0",
]

[tool.pytest.ini_options]
markers = [
    "fuzz: not a requirement",
]
"""


def test_every_direct_dependency_of_every_render_is_pinned_exactly() -> None:
    found = pins(PYPROJECT.read_text())
    assert len(found) >= 25, found  # every branch of the Jinja: both databases, APIs, brokers
    assert {"fastapi", "sqlalchemy", "pymongo", "strawberry-graphql", "faststream"} <= set(found)
    loose = sorted(name for name, version in found.items() if version is None)
    assert not loose, f"not pinned with ==: {loose}"


def test_pins_reads_only_the_requirement_lists() -> None:
    assert pins(SAMPLE) == {
        "fastapi": "0.100.0",
        "uvicorn": "0.30.1",
        "sqlalchemy": "2.0.1",
        "pymongo": "4.10.0",
        "pytest": "8.3.0",
    }


def test_one_package_pinned_differently_in_two_branches_is_refused() -> None:
    text = SAMPLE.replace('"pymongo==4.10.0"', '"fastapi==0.99.0"')
    with pytest.raises(ValueError, match="fastapi is pinned twice"):
        pins(text)


def test_loosened_pins_become_lower_bounds_and_nothing_else_changes() -> None:
    loose = loosened(SAMPLE)
    assert '"uvicorn[standard]>=0.30.1",' in loose
    assert set(pins(loose).values()) == {None}
    assert loose.replace(">=", "==") == SAMPLE


def test_repinned_writes_the_new_versions_and_keeps_extras_jinja_and_comments() -> None:
    versions = {
        "fastapi": "0.120.0",
        "uvicorn": "0.40.0",
        "sqlalchemy": "2.1.0",
        "pymongo": "4.20.0",
        "pytest": "9.0.0",
    }
    text = repinned(loosened(SAMPLE), versions)
    assert pins(text) == versions
    assert '    "uvicorn[standard]==0.40.0",\n' in text
    assert '    "sqlalchemy[asyncio]==2.1.0",\n' in text
    assert "{%- else %}" in text
    assert "# A comment stays." in text
    # The template's own file round-trips unchanged with its own versions.
    own = PYPROJECT.read_text()
    current = {name: version for name, version in pins(own).items() if version}
    assert repinned(own, current) == own


def test_repinned_refuses_a_requirement_left_unresolved() -> None:
    with pytest.raises(KeyError, match="pymongo"):
        repinned(SAMPLE, {"fastapi": "1", "uvicorn": "1", "sqlalchemy": "1", "pytest": "1"})


def test_locked_versions_match_names_as_the_index_does() -> None:
    lock = """
version = 1

[[package]]
name = "pydantic-settings"
version = "2.16.3"

[[package]]
name = "typing-extensions"
version = "4.15.0"
"""
    assert locked_versions(lock, ["pydantic-settings"]) == {"pydantic-settings": "2.16.3"}
    with pytest.raises(KeyError, match="fastapi"):
        locked_versions(lock, ["fastapi"])


def test_merged_keeps_the_lowest_version_compared_as_numbers() -> None:
    assert merged([{"a": "0.10.0", "b": "1.0"}, {"a": "0.9.1"}, {"b": "1.2"}]) == {
        "a": "0.9.1",
        "b": "1.0",
    }


def test_the_cooldown_is_a_week_of_releases_left_out() -> None:
    now = datetime(2026, 11, 30, 4, 41, 0, tzinfo=UTC)
    assert cutoff(now, 7) == "2026-11-23T04:41:00Z"
    assert cutoff(now, 0) == "2026-11-30T04:41:00Z"


def test_changes_lists_what_moved() -> None:
    assert changes({"a": "1.0", "b": "2.0", "c": None}, {"a": "1.0", "b": "2.1", "c": "3"}) == [
        "b: 2.0 -> 2.1",
        "c: unpinned -> 3",
    ]
