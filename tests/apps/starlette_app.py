"""A Starlette app for the end-to-end suite: routing, request.stream(), StreamingResponse, lifespan state."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from e2e_record import record
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Route


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
    record("starlette-startup")
    yield {"greeting": "hello from the starlette lifespan"}
    record("starlette-shutdown")


async def home(request: Request) -> PlainTextResponse:
    return PlainTextResponse("starlette home")


async def user(request: Request) -> JSONResponse:
    return JSONResponse({"user": request.path_params["name"], "page": request.query_params.get("page")})


async def count(request: Request) -> JSONResponse:
    chunks = total = 0
    async for chunk in request.stream():
        if chunk:
            chunks += 1
            total += len(chunk)
    return JSONResponse({"chunks": chunks, "bytes": total})


async def numbers(request: Request) -> StreamingResponse:
    async def generate() -> AsyncIterator[str]:
        for i in range(int(request.query_params.get("n", "10"))):
            yield f"{i}\n"
            await asyncio.sleep(0.005)

    return StreamingResponse(generate(), media_type="text/plain")


async def state(request: Request) -> JSONResponse:
    return JSONResponse({"greeting": request.state.greeting})


app = Starlette(
    routes=[
        Route("/", home),
        Route("/users/{name}", user),
        Route("/count", count, methods=["POST"]),
        Route("/numbers", numbers),
        Route("/state", state),
    ],
    lifespan=lifespan,
)
