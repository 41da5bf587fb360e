"""Per-request CPU cost of monoceros' HTTP/2, without sockets: python bench/micro_http2.py [N [KIND ...]].

As bench/micro.py does for HTTP/1.1: the real HTTP/2 driver, engine and adapters run on a real event loop, and
only the transport is a stub. The requests are h2load's (GET / with its four header fields), encoded once
beforehand by an ``h2`` client, and fed 16 at a time as h2load ``-m16`` sends them; the responses are hello
world. KIND is ``asgi``, ``wsgi-inline`` or ``wsgi`` (the pool) with the engine tier after a colon:
``asgi:glue``, ``asgi:abi``, ``asgi:h2``. Add ``--profile`` to print where the time goes (cProfile, the top
25 by own time).
"""

from __future__ import annotations

import asyncio
import cProfile
import pstats
import statistics
import sys
import time
from typing import Any

import h2.config
import h2.connection
import h2.settings
from micro import StubTransport, asgi_app, wsgi_app

from monoceros.adapters.asgi_http import ASGIHTTPHandler
from monoceros.adapters.wsgi import WSGIHandler
from monoceros.config import Config
from monoceros.protocols.http2 import HTTP2Settings
from monoceros.protocols.http2_engines import engine_factory
from monoceros.server.handover import Handover
from monoceros.server.http2 import HTTP2Transport
from monoceros.server.state import HTTP2Service, ServerState
from monoceros.server.worker import new_event_loop

BATCH = 16
TIERS = {"glue": "nghttp2", "abi": "nghttp2-abi", "h2": "h2"}
REQUEST = [(":method", "GET"), (":scheme", "http"), (":authority", "127.0.0.1:8000"), (":path", "/"),
           ("user-agent", "h2load nghttp2/1.52.0")]  # fmt: skip


def client_bytes(n: int) -> tuple[bytes, list[bytes]]:
    """The preface with huge windows (so no WINDOW_UPDATE is needed), then ``n`` requests in batches."""
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
    client.local_settings = h2.settings.Settings(
        client=True, initial_values={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 2**31 - 1}
    )
    client.initiate_connection()
    client.increment_flow_control_window(2**31 - 1 - 65535)
    preface = client.data_to_send()
    batches = []
    sid = 1
    for _ in range(0, n, BATCH):
        for _ in range(BATCH):
            client.send_headers(sid, REQUEST, end_stream=True)
            sid += 2
        batches.append(client.data_to_send())
    return preface, batches


async def run(kind: str, n: int, profile: cProfile.Profile | None = None) -> float:
    interface, _, tier = kind.partition(":")
    loop = asyncio.get_running_loop()
    config = Config(access_log=False, wsgi_mode="inline" if interface == "wsgi-inline" else "threads")
    handler: Any = ASGIHTTPHandler(asgi_app, config, {}) if interface == "asgi" else WSGIHandler(wsgi_app, config, loop)
    state = ServerState(config, loop, handler, None, None)
    make, _ = engine_factory(TIERS[tier or "glue"])
    settings = HTTP2Settings(100, 65535, 1 << 20, 16384, 65536, 100, False, 1000, 33.0)
    state.http2 = HTTP2Service(make, settings, 0, tier, HTTP2Transport)
    preface, batches = client_bytes(n)
    transport = StubTransport()
    conn = HTTP2Transport(
        Handover(state, loop, transport, None, preface, None, None, "http", {}, False, False, None)  # type: ignore[arg-type]
    )
    transport.protocol = conn
    conn.start()
    await asyncio.sleep(0)
    if profile is not None:
        profile.enable()
    start = time.perf_counter()
    for batch in batches:
        conn.data_received(batch)
        while conn.streams or conn._running:  # until every response of the batch is complete
            await asyncio.sleep(0)
    elapsed = time.perf_counter() - start
    if profile is not None:
        profile.disable()
    conn.connection_lost(None)
    return elapsed / (len(batches) * BATCH) * 1e6


def main() -> None:
    args = [a for a in sys.argv[1:] if a != "--profile"]
    n = int(args[0]) if args else 32_000
    kinds = args[1:] or ["asgi:glue", "asgi:abi", "asgi:h2", "wsgi-inline:glue", "wsgi-inline:abi"]
    for kind in kinds:
        loop = new_event_loop("auto")
        profile = cProfile.Profile() if "--profile" in sys.argv else None
        try:
            count = n // 8 if kind.endswith(":h2") else n  # h2 is slow: keep its run short
            runs = [loop.run_until_complete(run(kind, count, profile if i == 0 else None)) for i in range(5)]
        finally:
            loop.close()
        print(f"{kind:18s} {statistics.median(runs):6.2f} µs/request (median of 5; min {min(runs):.2f})")
        if profile is not None:
            pstats.Stats(profile).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()
