"""Dependencies injected into the routers."""

from __future__ import annotations

from fastapi import Header, HTTPException, Request

from lmrec.serving.auth import AuthError, Scope
from lmrec.serving.state import ServiceState


async def get_state(request: Request) -> ServiceState:
    """The service's state, caught up with the event store (other workers' and replicas' writes).

    async: on the event loop, not a hop to the thread pool on every request; the catch-up is one
    indexed query that usually finds nothing."""
    state = request.app.state.service
    state.sync()
    return state


def require(scope: Scope):
    """A dependency: the request's X-API-Key must have ``scope`` (when keys are configured; reads
    only when the keys file says so), within its rate limit."""

    # async: a few dictionary lookups, not worth a hop to the thread pool on every request
    async def check(request: Request, x_api_key: str | None = Header(default=None)) -> None:
        ring = request.app.state.keys
        if ring is None:
            return
        try:
            ring.check(x_api_key, scope, charge=not getattr(request.state, "charged", False))
            request.state.charged = True
        except AuthError as exc:
            raise HTTPException(status_code=exc.status, detail=exc.detail, headers=exc.headers) from None

    return check


require_read, require_write, require_admin = require("read"), require("write"), require("admin")
