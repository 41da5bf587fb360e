"""Per-request CPU cost of monoceros' own Python, without sockets: python bench/micro.py [N [KIND ...]].

The real connection driver, protocol and adapters run on a real event loop, fed
requests through ``data_received``; only the transport is a stub that counts writes.
What remains is what monoceros itself spends per request, so an optimisation can be
judged in microseconds even on a noisy machine (the wrk runs in run.py cannot tell
a 3 % change from noise). It asserts nothing about speed; it prints.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
from typing import Any

from monoceros.access_log import AccessLogger
from monoceros.adapters.asgi_http import ASGIHTTPHandler
from monoceros.adapters.asgi_websocket import ASGIWebSocketHandler
from monoceros.adapters.wsgi import WSGIHandler
from monoceros.config import Config
from monoceros.logs import configure_logging
from monoceros.server.http11 import HTTP11Transport
from monoceros.server.metrics import Tally
from monoceros.server.state import ServerState
from monoceros.server.worker import new_event_loop

HELLO = b"Hello, world!"
HEADERS = [(b"content-type", b"text/plain"), (b"content-length", str(len(HELLO)).encode())]
REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nUser-Agent: wrk\r\nAccept: */*\r\n\r\n"
CLOSE_REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nConnection: close\r\n\r\n"
WS_HANDSHAKE = (
    b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)
# A masked binary frame of 64 bytes, as ws_echo.py's client sends (mask 0x37fa213d).
_MASK = b"\x37\xfa\x21\x3d"
WS_FRAME = b"\x82\xc0" + _MASK + bytes(b ^ _MASK[i % 4] for i, b in enumerate(b"m" * 64))


async def asgi_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "websocket":  # accept, then echo every message (bench/apps/asgi_app.py does the same)
        await receive()
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            if message["type"] != "websocket.receive":
                return
            await send({"type": "websocket.send", "bytes": message.get("bytes"), "text": message.get("text")})
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": HELLO})


def wsgi_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(HELLO)))])
    return [HELLO]


class StubTransport:
    """Just enough of asyncio.Transport: counts what would have gone to the socket. ``close`` tells the
    protocol it is gone on the next loop iteration, as asyncio's and uvloop's transports do."""

    def __init__(self, protocol: Any = None) -> None:
        self.writes = 0
        self.protocol = protocol
        self.closed = False
        self.wrote: asyncio.Event | None = None  # set on every write, when a pool thread does the work

    def write(self, data: bytes) -> None:
        self.writes += 1
        if self.wrote is not None:
            self.wrote.set()

    def writelines(self, data: Any) -> None:
        self.writes += 1
        if self.wrote is not None:
            self.wrote.set()

    def set_protocol(self, protocol: Any) -> None:
        self.protocol = protocol

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8000)}.get(name, default)

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        if not self.closed and self.protocol is not None:
            self.closed = True
            asyncio.get_running_loop().call_soon(self._lost)

    def _lost(self) -> None:
        self.protocol.connection_lost(None)
        self.protocol = None  # as uvloop's transports do: no cycle left behind

    def abort(self) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        pass


async def run(kind: str, n: int) -> float:
    """Microseconds per request; ``kind`` is asgi, wsgi-inline or wsgi, with ``-close`` for a new
    connection per request (``Connection: close``: setup and teardown counted too), and ``+metrics`` for the
    metrics --admin-bind turns on; ``ws`` is one WebSocket echo of a 64-byte message, one at a time
    (ws_echo.py's latency mode)."""
    loop = asyncio.get_running_loop()
    if kind == "ws":
        return await _ws(loop, n)
    metrics = kind.endswith("+metrics")  # as with --admin-bind: the worker counts each request
    kind = kind.removesuffix("+metrics")
    access = kind.endswith("+access")  # the access log on, written to /dev/null
    kind = kind.removesuffix("+access")
    close = kind.endswith("-close")
    kind = kind.removesuffix("-close")
    config = Config(access_log=False, wsgi_mode="inline" if kind == "wsgi-inline" else "threads")
    handler: Any = ASGIHTTPHandler(asgi_app, config, {}) if kind == "asgi" else WSGIHandler(wsgi_app, config, loop)
    access_log = None
    if access:
        configure_logging(Config(access_logfile=os.devnull))
        access_log = AccessLogger(config)
    tally = Tally(access_log) if metrics else None
    state = ServerState(config, loop, handler, tally or access_log, None)
    if tally is not None:
        state.tally, tally.connections = tally, state.connections
    # With a pool thread doing the app's work, sleep(0) would spin the loop meanwhile (and valgrind, which
    # runs one thread at a time, would count the spinning): wait for the response's write instead.
    pooled = kind == "wsgi"
    if close:
        start = time.perf_counter()
        for _ in range(n):
            conn = HTTP11Transport(state, "http")
            stub = StubTransport(conn)
            stub.wrote = asyncio.Event() if pooled else None
            conn.connection_made(stub)  # type: ignore[arg-type]
            conn.data_received(CLOSE_REQUEST)
            if stub.wrote is not None:
                await stub.wrote.wait()
            while not conn.lost:  # until the response is written and the connection gone
                await asyncio.sleep(0)
            assert stub.writes == 1, stub.writes
        elapsed = time.perf_counter() - start
        if isinstance(handler, WSGIHandler):
            handler.close()
        return elapsed / n * 1e6
    conn = HTTP11Transport(state, "http")
    transport = StubTransport()
    wrote = transport.wrote = asyncio.Event() if pooled else None
    conn.connection_made(transport)  # type: ignore[arg-type]
    start = time.perf_counter()
    for _ in range(n):
        conn.data_received(REQUEST)
        if wrote is not None:
            await wrote.wait()
            wrote.clear()
        while conn.exchange is not None:  # until the response is complete
            await asyncio.sleep(0)
    if tally is not None:
        tally.snapshot()  # once a tick in a worker: once a run here, a fair share for a run of a second or so
    elapsed = time.perf_counter() - start
    assert transport.writes == n, (transport.writes, n)
    if isinstance(handler, WSGIHandler):
        handler.close()
    return elapsed / n * 1e6


async def _ws(loop: asyncio.AbstractEventLoop, n: int) -> float:
    config = Config(access_log=False)
    state = ServerState(config, loop, ASGIHTTPHandler(asgi_app, config, {}), None, None)
    state.ws_handler = ASGIWebSocketHandler(asgi_app, config, {})
    conn = HTTP11Transport(state, "http")
    transport = StubTransport(conn)
    wrote = transport.wrote = asyncio.Event()
    conn.connection_made(transport)  # type: ignore[arg-type]
    conn.data_received(WS_HANDSHAKE)
    await wrote.wait()  # the 101
    ws = transport.protocol  # the hand-over gave the transport to the WebSocket connection
    assert ws is not None and transport.writes == 1, transport.writes
    wrote.clear()
    start = time.perf_counter()
    for _ in range(n):
        ws.data_received(WS_FRAME)
        await wrote.wait()
        wrote.clear()
    elapsed = time.perf_counter() - start
    assert transport.writes == n + 1, (transport.writes, n)
    ws.connection_lost(None)  # the client goes: the app's receive says so, and it returns
    for _ in range(100):
        if not ws.busy:
            break
        await asyncio.sleep(0)
    return elapsed / n * 1e6


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
    kinds = sys.argv[2:] or ["asgi", "wsgi-inline", "wsgi", "asgi-close", "wsgi-inline-close"]
    for kind in kinds:
        loop = new_event_loop("auto")
        try:
            count = n // 5 if kind in ("wsgi", "wsgi-close") else n  # the pool is slower: keep the run short
            runs = [loop.run_until_complete(run(kind, count)) for _ in range(5)]
        finally:
            loop.close()
        print(f"{kind:12s} {statistics.median(runs):6.2f} µs/request (median of 5; min {min(runs):.2f})")


if __name__ == "__main__":
    main()
