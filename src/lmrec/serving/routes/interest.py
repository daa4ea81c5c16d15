from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, ConfigDict, Field, model_validator

from lmrec.data.labels import DISLIKE, LIKE, UNLABELLED
from lmrec.errors import LmrecError
from lmrec.serving.deps import get_state, require_read
from lmrec.serving.state import ServiceState, UnknownIdError

router = APIRouter(tags=["interest"], dependencies=[Depends(require_read)])
MAX_ITEMS = 1000


class HistoryEvent(BaseModel):
    model_config = ConfigDict(extra="forbid")
    item_id: int | str
    like: bool | None = Field(None, description="true like, false dislike, null unknown")


class InterestRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user_id: int | str | None = Field(None, description="a known user: their whole history (with labels) is read")
    history: list[HistoryEvent | int | str] | None = Field(
        None, max_length=10_000, description="or an explicit history, oldest first: item ids, or "
        "{item_id, like} objects")
    item_ids: list[int | str] = Field(min_length=1, max_length=MAX_ITEMS, description="items to predict")

    @model_validator(mode="after")
    def _one_source(self) -> InterestRequest:
        if (self.user_id is None) == (self.history is None):
            raise ValueError("give either user_id or history")
        return self


class Prediction(BaseModel):
    item_id: int | str
    probability: float


class InterestResponse(BaseModel):
    user_id: str | None = None
    predictions: list[Prediction]


@router.post("/interest", response_model=InterestResponse)
def interest(body: InterestRequest, state: ServiceState = Depends(get_state)) -> InterestResponse:
    """P(like) of each item for a known user or an explicit history (needs a `--model interest` run)."""
    if body.user_id is not None:
        found = state.labelled_history(str(body.user_id))
        if found is None:
            raise UnknownIdError("user_id", body.user_id)
        history, likes = found
    else:
        events = [e if isinstance(e, HistoryEvent) else HistoryEvent(item_id=e) for e in body.history]
        history = [state.item_index(e.item_id, f"history[{j}]") for j, e in enumerate(events)]
        likes = [UNLABELLED if e.like is None else (LIKE if e.like else DISLIKE) for e in events]
    try:
        probs = state.interest(history, likes, body.item_ids, None if body.user_id is None else str(body.user_id))
    except UnknownIdError:
        raise
    except LmrecError as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from None
    return InterestResponse(user_id=None if body.user_id is None else str(body.user_id),
                            predictions=[Prediction(item_id=i, probability=p) for i, p in zip(body.item_ids, probs,
                                                                                              strict=True)])
