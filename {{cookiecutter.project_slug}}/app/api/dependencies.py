"""Dependencies every API style shares: the services, the caller, the API-wide rate limit."""

import contextlib
from typing import Annotated, cast

from fastapi import Depends, Request, Response

from app.auth.tokens import Principal
from app.core.context import set_actor
from app.core.errors import UnauthorizedError
from app.services import Services


def get_services(request: Request) -> Services:
    return cast(Services, request.app.state.services)


ServicesDep = Annotated[Services, Depends(get_services)]


def bearer_token(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def authenticate(request: Request, services: Services) -> Principal:
    token = bearer_token(request)
    if token is None:
        raise UnauthorizedError("Authentication required.")
    principal = await services.tokens.authenticate(token)
    set_actor(str(principal.user_id))
    return principal


async def rate_limit_api(request: Request, response: Response, services: ServicesDep) -> None:
    """Per user when the request carries a valid token, otherwise per client IP."""
    identity = f"ip:{client_ip(request)}"
    token = bearer_token(request)
    if token is not None:
        # An invalid token counts as anonymous here; the route itself refuses it.
        with contextlib.suppress(UnauthorizedError):
            identity = f"user:{services.tokens.decode(token, kind='access')['sub']}"
    limit = await services.limiter.hit(
        f"api:{identity}", limit=services.settings.rate_limit.api_per_minute
    )
    response.headers.update(limit.headers())
    limit.enforce()
