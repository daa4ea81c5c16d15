from __future__ import annotations

import threading

import numpy as np
from fastapi import APIRouter, Depends, HTTPException, Query, Response
from pydantic import BaseModel, ConfigDict, Field, model_validator

from lmrec.errors import LmrecError
from lmrec.serving.deps import get_state, require_admin, require_read, require_write
from lmrec.serving.state import ServiceState, UnknownIdError

_PLOTTING = threading.Lock()  # pyplot keeps global state: one figure at a time
router = APIRouter(tags=["users"], dependencies=[Depends(require_read)])


class AtomItem(BaseModel):
    item_id: int | str
    title: str


class Interest(BaseModel):
    atom: int
    weight: float = Field(description="the atom's coefficient in the user's code")
    share: float = Field(description="weight / the sum of the user's weights")
    usage: float = Field(description="share of the training users' states the atom is active in")
    items: list[AtomItem] = Field(description="the items the atom raises most")


class InterestsResponse(BaseModel):
    user_id: str
    interests: list[Interest]


class UserHistory(BaseModel):
    user_id: str
    events: int = Field(description="events in the user's history, posted ones included")
    recent: list[AtomItem] = Field(description="the latest events, most recent first")


@router.get("/users/{user_id}", response_model=UserHistory)
def user_history(user_id: str, k: int = Query(20, ge=1, le=1000),
                 state: ServiceState = Depends(get_state)) -> UserHistory:
    """A known user's history: how many events, and the latest ``k``."""
    history = state.history(user_id)
    if history is None:
        raise UnknownIdError("user_id", user_id)
    cat = state.catalogue
    recent = history[::-1][:k]
    return UserHistory(user_id=user_id, events=len(history), recent=[
        AtomItem(item_id=i, title=cat.titles[j]) for i, j in zip(cat.items.decode(np.array(recent, dtype=np.int64)),
                                                                 recent, strict=True)])


class Relation(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user_id: int | str = Field(description="a user (known or new)")
    friend_id: int | str = Field(description="someone they are related to (friend, follow); undirected")

    @model_validator(mode="after")
    def _two_users(self) -> Relation:
        user, friend = str(self.user_id).strip(), str(self.friend_id).strip()
        if not user or not friend:
            raise ValueError("user_id and friend_id must not be empty")
        if user == friend:
            raise ValueError("friend_id: a user cannot be their own friend")
        return self


class RelationAccepted(BaseModel):
    user_id: str
    relations: int = Field(description="the user's relations now")


@router.post("/social", response_model=RelationAccepted, status_code=201, dependencies=[Depends(require_write)])
def add_relation(body: Relation, state: ServiceState = Depends(get_state)) -> RelationAccepted:
    """Relate two users (stored durably first); the user's next recommendation blends their
    neighbourhood in. Needs a run trained with --social (409 otherwise)."""
    user, friend = str(body.user_id).strip(), str(body.friend_id).strip()
    try:
        n = state.add_relation(user, friend)
    except LmrecError as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from None
    return RelationAccepted(user_id=user, relations=n)


class Forgotten(BaseModel):
    user_id: str
    events_deleted: int = Field(description="the user's posted events deleted from the event store")
    training_events_hidden: int = Field(description="the user's events in the run's data, hidden from now on "
                                        "(the trained weights still reflect them until the next train)")


@router.delete("/users/{user_id}", response_model=Forgotten, dependencies=[Depends(require_admin)])
def forget_user(user_id: str, state: ServiceState = Depends(get_state)) -> Forgotten:
    """The right to be forgotten: delete the user's stored events and relations and hide their
    events in the run, at once; their next request is a cold start. A tombstone keeps them out
    of replays and of `lmrec train --forget-db` (docs/privacy.md)."""
    return Forgotten(**state.forget_user(user_id))


@router.get("/users/{user_id}/map.png", response_class=Response,
            responses={200: {"content": {"image/png": {}}, "description": "the user on the item map"}})
def user_map_png(user_id: str, state: ServiceState = Depends(get_state)) -> Response:
    """The user's history and top-10 on the item map (a 2-D projection of the model's item vectors),
    with their interest atoms named by top titles; from the run's data (events posted since are
    not drawn). 409 for models without item vectors."""
    import tempfile
    from pathlib import Path

    from lmrec.explain.visuals import user_map

    run = state.run
    if user_id not in run.dataset.users:
        raise UnknownIdError("user_id", user_id)
    with tempfile.TemporaryDirectory() as tmp, _PLOTTING:
        path = Path(tmp) / "map.png"
        if not user_map(run, user_id, path):
            raise HTTPException(status_code=409, detail=f"model {run.model_name!r} has no item vectors to draw a map")
        return Response(path.read_bytes(), media_type="image/png")


@router.get("/users/{user_id}/interests", response_model=InterestsResponse)
def user_interests(user_id: str, state: ServiceState = Depends(get_state)) -> InterestsResponse:
    """The user's sparse interest code: a few learned interest atoms, largest weight first, each
    described by its top items (from the whole history, events posted since training included)."""
    try:
        rows = state.user_interests(user_id)
    except UnknownIdError:
        raise
    except LmrecError as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from None
    return InterestsResponse(user_id=user_id, interests=[
        Interest(atom=a["atom"], weight=a["weight"], share=a["share"], usage=a["usage"],
                 items=[AtomItem(item_id=i, title=t) for i, t in zip(a["item_ids"], a["titles"], strict=True)])
        for a in rows])
