"""Apps for the deadline tests (tests/test_e2e_deadlines.py): responses that never end, apps that take too
long, and a body reader, in ASGI and WSGI. Each records what it saw (tests/apps/e2e_record.py), since the
test cannot see inside the server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs

from e2e_record import record
from lifespan_support import lifespan

CHUNK = b"x" * 65536


def _arg(query: bytes | str, name: str, default: str = "") -> str:
    text = query.decode() if isinstance(query, bytes) else query
    return parse_qs(text).get(name, [default])[0]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await lifespan(receive, send)
        return
    path, tag = scope["path"], _arg(scope["query_string"], "tag", "x")
    if path == "/endless":  # a response the client will not read: how does send end?
        await send({"type": "http.response.start", "status": 200, "headers": []})
        sent = 0
        try:
            while sent < 1 << 34:
                await send({"type": "http.response.body", "body": CHUNK, "more_body": True})
                sent += len(CHUNK)
        except BaseException as exc:
            record(f"endless-{tag}", f"{type(exc).__name__} after {sent}")
            started = time.monotonic()
            try:
                await send({"type": "http.response.body", "body": CHUNK, "more_body": True})
            except OSError:
                record(f"endless-again-{tag}", f"raised in {time.monotonic() - started:.3f}")
            raise
        return
    if path in ("/sleep", "/partial"):
        seconds = float(_arg(scope["query_string"], "s", "30"))
        if path == "/partial":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"begun", "more_body": True})
        try:
            await asyncio.sleep(seconds)
        except asyncio.CancelledError:
            record(f"sleep-{tag}", "cancelled")
            raise
        record(f"sleep-{tag}", "finished")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"late"})
        return
    if path == "/lazy":  # leaves the body unread a while first
        await asyncio.sleep(float(_arg(scope["query_string"], "s", "2")))
    size = 0  # /echo, and anything else: read the body, say how much came
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            record(f"echo-{tag}", f"disconnect after {size}")
            return
        size += len(message.get("body", b""))
        if not message.get("more_body"):
            break
    body = b"%d" % size
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % len(body))]})
    await send({"type": "http.response.body", "body": body})


class _Endless:
    """A WSGI body that never ends, and says when the server closes it."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.sent = 0

    def __iter__(self) -> Iterator[bytes]:
        while self.sent < 1 << 34:
            self.sent += len(CHUNK)
            yield CHUNK

    def close(self) -> None:
        record(f"wsgi-endless-{self.tag}", f"closed after {self.sent}")


def wsgi(environ: dict[str, Any], start_response: Any) -> Any:
    path, tag = environ["PATH_INFO"], _arg(environ["QUERY_STRING"], "tag", "x")
    if path == "/endless":
        start_response("200 OK", [])
        return _Endless(tag)
    if path == "/sleep":
        time.sleep(float(_arg(environ["QUERY_STRING"], "s", "3")))
        record(f"wsgi-sleep-{tag}", "returned")
        start_response("200 OK", [("Content-Length", "4")])
        return [b"late"]
    try:
        body = environ["wsgi.input"].read()
    except OSError as exc:
        record(f"wsgi-echo-{tag}", type(exc).__name__)
        raise
    start_response("200 OK", [("Content-Length", str(len(str(len(body)))))])
    return [str(len(body)).encode()]
