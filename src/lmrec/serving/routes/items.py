from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field

from lmrec.errors import LmrecError
from lmrec.serving.deps import get_state, require_admin, require_read
from lmrec.serving.routes.recommend import MAX_K, Item
from lmrec.serving.state import ServiceState

router = APIRouter(tags=["items"], dependencies=[Depends(require_read)])


@router.get("/search", response_model=list[Item])
def search(q: str = Query(..., min_length=1, max_length=200, pattern=r"\S",
                          description="words that must all be in the title"),
           k: int = Query(20, ge=1, le=MAX_K), state: ServiceState = Depends(get_state)) -> list[Item]:
    """Catalogue search by title (every word, any case), most trained-on first (score: training events)."""
    return [Item(**r.__dict__) for r in state.search(q, k)]


@router.get("/items/{item_id}")
def get_item(item_id: str, state: ServiceState = Depends(get_state)) -> dict:
    """An item's metadata and how many training events it has."""
    return state.item_info(item_id)


@router.get("/similar/{item_id}", response_model=list[Item])
def similar(item_id: str, k: int = Query(10, ge=1, le=MAX_K), state: ServiceState = Depends(get_state)) -> list[Item]:
    """Items most similar to one item."""
    return [Item(**r.__dict__) for r in state.similar(item_id, k)]


class NewItem(BaseModel):
    """An item's id plus any metadata columns (title, categories, ...), as in the items file."""

    model_config = ConfigDict(extra="allow")
    item_id: int | str


class NewItems(BaseModel):
    model_config = ConfigDict(extra="forbid")
    items: list[NewItem] = Field(min_length=1, max_length=1000)


@router.post("/items", status_code=201, dependencies=[Depends(require_admin)])
def add_items(body: NewItems, state: ServiceState = Depends(get_state)) -> dict:
    """Add items with content; with a content model they are recommendable at once (zero-shot)."""
    ids = state.catalogue.items
    bad = [{"loc": ("body", "items", j, "item_id"), "type": "value_error", "input": item.item_id,
            "msg": f"item ids of this catalogue are {'integers' if ids.kind == 'int' else 'text'}"}
           for j, item in enumerate(body.items)
           if not str(item.item_id).strip() or (ids.kind == "int" and not isinstance(ids.coerce(item.item_id), int))]
    seen: set[str] = set()
    for j, item in enumerate(body.items):
        key = str(ids.coerce(item.item_id))
        if key in seen:
            bad.append({"loc": ("body", "items", j, "item_id"), "type": "value_error", "input": item.item_id,
                        "msg": "this item id appears twice in the request"})
        seen.add(key)
    if bad:  # raised as FastAPI's own validation error, so the 422 body is the documented one
        raise RequestValidationError(bad)
    try:
        n = state.add_items([item.model_dump() for item in body.items])
    except LmrecError as exc:  # an id already in the catalogue, or a model without a content path
        raise HTTPException(status_code=409, detail=str(exc)) from None
    return {"added": n, "catalogue_size": len(state.catalogue.items)}
