"""One request and its response, as the adapters see it, whatever protocol carries it.

Theory of operation
-------------------
A connection driver makes one :class:`Stream` per request (HTTP/1.1: one at a time; HTTP/2: one per stream
id) and feeds it the request body (:meth:`Stream.feed`, :meth:`Stream.feed_end`), the client's going
(:meth:`Stream.on_disconnect`) and a half-close (:meth:`Stream.on_peer_eof`). The app takes the body with
:meth:`Stream.receive` and answers through :meth:`Stream.start_response`, :meth:`Stream.send`,
:meth:`Stream.send_trailers` and :meth:`Stream.sendfile` (the adapters' ``Exchange``).

Everything a protocol decides about bytes is behind the stream's :class:`Output`: how a head is framed and
when it leaves, how body pieces are framed and batched, when the client is behind, what a 100 Continue
looks like, how one stream is reset, whether a file can go out zero-copy. The stream itself keeps what every
protocol shares: the body queue and its waiters, disconnect and reset, whether the response has started or
is done, the access log line and the metrics, ``sendfile``'s small-file and in-pieces paths, and the error log.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import ClientDisconnected
from ..protocols.events import Request

if TYPE_CHECKING:
    from ..access_log import RequestLog

log = logging.getLogger("monoceros.error")

SENDFILE_CHUNK = 1 << 20  # a file that cannot go out zero-copy is read in pieces of this size
SMALL_FILE = 65536  # files up to this size are read on the loop and sent with the head


class Output(Protocol):
    """How a stream's response reaches the wire: one per connection (HTTP/1.1), or one shared by a
    connection's streams (HTTP/2, HTTP/3). Called on the event loop thread only."""

    trailers: bool  # whether this protocol can carry trailer fields

    def send_head(self, stream: Stream, status: int, headers: list[tuple[bytes, bytes]], close: bool) -> None:
        """Frame the response head (an informational one goes at once; a final one may wait for the body).
        ``close``: end the connection after it, where that is the connection's to decide. ValueError for a
        header that would break the framing."""

    def send_data(self, stream: Stream, data: bytes, more: bool, batch: bool) -> bool:
        """Frame and write body bytes; ``more=False`` ends the body. ``batch`` lets the output hold them until
        the loop turns, to join what follows. Returns False when the client is behind (wait_writable)."""

    def flush(self, stream: Stream) -> bool:
        """Write what the output holds for ``stream`` now; False when the client is behind."""

    def send_trailers(self, stream: Stream, headers: list[tuple[bytes, bytes]]) -> None:
        """End the body with trailer fields (only where ``trailers`` says the protocol carries them)."""

    async def wait_writable(self, stream: Stream) -> None:
        """Return once ``stream`` may send more (the socket's buffer, and a stream's flow window where there is
        one). ClientDisconnected when the client is gone."""

    def send_continue(self, stream: Stream) -> None:
        """The app reads a body the client holds back for 100 Continue: send it, if it is still due."""

    def body_allowed(self, stream: Stream) -> bool:
        """False when the response can have no body (HEAD, 1xx, 204, 304)."""

    async def send_file(self, stream: Stream, fd: int, offset: int, count: int, name: str) -> int | None:
        """Send ``count`` bytes of ``fd`` (the file ``name``) zero-copy and return how many went, or None when
        this response cannot (TLS, a framed body, --no-sendfile; the debug log says why): the stream then sends
        the file in pieces."""

    def reset(self, stream: Stream) -> None:
        """The response cannot be completed: reset this stream (HTTP/1.1: the connection ends)."""

    def buffered(self, stream: Stream, size: int) -> None:
        """``stream`` holds ``size`` bytes of body the app has not read yet (0 once it took them): reading can
        pause while it grows, and a protocol with flow windows reopens them as it drains."""

    def done(self, stream: Stream) -> None:
        """The response is complete: the connection may move on (HTTP/1.1's next request)."""


class Stream:
    """The request and response of one stream; implements the adapters' ``Exchange``."""

    __slots__ = (
        "_body",
        "_body_size",
        "_disconnect_waiter",
        "_waiter",
        "body_done",
        "client",
        "continue_pending",
        "extensions",
        "gone",
        "half_closed",
        "loop",
        "output",
        "received",
        "request",
        "request_log",
        "response_bytes",
        "response_done",
        "response_headers",
        "response_started",
        "scheme",
        "server",
        "start",
        "status",
    )

    def __init__(
        self,
        output: Output,
        loop: asyncio.AbstractEventLoop,
        request: Request,
        client: tuple[str, int] | None,
        server: tuple[str, int | None] | None,
        scheme: str,
        extensions: dict[str, Any],
        request_log: RequestLog | None,
        body_done: bool = False,
    ) -> None:
        """``body_done``: the request's body (empty) is already complete, as a bodiless request read whole."""
        self.output = output
        self.loop = loop
        self.request = request
        self.client = client
        self.server = server
        self.scheme = scheme
        self.extensions = extensions
        self.request_log = request_log
        self.start = time.perf_counter() if request_log is not None else 0.0
        self._body: list[bytes] = []
        self._body_size = 0
        self.body_done = body_done
        self.gone = False  # the client left, or the request broke the protocol mid-body
        self.half_closed = False
        self._waiter: asyncio.Future[None] | None = None
        self._disconnect_waiter: asyncio.Future[None] | None = None
        self.continue_pending = request.expect_continue
        self.response_started = False
        self.response_done = False
        self.status = 0
        self.response_headers: list[tuple[bytes, bytes]] = []
        self.response_bytes = 0
        self.received = 0  # request body bytes, for the metrics

    @property
    def disconnected(self) -> bool:
        return self.gone

    # -- the connection's side -----------------------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        if self.response_done:
            return  # the app has answered; the rest of the body is drained and dropped
        self._body.append(data)
        self._body_size += len(data)
        self.received += len(data)
        self.output.buffered(self, self._body_size)
        self._wake()

    def feed_end(self) -> None:
        self.body_done = True
        self._wake()

    def fail(self) -> None:
        """The request broke the protocol mid-body, or was reset: to the app, the client is gone."""
        self.on_disconnect()

    def on_peer_eof(self) -> None:
        """The client half-closed. To an app waiting for ``http.disconnect`` it is gone (browsers never
        half-close); a response it still sends is delivered, since the client may be reading."""
        self.half_closed = True
        waiter = self._disconnect_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def on_disconnect(self) -> None:
        self.gone = True
        self._wake()
        waiter = self._disconnect_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    # -- request body, the app's side ----------------------------------------------------------------------

    async def receive(self) -> tuple[bytes, bool]:
        while True:
            body = self._body
            if body:
                data = body[0] if len(body) == 1 else b"".join(body)
                body.clear()
                self._body_size = 0
                self.output.buffered(self, 0)
                return data, not self.body_done
            if self.body_done:
                return b"", False
            if self.gone:
                raise ClientDisconnected("client disconnected before sending the whole body")
            if self.continue_pending:
                self.continue_pending = False
                self.output.send_continue(self)
            waiter = self._waiter = self.loop.create_future()
            await waiter

    async def wait_disconnect(self) -> None:
        if self.response_done or self.gone or self.half_closed:
            return
        waiter = self._disconnect_waiter
        if waiter is None:
            waiter = self._disconnect_waiter = self.loop.create_future()
        await waiter

    # -- response ------------------------------------------------------------------------------------------

    def start_response(self, status: int, headers: list[tuple[bytes, bytes]], close: bool = False) -> None:
        if self.response_started:
            raise RuntimeError("the response has already started")
        self.output.send_head(self, status, headers, close)
        if status >= 200:  # an informational response (103 Early Hints) went out; a final one follows
            self.status = status
            self.response_headers = headers
            self.response_started = True

    def respond(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        """A whole response from the server itself, at once (the app's time ran out: server/request_deadline.py).
        The connection ends after it, where that is the connection's to decide."""
        self.start_response(status, headers, True)
        self.response_bytes += len(body)
        self.output.send_data(self, body, False, False)
        self._finish()

    async def send(self, data: bytes, more: bool) -> None:
        if self.gone:
            raise ClientDisconnected("client disconnected")
        self.response_bytes += len(data)
        writable = self.output.send_data(self, data, more, True)
        if not more:
            self._finish()
        elif not writable:
            await self.output.wait_writable(self)

    def send_nowait(self, data: bytes) -> bool:
        """Body bytes, more to follow; the output may batch them with what comes this loop turn. False when
        the client is behind and ``drain`` is due."""
        if self.gone:
            raise ClientDisconnected("client disconnected")
        self.response_bytes += len(data)
        return self.output.send_data(self, data, True, True)

    def flush(self) -> bool:
        """Write what ``send_nowait`` batched, now (a caller that batched by itself); False when the client is
        behind and ``drain`` is due."""
        return self.output.flush(self)

    async def drain(self) -> None:
        await self.output.wait_writable(self)

    async def send_trailers(self, headers: list[tuple[bytes, bytes]]) -> None:
        """End the body with trailer fields; a protocol that cannot carry them ends it without."""
        if self.gone:
            raise ClientDisconnected("client disconnected")
        if self.output.trailers:
            self.output.send_trailers(self, headers)
        else:
            self.output.send_data(self, b"", False, False)
        self._finish()

    async def sendfile(self, file: Any, offset: int, count: int | None) -> None:
        """The body is ``count`` bytes of an open file from ``offset``: zero-copy where the output can, read
        on the loop and sent with the head when it is small, else read in pieces off the loop thread."""
        if count is None:
            count = os.fstat(file.fileno()).st_size - offset
        output = self.output
        if not output.body_allowed(self):
            await self.send(b"", False)
            return
        if count <= SMALL_FILE:
            # Read here from the page cache and sent with the head in one write, a small file costs less than a
            # duplicate descriptor, sendfile(2) and a separate write of the head.
            data = os.pread(file.fileno(), count, offset)
            log.debug("Sent %d bytes of %s with the head, read on the loop", count, getattr(file, "name", "a file"))
            await self.send(data, False)
            if len(data) < count:
                self._short(count - len(data))
            return
        if self.gone:
            raise ClientDisconnected("client disconnected")
        name = getattr(file, "name", "a file")
        try:
            sent = await output.send_file(self, file.fileno(), offset, count, name)
        except ClientDisconnected:
            # The kernel said so before the transport did: gone, for the app and the connection alike.
            self.fail()
            output.reset(self)
            raise
        if sent is not None:
            self.response_bytes += sent
            log.debug("Sent %d bytes of %s with sendfile(2)", sent, name)
            if sent < count:
                self._short(count - sent)
                return
            await self.send(b"", False)
            return
        # Read it in pieces off the loop thread (a disk read may block), sent with flow control, so a slow
        # client holds one piece in memory, not the file.
        loop = self.loop
        await loop.run_in_executor(None, file.seek, offset)
        remaining = count
        while remaining > 0:
            chunk = await loop.run_in_executor(None, file.read, min(SENDFILE_CHUNK, remaining))
            if not chunk:
                break
            remaining -= len(chunk)
            await self.send(chunk, True)
        await self.send(b"", False)

    def _short(self, missing: int) -> None:
        """The file shrank while it was sent: the client waits for bytes that will never come."""
        self.log_error(f"the file ended {missing} bytes before its length; closing the stream")
        self.abort()

    def _finish(self) -> None:
        self.response_done = True
        request_log = self.request_log
        if request_log is not None:
            request_log.finished(self)
        waiter = self._disconnect_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        self.output.done(self)

    def abort(self) -> None:
        """The response cannot be completed (the app failed mid-response): reset this stream."""
        self.response_done = True
        self.output.reset(self)

    def log_error(self, message: str, exc: BaseException | None = None) -> None:
        request = self.request
        log.error(
            "%s (request: %s %s HTTP/%s from %s)",
            message,
            request.method,
            request.target.decode("latin-1"),
            request.http_version,
            self.client[0] if self.client else "unix",
            exc_info=exc,
        )
