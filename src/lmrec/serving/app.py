"""The HTTP service: ``create_app`` assembles routers around one injected :class:`ServiceState`."""

from __future__ import annotations

import time

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from lmrec.serving.routes import events, interest, items, ops, recommend, users, web
from lmrec.serving.state import ServiceState, UnknownIdError


def create_app(state: ServiceState, *, api_key: str | None = None) -> FastAPI:
    app = FastAPI(title="lmrec", description="Recommendations that react to what a user just did.",
                  version="0.1.0")
    app.state.service = state
    app.state.api_key = api_key

    @app.exception_handler(UnknownIdError)
    async def _unknown_id(request: Request, exc: UnknownIdError) -> JSONResponse:
        # args[0]: str() of a KeyError would quote the message
        return JSONResponse(status_code=404, content={"detail": exc.args[0], "field": exc.field})

    @app.middleware("http")
    async def _observe(request: Request, call_next):
        t0 = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        ops.observe(route.path if route is not None else "unmatched", request.method, response.status_code,
                    time.perf_counter() - t0)
        return response

    for module in (recommend, interest, users, events, items, ops, web):
        app.include_router(module.router)
    return app
