"""Dependencies every API style shares: the services, the caller, the API-wide rate limit."""

import contextlib
from typing import Annotated, cast

from fastapi import Depends, Request, Response

from app.auth.tokens import Principal
from app.core.context import set_actor
from app.core.errors import UnauthorizedError
from app.services import Services


async def get_services(request: Request) -> Services:
    # Async on purpose: FastAPI runs a plain `def` dependency in its thread pool, a thread
    # hop on every request for what is an attribute lookup.
    return cast(Services, request.app.state.services)


ServicesDep = Annotated[Services, Depends(get_services)]


def bearer_token(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def authenticate(request: Request, services: Services) -> Principal:
    """The caller, established once per request: the rate limit may have done it already."""
    principal: Principal | None = getattr(request.state, "principal", None)
    if principal is not None:
        return principal
    token = bearer_token(request)
    if token is None:
        raise UnauthorizedError("Authentication required.")
    principal = await services.tokens.authenticate(token)
    set_actor(str(principal.user_id))
    request.state.principal = principal
    return principal


async def rate_limit_api(request: Request, response: Response, services: ServicesDep) -> None:
    """Per user when the request carries a valid token, otherwise per client IP."""
    identity = f"ip:{client_ip(request)}"
    if bearer_token(request) is not None:
        # An invalid token counts as anonymous here; the route itself refuses it. A valid one
        # is kept for the route, so the token is decoded and its session checked only once.
        with contextlib.suppress(UnauthorizedError):
            identity = f"user:{(await authenticate(request, services)).user_id}"
    limit = await services.limiter.hit(
        f"api:{identity}", limit=services.settings.rate_limit.api_per_minute
    )
    response.headers.update(limit.headers())
    limit.enforce()
