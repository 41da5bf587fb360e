"""The built-in demo app (ASGI 3): what a new user sees after ``monoceros``.

``/`` shows the server version, the interface and protocol, and the request as the
server parsed it. ``/echo`` answers any method with a JSON description of the
request, including its body, so it doubles as a smoke test for clients. ``/ws`` is a
WebSocket echo, which the page itself talks to.
"""

from __future__ import annotations

import html
import json
from typing import Any

from .._version import __version__

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>monoceros {version}</title>
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem}}
table{{border-collapse:collapse}}td,th{{text-align:left;padding:.2rem .8rem .2rem 0;vertical-align:top}}
code{{background:#f3f3f3;padding:0 .2rem}}</style></head>
<body><h1>monoceros {version}</h1>
<p>It works. This is the built-in demo app; serve your own with <code>monoceros module:app</code>.</p>
<table>
<tr><th>Interface</th><td>ASGI {asgi}</td></tr>
<tr><th>Protocol</th><td>HTTP/{http_version} ({scheme})</td></tr>
<tr><th>Request</th><td><code>{method} {path}</code></td></tr>
<tr><th>Client</th><td>{client}</td></tr>
<tr><th>Server</th><td>{server}</td></tr>
</table>
<h2>Request headers</h2>
<table>{headers}</table>
<p>Try <code>curl -d hello {echo_url}</code> for the echo endpoint.</p>
<h2>WebSocket</h2>
<p><code>{ws_url}</code> echoes every message: <span id="ws">connecting…</span></p>
<script>
const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws");
ws.onopen = () => ws.send("hello over WebSocket");
ws.onmessage = (e) => {{ document.getElementById("ws").textContent = "echoed: " + e.data; }};
ws.onerror = () => {{ document.getElementById("ws").textContent = "could not connect"; }};
</script>
</body></html>
"""


def _text(value: bytes) -> str:
    return value.decode("latin-1")


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


async def _respond(send: Any, status: int, content_type: bytes, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", content_type), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _websocket_echo(receive: Any, send: Any) -> None:
    """Accept, then send every message back as it came, until the client leaves."""
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("text") is not None:
            await send({"type": "websocket.send", "text": message["text"]})
        else:
            await send({"type": "websocket.send", "bytes": message.get("bytes") or b""})


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The demo app."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] == "websocket":
        await _websocket_echo(receive, send)
        return
    if scope["type"] != "http":
        return
    path = scope["path"][len(scope.get("root_path", "")) :] or "/"
    if path == "/echo":
        body = await _read_body(receive)
        payload = {
            "method": scope["method"],
            "path": scope["path"],
            "query_string": _text(scope["query_string"]),
            "http_version": scope["http_version"],
            "scheme": scope["scheme"],
            "client": scope["client"],
            "headers": [[_text(k), _text(v)] for k, v in scope["headers"]],
            "body": body.decode("utf-8", "replace"),
        }
        await _respond(send, 200, b"application/json", json.dumps(payload, indent=1).encode() + b"\n")
        return
    await _read_body(receive)
    if path != "/":
        await _respond(send, 404, b"text/plain; charset=utf-8", b"Not Found\n")
        return
    host = dict(scope["headers"]).get(b"host", b"localhost").decode("latin-1")
    ws_scheme = "wss" if scope["scheme"] == "https" else "ws"
    page = _PAGE.format(
        version=__version__,
        asgi=scope["asgi"].get("version", "3.0"),
        http_version=scope["http_version"],
        scheme=scope["scheme"],
        method=html.escape(scope["method"]),
        path=html.escape(scope["path"] + ("?" + _text(scope["query_string"]) if scope["query_string"] else "")),
        client=html.escape(f"{scope['client'][0]}:{scope['client'][1]}" if scope["client"] else "unix socket"),
        server=html.escape(str(scope["server"])),
        headers="".join(
            f"<tr><th>{html.escape(_text(k))}</th><td>{html.escape(_text(v))}</td></tr>" for k, v in scope["headers"]
        ),
        echo_url=html.escape(f"{scope['scheme']}://{host}/echo"),
        ws_url=html.escape(f"{ws_scheme}://{host}/ws"),
    )
    await _respond(send, 200, b"text/html; charset=utf-8", page.encode())
