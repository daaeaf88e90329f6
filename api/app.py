"""The Experience API application: middleware, error shapes, health, the desktop page.

:func:`create_app` builds the ASGI app over :class:`api.routes.Services`; ``cxstream
serve`` (:mod:`api.server`) runs it under uvicorn. Around the routes: a request body
limit (413 over ``CX_API__MAX_BODY_BYTES``), CORS for the origins of
``CX_API__CORS_ORIGINS`` only, and validation errors (422) that list where and what,
never the input (it may be an identifier value).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from importlib.resources import files
from pathlib import Path
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.auth import TokenAuth
from api.models import Health
from api.routes import Services, build_router

DESKTOP_DIR = Path(str(files("api") / "desktop"))
API_VERSION = "1.0.0"


class BodyLimit:
    """Refuses request bodies over ``max_bytes`` (declared or streamed) with a 413.

    The body is read (at most ``max_bytes`` of it) before the app sees the request.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def _refuse(self, send: Send) -> None:
        body = orjson.dumps({"detail": f"request body over {self.max_bytes} bytes; send less"})
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._refuse(send)
            return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client left
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_bytes:
                await self._refuse(send)
                return
            if not message.get("more_body", False):
                break
        buffered: list[Message] = [{"type": "http.request", "body": b"".join(chunks)}]

        async def replay() -> Message:
            return buffered.pop() if buffered else await receive()

        await self.app(scope, replay, send)


def _validation_problem(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)  # noqa: S101 (registered for it only)
    errors = [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
        for e in exc.errors()
    ]
    return JSONResponse({"detail": errors}, status_code=422)


def create_app(services: Services) -> FastAPI:
    """Return the API over ``services`` (the stream feed, if any, runs with the app)."""
    conf = services.conf
    auth = TokenAuth(conf.token_scopes(), rate=conf.rate_per_second, burst=conf.rate_burst)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if services.feed is not None:
            services.feed.start(asyncio.get_running_loop(), services.hub)
        try:
            yield
        finally:
            if services.feed is not None:
                services.feed.stop()

    app = FastAPI(
        title="cxstream Experience API",
        version=API_VERSION,
        description="Profiles, journeys, current actions, live NBAs and alerts, responses.",
        docs_url=None,  # the interactive docs load scripts from a CDN: none here
        redoc_url=None,
        lifespan=lifespan,
    )
    app.add_exception_handler(RequestValidationError, _validation_problem)
    app.include_router(build_router(services, auth))

    @app.get("/healthz", response_model=Health, summary="Liveness (no credential, no data)")
    def healthz() -> Health:
        feed = services.feed
        stream = "off" if feed is None else ("ready" if feed.ready.is_set() else "starting")
        try:
            services.store.canonical("healthz")
            store = "ok"
        except Exception:  # any failure of the store is "down" here
            store = "down"
        return Health(
            status="ok" if store == "ok" else "degraded",
            store=store,
            stream=stream,
            stream_clients=len(services.hub.clients),
            time=datetime.now(UTC),
        )

    app.mount("/desktop", StaticFiles(directory=DESKTOP_DIR, html=True), name="desktop")
    app.add_middleware(
        CORSMiddleware,
        allow_origins=conf.cors_origins,
        allow_methods=["GET", "POST"],
        allow_headers=["Authorization", "Content-Type", "Last-Event-ID"],
        max_age=600,
    )
    app.add_middleware(BodyLimit, max_bytes=conf.max_body_bytes)
    return app


def openapi_document(app: FastAPI) -> dict[str, Any]:
    """Return the app's OpenAPI document."""
    return app.openapi()
