"""The framework floor: the checked baseline's work, written as a FastAPI user would.

The same work as the baseline's /checked/ routes (benchmarks/baseline_app.py, whose
functions it calls: the bearer token verified with PyJWT, the one Redis script for session
and rate limit, the cache-aside read, the list query, the insert, on the same drivers),
but in FastAPI's idiom: the checks a router-level dependency, path and query parameters
typed and bounded, the request body and the answers pydantic models, one APIRouter with a
prefix. No logging, metrics or middleware. Its cost over the checked baseline is what
FastAPI itself costs; what the service costs beyond it is the service's own.

Served like the baseline, by uvicorn with the rendered project's interpreter, from a copy
of this package (`benchmarks.fastapi_floor:app`), configured by the baseline's environment.
Routes: GET /health/ready, GET /items/{id}, GET /items?status=&limit=, POST /items.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from benchmarks.baseline_app import cached_item, insert_item, lifespan, select_items, verify

ItemStatus = Literal["draft", "active", "archived"]
bearer = HTTPBearer()


async def checks(credentials: Annotated[HTTPAuthorizationCredentials, Depends(bearer)]) -> None:
    error = await verify(credentials.credentials)
    if error is not None:
        raise HTTPException(401, error)


class ItemCreate(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    description: str = Field(default="", max_length=2000)
    price_cents: int = Field(default=0, ge=0)
    status: ItemStatus = "draft"


class Item(ItemCreate):
    id: UUID
    owner_id: UUID
    created_at: datetime
    updated_at: datetime


class Page(BaseModel):
    data: list[Item]


router = APIRouter(prefix="/items", dependencies=[Depends(checks)])


@router.get("/{item_id}")
async def get_item(item_id: UUID) -> Item:
    raw = await cached_item(str(item_id))
    if raw is None:
        raise HTTPException(404, "not found")
    return Item.model_validate_json(raw)


@router.get("")
async def list_items(
    status: ItemStatus = "active", limit: Annotated[int, Query(ge=1, le=100)] = 20
) -> Page:
    rows = await select_items(status, limit)
    return Page(data=[Item.model_validate(row) for row in rows])


@router.post("", status_code=201)
async def create_item(data: ItemCreate) -> Item:
    return Item.model_validate(await insert_item(data.model_dump()))


app = FastAPI(lifespan=lifespan)
app.include_router(router)


@app.get("/health/ready")
async def ready() -> dict[str, str]:
    return {"status": "ok"}
