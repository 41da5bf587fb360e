"""ASGI 3 WebSocket: turns a :class:`WebSocketChannel` into ``app(scope, receive, send)``.

Spec: https://asgi.readthedocs.io/en/latest/specs/www.html#websocket (version 2.4),
with the denial-response extension (``websocket.http.response.start`` / ``.body``).

What the server answers for the app:
- it raises before accepting: 500; it returns (or closes) before accepting: 403;
- it raises after accepting: close 1011; it returns without closing: close 1000.
"""

from __future__ import annotations

import asyncio

from ..errors import ASGIProtocolError, ClientDisconnected
from .asgi_http import ASGIHTTPHandler, Message
from .websocket_channel import Closed, WebSocketChannel

_FORBIDDEN = b"WebSocket connection refused by the application\n"
_ERROR = b"Internal Server Error\n"
_TEXT_PLAIN = [(b"content-type", b"text/plain; charset=utf-8")]


class ASGIWebSocketHandler(ASGIHTTPHandler):
    """Runs one ASGI app for every WebSocket of a worker."""

    async def __call__(self, channel: WebSocketChannel) -> None:  # type: ignore[override]
        scope = self.scope("websocket", channel)
        del scope["method"]  # not a WebSocket scope key
        scope["subprotocols"] = channel.subprotocols
        session = _Session(channel)
        try:
            await self.app(scope, session.receive, session.send)
        except asyncio.CancelledError:
            channel.abort()
            raise
        except BaseException as exc:  # the app's failure must not take the worker down
            # The client left: the app heard it, or its send raised because the connection is gone.
            if not (isinstance(exc, ClientDisconnected) and (session.closed or channel.lost)):
                channel.log_error("Exception in ASGI application", exc)
            await _after_error(channel)
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
        else:
            if not channel.accepted and not channel.denied:
                await channel.deny(403, _TEXT_PLAIN, _FORBIDDEN, False)
            elif channel.denied and not session.denial_done:
                channel.log_error("ASGI callable returned without completing the denial response")
                channel.abort()
            elif channel.accepted:
                await channel.close(1000, "")


async def _after_error(channel: WebSocketChannel) -> None:
    try:
        if channel.accepted:
            await channel.close(1011, "")
        elif channel.denied:
            channel.abort()  # a response cut short can only end with the connection
        else:
            await channel.deny(500, _TEXT_PLAIN, _ERROR, False)
    except ClientDisconnected:
        pass


class _Session:
    """The ``receive`` and ``send`` callables of one WebSocket, and the message order they enforce."""

    __slots__ = ("_denial", "channel", "closed", "connected", "denial_done", "disconnect")

    def __init__(self, channel: WebSocketChannel) -> None:
        self.channel = channel
        self.connected = False
        self.closed = False  # the app closed, or heard the disconnect
        self.denial_done = False
        self.disconnect: Message | None = None
        self._denial: tuple[int, list[tuple[bytes, bytes]]] | None = None

    async def receive(self) -> Message:
        if not self.connected:
            self.connected = True
            return {"type": "websocket.connect"}
        if self.disconnect is not None:
            return dict(self.disconnect)
        message = await self.channel.receive()
        if type(message) is str:
            return {"type": "websocket.receive", "text": message}
        if type(message) is bytes:
            return {"type": "websocket.receive", "bytes": message}
        assert isinstance(message, Closed)
        self.closed = True
        self.disconnect = {"type": "websocket.disconnect", "code": message.code, "reason": message.reason}
        return dict(self.disconnect)

    async def send(self, message: Message) -> None:
        channel = self.channel
        kind = message["type"]
        if kind == "websocket.send":
            if not channel.accepted:
                raise ASGIProtocolError("websocket.send before websocket.accept")
            data = message.get("bytes")
            if data is None:
                text = message.get("text")
                if text is None:
                    raise ASGIProtocolError("websocket.send needs 'bytes' or 'text'")
                await channel.send(text)
            else:
                await channel.send(bytes(data))
        elif kind == "websocket.accept":
            if channel.accepted or channel.denied:
                raise ASGIProtocolError("websocket.accept after the handshake was answered")
            headers = [(bytes(name), bytes(value)) for name, value in message.get("headers") or ()]
            try:
                await channel.accept(message.get("subprotocol"), headers)
            except ValueError as exc:
                raise ASGIProtocolError(str(exc)) from None
        elif kind == "websocket.close":
            self.closed = True
            if channel.accepted:
                await channel.close(message.get("code") or 1000, message.get("reason") or "")
            elif not channel.denied:
                await channel.deny(403, _TEXT_PLAIN, _FORBIDDEN, False)
                self.denial_done = True
        elif kind == "websocket.http.response.start":
            if channel.accepted or channel.denied:
                raise ASGIProtocolError("websocket.http.response.start after the handshake was answered")
            headers = [(bytes(name), bytes(value)) for name, value in message.get("headers") or ()]
            self._denial = (int(message["status"]), headers)
        elif kind == "websocket.http.response.body":
            more = bool(message.get("more_body", False))
            body = bytes(message.get("body", b""))
            if channel.denied:
                if self.denial_done:
                    raise ASGIProtocolError("websocket.http.response.body after the response completed")
                await channel.deny(0, [], body, more)
            else:
                start = self._denial
                if start is None:
                    raise ASGIProtocolError("websocket.http.response.body before websocket.http.response.start")
                try:
                    await channel.deny(start[0], start[1], body, more)
                except ValueError as exc:
                    raise ASGIProtocolError(str(exc)) from None
            self.denial_done = not more
        else:
            raise ASGIProtocolError(f"unexpected ASGI message type {kind!r} on a WebSocket")
