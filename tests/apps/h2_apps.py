"""Apps for the HTTP/2 tests: a WSGI one (the ASGI ones are asgi_apps.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any


def wsgi(environ: dict[str, Any], start_response: Any) -> Any:
    path = environ["PATH_INFO"]
    if path == "/echo":  # the body back, read in pieces as it streams in (no Content-Length over HTTP/2)
        stream = environ["wsgi.input"]
        pieces = []
        while piece := stream.read(8192):
            pieces.append(piece)
        body = b"".join(pieces)
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return [body]
    if path == "/stream":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return _chunks(int(environ.get("QUERY_STRING", "").partition("=")[2] or 3))
    facts = {
        "protocol": environ["SERVER_PROTOCOL"],
        "host": environ.get("HTTP_HOST"),
        "method": environ["REQUEST_METHOD"],
        "path": path,
        "query": environ["QUERY_STRING"],
        "length": environ.get("CONTENT_LENGTH"),
        "body": len(environ["wsgi.input"].read()),
    }
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(facts).encode()]


def _chunks(count: int) -> Iterator[bytes]:
    for i in range(count):
        yield f"chunk-{i}\n".encode()
