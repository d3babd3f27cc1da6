"""The REST API, versioned by URL prefix."""

from fastapi import APIRouter, Depends

from app.api.dependencies import rate_limit_api
from app.api.rest import auth, items, users

router = APIRouter(prefix="/api/v1", dependencies=[Depends(rate_limit_api)])
router.include_router(auth.router)
router.include_router(users.router)
router.include_router(items.router)
