"""The REST API, versioned by URL prefix."""

from fastapi import APIRouter, Depends

from app.api.dependencies import rate_limit_api
from app.api.responses import problems
from app.api.rest import auth, items, users

TAGS = {
    "auth": "Registration, sign-in with the OAuth2 password flow, token refresh and logout.",
    "users": "The caller's account, and the list of users for administrators.",
    "items": "The example resource: create, read, update and delete your own items.",
}


def create_router(*extra: APIRouter) -> APIRouter:
    """The API's routers, and those of the options chosen at generation."""
    router = APIRouter(
        prefix="/api/v1",
        dependencies=[Depends(rate_limit_api)],
        # Any route may be rate limited, or find Redis or the database down.
        responses=problems(429, 503),
    )
    for part in (auth.router, users.router, items.router, *extra):
        router.include_router(part)
    return router
