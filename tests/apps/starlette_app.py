"""A Starlette app for the end-to-end suite: routing, request.stream(), StreamingResponse, lifespan state,
and WebSocket endpoints under /ws/ (they record the disconnect as ``ws-disconnect-<id>``)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from e2e_record import record
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket


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


# -- WebSocket ---------------------------------------------------------------------------------------------


async def until_disconnect(websocket: WebSocket, ident: str, *, echo: bool) -> None:
    """Echo (or just read) until the client leaves, then record the disconnect for the test."""
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            disconnect = {"code": message["code"], "reason": message.get("reason") or ""}
            record(f"ws-disconnect-{ident}", json.dumps(disconnect))
            return
        if not echo:
            continue
        if message.get("text") is not None:
            await websocket.send_text(message["text"])
        else:
            await websocket.send_bytes(message["bytes"])


async def ws_echo(websocket: WebSocket) -> None:
    await websocket.accept()
    await until_disconnect(websocket, websocket.query_params.get("id", ""), echo=True)


async def ws_scope(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_json(
        {
            "type": websocket.scope["type"],
            "scheme": websocket.url.scheme,
            "path": websocket.url.path,
            "query": dict(websocket.query_params),
            "token": websocket.headers.get("x-token"),
            "client_host": websocket.client.host if websocket.client else None,
            "subprotocols": websocket.scope["subprotocols"],
        }
    )
    await until_disconnect(websocket, websocket.query_params.get("id", ""), echo=False)


async def ws_protocols(websocket: WebSocket) -> None:
    offered = websocket.scope["subprotocols"]
    await websocket.accept(subprotocol="b" if "b" in offered else None, headers=[(b"x-ws-extra", b"starlette")])
    await websocket.send_json(offered)
    await until_disconnect(websocket, websocket.query_params.get("id", ""), echo=True)


async def ws_close(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.close(code=4001, reason="bye from the app")


async def ws_deny(websocket: WebSocket) -> None:
    await websocket.close()  # before accept: the handshake is denied


async def ws_deny_response(websocket: WebSocket) -> None:
    response = PlainTextResponse("go away", status_code=401, headers={"www-authenticate": "Bearer"})
    await websocket.send_denial_response(response)


async def ws_raise(websocket: WebSocket) -> None:
    raise RuntimeError("starlette ws boom before accept")


app = Starlette(
    routes=[
        Route("/", home),
        Route("/users/{name}", user),
        Route("/count", count, methods=["POST"]),
        Route("/numbers", numbers),
        Route("/state", state),
        WebSocketRoute("/ws/echo", ws_echo),
        WebSocketRoute("/ws/scope", ws_scope),
        WebSocketRoute("/ws/protocols", ws_protocols),
        WebSocketRoute("/ws/close", ws_close),
        WebSocketRoute("/ws/deny", ws_deny),
        WebSocketRoute("/ws/deny-response", ws_deny_response),
        WebSocketRoute("/ws/raise", ws_raise),
    ],
    lifespan=lifespan,
)
