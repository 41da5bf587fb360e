"""WebSocket over HTTP/1.1 (RFC 6455): the connection after a WebSocket upgrade request.

Theory of operation
-------------------
When the HTTP/1.1 parser stops at a WebSocket upgrade request, its driver hands the
connection over (server/handover.py) to a :class:`WebSocketConnection`. What RFC 6455
says is the sans-IO :class:`~monoceros.protocols.websocket.WebSocketProtocol`'s: it
checks the handshake on the request httptools parsed (never re-serialised), assembles
messages and says how the WebSocket ended. This class does the IO, the flow and the
timers. A bad handshake is refused (400, 426...) without calling the app. Otherwise
the app's handler starts with this object as its
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
import logging
import time
from typing import TYPE_CHECKING, Any

from ..errors import ClientDisconnected
from ..protocols.websocket import ABNORMAL, SERVICE_RESTART, Closed, WebSocketProtocol
from .flow import FlowControl
from .metrics import LAYOUT
from .websocket_timers import WebSocketTimers

WS_IN, WS_OUT = LAYOUT.ws_in, LAYOUT.ws_out

if TYPE_CHECKING:
    from .handover import Handover

log = logging.getLogger("monoceros.error")

# websockets logs every opened and rejected connection at INFO; our access log already says that.
_protocol_log = logging.getLogger("monoceros.websocket")
_protocol_log.setLevel(logging.WARNING)

COALESCE_FRAMES = 64  # most outgoing frames held back to leave in one write (see send)
EARLY_LIMIT = 65536  # bytes a client may send before the handshake completes before reading pauses


class WebSocketConnection(FlowControl, WebSocketTimers, asyncio.Protocol):
    """One WebSocket on an HTTP/1.1 connection; the channel its app handler talks to."""

    kind = 3  # metrics.CONNECTIONS: websocket

    def __init__(self, http: Handover) -> None:
        state = self.state = http.state
        config = state.config
        request = http.request
        assert request is not None, "a WebSocket is handed over with its handshake request"
        tail = http.tail
        self.loop = http.loop
        self.transport = http.transport
        self._counts = state.tally.counts if state.tally is not None else None  # messages, for the metrics
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
        super().__init__()
        self.lost = False
        self._read_paused = http.read_paused
        self.write_paused = http.write_paused
        self._early = bytearray(tail)
        self._max_queue = config.ws_max_queue
        self._receiver: asyncio.Future[None] | None = None
        self._closed: Closed | None = None
        self._ping_interval = config.ws_ping_interval
        self._ping_timeout = config.ws_ping_timeout
        self._close_timeout = config.ws_close_timeout
        self._ping_timer: asyncio.TimerHandle | None = None
        self._close_timer: asyncio.TimerHandle | None = None
        self._message_timeout = config.ws_message_timeout
        self._message_timer: asyncio.TimerHandle | None = None
        self._flush_soon = False
        self._task: asyncio.Task[None] | None = None
        self._accepted = False
        self._denied = False
        self._deny_status = 0
        self._deny_bytes = 0
        self._started = time.time()
        self._clock = time.perf_counter()
        self.ws = WebSocketProtocol(
            config.ws_max_size,
            config.ws_per_message_deflate,
            _protocol_log,
            date_header=config.date_header,
            server_header=config.server_header,
        )
        self._messages = self.ws.messages

    # -- the opening handshake ---------------------------------------------------------------------------

    def start(self) -> None:
        """Check the handshake; refuse a bad one, or start the app's handler."""
        self.state.connections.add(self)
        refusal = self.ws.handshake(self.request)
        if refusal is not None:
            self._denied = True
            if not self.lost:
                self.transport.write(refusal.data)
            self._log_access(refusal.status, refusal.body_size)
            self._drop()
            return
        handler = self.state.ws_handler
        assert handler is not None
        self._task = self.loop.create_task(handler(self))

    @property
    def subprotocols(self) -> list[str]:
        return self.ws.subprotocols

    @property
    def accepted(self) -> bool:
        return self._accepted

    @property
    def denied(self) -> bool:
        return self._denied

    def _answerable(self, denial: bool) -> None:
        """Refuse a second answer to the handshake, or one to a client that has gone."""
        if self._accepted or (self._denied and not denial):
            raise RuntimeError("the WebSocket is already accepted" if denial else "the handshake is already answered")
        if self.lost:
            raise ClientDisconnected("client disconnected")

    async def accept(self, subprotocol: str | None, headers: list[tuple[bytes, bytes]]) -> None:
        self._answerable(False)
        data = self.ws.accept(subprotocol, headers)
        self._accepted = True
        if self._counts is not None:
            self._counts[LAYOUT.ws_opened] += 1
        if not self.lost:
            self.transport.write(data)
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

    async def deny(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes, more: bool) -> None:
        self._answerable(True)
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
        if ws.receive_data(data):
            self._on_pong()
        if ws.message_in_progress or self._message_timer is not None:
            self._watch_fragments()
        if self._messages:
            if len(self._messages) >= self._max_queue:
                self._pause_reading()  # the app is not keeping up: let TCP push back on the client
            self._wake_receiver()
        self._flush()
        if self._closed is None:
            closed = ws.closed
            if closed is not None:
                self._set_closed(closed)

    async def receive(self) -> str | bytes | Closed:
        messages = self._messages
        while True:
            if messages:
                message = messages.popleft()
                if self._counts is not None:
                    self._counts[WS_IN] += 1
                if self._read_paused and len(messages) < self._max_queue and self._accepted:
                    self._resume_reading()
                return message
            if self._closed is not None:
                return self._closed
            if self.ws.pending_writes:
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
        for timer in (self._ping_timer, self._close_timer, self._message_timer):
            if timer is not None:
                timer.cancel()
        self._ping_timer = self._close_timer = self._message_timer = None
        if self._closed is None:
            self._set_closed(self.ws.closed or ABNORMAL)
        self._wake_drain()

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
        if self._closed is not None or not ws.open or self.lost:
            raise ClientDisconnected("the WebSocket is closed")
        ws.send(data)
        if self._counts is not None:
            self._counts[WS_OUT] += 1
        if self._messages and ws.pending_writes < COALESCE_FRAMES and not self.write_paused:
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
        if self.ws.pending_writes:
            self._flush()

    async def close(self, code: int, reason: str) -> None:
        ws = self.ws
        if not ws.open or self.lost:
            return
        ws.send_close(code, reason)
        self._flush()
        self._arm_close_timer()

    def abort(self) -> None:
        if not self.lost:
            self.transport.abort()

    def _flush(self) -> None:
        """Write what the protocol produced; an empty item is its "send EOF" (after a close, or on failure)."""
        chunks, eof = self.ws.data_to_send()
        if self.lost:
            return
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

    # -- the worker's view -------------------------------------------------------------------------------

    requests_in_flight = 0  # a WebSocket is counted as one, not as a request

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
        if self._accepted and self.ws.open:
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
        access_log = self.state.request_log
        if access_log is None:
            return
        access_log.log_request(
            self.request, self.client, status, size, time.perf_counter() - self._clock, (), self._started
        )
