"""ASGI 3 bench app (stdlib only). HTTP behaviour is documented in common.py; a WebSocket on any path
echoes every message back as it came (bench/ws_echo.py)."""

import asyncio

from common import HELLO, NOT_FOUND, SLEEP_SECONDS, SLEPT, STREAM_CHUNK, STREAM_CHUNKS, json_document

TEXT_HEADERS = [(b"content-type", b"text/plain"), (b"content-length", str(len(HELLO)).encode())]
SLEPT_HEADERS = [(b"content-type", b"text/plain"), (b"content-length", str(len(SLEPT)).encode())]


async def lifespan(receive, send):
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def read_body(receive):
    chunks = []
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    return b"".join(chunks)


async def ws_echo(receive, send):
    """Accept, then send every text or bytes message back unchanged until the client leaves: the least
    app work a WebSocket can do, so the server's own framing and ASGI plumbing is what gets measured."""
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] != "websocket.receive":
            return
        text = message.get("text")
        if text is not None:
            await send({"type": "websocket.send", "text": text})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"]})


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        await lifespan(receive, send)
        return
    if scope["type"] == "websocket":
        await ws_echo(receive, send)
        return
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path == "/":
        await send({"type": "http.response.start", "status": 200, "headers": TEXT_HEADERS})
        await send({"type": "http.response.body", "body": HELLO})
    elif path == "/echo":
        body = await read_body(receive)
        answer = str(len(body)).encode()
        headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(answer)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": answer})
    elif path == "/json":
        payload = json_document(scope["method"], path)
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": payload})
    elif path == "/stream":
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/octet-stream")]}
        )
        for _ in range(STREAM_CHUNKS):
            await send({"type": "http.response.body", "body": STREAM_CHUNK, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    elif path == "/sleep":
        await asyncio.sleep(SLEEP_SECONDS)
        await send({"type": "http.response.start", "status": 200, "headers": SLEPT_HEADERS})
        await send({"type": "http.response.body", "body": SLEPT})
    else:
        headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(NOT_FOUND)).encode())]
        await send({"type": "http.response.start", "status": 404, "headers": headers})
        await send({"type": "http.response.body", "body": NOT_FOUND})
