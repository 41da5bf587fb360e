"""Plain ASGI 3 WebSocket apps for the end-to-end suite (no framework, so what the tests see is the server).

``app`` routes on the path. WebSocket endpoints take an ``id`` query parameter and write what they saw
as records (see e2e_record.py): ``ws-called-<id>`` as soon as the app is called for a websocket scope,
``ws-connect-<id>`` with the type of the first message, ``ws-disconnect-<id>`` with the disconnect
message's code and reason as JSON. Plain HTTP requests get ``http ok`` (``/kind``: the scope type,
``/pid``: the worker's PID, ``/progress?id=X``: how many messages ``/flood?id=X`` has sent so far).
"""

from __future__ import annotations

import asyncio
import json
import os
import struct
from typing import Any
from urllib.parse import parse_qs

from e2e_record import jsonable, record

Scope = dict[str, Any]

PROGRESS: dict[str, int] = {}  # /flood progress by id, read through /progress


def _query(scope: Scope) -> dict[str, str]:
    return {k: v[-1] for k, v in parse_qs(scope["query_string"].decode("latin-1")).items()}


def flood_message(index: int, size: int) -> bytes:
    """Message ``index`` of /flood: its index, big-endian, repeated to ``size`` bytes (a multiple of 4)."""
    return struct.pack(">I", index) * (size // 4)


# -- websocket endpoints ------------------------------------------------------------------------------------


async def _connect(receive: Any, ident: str) -> None:
    message = await receive()
    record(f"ws-connect-{ident}", message["type"])


async def _until_disconnect(receive: Any, ident: str, *, echo: Any = None) -> None:
    """Receive until the disconnect (echoing each message if ``echo`` is the send callable); record it."""
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            disconnect = {"code": message.get("code"), "reason": message.get("reason", "")}
            record(f"ws-disconnect-{ident}", json.dumps(disconnect))
            return
        if echo is not None:
            if message.get("text") is not None:
                await echo({"type": "websocket.send", "text": message["text"]})
            else:
                await echo({"type": "websocket.send", "bytes": message["bytes"]})


async def websocket(scope: Scope, receive: Any, send: Any) -> None:
    query = _query(scope)
    ident = query.get("id", "")
    path = scope["path"]
    record(f"ws-called-{ident}")

    if path == "/raise-before":
        raise RuntimeError("ws boom before accept")
    if path == "/return-before":
        return

    await _connect(receive, ident)

    if path == "/deny":  # websocket.close before websocket.accept: the handshake is denied with 403
        await send({"type": "websocket.close"})
        return
    if path == "/deny-response":  # the denial response extension, its body in two parts
        headers = [
            (b"content-type", b"text/plain"),
            (b"www-authenticate", b'Bearer realm="ws"'),
            (b"x-denied", b"yes"),
        ]
        if query.get("length") == "1":
            headers.append((b"content-length", b"11"))
        await send({"type": "websocket.http.response.start", "status": 401, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": b"not ", "more_body": True})
        await send({"type": "websocket.http.response.body", "body": b"allowed"})
        return

    accept: dict[str, Any] = {"type": "websocket.accept"}
    if "pick" in query:
        accept["subprotocol"] = query["pick"]
    if path == "/headers":
        accept["headers"] = [(b"x-ws-extra", b"hello"), (b"set-cookie", b"ws=1; Path=/")]
    await send(accept)

    if path == "/echo":
        await _until_disconnect(receive, ident, echo=send)
        if "linger" in query:  # clean-up work after the disconnect, that a graceful stop must wait for
            await asyncio.sleep(float(query["linger"]))
            record(f"ws-finished-{ident}")
    elif path.startswith("/scope"):  # the scope as JSON, bytes as latin-1 text
        view = {key: jsonable(value) for key, value in scope.items()}
        view["raw_path_type"] = type(scope["raw_path"]).__name__
        view["query_string_type"] = type(scope["query_string"]).__name__
        view["header_types"] = sorted({type(n).__name__ + "/" + type(v).__name__ for n, v in scope["headers"]})
        await send({"type": "websocket.send", "text": json.dumps(view)})
        await _until_disconnect(receive, ident)
    elif path == "/headers":
        await send({"type": "websocket.send", "text": "accepted with headers"})
        await _until_disconnect(receive, ident)
    elif path == "/close":  # the app closes, with the code and reason the query asks for (else the defaults)
        message: dict[str, Any] = {"type": "websocket.close"}
        if "code" in query:
            message["code"] = int(query["code"])
        if "reason" in query:
            message["reason"] = query["reason"]
        await send(message)
        await _until_disconnect(receive, ident)
    elif path == "/reply-then-sleep":  # answers the first message, then does not read for a while
        first = await receive()
        await send({"type": "websocket.send", "text": "reply to " + first["text"]})
        await asyncio.sleep(3)
        await _until_disconnect(receive, ident, echo=send)
    elif path == "/raise-after":
        raise RuntimeError("ws boom after accept")
    elif path == "/return-after":
        await send({"type": "websocket.send", "text": "bye"})
    elif path == "/send-after-close":  # waits for the client to go, then sends anyway
        await _until_disconnect(receive, ident)
        try:
            await send({"type": "websocket.send", "text": "too late"})
        except Exception as exc:
            name = f"{type(exc).__module__}.{type(exc).__qualname__}"
            record(f"send-after-close-{ident}", json.dumps({"class": name, "oserror": isinstance(exc, OSError)}))
        else:
            record(f"send-after-close-{ident}", json.dumps({"class": None, "oserror": False}))
    elif path == "/flood":  # ``count`` messages of ``size`` bytes, as fast as send() takes them; then close
        size, count = int(query.get("size", "65536")), int(query.get("count", "512"))
        PROGRESS[ident] = 0
        for index in range(count):
            await send({"type": "websocket.send", "bytes": flood_message(index, size)})
            PROGRESS[ident] = index + 1
        await send({"type": "websocket.close", "code": 1000})
        await _until_disconnect(receive, ident)
    elif path == "/sink":  # accepts, then never calls receive again
        record(f"sink-{ident}")
        await asyncio.sleep(float(query.get("s", "60")))
    elif path == "/kind":
        await send({"type": "websocket.send", "text": "websocket"})
        await _until_disconnect(receive, ident)
    else:
        await send({"type": "websocket.close", "code": 4404, "reason": f"no route {path}"})
        await _until_disconnect(receive, ident)


# -- http and lifespan --------------------------------------------------------------------------------------


async def http(scope: Scope, receive: Any, send: Any) -> None:
    while (await receive()).get("more_body", False):
        pass
    path = scope["path"]
    body = b"http ok"
    if path == "/kind":
        body = scope["type"].encode()
    elif path == "/pid":
        body = str(os.getpid()).encode()
    elif path == "/progress":
        body = str(PROGRESS.get(_query(scope).get("id", ""), -1)).encode()
    headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def lifespan(scope: Scope, receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            scope["state"]["greeting"] = "hello from the ws lifespan"
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope: Scope, receive: Any, send: Any) -> None:
    if scope["type"] == "websocket":
        await websocket(scope, receive, send)
    elif scope["type"] == "http":
        await http(scope, receive, send)
    else:
        await lifespan(scope, receive, send)
