"""Constants and the per-request JSON document shared by the ASGI and WSGI bench apps.

Both apps answer the same paths with the same bytes, so every server is measured
doing the same work:

  GET  /        b"Hello, world!" (text/plain, Content-Length)
  POST /echo    reads the whole body, answers its length in decimal
  GET  /json    a ~1 KB JSON document built per request with json.dumps
  GET  /stream  1 MiB streamed in 16 KiB chunks, no Content-Length (chunked)
  GET  /sleep   b"Slept." after sleeping 0.5 s (asyncio.sleep in ASGI, time.sleep in WSGI): bench/http2.py
  anything else 404
"""

import json

HELLO = b"Hello, world!"
NOT_FOUND = b"Not Found"
STREAM_CHUNK = b"x" * (16 * 1024)
STREAM_CHUNKS = 64  # 64 x 16 KiB = 1 MiB
STREAM_TOTAL = len(STREAM_CHUNK) * STREAM_CHUNKS
SLEEP_SECONDS = 0.5
SLEPT = b"Slept."


def json_document(method: str, path: str) -> bytes:
    """Build a fresh dict and serialise it: about 1 KB of JSON."""
    doc = {
        "method": method,
        "path": path,
        "ok": True,
        "total": 8,
        "items": [
            {
                "id": i,
                "name": f"item-{i:04d}",
                "price": round(9.99 + i * 1.25, 2),
                "in_stock": i % 3 != 0,
                "tags": ["alpha", "beta", "gamma"][: 1 + i % 3],
                "dims": {"w": i * 2, "h": i * 3},
            }
            for i in range(8)
        ],
    }
    return json.dumps(doc).encode()
