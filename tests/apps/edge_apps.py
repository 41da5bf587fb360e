"""An ASGI app for the tests behind real proxies (nginx, HAProxy): what the app sees of the client, a
streamed response, an upload echoed back, and a WebSocket that first says who it sees, then echoes."""

from __future__ import annotations

import asyncio
import json
from typing import Any


def _seen(scope: dict[str, Any]) -> bytes:
    headers = dict(scope["headers"])
    return json.dumps(
        {
            "client": scope["client"],
            "scheme": scope["scheme"],
            "host": headers.get(b"host", b"").decode("latin-1"),
            "http_version": scope.get("http_version"),
        }
    ).encode()


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    if scope["type"] == "websocket":
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": _seen(scope).decode()})
        while True:
            message = await receive()
            if message["type"] != "websocket.receive":
                return
            await send({"type": "websocket.send", "text": message.get("text"), "bytes": message.get("bytes")})
    body = bytearray()
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    path = scope["path"]
    if path == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        for i in range(20):
            await send({"type": "http.response.body", "body": b"%d\n" % i, "more_body": True})
            await asyncio.sleep(0.01)
        await send({"type": "http.response.body", "body": b""})
        return
    reply = bytes(body) if path == "/echo" else _seen(scope)
    headers = [(b"content-type", b"application/octet-stream"), (b"content-length", str(len(reply)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": reply})
