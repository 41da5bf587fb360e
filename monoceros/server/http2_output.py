"""HTTP/2's output: how the streams of one connection write through its engine.

One :class:`HTTP2Output` serves every stream of a connection. A final head is held until the first body
bytes, so a response whose body is empty leaves as one HEADERS frame with END_STREAM. Body bytes queue in the
engine until the peer's windows let them go; a stream may send more while less than ``STREAM_HIGH_WATER``
waits, and :meth:`wait_writable` parks it until the window (and the socket) take it. What the engines produce
is written once per loop turn, so the frames of many streams leave in one write.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from ..errors import ClientDisconnected
from ..protocols.headers import check_header
from ..protocols.http2 import CANCEL, INTERNAL_ERROR, HTTP2Engine, response_fields

if TYPE_CHECKING:
    from .state import ServerState
    from .stream import Stream

log = logging.getLogger("monoceros.error")

STREAM_HIGH_WATER = 65536  # body bytes a stream may queue past its window before its sender waits


class Driver(Protocol):
    """What the output needs of its connection's driver (server/http2.py)."""

    state: ServerState
    loop: asyncio.AbstractEventLoop
    lost: bool
    write_paused: bool

    def flush(self) -> None: ...

    def flush_soon(self) -> None: ...

    def stream_done(self, stream: Stream) -> None: ...


class HTTP2Output:
    """The ``Output`` of every stream on one HTTP/2 connection."""

    __slots__ = ("_callbacks", "_heads", "_statuses", "_unread", "_waiters", "conn", "engine")

    trailers = True  # HTTP/2 carries trailer fields after any body
    high_water = STREAM_HIGH_WATER

    def __init__(self, conn: Driver, engine: HTTP2Engine) -> None:
        self.conn = conn
        self.engine = engine
        self._heads: dict[int, tuple[int, list[tuple[bytes, bytes]]]] = {}  # final heads held for the body
        self._statuses: dict[int, int] = {}
        self._unread: dict[int, int] = {}  # body bytes a stream holds that its app has not read
        self._waiters: dict[int, asyncio.Future[None]] = {}
        self._callbacks: dict[int, Callable[[], None]] = {}  # a WebSocket's resume_writing, by stream

    def send_head(self, stream: Stream, status: int, headers: list[tuple[bytes, bytes]], close: bool) -> None:
        for name, value in headers:
            check_header(name, value)
        sid = stream.request.stream_id
        fields = response_fields(status, headers, self.conn.state.default_headers)
        if status < 200:
            if not stream.gone:
                self.engine.send_headers(sid, status, fields, False)
                self.conn.flush_soon()
            return
        self._statuses[sid] = status
        if not self.body_allowed(stream):
            self._heads.pop(sid, None)
            self.engine.send_headers(sid, status, fields, True)
            self.conn.flush_soon()
            return
        self._heads[sid] = (status, fields)

    def _release_head(self, sid: int) -> None:
        """Send the held head, if it is still held; a body follows."""
        head = self._heads.pop(sid, None)
        if head is not None:
            self.engine.send_headers(sid, head[0], head[1], False)

    def send_data(self, stream: Stream, data: bytes, more: bool, batch: bool) -> bool:
        sid = stream.request.stream_id
        if stream.gone:
            return True
        engine = self.engine
        head = self._heads.pop(sid, None)
        if head is not None:  # a held head means a body is allowed
            if not more:  # the whole response at once
                engine.send_response(sid, head[0], head[1], data)
                self.conn.flush_soon()
                return True
            engine.send_headers(sid, head[0], head[1], False)
        if self._statuses.get(sid, 200) not in (204, 304):
            if stream.request.method != "HEAD":
                engine.send_data(sid, data, not more)
            elif not more:
                engine.send_data(sid, b"", True)
        if more and not batch:
            self.conn.flush()
        else:  # a response's end: the answers of every stream that ends in this loop turn leave in one write
            self.conn.flush_soon()
        return engine.pending(sid) < STREAM_HIGH_WATER and not self.conn.write_paused

    def flush(self, stream: Stream) -> bool:
        self.conn.flush()
        sid = stream.request.stream_id
        return self.engine.pending(sid) < STREAM_HIGH_WATER and not self.conn.write_paused

    def send_trailers(self, stream: Stream, headers: list[tuple[bytes, bytes]]) -> None:
        for name, value in headers:
            check_header(name, value)
        sid = stream.request.stream_id
        self._release_head(sid)
        self.engine.send_trailers(sid, [(name.lower(), value) for name, value in headers])
        self.conn.flush()

    async def wait_writable(self, stream: Stream) -> None:
        """Park the sender until its stream has room. A stream whose window takes none of its bytes for
        ``--send-timeout`` is reset (a shut TCP window is the connection's deadline: server/flow.py)."""
        sid = stream.request.stream_id
        conn = self.conn
        engine = self.engine
        loop = conn.loop
        timeout = conn.state.send_timeout
        mark = engine.pending(sid)
        since = loop.time()
        while not stream.gone and (engine.pending(sid) >= STREAM_HIGH_WATER or conn.write_paused):
            if conn.lost:
                break
            waiter = self._waiters.get(sid)
            if waiter is None or waiter.done():
                waiter = self._waiters[sid] = loop.create_future()
            timer = loop.call_at(since + timeout, _wake, waiter) if timeout else None
            await waiter
            if timer is not None:
                timer.cancel()
                pending = engine.pending(sid)
                if pending < mark or conn.write_paused:
                    mark, since = pending, loop.time()  # it moved, or the socket is the one behind
                elif loop.time() >= since + timeout and not stream.gone and not conn.lost:
                    self._send_timed_out(stream, pending)
        if stream.gone or conn.lost:
            raise ClientDisconnected("client disconnected")

    def _send_timed_out(self, stream: Stream, pending: int) -> None:
        """The client never opened this stream's window: reset it (CANCEL), which drops what it queued."""
        log.info(
            "Reset stream %d of %s: its window took none of the response for %g s (--send-timeout), "
            "%d bytes unsent", stream.request.stream_id, stream.client[0] if stream.client else "a client",
            self.conn.state.send_timeout, pending,
        )  # fmt: skip
        tally = self.conn.state.tally
        if tally is not None:
            tally.refused("send_timeout")
        stream.fail()
        self._heads.pop(stream.request.stream_id, None)
        self.engine.reset_stream(stream.request.stream_id, CANCEL)
        self.conn.flush()

    def when_writable(self, sid: int, callback: Callable[[], None]) -> None:
        """Call ``callback`` once the stream has room again (a WebSocket on the stream waits so)."""
        self._callbacks[sid] = callback

    def wake(self) -> None:
        """After a write: wake the senders whose stream has room again (or is gone)."""
        if self._callbacks:
            self._call_back()
        if not self._waiters:
            return
        engine = self.engine
        paused = self.conn.write_paused
        for sid, waiter in list(self._waiters.items()):
            if waiter.done():
                del self._waiters[sid]
            elif not paused and engine.pending(sid) < STREAM_HIGH_WATER:
                del self._waiters[sid]
                waiter.set_result(None)

    def _call_back(self) -> None:
        if self.conn.write_paused:
            return
        engine = self.engine
        for sid, callback in list(self._callbacks.items()):
            if engine.pending(sid) < STREAM_HIGH_WATER:
                del self._callbacks[sid]
                callback()

    def wake_all(self) -> None:
        """The connection is gone: every sender must find out."""
        callbacks, self._callbacks = self._callbacks, {}
        for callback in callbacks.values():
            callback()
        waiters, self._waiters = self._waiters, {}
        for waiter in waiters.values():
            if not waiter.done():
                waiter.set_result(None)

    def wake_stream(self, sid: int) -> None:
        waiter = self._waiters.pop(sid, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def send_continue(self, stream: Stream) -> None:
        """HTTP/2 requests carry no ``Expect: 100-continue`` the server must answer (see request_from_fields)."""

    def body_allowed(self, stream: Stream) -> bool:
        return stream.request.method != "HEAD" and self._statuses.get(stream.request.stream_id, 200) not in (204, 304)

    async def send_file(self, stream: Stream, fd: int, offset: int, count: int, name: str) -> int | None:
        return None  # DATA frames are framed: the stream sends the file in pieces, under flow control

    def reset(self, stream: Stream) -> None:
        sid = stream.request.stream_id
        self._heads.pop(sid, None)
        self.engine.reset_stream(sid, INTERNAL_ERROR)
        self.conn.flush()

    def buffered(self, stream: Stream, size: int) -> None:
        """The app took body bytes: reopen the windows by as much (so a slow reader pushes back)."""
        sid = stream.request.stream_id
        taken = self._unread.get(sid, 0) - size
        self._unread[sid] = size
        if taken > 0:
            self.engine.consume(sid, taken)
            self.conn.flush_soon()

    def holding(self) -> bool:
        """True while some stream holds body bytes its app has not read (they keep the windows shut)."""
        return any(self._unread.values())

    def done(self, stream: Stream) -> None:
        sid = stream.request.stream_id
        if not stream.body_done and not stream.gone:
            # RFC 9113 §8.1: the answer is complete before the request: tell the client to stop sending.
            self.engine.stop_after_response(sid)
            self.conn.flush_soon()
        self.forget(sid)
        self.conn.stream_done(stream)

    def forget(self, sid: int) -> None:
        """The stream is over for its app: body bytes it never read still count against the connection's
        window, so they are consumed now."""
        self._heads.pop(sid, None)
        self._statuses.pop(sid, None)
        unread = self._unread.pop(sid, 0)
        if unread:
            self.engine.consume(sid, unread)
        self.wake_stream(sid)


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
