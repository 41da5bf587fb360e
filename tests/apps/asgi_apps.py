"""Plain ASGI 3 test apps for the end-to-end suite (no framework, so what the tests see is the server).

``app`` routes on the path; every endpoint shows one behaviour the tests check on the wire or in a
record file (see e2e_record.py). Most take an ``id`` query parameter so tests sharing one server do not
read each other's records.
"""

from __future__ import annotations

import asyncio
import gc
import json
import sys
from typing import Any
from urllib.parse import parse_qs

from e2e_record import exists, jsonable, record

Scope = dict[str, Any]

PROGRESS: dict[str, int] = {}  # /big-stream progress by id, read through /progress


def _query(scope: Scope) -> dict[str, str]:
    return {k: v[-1] for k, v in parse_qs(scope["query_string"].decode("latin-1")).items()}


async def _read_body(receive: Any) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def _respond(
    send: Any, body: bytes, status: int = 200, content_type: bytes = b"text/plain", extra: Any = ()
) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode()), *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _json(send: Any, value: Any) -> None:
    await _respond(send, json.dumps(value).encode(), content_type=b"application/json")


# -- endpoints ----------------------------------------------------------------------------------------------


async def scope_view(scope: Scope, receive: Any, send: Any) -> None:
    """The whole scope as JSON (bytes as latin-1 text), plus the size of the body."""
    body = await _read_body(receive)
    view = {key: jsonable(value) for key, value in scope.items()}
    view["raw_path_type"] = type(scope["raw_path"]).__name__
    view["query_string_type"] = type(scope["query_string"]).__name__
    view["header_types"] = sorted({type(n).__name__ + "/" + type(v).__name__ for n, v in scope["headers"]})
    view["body_length"] = len(body)
    scope["state"]["mutated_by_a_request"] = True  # must not leak into the next request's state
    await _json(send, view)


async def echo(scope: Scope, receive: Any, send: Any) -> None:
    """The request body back, with a Content-Length."""
    body = await _read_body(receive)
    await _respond(
        send, body, content_type=b"application/octet-stream", extra=[(b"x-method", scope["method"].encode())]
    )


async def messages(scope: Scope, receive: Any, send: Any) -> None:
    """Every http.request message as [body length, more_body]; the bytes so far go to ``messages-<id>``."""
    ident = _query(scope).get("id", "")
    seen = []
    total = 0
    while True:
        message = await receive()
        assert message["type"] == "http.request", message
        seen.append([len(message.get("body", b"")), message.get("more_body", False)])
        total += len(message.get("body", b""))
        record(f"messages-{ident}", str(total))
        if not message.get("more_body", False):
            break
    await _json(send, seen)


async def stream(scope: Scope, receive: Any, send: Any) -> None:
    """``n`` body chunks without a Content-Length: the server must frame them."""
    await _read_body(receive)
    count = int(_query(scope).get("n", "3"))
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    for i in range(count):
        await send({"type": "http.response.body", "body": f"chunk-{i}\n".encode(), "more_body": True})
        await asyncio.sleep(0.01)
    await send({"type": "http.response.body", "body": b""})


async def read(scope: Scope, receive: Any, send: Any) -> None:
    body = await _read_body(receive)
    await _respond(send, b"read %d bytes" % len(body))


async def noread(scope: Scope, receive: Any, send: Any) -> None:
    """Answers without ever calling receive()."""
    await _respond(send, b"did not read the body")


async def slow(scope: Scope, receive: Any, send: Any) -> None:
    query = _query(scope)
    record(f"slow-started-{query.get('id', '')}")
    await asyncio.sleep(float(query.get("s", "1")))
    await _respond(send, b"slept")
    record(f"slow-done-{query.get('id', '')}")


async def mixed_stream(scope: Scope, receive: Any, send: Any) -> None:
    """Large and small pieces in one go, then a pause before the end: order and promptness of coalescing."""
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    for piece in (b"A" * 20000, b"b" * 10, b"C" * 30000, b"D" * 40000):
        await send({"type": "http.response.body", "body": piece, "more_body": True})
    await asyncio.sleep(1.0)
    await send({"type": "http.response.body", "body": b"end", "more_body": False})


async def background(scope: Scope, receive: Any, send: Any) -> None:
    """Answers at once, then goes on working, as a Starlette BackgroundTask does after the response."""
    ident = _query(scope).get("id", "")
    await _respond(send, b"answered")
    record(f"background-started-{ident}")
    await asyncio.sleep(float(_query(scope).get("s", "0.7")))
    record(f"background-done-{ident}")


async def disconnect(scope: Scope, receive: Any, send: Any) -> None:
    """Waits for http.disconnect, then tries to answer anyway and records what send() raised."""
    ident = _query(scope).get("id", "")
    first = await receive()
    record(f"waiting-{ident}", first["type"])
    message = await receive()
    record(f"disconnect-{ident}", message["type"])
    stage = "start"
    try:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        stage = "body"
        await send({"type": "http.response.body", "body": b"too late"})
    except Exception as exc:
        record(f"send-error-{ident}", f"{stage} {type(exc).__name__} oserror={isinstance(exc, OSError)}")
        raise
    record(f"send-error-{ident}", "no error")


async def raise_before(scope: Scope, receive: Any, send: Any) -> None:
    raise RuntimeError("boom before the response started")


async def raise_after(scope: Scope, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"partial body", "more_body": True})
    await asyncio.sleep(0.05)
    raise RuntimeError("boom after the response started")


async def misuse_body_first(scope: Scope, receive: Any, send: Any) -> None:
    await send({"type": "http.response.body", "body": b"body before start"})


async def misuse_wrong_type(scope: Scope, receive: Any, send: Any) -> None:
    await send({"type": "http.response.begin", "status": 200, "headers": []})


async def misuse_status_type(scope: Scope, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": "200", "headers": []})


async def upload_gated(scope: Scope, receive: Any, send: Any) -> None:
    """Does not read the body until the test creates the record ``go-<id>``; then counts it."""
    ident = _query(scope).get("id", "")
    record(f"upload-waiting-{ident}")
    for _ in range(600):
        if exists(f"go-{ident}"):
            break
        await asyncio.sleep(0.05)
    total = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        total += len(message.get("body", b""))
        if not message.get("more_body", False):
            break
    record(f"upload-total-{ident}", str(total))
    await _respond(send, str(total).encode())


async def big_stream(scope: Scope, receive: Any, send: Any) -> None:
    """Streams ``mb`` MiB in 64 KiB chunks, publishing how far it got in PROGRESS[id]."""
    query = _query(scope)
    ident = query.get("id", "")
    total = int(query.get("mb", "64")) << 20
    chunk = b"x" * 65536
    PROGRESS[ident] = 0
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", str(total).encode())]})
    sent = 0
    while sent < total:
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
        sent += len(chunk)
        PROGRESS[ident] = sent
    await send({"type": "http.response.body", "body": b""})


async def progress(scope: Scope, receive: Any, send: Any) -> None:
    await _json(send, PROGRESS.get(_query(scope).get("id", ""), -1))


async def smuggled(scope: Scope, receive: Any, send: Any) -> None:
    """Must never be reached by a request smuggled inside another one."""
    record(f"smuggled-{_query(scope).get('id', '')}", scope["method"])
    await _respond(send, b"smuggled request served")


async def own_server_header(scope: Scope, receive: Any, send: Any) -> None:
    await _respond(send, b"ok", extra=[(b"server", b"custom-app")])


async def garbage(scope: Scope, receive: Any, send: Any) -> None:
    """``?op=frozen``: how many objects startup left frozen (--gc-freeze). ``?op=arm``: keep what the
    cyclic collector finds from now on. ``?op=count``: collect, answer which of the objects found were
    monoceros's or its parser's (by type name), and stop keeping them."""
    if _query(scope).get("op") == "frozen":
        await _json(send, gc.get_freeze_count())
        return
    if _query(scope).get("op") == "arm":
        gc.collect()
        gc.garbage.clear()
        gc.set_debug(gc.DEBUG_SAVEALL)
        await _json(send, "armed")
        return
    gc.collect()
    found = sorted({type(o).__module__ + "." + type(o).__name__ for o in gc.garbage})
    ours = [name for name in found if name.startswith(("monoceros.", "httptools."))]
    gc.set_debug(0)
    gc.garbage.clear()
    await _json(send, ours)


async def trailers(scope: Scope, receive: Any, send: Any) -> None:
    """The trailers extension: a chunked body, then two trailer fields in two messages. ``?length=1``: the app
    gives a Content-Length too, so HTTP/1.1 has nowhere to put the trailers."""
    await _read_body(receive)
    headers = [(b"content-type", b"text/plain")]
    if _query(scope).get("length"):
        headers.append((b"content-length", b"10"))
    await send({"type": "http.response.start", "status": 200, "headers": headers, "trailers": True})
    await send({"type": "http.response.body", "body": b"hello", "more_body": True})
    await send({"type": "http.response.body", "body": b"world"})
    await send({"type": "http.response.trailers", "headers": [(b"x-checksum", b"abc")], "more_trailers": True})
    await send({"type": "http.response.trailers", "headers": [(b"x-count", b"2")]})


async def print_view(scope: Scope, receive: Any, send: Any) -> None:
    """``?text=T``: print T to standard output and error, as an app's debugging prints do."""
    text = _query(scope).get("text", "")
    print(text, flush=True)
    print(text + "-stderr", file=sys.stderr, flush=True)
    await _respond(send, b"printed")


async def default(scope: Scope, receive: Any, send: Any) -> None:
    await _read_body(receive)
    await _respond(send, b"ok " + scope["path"].encode())


ROUTES = {
    "/scope": scope_view,
    "/echo": echo,
    "/messages": messages,
    "/stream": stream,
    "/read": read,
    "/noread": noread,
    "/slow": slow,
    "/background": background,
    "/mixed-stream": mixed_stream,
    "/disconnect": disconnect,
    "/raise-before": raise_before,
    "/raise-after": raise_after,
    "/misuse-body-first": misuse_body_first,
    "/misuse-wrong-type": misuse_wrong_type,
    "/misuse-status-type": misuse_status_type,
    "/upload-gated": upload_gated,
    "/big-stream": big_stream,
    "/progress": progress,
    "/smuggled": smuggled,
    "/own-server-header": own_server_header,
    "/garbage": garbage,
    "/print": print_view,
    "/trailers": trailers,
}


async def lifespan(scope: Scope, receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            scope["state"]["greeting"] = "hello from lifespan"
            record("lifespan-startup")
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            record("lifespan-shutdown")
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope: Scope, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await lifespan(scope, receive, send)
        return
    assert scope["type"] == "http"
    path = scope["path"][len(scope["root_path"]) :] if scope["root_path"] else scope["path"]
    route = "/" + path.split("/")[1]  # /scope/anything is still /scope
    await ROUTES.get(route, default)(scope, receive, send)


class ASGI2App:
    """An ASGI 2 (double-callable) app: instantiated with the scope, then called with receive and send."""

    def __init__(self, scope: Scope) -> None:
        self.scope = scope

    async def __call__(self, receive: Any, send: Any) -> None:
        if self.scope["type"] != "http":
            raise ValueError(f"ASGI2App cannot handle {self.scope['type']!r}")  # no lifespan support
        body = await _read_body(receive)
        await _respond(send, b"asgi2 class " + self.scope["path"].encode() + b" " + body)


def asgi2_function(scope: Scope) -> Any:
    """An ASGI 2 app as a function that returns the per-request coroutine function."""
    if scope["type"] != "http":
        raise ValueError(f"asgi2_function cannot handle {scope['type']!r}")

    async def instance(receive: Any, send: Any) -> None:
        body = await _read_body(receive)
        await _respond(send, b"asgi2 function " + scope["path"].encode() + b" " + body)

    return instance


async def returns_on_lifespan(scope: Scope, receive: Any, send: Any) -> None:
    """Ignores lifespan by returning at once, as many minimal apps do."""
    if scope["type"] != "http":
        return
    await _read_body(receive)
    await _respond(send, b"served without lifespan")


async def no_lifespan(scope: Scope, receive: Any, send: Any) -> None:
    """An app that predates lifespan: it refuses any scope but http."""
    if scope["type"] != "http":
        raise ValueError(f"unsupported scope type {scope['type']!r}")
    await _read_body(receive)
    await _respond(send, b"served without lifespan")


async def startup_failed(scope: Scope, receive: Any, send: Any) -> None:
    """Reports lifespan.startup.failed with a message."""
    if scope["type"] == "lifespan":
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "database e2e-db is unreachable"})
        return
    await _respond(send, b"should not serve")


async def startup_raises(scope: Scope, receive: Any, send: Any) -> None:
    """Raises during lifespan startup."""
    if scope["type"] == "lifespan":
        await receive()
        raise RuntimeError("cannot connect to the e2e cache")
    await _read_body(receive)
    await _respond(send, b"served although startup raised")
