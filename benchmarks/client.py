"""A tiny blocking HTTP/JSON client for setup work (register, log in, seed, check)."""

from __future__ import annotations

import http.client
import json
import time
from typing import Any
from urllib.parse import urlencode


class HttpError(RuntimeError):
    pass


class Client:
    """Keep-alive connection to one loopback port."""

    def __init__(self, port: int, token: str | None = None) -> None:
        self.port = port
        self.token = token
        self._conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def close(self) -> None:
        self._conn.close()

    def headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return {**headers, **(extra or {})}

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: object = None,
        form: dict[str, str] | None = None,
        expect: tuple[int, ...] = (200, 201),
    ) -> Any:
        body: str | None = None
        extra: dict[str, str] = {}
        if json_body is not None:
            body, extra = json.dumps(json_body), {"Content-Type": "application/json"}
        elif form is not None:
            body, extra = urlencode(form), {"Content-Type": "application/x-www-form-urlencoded"}
        try:
            self._conn.request(method, path, body=body, headers=self.headers(extra))
            response = self._conn.getresponse()
            raw = response.read()
        except (OSError, http.client.HTTPException):
            self._conn.close()  # reconnect once: the server may have closed an idle connection
            self._conn.request(method, path, body=body, headers=self.headers(extra))
            response = self._conn.getresponse()
            raw = response.read()
        if response.status not in expect:
            raise HttpError(f"{method} {path}: {response.status} {raw[:500]!r}")
        return json.loads(raw) if raw else None

    def graphql(self, query: str, **variables: object) -> Any:
        reply = self.request("POST", "/graphql", json_body={"query": query, "variables": variables})
        if reply.get("errors"):
            raise HttpError(f"GraphQL errors: {reply['errors']}")
        return reply["data"]


def wait_ready(port: int, *, timeout: float, alive: Any = None) -> float:
    """Poll /health/ready until it answers 200; return when (monotonic) it did."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if alive is not None and not alive():
            raise RuntimeError("the server exited before it was ready")
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        try:
            conn.request("GET", "/health/ready")
            if conn.getresponse().status == 200:
                return time.monotonic()
        except (OSError, http.client.HTTPException):
            pass
        finally:
            conn.close()
        time.sleep(0.01)
    raise RuntimeError(f"not ready on port {port} after {timeout:.0f} s")
