from __future__ import annotations

import time

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from lmrec.serving.deps import get_state, require_read, require_write
from lmrec.serving.state import ServiceState

router = APIRouter(tags=["events"], dependencies=[Depends(require_read)])
MAX_BATCH = 10_000


class Event(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user_id: int | str
    item_id: int | str
    timestamp: int | None = Field(None, ge=0, le=10**11, description="unix seconds; default: now")
    type: str | None = Field(None, max_length=64)


class EventBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    events: list[Event] = Field(min_length=1, max_length=MAX_BATCH)


class Accepted(BaseModel):
    accepted: int


@router.post("/events", response_model=Accepted, status_code=201, dependencies=[Depends(require_write)])
def post_events(body: EventBatch, state: ServiceState = Depends(get_state)) -> Accepted:
    """Store a batch durably (all or nothing), then update those users' histories."""
    now = int(time.time())
    n = state.add_events([(str(e.user_id), e.item_id, e.timestamp if e.timestamp is not None else now, e.type)
                          for e in body.events])
    return Accepted(accepted=n)
