"""Where a uvicorn worker spends its time under load: py-spy samples, summed by layer.

`py-spy record --format raw` writes one line per distinct stack with its sample count.
Only the event loop's thread counts (idle thread-pool workers would dilute it); each
layer's share is inclusive (a sample counts for every layer on its stack).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

# (label, a substring of a frame "function (file)") - inclusive shares, in print order.
LAYERS: list[tuple[str, str]] = [
    ("FastAPI dependency solving (all dependencies)", "solve_dependencies (fastapi/"),
    ("  API rate limit dependency", "rate_limit_api (app/"),
    ("    rate limiter Redis script", "RateLimiter.hit (app/"),
    ("  JWT decode (all calls)", "PyJWT.decode (jwt/"),
    ("  session check (Tokens.authenticate)", "Tokens.authenticate (app/"),
    ("  sync dependencies run in the thread pool", "run_in_threadpool (starlette/"),
    ("endpoint / resolver code", "run_endpoint_function (fastapi/"),
    ("GraphQL execution (strawberry + graphql-core)", "(graphql/execution/"),
    ("SQLAlchemy", "(sqlalchemy/"),
    ("asyncpg", "(asyncpg/"),
    ("PyMongo", "(pymongo/"),
    ("redis-py (every command)", "(redis/"),
    ("pydantic validation / serialisation", "(pydantic/"),
    ("FastAPI response serialisation", "serialize_response (fastapi/"),
    ("access log + structlog", "(structlog/"),
    ("prometheus metrics", "(prometheus_client/"),
    ("event publishing (FastStream)", "(faststream/"),
]
_FRAME = re.compile(r"(.*) \((.*?)(?::\d+)?\)$")


def py_spy() -> str | None:
    local = Path(sys.executable).with_name("py-spy")
    return str(local) if local.exists() else shutil.which("py-spy")


def _frame(raw: str) -> str:
    match = _FRAME.match(raw)
    if not match:
        return raw
    function, path = match.groups()
    path = re.sub(r".*site-packages/", "", path)
    path = re.sub(r".*/(app/)", r"\1", path)
    return f"{function} ({path})"


def summarise(raw_file: Path) -> list[tuple[float, str]]:
    """Inclusive share of each layer, then the top functions by own time."""
    layers: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in raw_file.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        frames = [_frame(f) for f in stack.split(";")]
        if any("Thread._bootstrap" in f for f in frames):
            continue  # not the event loop's thread
        samples = int(count)
        total += samples
        own[frames[-1]] += samples
        for label, needle in LAYERS:
            if any(needle in f for f in frames):
                layers[label] += samples
    if not total:
        return []
    rows = [(100 * layers[label] / total, label) for label, _ in LAYERS if layers[label]]
    rows += [(100 * n / total, f"own time: {name}") for name, n in own.most_common(8)]
    return rows


class Recorder:
    """py-spy sampling a process for a while, in the background; `top()` waits and sums."""

    def __init__(self, pid: int, *, seconds: float, label: str = "profile") -> None:
        self.label = label
        self.out = Path(tempfile.mkstemp(suffix=".txt", prefix="py-spy-")[1])
        binary = py_spy()
        self.popen = (
            subprocess.Popen(
                [
                    binary,
                    "record",
                    "-p",
                    str(pid),
                    "-d",
                    str(int(seconds)),
                    "-r",
                    "200",
                    "-f",
                    "raw",
                    "-o",
                    str(self.out),
                    "--nonblocking",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            if binary
            else None
        )

    def top(self) -> list[tuple[float, str]]:
        if self.popen is None:
            return [(0.0, "py-spy not installed (uv sync --group bench)")]
        self.popen.wait(120)
        rows = summarise(self.out)
        keep = os.environ.get("BENCH_PROFILE_DIR")  # the raw stacks, for a flame graph
        if keep:
            shutil.move(self.out, Path(keep) / f"{self.label}.txt")
        else:
            self.out.unlink(missing_ok=True)
        return rows
