"""Liveness and readiness, for orchestrators and load balancers."""

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

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
router = APIRouter(prefix="/health", tags=["health"])
TAGS = {"health": "Liveness and readiness, for orchestrators and load balancers."}
log = structlog.get_logger(__name__)


@router.get("/live")
async def live() -> dict[str, str]:
    """The process is up; says nothing about its dependencies."""
    return {"status": "ok"}


async def _check(
    name: str, ping: Callable[[], Awaitable[bool]], breaker: CircuitBreaker
) -> tuple[str, bool]:
    if breaker.rejects():
        # Its breaker is open: down, known without waiting for a timeout.
        return name, False
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
            return name, bool(await ping())
    except Exception as exc:
        log.warning("readiness_check_failed", dependency=name, error=type(exc).__name__)
        return name, False


async def check_dependencies(services: Services) -> dict[str, bool]:
    """Each dependency's readiness, checked concurrently; kept in `health_dependency_up`
    too, so an alert sees readiness without anything probing the endpoint."""
    results = dict(
        await asyncio.gather(
            _check("database", services.database.ping, services.database.breaker),
            _check("redis", services.cache.ping, services.cache.breaker),
            _check("broker", services.bus.ping, services.relay.breaker),
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
