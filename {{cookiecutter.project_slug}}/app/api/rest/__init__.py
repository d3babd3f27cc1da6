"""The REST API, versioned by URL prefix."""

from fastapi import APIRouter

from app.api.rest import items

router = APIRouter(prefix="/api/v1")
router.include_router(items.router)
