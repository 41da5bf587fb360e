"""WebSocket over an HTTP/2 stream (RFC 8441): the same WebSocket, carried by DATA frames.

The server advertises ``SETTINGS_ENABLE_CONNECT_PROTOCOL`` when it serves WebSockets; a client then opens a
WebSocket with an extended CONNECT (``:protocol websocket``) on a new stream. From there the WebSocket is
the HTTP/1.1 one (server/websocket.py: the sans-IO core, the app's channel, the flow, the timers), with a
different carrier: :class:`StreamTransport` is the ``asyncio.Transport`` face of one stream. Writing queues
DATA on the stream; closing ends the stream; aborting resets it (CANCEL). Reading pauses by leaving the
stream's window closed: the bytes the app has not taken are not consumed, so the client's window stays shut
as TCP's would. The handshake answers ``200`` (not 101) and a denial is an ordinary HTTP/2 response.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Protocol, cast

from ..protocols.http2 import CANCEL, response_fields
from .handover import Handover
from .metrics import LAYOUT
from .websocket import WebSocketConnection

if TYPE_CHECKING:
    from ..protocols.events import Request
    from ..protocols.http2 import HTTP2Engine
    from .http2_output import HTTP2Output
    from .state import ServerState


class Connection(Protocol):
    """What a WebSocket on a stream needs of its HTTP/2 connection's driver (server/http2.py)."""

    state: ServerState
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    client: tuple[str, int] | None
    server: tuple[str, int | None] | None
    scheme: str
    extensions: dict[str, Any]
    engine: HTTP2Engine
    output: HTTP2Output

    def flush(self) -> None: ...

    def flush_soon(self) -> None: ...

    def tunnel_ended(self, sid: int, exc: Exception | None) -> None: ...


class StreamTransport:
    """One HTTP/2 stream as the transport of a WebSocket."""

    def __init__(self, conn: Connection, stream_id: int) -> None:
        self.conn = conn
        self.sid = stream_id
        self.protocol: H2WebSocket | None = None
        self._closing = False
        self._paused = False
        self._held = 0  # bytes received while reading was paused: consumed on resume

    # -- what the WebSocket calls ----------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        if self._closing:
            return
        conn = self.conn
        conn.engine.send_data(self.sid, data, False)
        conn.flush()
        if conn.engine.pending(self.sid) >= conn.output.high_water and self.protocol is not None:
            self.protocol.pause_writing()
            conn.output.when_writable(self.sid, self._writable)

    def writelines(self, chunks: list[bytes]) -> None:
        self.write(b"".join(chunks))

    def _writable(self) -> None:
        if self.protocol is not None:
            self.protocol.resume_writing()

    def close(self) -> None:
        """End the stream (END_STREAM); the WebSocket is over for the server."""
        if self._closing:
            return
        self._closing = True
        self.conn.engine.send_data(self.sid, b"", True)
        self.conn.flush()
        self.conn.loop.call_soon(self.conn.tunnel_ended, self.sid, None)

    def abort(self) -> None:
        if self._closing:
            return
        self._closing = True
        self.conn.engine.reset_stream(self.sid, CANCEL)
        self.conn.flush()
        self.conn.loop.call_soon(self.conn.tunnel_ended, self.sid, None)

    def is_closing(self) -> bool:
        return self._closing

    def pause_reading(self) -> None:
        self._paused = True

    def resume_reading(self) -> None:
        self._paused = False
        held, self._held = self._held, 0
        if held:
            self.conn.engine.consume(self.sid, held)
            self.conn.flush_soon()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.conn.transport.get_extra_info(name, default)

    def get_write_buffer_size(self) -> int:
        return self.conn.engine.pending(self.sid)

    # -- what the HTTP/2 driver calls ------------------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        if self._paused:
            self._held += len(data)
        else:
            self.conn.engine.consume(self.sid, len(data))
        if self.protocol is not None and not self._closing:
            self.protocol.data_received(data)


class H2WebSocket(WebSocketConnection):
    """A WebSocket on one HTTP/2 stream: the HTTP/1.1 WebSocket with an RFC 8441 handshake."""

    kind = 4  # not a connection of its own: metrics counts it among the WebSockets only
    owns_socket = False

    def __init__(self, conn: Connection, request: Request) -> None:
        carrier = StreamTransport(conn, request.stream_id)
        handover = Handover(
            conn.state, conn.loop, cast(asyncio.Transport, carrier), cast(Any, request), b"", conn.client,
            conn.server, conn.scheme, conn.extensions, False, False, cast(Any, None),
        )  # fmt: skip
        super().__init__(handover)
        carrier.protocol = self
        self.carrier = carrier
        self.conn = conn

    def start(self) -> None:
        self.state.connections.add(self)
        refusal = self.ws.handshake_over_http2(self.request)
        if refusal is not None:
            self._denied = True
            self._respond(refusal.status, [(b"content-type", b"text/plain; charset=utf-8")], refusal.data, False)
            self._log_access(refusal.status, refusal.body_size)
            self.carrier.close()
            return
        handler = self.state.ws_handler
        assert handler is not None
        self._task = self.loop.create_task(handler(self))

    @property
    def task(self) -> asyncio.Task[None] | None:
        return self._task

    async def accept(self, subprotocol: str | None, headers: list[tuple[bytes, bytes]]) -> None:
        self._answerable(False)
        fields = self.ws.accept_over_http2(subprotocol, headers)
        self._accepted = True
        if self._counts is not None:
            self._counts[LAYOUT.ws_opened] += 1
        self._respond(200, fields, b"", True)
        self._log_access(200, 0)
        if self._ping_interval > 0:
            self._ping_timer = self.loop.call_later(self._ping_interval, self._ping)
        if self.state.shutting_down:
            self.shutdown()

    async def deny(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes, more: bool) -> None:
        self._answerable(True)
        if status:
            if self._denied:
                raise RuntimeError("the denial response has already started")
            self._denied = True
            self._deny_status = status
            self._deny_bytes = 0
            self._respond(status, headers, b"", True)
        elif not self._denied:
            raise RuntimeError("the denial response has not started")
        self._deny_bytes += len(body)
        if body:
            self.carrier.write(body)
        if not more:
            self._log_access(self._deny_status, self._deny_bytes)
            self.carrier.close()
        else:
            await self.drain()

    def _respond(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes, more: bool) -> None:
        conn = self.conn
        fields = response_fields(status, headers, conn.state.default_headers)
        conn.engine.send_headers(self.carrier.sid, status, fields, False)
        if body:
            conn.engine.send_data(self.carrier.sid, body, not more)
        conn.flush()

    def end_of_stream(self) -> None:
        """The client ended its side of the stream: as EOF on TCP."""
        self.eof_received()
        if not self.carrier.is_closing():
            self.carrier.close()
