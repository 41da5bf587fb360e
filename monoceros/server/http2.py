"""The HTTP/2 connection driver: an asyncio protocol that runs one HTTP/2 engine (protocols/http2.py).

Theory of operation
-------------------
A connection becomes HTTP/2 by a hand-over from HTTP/1.1's driver (server/handover.py): TLS ALPN chose
``h2``, the client opened with the preface (prior knowledge), or an ``Upgrade: h2c`` request was accepted
(stream 1 is that request). Bytes go to the engine; its events start a :class:`~monoceros.server.stream.Stream`
and the app's task per request, and feed the streams their bodies. The streams write through one
:class:`~monoceros.server.http2_output.HTTP2Output`; what the engine produces is written once per loop turn.

Limits: past ``max_concurrent_streams`` app tasks still running (a reset stream keeps its slot until its task
has ended), a new stream is refused (REFUSED_STREAM, never a connection error); a header list over the limits
is answered 431. Request bodies (413 past ``limit_request_body``, 408 when they stop or trickle) are
server/http2_intake.py's. After ``http2_max_requests`` streams the connection
says GOAWAY and ends once they are answered, as nginx's ``keepalive_requests`` does.

Deadlines: the preface and the first request have ``header_timeout``; a connection with no stream open closes
after ``keep_alive`` seconds. A graceful stop sends GOAWAY with the last stream id: streams in flight finish,
then the connection closes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from asyncio import Task
from typing import TYPE_CHECKING, Any

from ..protocols.events import Request
from ..protocols.http2 import ENHANCE_YOUR_CALM, NO_ERROR, REFUSED_STREAM, HTTP2Engine, HTTP2Error
from .body_pace import BodyPace
from .flow import FlowControl
from .http2_output import HTTP2Output
from .multiplexed import Multiplexed
from .stream import Stream
from .websocket_h2 import H2WebSocket

if TYPE_CHECKING:
    from .handover import Handover

log = logging.getLogger("monoceros.error")

TASK_NAME = "monoceros-request-h2"


class HTTP2Transport(FlowControl, Multiplexed, asyncio.Protocol):
    """One client connection speaking HTTP/2."""

    kind = 1  # metrics.CONNECTIONS: h2
    task_name = TASK_NAME
    engine: HTTP2Engine

    def __init__(self, http: Handover) -> None:
        super().__init__()
        state = self.state = http.state
        self.loop = http.loop
        self.transport = http.transport
        self.client = http.client
        self.server = http.server
        self.scheme = http.scheme
        self.extensions = http.extensions  # pathsend (read in pieces) and trailers work over HTTP/2 too
        self.lost = False
        self._read_paused = http.read_paused
        self.write_paused = http.write_paused
        self._first = http.tail
        self._upgrade = http.request  # an h2c upgrade's request: stream 1
        service = state.http2
        assert service is not None, "HTTP/2 is handed a connection only when it is served"
        self.service = service
        self.engine = service.make(service.settings, time.monotonic)
        self.output = HTTP2Output(self, self.engine)
        self.streams: dict[int, Stream] = {}
        self.tunnels: dict[int, H2WebSocket] = {}  # WebSockets on streams (RFC 8441)
        self._running: set[Task[None]] = set()  # app tasks still running, reset streams' included
        self._started = 0
        self._closing = False
        self._ended = False  # the transport is being closed
        self._flush_scheduled = False
        self._body_sizes: dict[int, int] = {}
        self._paces: dict[int, BodyPace] = {}
        self._pace_timer: asyncio.TimerHandle | None = None
        self._timer: asyncio.TimerHandle | None = None

    # -- life ----------------------------------------------------------------------------------------------

    def start(self) -> None:
        state = self.state
        state.connections.add(self)
        self._arm(state.header_timeout)
        request = self._upgrade
        if request is not None:
            payload = _settings_payload(request.headers)
            try:
                self.engine.upgrade(payload, request.method == "HEAD")
            except Exception as exc:  # a bad HTTP2-Settings header was refused before the 101
                log.debug("h2c upgrade failed: %s", exc)
                self._abort()
                return
            self._open(_as_h2(request))
        if state.shutting_down:
            self.shutdown()
        data, self._first = self._first, b""
        if data:
            self.data_received(data)
        else:
            self.flush()

    def data_received(self, data: bytes) -> None:
        if self._closing and self.engine.finished:
            return
        engine = self.engine
        try:
            engine.receive_data(data)
        except HTTP2Error as exc:
            log.debug("HTTP/2 connection from %s ends: %s", self.client, exc)
            self._dispatch()
            self.flush()
            self._finish()
            return
        self._dispatch()
        self.flush()
        if engine.finished:
            self._finish()

    def _open(self, request: Request) -> None:
        sid = request.stream_id
        if len(self._running) >= self.service.settings.max_concurrent_streams:
            self.engine.reset_stream(sid, REFUSED_STREAM)  # the client may retry it: nothing was processed
            return
        if self._timer is not None:
            self._cancel_timer()
        if request.protocol is not None:
            self._open_tunnel(request)
            return
        self._start_stream(request)

    def _stream_started(self) -> None:
        self._started += 1
        if self._started == self.service.max_requests and not self._closing:
            self.shutdown()  # as nginx's keepalive_requests: this connection's last

    def _tunnel_body(self, sid: int, data: bytes) -> bool:
        tunnel = self.tunnels.get(sid)
        if tunnel is None:
            return False
        tunnel.carrier.feed(data)
        return True

    def _tunnel_end(self, sid: int) -> bool:
        tunnel = self.tunnels.get(sid)
        if tunnel is None:
            return False
        tunnel.end_of_stream()
        return True

    def _tunnel_reset(self, sid: int) -> None:
        if sid in self.tunnels:
            self.tunnel_ended(sid, None)

    def _open_tunnel(self, request: Request) -> None:
        """An extended CONNECT (RFC 8441): a WebSocket on this stream, when WebSockets are served."""
        sid = request.stream_id
        if request.protocol != "websocket" or self.state.ws_handler is None:
            self._answer(sid, 501, f"the protocol {request.protocol!r} is not served over HTTP/2 here", False)
            return
        tunnel = self.tunnels[sid] = H2WebSocket(self, request)
        tunnel.start()
        task = tunnel.task
        if task is not None:
            self._running.add(task)
            task.add_done_callback(self._task_done)

    def tunnel_ended(self, sid: int, exc: Exception | None) -> None:
        tunnel = self.tunnels.pop(sid, None)
        if tunnel is not None:
            tunnel.connection_lost(exc)
            self.output.forget(sid)
            self._idle()

    def _task_done(self, task: Task[None]) -> None:
        running = self._running
        running.discard(task)
        if not running:  # the last app task of a burst: the connection may be idle from now
            self._idle()

    def stream_done(self, stream: Stream) -> None:
        """The stream's response is complete: it no longer counts as open."""
        sid = stream.request.stream_id
        if self.streams.get(sid) is stream:
            del self.streams[sid]
        self._body_ended(sid)

    def _idle(self) -> None:
        """No stream is open: finish a closing connection, or wait ``keep_alive`` for the next request."""
        if self.streams or self.tunnels or self.lost:
            return
        if self._closing:
            if not self._running:
                self._finish()
            return
        self._arm(self.state.keep_alive)

    # -- writing -------------------------------------------------------------------------------------------

    def flush(self) -> None:
        """Write what the engine has for the wire (unless the socket is behind: then on resume)."""
        if self.lost or self.write_paused:
            return
        engine = self.engine
        data = engine.data_to_send()
        if data:
            self.transport.write(data)
        if engine.events:  # a stream the engine closed while it wrote (a reset it sent)
            self._dispatch()
        self.output.wake()
        if self._closing and not self.streams and not self._ended and self.engine.finished:
            self._finish()

    def resume_writing(self) -> None:
        super().resume_writing()
        self.flush()

    # -- ending --------------------------------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        return bool(self.streams or self.tunnels)

    def shutdown(self) -> None:
        """Graceful stop: GOAWAY with the last stream id; open streams finish, then the connection closes."""
        if self._closing or self.lost:
            return
        self._closing = True
        self.engine.shutdown()
        self.flush()
        self._idle()

    def cut(self) -> None:
        self._abort()

    def _abort(self) -> None:
        if not self.lost:
            self.transport.abort()

    def _finish(self) -> None:
        """Write what is queued (a GOAWAY), then close."""
        if self._ended or self.lost:
            return
        self._ended = True
        self.flush()
        self.transport.close()

    def eof_received(self) -> bool | None:
        return None  # HTTP/2 has no half-close of the connection: the peer is gone

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.state.connections.discard(self)
        self._cancel_timer()
        self._stop_paces()
        streams, self.streams = self.streams, {}
        for stream in streams.values():
            stream.on_disconnect()
        tunnels, self.tunnels = self.tunnels, {}
        for tunnel in tunnels.values():
            tunnel.connection_lost(exc)
        self.output.wake_all()
        self._wake_drain()
        self.engine.close()

    # -- deadlines ---------------------------------------------------------------------------------------

    def _arm(self, timeout: float) -> None:
        self._cancel_timer()
        self._timer = self.loop.call_later(timeout, self._on_timer)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _on_timer(self) -> None:
        self._timer = None
        if self.streams or self.tunnels or self.lost:
            return
        self.engine.terminate(NO_ERROR)  # idle, or the first request never came: GOAWAY, then close
        self.flush()
        self._finish()

    def calm_down(self) -> None:
        """A budget was spent: ENHANCE_YOUR_CALM, then close."""
        self.engine.terminate(ENHANCE_YOUR_CALM)
        self.flush()
        self._finish()


def _settings_payload(headers: list[tuple[bytes, bytes]]) -> bytes:
    """The HTTP2-Settings header, decoded (base64url without padding, RFC 7540 §3.2.1)."""
    import base64

    for name, value in headers:
        if name == b"http2-settings":
            return base64.urlsafe_b64decode(value + b"=" * (-len(value) % 4))
    return b""


def _as_h2(request: Any) -> Request:
    """The upgrade request as stream 1 of the new HTTP/2 connection, without HTTP/1.1's connection fields."""
    drop = (b"connection", b"upgrade", b"http2-settings", b"keep-alive", b"proxy-connection", b"transfer-encoding")
    headers = [(n, v) for n, v in request.headers if n not in drop]
    return Request(
        1, request.method, request.target, request.path, request.query, "2", headers, request.authority,
        False, False, None,
    )  # fmt: skip
