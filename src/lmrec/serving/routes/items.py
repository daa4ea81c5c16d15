from __future__ import annotations

from fastapi import APIRouter, Depends, Query

from lmrec.serving.deps import get_state
from lmrec.serving.routes.recommend import MAX_K, Item
from lmrec.serving.state import ServiceState

router = APIRouter(tags=["items"])


@router.get("/items/{item_id}")
def get_item(item_id: str, state: ServiceState = Depends(get_state)) -> dict:
    """An item's metadata and how many training events it has."""
    return state.item_info(item_id)


@router.get("/similar/{item_id}", response_model=list[Item])
def similar(item_id: str, k: int = Query(10, ge=1, le=MAX_K), state: ServiceState = Depends(get_state)) -> list[Item]:
    """Items most similar to one item."""
    return [Item(**r.__dict__) for r in state.similar(item_id, k)]
