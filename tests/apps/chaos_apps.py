"""The apps scripts/chaos serves, ASGI (``app``) and WSGI (``wsgi_app``): each answers a GET with the PID of the
worker that served it, after ``?ms=N`` milliseconds of sleep (without blocking the event loop, or in the WSGI
thread pool), so that under load a worker always has requests in flight when a signal arrives.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

from lifespan_support import lifespan


def _delay(query: str) -> float:
    values = parse_qs(query).get("ms")
    return float(values[-1]) / 1000 if values else 0.0


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await lifespan(receive, send)
        return
    while (await receive()).get("more_body", False):
        pass
    delay = _delay(scope["query_string"].decode("latin-1"))
    if delay:
        await asyncio.sleep(delay)
    body = str(os.getpid()).encode()
    headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def wsgi_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    environ["wsgi.input"].read()
    delay = _delay(environ.get("QUERY_STRING", ""))
    if delay:
        time.sleep(delay)
    body = str(os.getpid()).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
