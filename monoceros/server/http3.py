"""The HTTP/3 connection driver: one QUIC connection of a worker's UDP endpoint (server/quic_endpoint.py).

Theory of operation
-------------------
The endpoint hands each datagram to the connection its destination connection ID names. The connection feeds
its engine (protocols/http3.py, on aioquic), dispatches what comes out as the HTTP/2 driver does, with the same
code (server/multiplexed.py: a Stream and an app task per request; bodies through the same size limit and
pace), and sends what the engine has for the wire as datagrams. Responses go through
HTTP/2's output (server/http2_output.py), which only needs an engine with streams and flow windows: QUIC's.

A UDP socket never pushes back, so ``write_paused`` stays False; a stream waits while the peer has not
acknowledged ``STREAM_HIGH_WATER`` bytes of it (what aioquic holds for it), and the send deadline resets a
stream whose window never opens, as over HTTP/2. One timer per connection follows the engine's (loss
recovery, idle timeout, acknowledgements).
"""

from __future__ import annotations

import asyncio
import logging
from asyncio import Task
from typing import Any, Protocol

from ..protocols.events import Request
from ..protocols.http2 import REFUSED_STREAM
from ..protocols.http3 import HTTP3Engine
from .body_pace import BodyPace
from .http2_output import HTTP2Output
from .multiplexed import Multiplexed
from .state import ServerState
from .stream import Stream

log = logging.getLogger("monoceros.error")

TASK_NAME = "monoceros-request-h3"
_EXTENSIONS: dict[str, Any] = {"http.response.pathsend": {}, "http.response.trailers": {}}


class QuicEndpoint(Protocol):
    """What a connection needs of its endpoint (server/quic_endpoint.py)."""

    state: ServerState
    address: tuple[str, int | None]
    max_streams: int

    def sendto(self, data: bytes, addr: Any) -> None: ...

    def route(self, conn: HTTP3Connection, issued: list[bytes], retired: list[bytes]) -> None: ...

    def forget(self, conn: HTTP3Connection) -> None: ...


class HTTP3Connection(Multiplexed):
    """One client's QUIC connection speaking HTTP/3."""

    kind = 2  # metrics.CONNECTIONS: h3
    task_name = TASK_NAME
    engine: HTTP3Engine

    def __init__(self, endpoint: QuicEndpoint, engine: HTTP3Engine, addr: Any) -> None:
        state = self.state = endpoint.state
        self.endpoint = endpoint
        self.loop = state.loop
        self.engine = engine
        self.addr = addr
        self.client: tuple[str, int] | None = (addr[0], addr[1])
        self.server: tuple[str, int | None] | None = endpoint.address
        self.scheme = "https"
        self.extensions = dict(_EXTENSIONS)
        self.output = HTTP2Output(self, engine)  # type: ignore[arg-type]  # the HTTP/3 engine has its interface
        self.streams: dict[int, Stream] = {}
        self._running: set[Task[None]] = set()
        self._body_sizes: dict[int, int] = {}
        self._paces: dict[int, BodyPace] = {}
        self._pace_timer: asyncio.TimerHandle | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._flush_scheduled = False
        self._closing = False
        self.lost = False
        self.write_paused = False  # UDP: nothing pushes back; streams wait on their acknowledgements
        state.connections.add(self)

    # -- input ---------------------------------------------------------------------------------------------

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.addr = addr
        self.engine.receive_datagram(data, addr)
        self._after_input()

    def _on_timer(self) -> None:
        self._timer = self._timer_at = None
        if self.lost:
            return
        self.engine.handle_timer()
        self._after_input()

    def _after_input(self) -> None:
        engine = self.engine
        if engine.issued or engine.retired:
            self.endpoint.route(self, engine.issued, engine.retired)
            engine.issued, engine.retired = [], []
        self._dispatch()
        self.flush()

    def _open(self, request: Request) -> None:
        if len(self._running) >= self.endpoint.max_streams:
            self.engine.reset_stream(request.stream_id, REFUSED_STREAM)  # its app tasks still run: H3_REQUEST_REJECTED
            return
        self._start_stream(request)

    def _task_done(self, task: Task[None]) -> None:
        self._running.discard(task)
        if self._closing and not self._running and not self.streams:
            self._close_now()

    def stream_done(self, stream: Stream) -> None:
        sid = stream.request.stream_id
        if self.streams.get(sid) is stream:
            del self.streams[sid]
        self._body_ended(sid)
        self.engine.forget(sid)

    # -- output --------------------------------------------------------------------------------------------

    def flush(self) -> None:
        """Send what the engine has for the wire, wake the senders it has room for, and follow its timer."""
        if self.lost:
            return
        engine = self.engine
        sendto = self.endpoint.sendto
        for data, addr in engine.datagrams():
            sendto(data, addr)
        if engine.events:  # streams the engine reset as it wrote
            self._dispatch()
        self.output.wake()
        if engine.terminated:
            self._lost()
            return
        at = engine.timer()
        if at != self._timer_at:
            if self._timer is not None:
                self._timer.cancel()
            self._timer_at = at
            # (The engine's clock is the loop's: the endpoint made it so.)
            self._timer = None if at is None else self.loop.call_at(at, self._on_timer)

    # -- ending --------------------------------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        return bool(self.streams)

    def shutdown(self) -> None:
        """Graceful stop: GOAWAY; requests in flight finish, then the connection closes."""
        if self._closing or self.lost:
            return
        self._closing = True
        self.engine.shutdown()
        self.flush()
        if not self.streams and not self._running:
            self._close_now()

    def cut(self) -> None:
        self._close_now()

    def _close_now(self) -> None:
        if not self.lost:
            self.engine.close()
            self.flush()  # the CONNECTION_CLOSE leaves; the engine then says it is terminated

    def drop(self) -> None:
        """Forget a connection whose first datagram was not QUIC after all, without a word to its sender."""
        self._lost()

    def _lost(self) -> None:
        if self.lost:
            return
        self.lost = True
        self.state.connections.discard(self)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._stop_paces()
        streams, self.streams = self.streams, {}
        for stream in streams.values():
            stream.on_disconnect()
        self.output.wake_all()
        self.endpoint.forget(self)
