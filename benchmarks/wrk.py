"""Load with wrk (Debian's `wrk`): one scenario at one concurrency, figures from its Lua `done`.

Every request a scenario sends is built by a Lua `request` function, so POST bodies,
headers and rotating ids need no wrk patching. Traffic goes to loopback only, for a
fixed duration, and creates stop after a fixed count (the database stays bounded).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

# Creates per run at most: at a few thousand a second this is never the bound that bites
# on this machine, but it keeps a faster one from filling the database.
MAX_CREATES = 100_000

_LUA = r"""
local method, path, headers = %(method)s, %(path)s, %(headers)s
local bodies, paths, tag = %(bodies)s, %(paths)s, %(tag)s
local max_creates = %(max_creates)d
local counter = 0
local thread_id = 0
local threads = {}
local next_id = 0

function setup(thread)
  next_id = next_id + 1
  thread:set("thread_id", next_id)
  table.insert(threads, thread)
end

function init(args)
  thread_id = wrk.thread:get("thread_id") or 0
end

function request()
  counter = counter + 1
  local p = path
  if #paths > 0 then p = paths[(counter %% #paths) + 1] end
  local body = nil
  if #bodies > 0 then
    body = string.gsub(bodies[(counter %% #bodies) + 1], "@N@", tag .. thread_id .. "-" .. counter)
  end
  return wrk.format(method, p, headers, body)
end

if method == "POST" and #paths == 0 and string.find(bodies[1] or "", "@N@") then
  function response(status, hdrs, body)
    if counter >= max_creates then wrk.thread:stop() end
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK-JSON {"requests": %%d, "duration_us": %%d, "connect": %%d, "read": %%d, ' ..
    '"write": %%d, "status": %%d, "timeout": %%d, "p50_us": %%d, "p99_us": %%d, ' ..
    '"mean_us": %%.1f}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.mean))
end
"""


@dataclasses.dataclass(frozen=True)
class Scenario:
    """What one request looks like. `@N@` in a body becomes a unique token per request."""

    method: str
    path: str
    headers: dict[str, str]
    bodies: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()  # rotated through when given


@dataclasses.dataclass(frozen=True)
class Result:
    requests: int
    seconds: float
    errors: int  # socket errors, timeouts and non-2xx/3xx answers
    p50_ms: float
    p99_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def _lua_string(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid Lua string literal for these inputs


def _lua_list(values: tuple[str, ...]) -> str:
    return "{" + ", ".join(_lua_string(v) for v in values) + "}"


def _lua_table(values: dict[str, str]) -> str:
    return (
        "{" + ", ".join(f"[{_lua_string(k)}] = {_lua_string(v)}" for k, v in values.items()) + "}"
    )


def ensure_wrk() -> str:
    """The wrk binary; installed from Debian's packages when missing and running as root."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0:
        raise SystemExit("wrk not found: apt-get install -y wrk (as root), then run again")
    print("installing wrk: apt-get install -y wrk", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (["apt-get", "install", "-y", "wrk"], ["apt-get", "update"]):
        if shutil.which("wrk"):
            break
        subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, check=False)
    else:
        subprocess.run(
            ["apt-get", "install", "-y", "wrk"], env=env, stdout=subprocess.DEVNULL, check=False
        )
    found = shutil.which("wrk")
    if not found:
        raise SystemExit("could not install wrk: apt-get install -y wrk")
    return found


def run(
    wrk: str,
    base_url: str,
    scenario: Scenario,
    *,
    connections: int,
    seconds: float,
    tag: str,
) -> Result:
    script = _LUA % {
        "method": _lua_string(scenario.method),
        "path": _lua_string(scenario.path),
        "headers": _lua_table(scenario.headers),
        "bodies": _lua_list(scenario.bodies),
        "paths": _lua_list(scenario.paths),
        "tag": _lua_string(tag),
        "max_creates": MAX_CREATES,
    }
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script)
    try:
        # One wrk thread: wrk shares the two cores with the server, the database and Redis,
        # and one thread drives far more than one uvicorn worker serves.
        argv = [wrk, "-t1", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "10s"]
        output = subprocess.run(
            [*argv, "-s", handle.name, base_url + scenario.path],
            capture_output=True,
            text=True,
            timeout=seconds + 60,
            check=True,
        ).stdout
    finally:
        Path(handle.name).unlink()
    line = next((x for x in output.splitlines() if x.startswith("WRK-JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no summary:\n{output}")
    data = json.loads(line.removeprefix("WRK-JSON "))
    errors = sum(data[k] for k in ("connect", "read", "write", "status", "timeout"))
    return Result(
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        errors=errors,
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
    )
