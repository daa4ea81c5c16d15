from __future__ import annotations

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from lmrec.serving.deps import get_state
from lmrec.serving.state import ServiceState

router = APIRouter(tags=["recommend"])
MAX_K = 1000


class Item(BaseModel):
    item_id: int | str
    score: float
    title: str


class RecommendResponse(BaseModel):
    user_id: str | None = None
    source: str = Field(description="model, popularity (unknown user) or unknown-user")
    items: list[Item]


class HistoryRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    history: list[int | str] = Field(description="item ids, oldest first", max_length=10_000)
    k: int = Field(10, ge=1, le=MAX_K)
    exclude_seen: bool = True


@router.get("/recommend/{user_id}", response_model=RecommendResponse)
def recommend_user(user_id: str, k: int = Query(10, ge=1, le=MAX_K),
                   state: ServiceState = Depends(get_state)) -> RecommendResponse:
    """Top-k for a user from everything they did, including events posted since the model was trained."""
    recs, source = state.recommend_user(user_id, k)
    return RecommendResponse(user_id=user_id, source=source, items=[Item(**r.__dict__) for r in recs])


@router.post("/recommend", response_model=RecommendResponse)
def recommend_history(body: HistoryRequest, state: ServiceState = Depends(get_state)) -> RecommendResponse:
    """Top-k for an explicit history (an anonymous session)."""
    history = [state.item_index(i, f"history[{j}]") for j, i in enumerate(body.history)]
    recs = state.recommend_history(history, body.k, exclude_seen=body.exclude_seen)
    return RecommendResponse(source="model", items=[Item(**r.__dict__) for r in recs])
