"""Dependencies every API style shares: the services, the caller, the API-wide rate limit."""

import contextlib
import ipaddress
from typing import Annotated, cast

import structlog
from fastapi import Depends, Request, Response

from app.auth.tokens import Principal, SessionEndedError
from app.core.context import set_actor
from app.core.errors import REDIS_DOWN, UnauthorizedError, with_event
from app.events.schemas import TokenRejected
from app.services import Services

log = structlog.get_logger(__name__)


async def get_services(request: Request) -> Services:
    # Async on purpose: FastAPI runs a plain `def` dependency in its thread pool, a thread
    # hop on every request for what is an attribute lookup.
    return cast(Services, request.app.state.services)


ServicesDep = Annotated[Services, Depends(get_services)]


def bearer_token(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


# Per-address limits count an IPv6 client by its network of this size: what one
# subscriber is usually given, and can change addresses within at will.
IPV6_CLIENT_PREFIX = 64


def client_ip(request: Request) -> str:
    """The client as the per-address limits count it (and idempotency keys are scoped)."""
    return address_key(request.client.host if request.client else None)


def address_key(host: str | None) -> str:
    """One client, however its address is written: an IPv4 address as itself (also when
    mapped into IPv6), an IPv6 address by its /64 network, anything else as given."""
    if not host:
        return "unknown"
    try:
        # Without its zone (`%...`), which names the client's interface, not the client.
        address = ipaddress.ip_address(host.partition("%")[0])
    except ValueError:
        return host[:100]  # not an address: a Unix socket's peer, say
    if isinstance(address, ipaddress.IPv4Address):
        return str(address)
    if address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(ipaddress.IPv6Network((address, IPV6_CLIENT_PREFIX), strict=False))


async def authenticate(request: Request, services: Services) -> Principal:
    """The caller, established once per request: the rate limit may have done it already."""
    principal: Principal | None = getattr(request.state, "principal", None)
    if principal is not None:
        return principal
    token = bearer_token(request)
    if token is None:
        required = UnauthorizedError("Authentication required.")
        if "authorization" in request.headers:
            # Credentials of another kind (Basic, ...): refused, and recorded as a token is.
            raise with_event(required, TokenRejected(user_id=None))
        raise required
    try:
        principal = await services.tokens.authenticate(token)
    except UnauthorizedError as exc:
        # A valid token of an ended session (a logout, a password or role change, an
        # erasure) names the account it was replayed against; a bad one names none.
        user_id = exc.user_id if isinstance(exc, SessionEndedError) else None
        raise with_event(exc, TokenRejected(user_id=user_id)) from None
    return _authenticated(request, principal)


async def limit_password_work(request: Request, services: Services, operation: str) -> None:
    """The per-address limit of an operation that hashes or verifies a password, counted
    once per operation (each alias in one query document counts), before any hashing."""
    limits = services.settings.rate_limit
    limit = (
        limits.register_per_ip_per_minute
        if operation == "register"
        else limits.password_per_ip_per_minute
    )
    try:
        hit = await services.limiter.hit(f"{operation}-ip:{client_ip(request)}", limit=limit)
    except REDIS_DOWN:
        if not services.cache.fail_open:
            raise
        # The hasher's bounded concurrency still caps what a burst can cost.
        log.warning("rate_limit_skipped", reason="redis unavailable", operation=operation)
        return
    hit.enforce()


def _authenticated(request: Request, principal: Principal) -> Principal:
    set_actor(str(principal.user_id))
    request.state.principal = principal
    return principal


async def rate_limit_api(request: Request, response: Response, services: ServicesDep) -> None:
    """Per user when the request carries a valid token of a live session, otherwise per
    client IP. The session is checked in the same Redis call, and the caller kept for the
    route; an invalid token counts as anonymous here, and the route itself refuses it."""
    token = bearer_token(request)
    principal = None
    if token is not None:
        with contextlib.suppress(UnauthorizedError):
            principal = services.tokens.verify(token)
    anonymous = f"api:ip:{client_ip(request)}"
    try:
        if principal is None:
            live, limit = False, await services.limiter.hit(anonymous, limit=_api_limit(services))
        else:
            live, limit = await services.limiter.hit_for_session(
                services.tokens.session_key(principal),
                user=f"api:user:{principal.user_id}",
                anonymous=anonymous,
                limit=_api_limit(services),
            )
    except REDIS_DOWN:
        if not services.cache.fail_open:
            raise
        log.warning("rate_limit_skipped", reason="redis unavailable")
        return
    if principal is not None and live:
        _authenticated(request, principal)
    response.headers.update(limit.headers())
    limit.enforce()


def _api_limit(services: Services) -> int:
    return services.settings.rate_limit.api_per_minute
