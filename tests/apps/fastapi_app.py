"""A FastAPI app for the end-to-end suite: JSON, path parameters, uploads, streaming, background tasks,
a lifespan that hands state to every request, and WebSocket endpoints under /ws/ (they record the disconnect
as ``ws-disconnect-<id>``)."""

import asyncio
import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from e2e_record import record
from fastapi import BackgroundTasks, FastAPI, Header, Request, WebSocket, WebSocketException, status
from fastapi.responses import PlainTextResponse, StreamingResponse
from pydantic import BaseModel
from starlette_app import until_disconnect


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
    record("fastapi-startup")
    yield {"greeting": "hello from the fastapi lifespan"}
    record("fastapi-shutdown")


app = FastAPI(lifespan=lifespan)


class Item(BaseModel):
    name: str
    price: float


@app.get("/items/{item_id}")
async def read_item(item_id: int, q: str | None = None) -> dict[str, Any]:
    return {"item_id": item_id, "q": q}


@app.post("/items")
async def create_item(item: Item) -> dict[str, Any]:
    return {"name": item.name.upper(), "price_with_tax": round(item.price * 1.25, 2)}


@app.post("/upload")
async def upload(request: Request) -> dict[str, Any]:
    body = await request.body()
    return {"size": len(body), "sha256": hashlib.sha256(body).hexdigest()}


@app.get("/stream")
async def stream(lines: int = 5) -> StreamingResponse:
    async def generate() -> AsyncIterator[bytes]:
        for i in range(lines):
            yield f"line {i}\n".encode()
            await asyncio.sleep(0.01)

    return StreamingResponse(generate(), media_type="text/plain")


@app.post("/background")
async def background(name: str, tasks: BackgroundTasks) -> dict[str, str]:
    tasks.add_task(record, f"fastapi-background-{name}", "ran after the response")
    return {"scheduled": name}


@app.get("/state")
async def state(request: Request) -> dict[str, str]:
    return {"greeting": request.state.greeting}


# -- WebSocket ---------------------------------------------------------------------------------------------


@app.websocket("/ws/echo")
async def ws_echo(websocket: WebSocket, id: str = "") -> None:
    await websocket.accept()
    await until_disconnect(websocket, id, echo=True)


@app.websocket("/ws/scope")
async def ws_scope(websocket: WebSocket, id: str = "", x_token: str | None = Header(default=None)) -> None:
    await websocket.accept()
    await websocket.send_json(
        {
            "type": websocket.scope["type"],
            "scheme": websocket.url.scheme,
            "path": websocket.url.path,
            "query": dict(websocket.query_params),
            "token": x_token,
            "client_host": websocket.client.host if websocket.client else None,
            "subprotocols": websocket.scope["subprotocols"],
        }
    )
    await until_disconnect(websocket, id, echo=False)


@app.websocket("/ws/protocols")
async def ws_protocols(websocket: WebSocket, id: str = "") -> None:
    offered = websocket.scope["subprotocols"]
    await websocket.accept(subprotocol="b" if "b" in offered else None, headers=[(b"x-ws-extra", b"fastapi")])
    await websocket.send_json(offered)
    await until_disconnect(websocket, id, echo=True)


@app.websocket("/ws/close")
async def ws_close(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.close(code=4001, reason="bye from the app")


@app.websocket("/ws/deny")
async def ws_deny(websocket: WebSocket) -> None:
    raise WebSocketException(code=status.WS_1008_POLICY_VIOLATION)  # before accept: the handshake is denied


@app.websocket("/ws/deny-response")
async def ws_deny_response(websocket: WebSocket) -> None:
    response = PlainTextResponse("go away", status_code=401, headers={"www-authenticate": "Bearer"})
    await websocket.send_denial_response(response)


@app.websocket("/ws/raise")
async def ws_raise(websocket: WebSocket) -> None:
    raise RuntimeError("fastapi ws boom before accept")
