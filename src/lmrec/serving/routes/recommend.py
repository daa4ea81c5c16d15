from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel, ConfigDict, Field

from lmrec.coldstart.onboarding import MAX_SLATE
from lmrec.errors import LmrecError
from lmrec.serving.deps import get_state, require_read
from lmrec.serving.state import ServiceState, UnknownIdError

router = APIRouter(tags=["recommend"], dependencies=[Depends(require_read)])
MAX_K = 1000


class Contribution(BaseModel):
    item_id: int | str
    title: str
    weight: float = Field(description="the explained item's score drop when this history item is removed")
    co_occurrence: int | None = Field(None, description="training users with both items")
    attention: float | None = Field(None, description="Transformer models: the last layer's attention on this "
                                    "item's events")
    content_similarity: float | None = Field(None, description="content models: cosine of the items' content vectors")
    shared_words: list[str] = Field(default_factory=list, description="content models: title words in common")


class Explanation(BaseModel):
    item_id: int | str
    title: str
    reason: str
    source: str = Field(description="history, new-item or popularity")
    contributions: list[Contribution] = Field(description="history items, largest weight first")


class Item(BaseModel):
    item_id: int | str
    score: float
    title: str
    reason: str | None = None
    contributions: list[Contribution] | None = None


class RecommendResponse(BaseModel):
    user_id: str | None = None
    source: str = Field(description="model, social (the model blended with the user's relations' histories), "
                        "popularity (unknown user) or unknown-user")
    items: list[Item]


class HistoryRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    history: list[int | str] = Field(default_factory=list, description="item ids, oldest first", max_length=10_000)
    query: str | None = Field(None, min_length=1, max_length=500, description="content models: free text "
                              "(\"space opera\", \"cheap red lipstick\"), matched against the items' text and "
                              "blended with the history's recommendations")
    k: int = Field(10, ge=1, le=MAX_K)
    exclude_seen: bool = True
    explain: bool = Field(False, description="add each item's reason and contributions")


@router.get("/recommend/{user_id}", response_model=RecommendResponse, response_model_exclude_unset=True)
async def recommend_user(user_id: str, k: int = Query(10, ge=1, le=MAX_K),
                         explain: bool = Query(False, description="add each item's reason and contributions"),
                         state: ServiceState = Depends(get_state)) -> RecommendResponse:
    """Top-k for a user from everything they did, including events posted since the model was trained."""
    cat = state.catalogue
    recs, source = state.recommend_user(user_id, k)
    items = [Item(**r.__dict__) for r in recs]
    if explain and items:
        _explain(state, state.history(user_id) or [], items, cat)
    return RecommendResponse(user_id=user_id, source=source, items=items)


@router.get("/onboarding", response_model=list[Item], response_model_exclude_unset=True)
def onboarding(k: int = Query(20, ge=1, le=MAX_SLATE), state: ServiceState = Depends(get_state)) -> list[Item]:
    """A first slate for someone with no history: popular items spread over the catalogue's main
    clusters, so that the first clicks tell the model the most (score: training events)."""
    return [Item(**r.__dict__) for r in state.onboarding(k)]


class ExplainRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    history: list[int | str] = Field(description="item ids, oldest first", max_length=10_000)
    item_id: int | str


@router.get("/explain/{user_id}/{item_id}", response_model=Explanation)
def explain_user_item(user_id: str, item_id: str, state: ServiceState = Depends(get_state)) -> Explanation:
    """Why an item (recommended or not) suits a known user: the history events that drive its score."""
    history = state.history(user_id)
    if history is None:
        raise UnknownIdError("user_id", user_id)
    return Explanation(**state.explain(history, [item_id])[0])


@router.post("/explain", response_model=Explanation)
def explain_history(body: ExplainRequest, state: ServiceState = Depends(get_state)) -> Explanation:
    """The same for an explicit history (an anonymous session)."""
    cat = state.catalogue
    history = [state.item_index(i, f"history[{j}]", cat) for j, i in enumerate(body.history)]
    return Explanation(**state.explain(history, [body.item_id], cat)[0])


@router.post("/recommend", response_model=RecommendResponse, response_model_exclude_unset=True)
def recommend_history(body: HistoryRequest, state: ServiceState = Depends(get_state)) -> RecommendResponse:
    """Top-k for an explicit history (an anonymous session)."""
    cat = state.catalogue
    history = [state.item_index(i, f"history[{j}]", cat) for j, i in enumerate(body.history)]
    if body.query is not None:
        try:
            recs = state.recommend_query(history, body.query, body.k, exclude_seen=body.exclude_seen)
        except LmrecError as exc:
            raise HTTPException(status_code=409, detail=str(exc)) from None
    else:
        recs = state.recommend_history(history, body.k, exclude_seen=body.exclude_seen)
    items = [Item(**r.__dict__) for r in recs]
    if body.explain and items:
        _explain(state, history, items, cat)
    return RecommendResponse(user_id=None, source="model", items=items)


def _explain(state: ServiceState, history: list[int], items: list[Item], cat) -> None:
    found = state.explain(history, [i.item_id for i in items], cat)
    for item, e in zip(items, found, strict=True):
        item.reason, item.contributions = e["reason"], [Contribution(**c) for c in e["contributions"]]
