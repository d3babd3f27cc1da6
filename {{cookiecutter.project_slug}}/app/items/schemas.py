from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

NAME_MAX = 100
DESCRIPTION_MAX = 2000


class ItemCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=NAME_MAX)
    description: str = Field(default="", max_length=DESCRIPTION_MAX)


class ItemPublic(BaseModel):
    model_config = ConfigDict(frozen=True, from_attributes=True)

    id: UUID
    name: str
    description: str
    created_at: datetime
