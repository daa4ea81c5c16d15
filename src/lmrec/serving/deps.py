"""Dependencies injected into the routers."""

from __future__ import annotations

from fastapi import Header, HTTPException, Request

from lmrec.serving.state import ServiceState


def get_state(request: Request) -> ServiceState:
    return request.app.state.service


def require_api_key(request: Request, x_api_key: str | None = Header(default=None)) -> None:
    """Write endpoints need ``X-API-Key`` when the service was started with a key."""
    expected = request.app.state.api_key
    if expected is not None and x_api_key != expected:
        raise HTTPException(status_code=401, detail="X-API-Key header missing or wrong")
