"""WebSocket over HTTP/1.1 (RFC 6455): the connection after a WebSocket upgrade request.

Theory of operation
-------------------
When the HTTP/1.1 parser stops at a WebSocket upgrade request, its driver hands the
connection over (server/handover.py) to a :class:`WebSocketConnection`. The
request httptools parsed is given to websockets' sans-IO ``ServerProtocol`` as a
``websockets.http11.Request`` object, never re-serialised: ``accept`` checks the
handshake and negotiates permessage-deflate. A bad handshake is refused (400, 426...)
without calling the app. Otherwise the app's handler starts with this object as its
:class:`~monoceros.adapters.websocket_channel.WebSocketChannel`.

The app decides: ``accept`` sends the 101 (with its subprotocol and headers), and
only then does the frame parser start; bytes that arrived before are held, and
reading pauses if they pile up. ``deny`` sends an HTTP response instead, framed by
the HTTP/1.1 state machine, and closes.

Flow control both ways: whole messages wait in a queue for ``receive``; past
``ws_max_queue`` of them reading pauses until the app catches up. ``send`` waits
while the transport's write buffer is over its high-water mark.

Closing: a close frame from either side, a failed connection (protocol error, 1007,
1009), an unanswered ping (1011) or a server shutdown (1001, or 1012 on a reload)
all end in :attr:`_closed`. Whoever closes, the TCP connection is dropped at the
latest ``ws_close_timeout`` after our close frame.
"""

from __future__ import annotations

import asyncio
import codecs
import logging
import os
import time
from collections import deque
from typing import TYPE_CHECKING, Any, cast

from websockets.datastructures import Headers
from websockets.extensions.base import ServerExtensionFactory
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
from websockets.frames import Frame, Opcode
from websockets.headers import parse_subprotocol
from websockets.http11 import Request as HandshakeRequest
from websockets.http11 import Response
from websockets.protocol import OPEN
from websockets.server import ServerProtocol
from websockets.typing import Subprotocol

from ..adapters.websocket_channel import Closed
from ..errors import ClientDisconnected
from ..protocols.headers import check_header
from .flow import FlowControl

if TYPE_CHECKING:
    from .handover import Handover

log = logging.getLogger("monoceros.error")

# websockets logs every opened and rejected connection at INFO; our access log already says that.
_protocol_log = logging.getLogger("monoceros.websocket")
_protocol_log.setLevel(logging.WARNING)

COALESCE_FRAMES = 64  # most outgoing frames held back to leave in one write (see send)
EARLY_LIMIT = 65536  # bytes a client may send before the handshake completes before reading pauses
GOING_AWAY, SERVICE_RESTART = 1001, 1012
_ABNORMAL = Closed(1006, "")
_TEXT, _BINARY, _CONT, _PONG = Opcode.TEXT, Opcode.BINARY, Opcode.CONT, Opcode.PONG
_utf8_decoder = codecs.getincrementaldecoder("utf-8")


def deflate_factory() -> ServerExtensionFactory:
    """permessage-deflate with bounded memory: 4 KiB windows and memLevel 5 make a compressor about 1/10 of
    zlib's default size, which matters with thousands of idle connections (websockets' own defaults)."""
    return ServerPerMessageDeflateFactory(
        server_max_window_bits=12,
        client_max_window_bits=12,
        compress_settings={"memLevel": 5},
    )


class _ServerProtocol(ServerProtocol):
    def recv_frame(self, frame: Frame) -> None:
        if frame.opcode is Opcode.CLOSE and self.current_size is not None:
            # RFC 6455 §5.4 lets control frames come between the fragments of a message, and a close there
            # ends the connection and the unfinished message with it: a normal close (Autobahn 7.1.5), where
            # websockets would fail the connection with 1002.
            self.current_size = None
        super().recv_frame(frame)


class WebSocketConnection(FlowControl, asyncio.Protocol):
    """One WebSocket on an HTTP/1.1 connection; the channel its app handler talks to."""

    def __init__(self, http: Handover) -> None:
        state = self.state = http.state
        config = state.config
        request = http.request
        tail = http.tail
        self.loop = http.loop
        self.transport = http.transport
        self.h11 = http.h11  # frames a denial response
        self.request = request
        self.client = http.client
        self.server = http.server
        scheme = "wss" if http.scheme == "https" else "ws"
        if state.proxy is not None:  # X-Forwarded-Proto: https (or wss) makes it wss
            self.client, scheme = state.proxy.resolve(http.client, scheme, request.headers)
        self.scheme = scheme
        self.extensions: dict[str, Any] = {"websocket.http.response": {}}
        if "tls" in http.extensions:
            self.extensions["tls"] = http.extensions["tls"]
        self.subprotocols: list[str] = []
        super().__init__()
        self.lost = False
        self._read_paused = http.read_paused
        self.write_paused = http.write_paused
        self._early = bytearray(tail)
        self._messages: deque[str | bytes] = deque()
        self._max_queue = config.ws_max_queue
        self._receiver: asyncio.Future[None] | None = None
        self._closed: Closed | None = None
        self._parts: list[Any] = []
        self._decoder: codecs.IncrementalDecoder | None = None
        self._fragmented_text = False
        self._ping_interval = config.ws_ping_interval
        self._ping_timeout = config.ws_ping_timeout
        self._close_timeout = config.ws_close_timeout
        self._ping_timer: asyncio.TimerHandle | None = None
        self._ping_payload = b""
        self._close_timer: asyncio.TimerHandle | None = None
        self._flush_soon = False
        self._task: asyncio.Task[None] | None = None
        self._accepted = False
        self._denied = False
        self._deny_status = 0
        self._deny_bytes = 0
        self._response: Response | None = None
        self._started = time.time()
        self._clock = time.perf_counter()
        extensions = [deflate_factory()] if config.ws_per_message_deflate else None
        self.ws = _ServerProtocol(extensions=extensions, max_size=config.ws_max_size, logger=_protocol_log)

    # -- the opening handshake ---------------------------------------------------------------------------

    def start(self) -> None:
        """Check the handshake; refuse a bad one, or start the app's handler."""
        self.state.connections.add(self)
        request = self.request
        headers = Headers([(name.decode("latin-1"), value.decode("latin-1")) for name, value in request.headers])
        handshake = HandshakeRequest(
            request.target.decode("latin-1"),
            headers,
            method=request.method,
            protocol=f"HTTP/{request.http_version}",
        )
        response = self.ws.accept(handshake)
        if response.status_code != 101:
            self._denied = True
            self._write_handshake_response(response)
            self._log_access(response.status_code, len(response.body))
            self._drop()
            return
        self._response = response
        # accept() has already parsed these (a malformed header was refused above); in the client's order
        self.subprotocols = [p for value in headers.get_all("Sec-WebSocket-Protocol") for p in parse_subprotocol(value)]
        handler = self.state.ws_handler
        assert handler is not None
        self._task = self.loop.create_task(handler(self))

    @property
    def accepted(self) -> bool:
        return self._accepted

    @property
    def denied(self) -> bool:
        return self._denied

    async def accept(self, subprotocol: str | None, headers: list[tuple[bytes, bytes]]) -> None:
        if self._accepted or self._denied:
            raise RuntimeError("the handshake is already answered")
        if self.lost:
            raise ClientDisconnected("client disconnected")
        response = self._response
        assert response is not None
        if subprotocol is not None:
            if subprotocol not in self.subprotocols:
                raise ValueError(f"subprotocol {subprotocol!r} was not offered by the client {self.subprotocols}")
            response.headers["Sec-WebSocket-Protocol"] = subprotocol
            self.ws.subprotocol = Subprotocol(subprotocol)
        for name, value in headers:
            check_header(name, value)
            response.headers[name.decode("latin-1")] = value.decode("latin-1")
        self._accepted = True
        self._write_handshake_response(response)
        ws = self.ws
        ws.state = OPEN
        # The handshake request did not come through the protocol's own parser, which is still waiting for
        # one: start a fresh parser, which in the OPEN state reads frames.
        ws.parser = ws.parse()
        next(ws.parser)
        self._log_access(101, 0)
        if self._ping_interval > 0:
            self._ping_timer = self.loop.call_later(self._ping_interval, self._ping)
        early, self._early = bytes(self._early), bytearray()
        if early:
            self._feed(early)
        if self._read_paused and len(self._messages) < self._max_queue:
            self._resume_reading()
        if self.state.shutting_down:
            self.shutdown()  # accepted during a graceful stop: say goodbye at once

    def _write_handshake_response(self, response: Response) -> None:
        headers = response.headers
        if not self.state.config.date_header:
            del headers["Date"]
        if self.state.config.server_header and "Server" not in headers:
            headers["Server"] = "monoceros"
        if not self.lost:
            self.transport.write(response.serialize())

    async def deny(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes, more: bool) -> None:
        if self._accepted:
            raise RuntimeError("the WebSocket is already accepted")
        if self.lost:
            raise ClientDisconnected("client disconnected")
        h11 = self.h11
        parts: list[bytes] = []
        if status:
            if self._denied:
                raise RuntimeError("the denial response has already started")
            self._denied = True
            self._deny_status = status
            self._deny_bytes = 0
            parts.append(h11.response_head(self.request, status, headers, self.state.default_headers, close=True))
        elif not self._denied:
            raise RuntimeError("the denial response has not started")
        parts.append(h11.response_body(body))
        self._deny_bytes += len(body)
        if not more:
            parts.append(h11.response_end())
        self.transport.write(b"".join(parts))
        if not more:
            self._log_access(self._deny_status, self._deny_bytes)
            self._drop()
        else:
            await self.drain()

    # -- receiving ---------------------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if not self._accepted:
            if self._denied:
                return  # the client's leftovers after a refused handshake: dropped
            self._early += data
            if len(self._early) > EARLY_LIMIT:
                self._pause_reading()
            return
        self._feed(data)

    def _feed(self, data: bytes) -> None:
        ws = self.ws
        ws.receive_data(data)
        for frame in cast("list[Frame]", ws.events_received()):  # in the OPEN state, frames only
            opcode = frame.opcode
            if opcode is _TEXT or opcode is _BINARY or opcode is _CONT:
                self._on_data(frame)
            elif opcode is _PONG and self._ping_payload and frame.data == self._ping_payload:
                self._on_pong()
        self._flush()
        if self._closed is None:
            closed = self._protocol_closed()
            if closed is not None:
                self._set_closed(closed)

    def _on_data(self, frame: Frame) -> None:
        if self.ws.state is not OPEN:
            return  # the connection failed earlier in this batch
        opcode = frame.opcode
        if frame.fin and opcode is not _CONT:  # a whole message in one frame: the common case
            if opcode is _TEXT:
                try:
                    message: str | bytes = bytes(frame.data).decode()
                except UnicodeDecodeError as exc:
                    self._fail(1007, f"invalid UTF-8 at position {exc.start}")
                    return
            else:
                message = bytes(frame.data)
            self._deliver(message)
            return
        try:
            if opcode is not _CONT:
                self._fragmented_text = opcode is _TEXT
                self._decoder = _utf8_decoder() if self._fragmented_text else None
                self._parts = []
            decoder = self._decoder
            # Decoding as the fragments arrive fails a bad message early (RFC 6455 §8.1, Autobahn 6.4).
            self._parts.append(decoder.decode(frame.data, frame.fin) if decoder is not None else frame.data)
        except UnicodeDecodeError as exc:
            self._fail(1007, f"invalid UTF-8: {exc.reason}")
            return
        if frame.fin:
            parts, self._parts = self._parts, []
            self._deliver("".join(parts) if self._fragmented_text else b"".join(parts))

    def _deliver(self, message: str | bytes) -> None:
        messages = self._messages
        messages.append(message)
        if len(messages) >= self._max_queue:
            self._pause_reading()  # the app is not keeping up: let TCP push back on the client
        self._wake_receiver()

    async def receive(self) -> str | bytes | Closed:
        messages = self._messages
        while True:
            if messages:
                message = messages.popleft()
                if self._read_paused and len(messages) < self._max_queue and self._accepted:
                    self._resume_reading()
                return message
            if self._closed is not None:
                return self._closed
            if self.ws.writes:
                self._flush()  # answers coalesced while the queue was being worked through
            waiter = self._receiver = self.loop.create_future()
            try:
                await waiter
            finally:
                self._receiver = None

    def _wake_receiver(self) -> None:
        waiter = self._receiver
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def eof_received(self) -> bool | None:
        if self._accepted:
            self.ws.receive_eof()
            self._flush()
        return None  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.state.connections.discard(self)
        for timer in (self._ping_timer, self._close_timer):
            if timer is not None:
                timer.cancel()
        self._ping_timer = self._close_timer = None
        if self._closed is None:
            self._set_closed(self._protocol_closed() or _ABNORMAL)
        self._wake_drain()

    def _protocol_closed(self) -> Closed | None:
        """How the protocol says the WebSocket ended: the peer's close frame, or the code we sent when we
        failed the connection (protocol error, 1007, 1009); None while neither has happened."""
        ws = self.ws
        if ws.close_rcvd is not None:
            return Closed(ws.close_rcvd.code, ws.close_rcvd.reason)
        if ws.close_sent is not None and ws.parser_exc is not None:
            return Closed(ws.close_sent.code, ws.close_sent.reason)
        return None

    def _set_closed(self, closed: Closed) -> None:
        self._closed = closed
        if self._ping_timer is not None:
            self._ping_timer.cancel()
            self._ping_timer = None
        self._wake_receiver()
        self._wake_drain()

    # -- sending -----------------------------------------------------------------------------------------

    async def send(self, data: str | bytes) -> None:
        ws = self.ws
        if self._closed is not None or ws.state is not OPEN or self.lost:
            raise ClientDisconnected("the WebSocket is closed")
        if type(data) is str:
            ws.send_text(data.encode())
        else:
            ws.send_binary(data)  # type: ignore[arg-type]
        if self._messages and len(ws.writes) < COALESCE_FRAMES and not self.write_paused:
            # More messages are waiting for the app, which will answer them in this same step (receive does
            # not suspend while the queue has some): write all the answers at once, when it has caught up.
            if not self._flush_soon:
                self._flush_soon = True
                self.loop.call_soon(self._deferred_flush)
            return
        self._flush()
        if self.write_paused:
            await self.drain()

    def _deferred_flush(self) -> None:
        self._flush_soon = False
        if self.ws.writes:
            self._flush()

    async def close(self, code: int, reason: str) -> None:
        ws = self.ws
        if ws.state is not OPEN or self.lost:
            return
        ws.send_close(code, reason)
        self._flush()
        self._arm_close_timer()

    def abort(self) -> None:
        if not self.lost:
            self.transport.abort()

    def _flush(self) -> None:
        """Write what the protocol produced; an empty item is its "send EOF" (after a close, or on failure)."""
        if self.lost:
            self.ws.data_to_send()
            return
        eof = False
        chunks = []
        for chunk in self.ws.data_to_send():
            if chunk:
                chunks.append(chunk)
            else:
                eof = True
        if len(chunks) == 1:
            self.transport.write(chunks[0])
        elif chunks:
            self.transport.writelines(chunks)
        if eof:
            self._drop()

    def _drop(self) -> None:
        """Close our side once the buffer is written (RFC 6455 §7.1.1: the server closes TCP first), and cut
        the connection if that takes longer than the close timeout."""
        if self.lost:
            return
        self.transport.close()
        self._arm_close_timer()

    def _arm_close_timer(self) -> None:
        if self._close_timer is None and not self.lost:
            self._close_timer = self.loop.call_later(self._close_timeout, self._on_close_timeout)

    def _on_close_timeout(self) -> None:
        self._close_timer = None
        if not self.lost:
            self.transport.abort()

    def _fail(self, code: int, reason: str) -> None:
        """Fail the WebSocket connection (RFC 6455 §7.1.7): a close frame, then drop TCP."""
        self.ws.fail(code, reason)
        self._set_closed(Closed(code, reason))
        self._flush()

    # -- keepalive ---------------------------------------------------------------------------------------

    def _ping(self) -> None:
        self._ping_timer = None
        if self.lost or self.ws.state is not OPEN:
            return
        self._ping_payload = os.urandom(4)
        self.ws.send_ping(self._ping_payload)
        self._flush()
        self._ping_timer = self.loop.call_later(self._ping_timeout, self._on_ping_timeout)

    def _on_pong(self) -> None:
        if self._ping_timer is not None:
            self._ping_timer.cancel()
        self._ping_payload = b""
        self._ping_timer = self.loop.call_later(self._ping_interval, self._ping)

    def _on_ping_timeout(self) -> None:
        self._ping_timer = None
        if self.lost or self.ws.state is not OPEN:
            return
        self._fail(1011, "keepalive ping timeout")

    # -- the worker's view -------------------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        """A WebSocket is in flight until its app has returned and its connection has closed."""
        return not self.lost or (self._task is not None and not self._task.done())

    def cut(self) -> None:
        """Stop at once (the worker's graceful timeout is over): the connection ends now."""
        if not self.lost:
            self.transport.abort()

    def shutdown(self) -> None:
        """Graceful stop: close an open WebSocket with 1001 (going away) or 1012 (restart, on a reload); a
        handshake the app has not answered yet is left to finish (then the stop closes it too)."""
        if self.lost:
            return
        if self._accepted and self.ws.state is OPEN:
            code = self.state.ws_shutdown_code
            self.ws.send_close(code, "server restarting" if code == SERVICE_RESTART else "server shutting down")
            self._flush()
            self._arm_close_timer()
        elif self._task is None or self._task.done():
            self._drop()

    def log_error(self, message: str, exc: BaseException | None = None) -> None:
        log.error(
            "%s (WebSocket: %s from %s)",
            message,
            self.request.target.decode("latin-1"),
            self.client[0] if self.client else "unix",
            exc_info=exc,
        )

    def _log_access(self, status: int, size: int) -> None:
        access_log = self.state.access_log
        if access_log is None:
            return
        access_log.log_request(
            self.request, self.client, status, size, time.perf_counter() - self._clock, (), self._started
        )
