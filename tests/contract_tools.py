"""The npm tools users point at published contracts, installed once into a cache dir.

`.ci/run` installs Debian's nodejs and npm; given npm, the first test that needs a tool
installs these exact versions (a few hundred MB, once per machine). Without npm, the
test fails naming what to install: never a skip.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from pathlib import Path

import pytest

PACKAGES = {
    "redocly": "@redocly/cli@2.77.0",
    "spectral": "@stoplight/spectral-cli@6.16.3",
    # 4.1 is the newest whose dependencies accept Debian 12's Node.js 18-20.
    "asyncapi": "@asyncapi/cli@4.1.1",
    # A library, not a command: GraphQL over HTTP's own conformance audit, and the
    # graphql it builds on.
    "graphql-http": "graphql-http@1.23.1",
    "graphql": "graphql@16.15.0",
}
LIBRARIES = {"graphql-http", "graphql"}
NPM_DIR = Path(os.environ.get("TEMPLATE_NPM_DIR", Path.home() / ".cache" / "template-npm"))


def npm_tool(name: str) -> str:
    """The path of a tool's executable, installing every tool first if one is missing."""
    binary = NPM_DIR / "node_modules" / ".bin" / name
    if not binary.exists():
        _install(binary, PACKAGES[name])
    return str(binary)


def npm_modules(*names: str) -> str:
    """The `node_modules` directory holding these libraries (for NODE_PATH), installing
    every tool first if one is missing."""
    for name in names:
        marker = NPM_DIR / "node_modules" / name / "package.json"
        if not marker.exists():
            _install(marker, PACKAGES[name])
    return str(NPM_DIR / "node_modules")


def _install(marker: Path, package: str) -> None:
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        pytest.fail(
            f"{package} needs Node.js and npm: apt-get install -y nodejs npm "
            "(.ci/run installs them)",
            pytrace=False,
        )
    NPM_DIR.mkdir(parents=True, exist_ok=True)
    # xdist workers share the cache dir: one installs, the others wait for it.
    with (NPM_DIR / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.exists():
            return
        install = [npm, "install", "--no-audit", "--no-fund", "--prefix", str(NPM_DIR)]
        result = subprocess.run(
            [*install, *PACKAGES.values()],
            capture_output=True,
            text=True,
            timeout=1200,
            check=False,
        )
        if result.returncode != 0 or not marker.exists():
            pytest.fail(f"npm install of {package} failed:\n{result.stderr[-3000:]}")


if __name__ == "__main__":
    # `.ci/run` installs the tools before the suite, so a failure shows there.
    for name in PACKAGES:
        print(npm_modules(name) if name in LIBRARIES else npm_tool(name))
