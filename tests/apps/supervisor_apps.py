"""An ASGI app for the supervisor's end-to-end tests: every plain response is the PID of the worker that
served it, so a test can tell which process answered and when a worker was replaced.

``/slow?s=N&id=X`` sleeps without blocking (and records ``slow-started-X``), ``/block?s=N`` blocks the
event loop with ``time.sleep`` (what the master's --timeout is for), ``/alloc?mb=N`` keeps N MiB of
touched memory, ``/cwd`` answers the working directory.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any
from urllib.parse import parse_qs

from e2e_record import record
from lifespan_support import lifespan

HOARD: list[bytes] = []  # /alloc keeps its memory here, so the worker's RSS stays up


def _query(scope: dict[str, Any]) -> dict[str, str]:
    return {k: v[-1] for k, v in parse_qs(scope["query_string"].decode("latin-1")).items()}


def blocking_sleep(seconds: float) -> None:
    """Blocks the whole event loop; the faulthandler traceback of an aborted worker names this function."""
    time.sleep(seconds)


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await lifespan(receive, send)
        return
    while (await receive()).get("more_body", False):
        pass
    query = _query(scope)
    path = scope["path"]
    body = str(os.getpid()).encode()
    if path == "/slow":
        record(f"slow-started-{query.get('id', '')}")
        await asyncio.sleep(float(query.get("s", "1")))
        body = b"slept"
    elif path == "/block":
        blocking_sleep(float(query.get("s", "30")))
    elif path == "/alloc":
        HOARD.append(b"\x01" * (int(query.get("mb", "1")) << 20))  # written, so every page is resident
    elif path == "/cwd":
        body = os.getcwd().encode()
    headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})
