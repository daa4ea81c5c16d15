"""The HTTP service: ``create_app`` assembles routers around one injected :class:`ServiceState`."""

from __future__ import annotations

import json
import logging
import os
import time

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from lmrec.serving.auth import KeyRing
from lmrec.serving.routes import events, interest, items, ops, recommend, users, web
from lmrec.serving.state import ServiceState, UnknownIdError
from lmrec.serving.store_pg import StoreUnavailable

MAX_BODY_BYTES = 4_000_000  # a full batch of 10,000 events is about 0.7 MB
log = logging.getLogger("lmrec.serving")


def create_app(state: ServiceState, *, api_key: str | None = None, keys: KeyRing | None = None,
               max_body_bytes: int = MAX_BODY_BYTES) -> FastAPI:
    """``api_key``: one admin key (reads open); ``keys``: keys with scopes and rate limits
    (``lmrec.serving.auth``); request bodies over ``max_body_bytes`` get 413."""
    app = FastAPI(title="lmrec", description="Recommendations that react to what a user just did.",
                  version="0.1.0")
    app.state.service = state
    app.state.keys = keys if keys is not None else (KeyRing.single(api_key) if api_key else None)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Never a stack trace or an internal path in a response: they go to the service's log.
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return JSONResponse(status_code=500, content={"detail": "internal error; the service log has the details"})

    @app.exception_handler(StoreUnavailable)
    async def _store_down(request: Request, exc: StoreUnavailable) -> JSONResponse:
        log.warning("%s", exc)
        return JSONResponse(status_code=503, content={"detail": str(exc)}, headers={"Retry-After": "1"})

    @app.exception_handler(UnknownIdError)
    async def _unknown_id(request: Request, exc: UnknownIdError) -> JSONResponse:
        # args[0]: str() of a KeyError would quote the message
        return JSONResponse(status_code=404, content={"detail": exc.args[0], "field": exc.field})

    app.add_middleware(Observe, max_body_bytes=max_body_bytes)
    for module in (recommend, interest, users, events, items, ops, web):
        app.include_router(module.router)
    return app


class Observe:
    """Request metrics (route, method, status, seconds) and the 413 for an oversized body, as a plain
    ASGI middleware: Starlette's ``@app.middleware("http")`` wraps every request in a task group
    and memory streams. With it and a thread-pool hop for the key check, a GET /recommend spent
    3.3-3.6 ms outside the model in-process (httpx's ASGI client included), 2.7-2.9 ms without
    (twenty-first session, 2 x 600 requests each)."""

    def __init__(self, app, max_body_bytes: int) -> None:
        self.app, self.max_body_bytes = app, max_body_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body_bytes):
            response = JSONResponse(status_code=413, content={
                "detail": f"request body over {self.max_body_bytes:,} bytes; send events in smaller batches"})
            return await response(scope, receive, send)
        t0, status = time.perf_counter(), 500

        async def send_status(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")  # set by the router on this same scope
            ops.observe(route.path if route is not None else "unmatched", scope["method"], status,
                        time.perf_counter() - t0)


SETTINGS_ENV = "LMREC_SERVE_SETTINGS"  # JSON settings of `lmrec serve`, read by each worker process


def build_app(settings: dict) -> FastAPI:
    """The service of ``lmrec serve``'s settings: run, db, fallback, retrieval, threads, api_key, keys."""
    import torch

    from lmrec.runs import Run
    from lmrec.serving.store import open_store

    torch.set_num_threads(settings["threads"])
    run = Run.open(settings["run"])
    state = ServiceState(run, open_store(settings["db"], run), fallback=settings["fallback"],
                         retrieval=settings["retrieval"])
    keys = KeyRing.from_file(settings["keys"]) if settings["keys"] else None
    return create_app(state, api_key=settings["api_key"], keys=keys)


def from_environment() -> FastAPI:
    """uvicorn's app factory for ``lmrec serve --workers N``: every worker builds its own state."""
    return build_app(json.loads(os.environ[SETTINGS_ENV]))

