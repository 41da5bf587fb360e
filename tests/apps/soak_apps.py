"""The apps of the soak runs (scripts/soak, tests/test_soak.py): an ASGI app and a WSGI app with the same paths.

- ``GET /``: 200 ``ok``, the request that 1,000,000 keep-alive requests repeat.
- ``/tasks``: JSON ``{"tasks": N, "threads": M, ...}``, N the number of the server's event-loop tasks not
  yet done (this request's own task among them, as it is in every count), M the process's Python threads;
  also what memory is in use: Python's allocated blocks and glibc's heap, used and kept free (mallinfo2),
  which tell a leak (used grows) from the allocator keeping freed memory (RSS grows, used does not).
  ``?objects=1``: after a full collection, and with the server's live objects by type (monoceros's, uvloop's
  and asyncio's), so that a connection something still holds shows as its objects.
- ``/echo``: reads the whole body and answers its length (the body deadline and ``Expect: 100-continue``
  path: the server answers ``100 Continue`` only once the app reads).
- ``/slow?s=S``: answers a first chunk ``started``, sleeps S seconds (0.05), then ends with ``done``: a
  request whose app is still running when the client leaves.
- ``/big?kb=K``: K KiB (1024) in 64 KiB pieces (WSGI: yielded one by one; with ``list=1`` returned as a
  list, which the server joins), more than the socket buffers hold: a response the server is still writing
  when the client leaves.
- a WebSocket on any path (ASGI only): accept, then echo every message until the client leaves.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import ctypes
import gc
import json
import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

from lifespan_support import lifespan

Scope = dict[str, Any]

CHUNK = b"x" * 65536


def _query(query_string: str) -> dict[str, str]:
    return {k: v[-1] for k, v in parse_qs(query_string).items()}


class _MallInfo2(ctypes.Structure):
    """glibc's ``struct mallinfo2`` (2.33 and later), every field of it: it is returned by value."""

    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost"
        )
    ]  # fmt: skip


def _malloc_kib() -> tuple[int, int]:
    """glibc's heap: KiB allocated (from the arenas and mmapped) and KiB free but kept; -1 without mallinfo2."""
    try:
        mallinfo2 = ctypes.CDLL(None).mallinfo2
    except (AttributeError, OSError):
        return -1, -1
    mallinfo2.restype = _MallInfo2
    info = mallinfo2()
    return (info.uordblks + info.hblkhd) // 1024, info.fordblks // 1024


def _server_objects() -> dict[str, int]:
    """The server's live objects by type: monoceros's own and uvloop's (transports, timers, handles), after a
    full collection, so that what is left is what something still holds."""
    gc.collect()
    counts: dict[str, int] = {}
    for obj in gc.get_objects():
        kind = type(obj)
        if kind.__module__.startswith(("monoceros.", "uvloop.", "asyncio.")):
            name = f"{kind.__module__}.{kind.__qualname__}"
            counts[name] = counts.get(name, 0) + 1
    return counts


def _counts(tasks: int, query: dict[str, str]) -> bytes:
    counts: dict[str, Any] = {"tasks": tasks, "threads": threading.active_count()}
    if query.get("objects"):
        counts["objects"] = _server_objects()
    used, free = _malloc_kib()
    counts["blocks"] = sys.getallocatedblocks()  # Python's live memory blocks: objects and their buffers
    counts["malloc_used_kib"] = used
    counts["malloc_free_kib"] = free
    return json.dumps(counts).encode()


# -- ASGI ---------------------------------------------------------------------------------------------------


async def _read_body(receive: Any) -> int:
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return size
        size += len(message.get("body", b""))
        if not message.get("more_body", False):
            return size


async def _answer(send: Any, body: bytes) -> None:
    headers = [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _websocket(receive: Any, send: Any) -> None:
    if (await receive())["type"] != "websocket.connect":
        return
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] != "websocket.receive":
            return
        if message.get("text") is not None:
            await send({"type": "websocket.send", "text": message["text"]})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"]})


async def asgi_app(scope: Scope, receive: Any, send: Any) -> None:
    kind = scope["type"]
    if kind == "lifespan":
        await lifespan(receive, send)
        return
    if kind == "websocket":
        await _websocket(receive, send)
        return
    path = scope["path"]
    query = _query(scope["query_string"].decode("latin-1"))
    if path == "/tasks":
        await _read_body(receive)
        await _answer(send, _counts(len(asyncio.all_tasks()), query))
    elif path == "/echo":
        await _answer(send, b"%d" % await _read_body(receive))
    elif path == "/slow":
        await _read_body(receive)
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"started\n", "more_body": True})
        await asyncio.sleep(float(query.get("s", "0.05")))
        await send({"type": "http.response.body", "body": b"done\n"})
    elif path == "/big":
        await _read_body(receive)
        pieces = max(1, int(query.get("kb", "1024")) // 64)
        length = b"%d" % (pieces * len(CHUNK))
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", length)]})
        for _ in range(pieces - 1):
            await send({"type": "http.response.body", "body": CHUNK, "more_body": True})
        await send({"type": "http.response.body", "body": CHUNK})
    else:
        await _read_body(receive)
        await _answer(send, b"ok")


# -- WSGI ---------------------------------------------------------------------------------------------------

_LOOP: list[asyncio.AbstractEventLoop] = []


def _server_loop() -> asyncio.AbstractEventLoop:
    """The server's event loop, seen from a pool thread: a local of a frame on the main thread's stack (the
    worker's ``run``), else any running loop the collector knows of. Found once, then remembered."""
    if _LOOP:
        return _LOOP[0]
    frame = sys._current_frames().get(threading.main_thread().ident or 0)
    while frame is not None and not _LOOP:
        _LOOP.extend(v for v in frame.f_locals.values() if isinstance(v, asyncio.AbstractEventLoop))
        frame = frame.f_back
    if not _LOOP:
        _LOOP.extend(o for o in gc.get_objects() if isinstance(o, asyncio.AbstractEventLoop) and o.is_running())
    if not _LOOP:
        raise RuntimeError("no running event loop found in this process")
    return _LOOP[0]


def _loop_tasks() -> int:
    """The loop's tasks not yet done, counted on the loop's own thread (no task of its own for it)."""
    loop = _server_loop()
    result: concurrent.futures.Future[int] = concurrent.futures.Future()

    def count() -> None:
        result.set_result(len(asyncio.all_tasks(loop)))

    loop.call_soon_threadsafe(count)
    return result.result(timeout=10)


def _slow(seconds: float) -> Iterable[bytes]:
    yield b"started\n"
    time.sleep(seconds)
    yield b"done\n"


def _pieces(count: int) -> Iterable[bytes]:
    for _ in range(count):
        yield CHUNK


def wsgi_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    path = environ["PATH_INFO"]
    query = _query(environ.get("QUERY_STRING", ""))
    stream = environ["wsgi.input"]
    size = 0
    while True:
        data = stream.read(65536)
        if not data:
            break
        size += len(data)
    if path == "/tasks":
        body = _counts(_loop_tasks(), query)
    elif path == "/echo":
        body = b"%d" % size
    elif path == "/slow":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return _slow(float(query.get("s", "0.05")))
    elif path == "/big":  # streamed, as a large WSGI response is: the pool thread waits while the client is behind
        pieces = max(1, int(query.get("kb", "1024")) // 64)
        start_response("200 OK", [("Content-Length", str(pieces * len(CHUNK)))])
        return [CHUNK] * pieces if query.get("list") else _pieces(pieces)  # a list: the server joins it first
    else:
        body = b"ok"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
