"""Liveness and readiness, for orchestrators and load balancers."""

import asyncio
import time
import weakref
from typing import Any, Protocol

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from app.api.dependencies import ServicesDep
from app.api.responses import problem_response
from app.core.breakers import CircuitBreaker
from app.core.metrics import DEPENDENCY_UP
from app.core.problems import problem
from app.services import Services

CHECK_TIMEOUT_SECONDS = 2.0
# Each dependency is pinged at most this often, however often readiness is asked: the
# endpoint needs no credentials, so a flood of probes must not become a flood of pings.
# Callers in between share the last ping's result, or wait for the ping under way.
PING_INTERVAL_SECONDS = 1.0
router = APIRouter(prefix="/health", tags=["health"])
TAGS = {"health": "Liveness and readiness, for orchestrators and load balancers."}
log = structlog.get_logger(__name__)


@router.get("/live")
async def live() -> dict[str, str]:
    """The process is up; says nothing about its dependencies."""
    return {"status": "ok"}


class Pingable(Protocol):
    async def ping(self) -> bool: ...


class _SharedPing:
    """One dependency's ping, started at most once per PING_INTERVAL_SECONDS and never
    twice at once; the callers in between get its result."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.started = 0.0
        self.task: asyncio.Task[bool] | None = None

    async def result(self, dependency: Pingable) -> bool:
        now = time.monotonic()
        if self.task is None or (self.task.done() and now - self.started >= PING_INTERVAL_SECONDS):
            self.started = now
            self.task = asyncio.create_task(self._ping(dependency))
        # Shielded: a caller that goes away does not cancel the ping the others await.
        return await asyncio.shield(self.task)

    async def _ping(self, dependency: Pingable) -> bool:
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
                return bool(await dependency.ping())
        except Exception as exc:
            log.warning("readiness_check_failed", dependency=self.name, error=type(exc).__name__)
            return False


# Per dependency object, so one built anew (other settings, a restart) is pinged at once.
_pings: weakref.WeakKeyDictionary[Pingable, _SharedPing] = weakref.WeakKeyDictionary()


async def _check(name: str, dependency: Pingable, breaker: CircuitBreaker) -> tuple[str, bool]:
    if breaker.rejects():
        # Its breaker is open: down, known without waiting for a timeout, whatever the
        # last ping said.
        return name, False
    shared = _pings.setdefault(dependency, _SharedPing(name))
    return name, await shared.result(dependency)


async def check_dependencies(services: Services) -> dict[str, bool]:
    """Each dependency's readiness, checked concurrently (each pinged at most once per
    PING_INTERVAL_SECONDS); kept in `health_dependency_up` too, so an alert sees
    readiness without anything probing the endpoint."""
    results = dict(
        await asyncio.gather(
            _check("database", services.database, services.database.breaker),
            _check("redis", services.cache, services.cache.breaker),
            _check("broker", services.bus, services.relay.breaker),
        )
    )
    for name, healthy in results.items():
        DEPENDENCY_UP.labels(name).set(1 if healthy else 0)
    return results


@router.get("/ready", responses={503: problem_response("A dependency is unreachable", status=503)})
async def ready(request: Request, services: ServicesDep) -> Any:
    """Every dependency answers; checked concurrently, each within a timeout. 503 from
    the first SIGTERM on, while the instance drains (app/core/drain.py)."""
    if request.app.state.drain.draining:
        return problem(503, "Service Unavailable", "Not ready: shutting down.")
    results = await check_dependencies(services)
    checks = {name: "ok" if healthy else "unavailable" for name, healthy in results.items()}
    failing = [name for name, healthy in results.items() if not healthy]
    if failing:
        detail = f"Not ready: {', '.join(failing)}."
        return problem(503, "Service Unavailable", detail, checks=checks)
    return JSONResponse({"status": "ok", "checks": checks})
