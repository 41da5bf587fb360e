"""ASGI 3 HTTP: turns an :class:`Exchange` into ``app(scope, receive, send)``.

Spec: https://asgi.readthedocs.io/en/latest/specs/www.html (HTTP, version 2.4).
ASGI 2 apps are wrapped by :func:`asgi2_to_asgi3`. The request body is streamed
through ``receive`` in the pieces the client sent; it is never buffered whole.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import unquote

from ..config import Config
from ..errors import ASGIProtocolError, ClientDisconnected
from .exchange import Exchange, fail
from .websocket_channel import WebSocketChannel

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

log = logging.getLogger("monoceros.error")

ASGI_VERSION = {"version": "3.0", "spec_version": "2.4"}
_DISCONNECT = {"type": "http.disconnect"}


def asgi2_to_asgi3(app: Callable[[Scope], Callable[[Receive, Send], Awaitable[None]]]) -> ASGIApp:
    """Wrap an ASGI 2 (double-callable) app as ASGI 3."""

    async def asgi3(scope: Scope, receive: Receive, send: Send) -> None:
        await app(scope)(receive, send)

    return asgi3


def decode_path(raw: bytes) -> str:
    """Percent-decode a request path into text, as the ASGI ``path`` and Django/Starlette expect."""
    if 0x25 not in raw:  # "%"; an int operand skips bytes.__contains__'s failed int conversion
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError:
            return raw.decode("utf-8", "replace")
    return unquote(raw.decode("latin-1"))


class ASGIHTTPHandler:
    """Runs one ASGI app for every HTTP exchange of a worker."""

    def __init__(self, app: ASGIApp, config: Config, state: dict[str, Any]) -> None:
        self.app = app
        self.root_path = config.root_path
        self._raw_root = config.root_path.encode("utf-8")
        self.state = state

    def scope(self, kind: str, conn: Exchange | WebSocketChannel) -> dict[str, Any]:
        """The scope keys HTTP and WebSocket share, for one request or handshake."""
        request = conn.request
        raw_path = request.path
        root = self.root_path
        return {
            "type": kind,
            "asgi": ASGI_VERSION,
            "http_version": request.http_version,
            "server": conn.server,
            "client": conn.client,
            "scheme": conn.scheme,
            "method": request.method,
            "root_path": root,
            "path": root + decode_path(raw_path) if root else decode_path(raw_path),
            "raw_path": self._raw_root + raw_path if root else raw_path,
            "query_string": request.query,
            "headers": request.headers,
            "state": self.state.copy(),
            "extensions": conn.extensions,
        }

    async def __call__(self, exchange: Exchange) -> None:
        scope = self.scope("http", exchange)
        cycle = _Cycle(exchange)
        try:
            await self.app(scope, cycle.receive, cycle.send)
        except asyncio.CancelledError:
            await fail(exchange)
            raise
        except BaseException as exc:  # the app's failure must not take the worker down
            if isinstance(exc, ClientDisconnected) and exchange.disconnected:
                return  # the app noticed the client left: nothing to report
            exchange.log_error("Exception in ASGI application", exc)
            await fail(exchange)
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
        else:
            # (A client that left, or broke off its body, is owed no response.)
            if not exchange.response_started:
                if not exchange.disconnected:
                    exchange.log_error("ASGI callable returned without starting a response")
                    await fail(exchange)
            elif not cycle.finished and not exchange.disconnected:
                exchange.log_error("ASGI callable returned without completing the response")
                exchange.abort()


class _Cycle:
    """The ``receive`` and ``send`` callables of one request, and the ASGI message order they enforce."""

    __slots__ = ("body_done", "exchange", "finished", "started", "trailers")

    def __init__(self, exchange: Exchange) -> None:
        self.exchange = exchange
        self.body_done = False
        self.started = False
        self.trailers: list[tuple[bytes, bytes]] | None = None  # promised (http.response.trailers): collected here
        self.finished = False

    async def receive(self) -> Message:
        exchange = self.exchange
        if not self.body_done:
            try:
                body, more = await exchange.receive()
            except ClientDisconnected:
                self.body_done = True
                return dict(_DISCONNECT)
            if not more:
                self.body_done = True
            return {"type": "http.request", "body": body, "more_body": more}
        await exchange.wait_disconnect()
        return dict(_DISCONNECT)

    async def send(self, message: Message) -> None:
        try:
            kind = message["type"]
        except (KeyError, TypeError):
            raise ASGIProtocolError(f"ASGI message must be a dict with a 'type' key, got {message!r}") from None
        if not self.started:
            if kind != "http.response.start":
                raise ASGIProtocolError(f"Expected ASGI message 'http.response.start', but got {kind!r}.")
            status, headers = _response_start(message)
            if self.exchange.disconnected:
                # ASGI 2.4: send() on a closed connection raises an OSError, http.response.start included;
                # otherwise an app that answers after http.disconnect would learn nothing until its body.
                raise ClientDisconnected("client disconnected")
            try:
                self.exchange.start_response(status, headers)
            except ValueError as exc:
                raise ASGIProtocolError(f"invalid 'http.response.start': {exc}") from None
            if status >= 200:
                self.started = True
                if message.get("trailers"):
                    self.trailers = []
        elif not self.finished:
            if kind != "http.response.body":
                if kind == "http.response.pathsend":
                    self.finished = True
                    await _send_path(self.exchange, message)
                    return
                if kind == "http.response.trailers" and self.trailers is not None:
                    await self._trailers(message)
                    return
                raise ASGIProtocolError(f"Expected ASGI message 'http.response.body', but got {kind!r}.")
            body = message.get("body", b"")
            if not isinstance(body, (bytes, bytearray, memoryview)):
                raise ASGIProtocolError(f"'http.response.body' body must be bytes, got {type(body).__name__}")
            more = bool(message.get("more_body", False))
            if not more:
                if self.trailers is not None:
                    more = True  # the body ends, the trailers promised at the start end the response
                else:
                    self.finished = True
            try:
                await self.exchange.send(bytes(body) if type(body) is not bytes else body, more)
            except ValueError as exc:
                raise ASGIProtocolError(str(exc)) from None
        elif self.exchange.disconnected:
            raise ClientDisconnected("client disconnected")
        else:
            raise ASGIProtocolError(f"Unexpected ASGI message {kind!r} sent after the response completed.")

    async def _trailers(self, message: Message) -> None:
        """The trailers extension: fields after the body, in one message or several (``more_trailers``)."""
        assert self.trailers is not None
        _status, headers = _response_start({"status": 0, "headers": message.get("headers", ())})
        self.trailers += headers
        if not message.get("more_trailers", False):
            self.finished = True
            try:
                await self.exchange.send_trailers(self.trailers)
            except ValueError as exc:
                raise ASGIProtocolError(f"invalid 'http.response.trailers': {exc}") from None


async def _send_path(exchange: Exchange, message: Message) -> None:
    """The pathsend extension: the body is the file at ``path``, sent with sendfile where it can be."""
    path = message.get("path")
    if not isinstance(path, str):
        raise ASGIProtocolError(f"'http.response.pathsend' path must be a str, got {path!r}")
    with open(path, "rb") as file:
        await exchange.sendfile(file, 0, None)


def _response_start(message: Message) -> tuple[int, list[tuple[bytes, bytes]]]:
    status = message.get("status")
    if type(status) is not int:
        raise ASGIProtocolError(f"'http.response.start' status must be an int, got {status!r}")
    raw = message.get("headers", ())
    headers: list[tuple[bytes, bytes]] = []
    try:
        for name, value in raw:
            if type(name) is not bytes or type(value) is not bytes:
                name, value = _as_bytes(name), _as_bytes(value)
            headers.append((name, value))
    except (TypeError, ValueError):
        raise ASGIProtocolError(
            f"'http.response.start' headers must be an iterable of [name, value] byte pairs, got {raw!r}"
        ) from None
    return status, headers


def _as_bytes(value: Any) -> bytes:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise TypeError(value)
