from typing import Annotated

from fastapi import APIRouter, Form, Request, status

from app.api.dependencies import ServicesDep, client_ip, limit_password_work
from app.api.responses import problems
from app.api.rest.dependencies import CurrentPrincipal
from app.api.rest.routing import JSONRoute
from app.api.rest.schemas import RefreshRequest, TokenForm
from app.auth import service as auth
from app.auth.tokens import TokenPair
from app.users import service as users
from app.users.schemas import RegistrationAccepted, UserCreate

router = APIRouter(prefix="/auth", tags=["auth"], route_class=JSONRoute)


@router.post("/register", status_code=status.HTTP_202_ACCEPTED, responses=problems(body=True))
async def register(
    data: UserCreate, request: Request, services: ServicesDep
) -> RegistrationAccepted:
    """The same answer whether or not the email already has an account: nobody learns
    from it which addresses are registered. Log in to use the account."""
    await limit_password_work(request, services, "register")
    await users.request_registration(
        database=services.database, passwords=services.passwords, data=data
    )
    return RegistrationAccepted(detail=users.REGISTRATION_ACCEPTED)


@router.post("/token", responses=problems(401, body=True))
async def token(
    form: Annotated[TokenForm, Form()], request: Request, services: ServicesDep
) -> TokenPair:
    """OAuth2 password flow: `username` is the email."""
    return await auth.login(
        database=services.database,
        passwords=services.passwords,
        tokens=services.tokens,
        limiter=services.limiter,
        limits=services.settings.rate_limit,
        email=form.username,
        password=form.password,
        client_ip=client_ip(request),
    )


@router.post("/refresh", responses=problems(401, body=True))
async def refresh(data: RefreshRequest, services: ServicesDep) -> TokenPair:
    """A new token pair for a refresh token, which is used up; reusing one ends the session."""
    return await auth.refresh(
        database=services.database, tokens=services.tokens, refresh_token=data.refresh_token
    )


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT, responses=problems(401))
async def logout(principal: CurrentPrincipal, services: ServicesDep) -> None:
    """End the caller's session: its access and refresh tokens stop working."""
    await auth.logout(database=services.database, tokens=services.tokens, principal=principal)
