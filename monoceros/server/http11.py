"""The HTTP/1.1 connection driver: an asyncio protocol that runs the sans-IO state machine.

Theory of operation
-------------------
What HTTP/1.1 says (framing, 100-continue, whether the connection persists, error responses) is the
protocol's: :class:`~monoceros.protocols.http11.HTTP11Connection`. This driver feeds it, keeps the flow
and the deadlines, and starts tasks. Bytes from the socket go to the protocol; the events it produces wait
in ``_pending`` and :meth:`_dispatch` hands them out in order. A ``Request`` starts a
:class:`~monoceros.server.stream.Stream` (writing through this connection's
:class:`~monoceros.server.http11_output.HTTP11Output`) and the app's handler task; ``Body`` and ``EndBody``
feed that stream. A pipelined ``Request`` waits until the exchange before it has finished its response
(RFC 9112 §9.3.2: answers in order); then the protocol's ``response_state`` says whether the connection
carries it (DONE) or closes (MUST_CLOSE).

Flow control both ways:
- reading pauses while an exchange holds more than ``READ_HIGH_WATER`` bytes of
  body that the app has not consumed, or too many pipelined events wait;
- ``send`` awaits a drain only while the transport has called ``pause_writing``.

One lazy timer per connection enforces the deadlines: the header-read deadline
(408) while a request head is arriving, and the keep-alive idle timeout between
requests. Changing the deadline only stores a float; the timer re-arms itself.
"""

from __future__ import annotations

import asyncio
import logging
from asyncio import Task
from collections import deque
from typing import Any

from ..protocols.events import Body, EndBody, Event, ProtocolError
from ..protocols.http11 import DONE, IDLE, RECEIVING_HEAD, HTTP11Connection, HTTP11Request
from ..protocols.http11_request import is_http1_line
from .body_pace import BodyPace
from .deadline import BODY, HEADER, KEEPALIVE, LINGER, NONE, Deadline
from .http11_output import HTTP11Output
from .http11_switch import Switching
from .reclaim import ReclaimableHTTP11
from .state import ServerState
from .stream import Stream
from .tls_info import alpn, tls_extension

log = logging.getLogger("monoceros.error")

TASK_NAME = "monoceros-request"
READ_HIGH_WATER = 65536  # unread request body held per exchange before reading pauses
PIPELINE_HIGH_WATER = 64  # events parsed ahead of the current exchange before reading pauses
LINGER_SECONDS = 2.0  # after a final error response, how long to drain the client before closing
SHUTDOWN_IDLE = 0.5  # on a graceful stop, how long an idle keep-alive connection may still bring a request

# ASGI scope extensions every HTTP/1.1 connection offers (their values are empty dicts, by the spec): pathsend
# (an app answers with a file's path, which goes out with sendfile) and trailers (fields after a chunked body).
_EMPTY: dict[str, Any] = {}


class HTTP11Transport(HTTP11Output, Deadline, ReclaimableHTTP11, Switching, asyncio.Protocol):
    """One client connection speaking HTTP/1.1."""

    kind = 0  # metrics.CONNECTIONS: http/1.1
    __slots__ = (
        "_closing",
        "_deadline",
        "_deadline_kind",
        "_error",
        "_pace",
        "_pending",
        "_timer",
        "_timer_when",
        "client",
        "exchange",
        "extensions",
        "h11",
        "loop",
        "lost",
        "peer_eof",
        "scheme",
        "server",
        "state",
        "transport",
    )

    def __init__(self, state: ServerState, scheme: str) -> None:
        # The bases' fields, set here rather than through their __init__: one connection per request is a
        # common load (Connection: close), and two more calls per connection show (bench/icount.py asgi-close).
        self.write_paused = self._read_paused = self._flush_scheduled = False
        self._drain_waiters: list[asyncio.Future[None]] = []
        self._send_timer: asyncio.TimerHandle | None = None
        self._head = b""
        self._held: list[bytes] | None = None
        self._held_size = 0
        self.state = state
        self.loop = state.loop
        self.scheme = scheme
        self.h11 = HTTP11Connection(state.limits, state.default_names, state.keep_alive > 0, state.h2c_upgrade)
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.client: tuple[str, int] | None = None
        self.server: tuple[str, int | None] | None = None
        self.extensions: dict[str, Any] = {"http.response.pathsend": _EMPTY, "http.response.trailers": _EMPTY}
        self.exchange: Stream | None = None
        self._pending: deque[Event] = deque()
        self._error: ProtocolError | None = None
        self.peer_eof = False
        self.lost = False
        self._closing = False
        self._init_deadline()

    # -- asyncio.Protocol --------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's transports do not subclass it
        state = self.state
        state.connections.add(self)
        self._addresses(transport)
        if self.scheme == "https":
            self.extensions["tls"] = tls_extension(self.transport)
            if state.http2 is not None and alpn(self.transport) == "h2":
                self._switch(None, b"", state.http2.driver)  # TLS chose HTTP/2
                return
        if len(state.connections) > state.limit_concurrency and not self._make_room():
            self._send_error(503, "the server is at its connection limit")  # every connection is in a request
            return
        self._set_deadline(HEADER, state.header_timeout)

    def _addresses(self, transport: asyncio.BaseTransport) -> None:
        """The client's and the server's address, from the socket."""
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple):
            self.client = (peer[0], peer[1])
        sock = transport.get_extra_info("sockname")
        if isinstance(sock, tuple):
            self.server = (sock[0], sock[1])
        elif isinstance(sock, str) and sock:
            self.server = (sock, None)

    def data_received(self, data: bytes) -> None:
        if self._closing or self._error is not None:
            return  # lingering after a final response, or past a protocol error: drain and drop
        h11 = self.h11
        if h11.request_state is IDLE and self._first_bytes(data):
            return
        if self._deadline_kind == BODY:  # the body moves (the timer is lazy: it checks the pace when it fires)
            self._pace.moved(len(data), self.loop.time())
        try:
            h11.receive_data(data)
        except ProtocolError as exc:
            if h11.last_request is None and self.state.http2 is not None and not is_http1_line(data):
                self._close()  # neither HTTP/2's preface nor an HTTP/1.x request line: nothing to answer in
                return
            # Requests parsed before the bad bytes are still answered, in order; the error comes last.
            self._error = exc.detached()
            self._pause_reading()
        events = h11.events
        if (
            len(events) == 2
            and self.exchange is None
            and not self._pending
            and type(events[1]) is EndBody
            and h11.upgrade_request is None
        ):
            # The common case, a whole bodiless request in one read: no queue needed.
            request = events[0]
            events.clear()
            self._start(request, True)  # type: ignore[arg-type]
            if self._error is not None:
                self._dispatch()
            return
        if events:
            self._pending.extend(events)
            events.clear()
        self._dispatch()
        if h11.upgrade_request is not None and self.exchange is not None:
            self._pause_reading()  # a WebSocket handshake waits behind a pipelined request: hold its bytes
        if self._deadline_kind == KEEPALIVE and self.exchange is None and h11.request_state is RECEIVING_HEAD:
            # A request head has begun but not ended: from now on it has header_timeout to arrive.
            self._set_deadline(HEADER, self.state.header_timeout)

    def eof_received(self) -> bool | None:
        if self._closing:
            return None
        self.peer_eof = True
        try:
            self.h11.receive_eof()
        except ProtocolError as exc:
            self._error = exc.detached()
            self._dispatch()
        if self.exchange is not None:
            self.exchange.on_peer_eof()
        if self.exchange is not None or self._pending:
            return True  # a half-closed client still gets its responses; done() closes after the last
        return None  # close

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.h11.release()
        self.state.connections.discard(self)
        self._stop_deadline()
        exchange = self.exchange
        if exchange is not None:
            exchange.on_disconnect()
        self._wake_drain()

    # -- dispatch ----------------------------------------------------------------------------------------

    def _dispatch(self) -> None:
        pending = self._pending
        while pending:
            event = pending[0]
            kind = type(event)
            if kind is HTTP11Request:
                if self.exchange is not None:
                    if len(pending) > PIPELINE_HIGH_WATER:
                        self._pause_reading()
                    return
                pending.popleft()
                if event is self.h11.upgrade_request:
                    self._upgrade(event)
                    return
                self._start(event)  # type: ignore[arg-type]
            elif kind is Body:
                pending.popleft()
                assert self.exchange is not None
                self.exchange.feed(event.data)  # type: ignore[union-attr]
            else:
                pending.popleft()
                assert self.exchange is not None
                if self._deadline_kind == BODY:
                    self._deadline_kind = NONE  # the body is whole
                self.exchange.feed_end()
                if self.exchange.response_done:
                    self.done(self.exchange)
                    return
        if self._error is not None:
            self._fail_pipeline(self._error)

    def _fail_pipeline(self, error: ProtocolError) -> None:
        """Every complete request before the bad bytes has been dispatched; now answer the error."""
        exchange = self.exchange
        if exchange is None:
            self._send_error(error.status, str(error))
        elif not exchange.body_done:
            # The bad bytes are inside the body of the request in progress.
            exchange.fail()
            if exchange.response_done:
                self._close()
            elif exchange.response_started:
                self.transport.abort()
            else:
                self.exchange = None
                self._send_error(error.status, str(error))
        # else: the exchange in progress is sound; done() comes back here once it has answered

    def _start(self, request: HTTP11Request, whole: bool = False) -> Stream:
        """Start the stream and the app's task for ``request``; ``whole``: its (empty) body is complete."""
        self._deadline_kind = NONE
        state = self.state
        state.requests_served += 1
        if state.requests_served == state.request_limit:
            state.limit_reached()  # the worker's last request: it stops taking more before this one runs
        exchange = Stream(
            self, self.loop, request, self.client, self.server, self.scheme, self.extensions, state.request_log, whole
        )
        proxy = state.proxy
        if proxy is not None:
            exchange.client, exchange.scheme = proxy.resolve(self.client, self.scheme, request.headers)
        self.exchange = exchange
        if not whole and request.has_body and state.body_timeout:
            # The body must keep arriving, and at --body-min-rate.
            self._pace = BodyPace(self.loop.time(), state.body_timeout, state.body_min_rate)
            self._set_deadline(BODY, state.body_timeout)
        # Task() with a name, not loop.create_task(): Python 3.11 formats a "Task-N" name for every unnamed
        # task, a cost docs/performance.md counts. The loop is the same either way.
        Task(state.handler(exchange), loop=self.loop, name=TASK_NAME)
        return exchange

    def done(self, exchange: Stream) -> None:
        """The stream's response is complete (its last byte is written). Once its request is complete too (the
        dispatch calls this again at EndBody), take the next request, or close."""
        if not exchange.body_done and self.h11.response_state is DONE:
            return  # the body is still arriving: drain it (the dispatch comes back here at its end)
        self.exchange = None
        if self.h11.response_state is not DONE or self.state.shutting_down:
            self._close()  # the response ended the connection, or the worker takes no more requests
            return
        if self.peer_eof and not self._pending:
            self._close()
            return
        if self._read_paused:
            self._resume_reading()
        if self._pending or self._error is not None:
            self._dispatch()
        if self.exchange is None and not self._closing:
            if self.h11.request_state is RECEIVING_HEAD:
                self._set_deadline(HEADER, self.state.header_timeout)
                return
            # _set_deadline(KEEPALIVE, ...), inline: this runs after every keep-alive response
            self._deadline_kind = KEEPALIVE
            deadline = self._deadline = self.loop.time() + self.state.keep_alive
            if deadline < self._timer_when:
                self._set_deadline(KEEPALIVE, self.state.keep_alive)

    @property
    def busy(self) -> bool:
        """True while an exchange is in progress (graceful shutdown waits for these)."""
        return self.exchange is not None

    @property
    def requests_in_flight(self) -> int:
        return 0 if self.exchange is None else 1

    def cut(self) -> None:
        """Stop at once (the worker's graceful timeout is over): the connection ends now."""
        if not self.lost:
            self.transport.abort()

    def shutdown(self) -> None:
        """Graceful stop. A busy connection closes once its response is complete (which says
        ``Connection: close``). An idle keep-alive connection gets ``SHUTDOWN_IDLE`` seconds first:
        closing it at once races a request the client may be sending right now, which the client would
        see as a failure; a request that arrives in time is answered, with ``Connection: close``."""
        if self.exchange is None and not self.lost and not self._closing:
            if self._pending or self.h11.request_in_progress:
                return  # a request is arriving: it is served, then the connection closes
            self._set_deadline(KEEPALIVE, min(SHUTDOWN_IDLE, self.state.keep_alive))

    # -- flow control ------------------------------------------------------------------------------------

    def buffered(self, stream: Stream, size: int) -> None:
        """The stream holds ``size`` bytes of body its app has not read: past a high-water mark, stop reading."""
        if size > READ_HIGH_WATER:
            self._pause_reading()
        elif self._read_paused and size == 0:
            self._resume_reading()
            if self._deadline_kind == BODY:
                self._pace.restart(self.loop.time())  # the time the app spent not reading is not the client's

    def _deadline_passed(self, kind: int) -> None:
        if kind == HEADER and self.exchange is None and self.h11.request_in_progress:
            # No lingering close: a client this late is not sending, and a crowd of them (a slowloris)
            # times out together, when a shutdown(2) and a timer more each would hold the loop.
            self._send_error(408, "the request head did not arrive in time", linger=False)
        elif kind == BODY:
            now = self.loop.time()
            pace = self._pace
            if self._read_paused:  # the app is not reading: the client is not the one late
                pace.restart(now)
            else:
                why = pace.verdict(now)
                if why is not None:
                    self._fail_pipeline(ProtocolError(why, 408))
                    return
            self._set_deadline(BODY, pace.next_check - now)
        else:
            self.transport.close()

    # -- closing and errors ------------------------------------------------------------------------------

    def _close(self) -> None:
        if not self.lost:
            self._closing = True
            self.transport.close()

    def _send_error(self, status: int, detail: str, linger: bool = True) -> None:
        """Answer with a final error and close, draining what the client still sends (a lingering close),
        so that the client reads our answer instead of a connection reset."""
        data = self.h11.error_response(status, detail, self.state.default_headers)
        self._closing = True
        self._pending.clear()
        transport = self.transport
        transport.write(data)
        if self.state.request_log is not None:
            self.state.request_log.log_refusal(self.client, status, len(data) - data.index(b"\r\n\r\n") - 4)
        if self.peer_eof or not linger:
            transport.close()
        elif transport.can_write_eof():
            transport.write_eof()
            self._set_deadline(LINGER, LINGER_SECONDS)
            self._resume_reading()  # drain (data_received drops it) and see the client's EOF, to close at once
        else:
            transport.close()
