"""One HTTP/1.1 request/response exchange, as the adapters see it (see adapters/exchange.py).

The request body arrives by :meth:`feed` / :meth:`feed_end` from the connection and
leaves by :meth:`receive` to the app. The response head is held back until the
first body bytes, so a small response leaves in a single ``transport.write``; a
head with no body following is flushed on the next loop iteration, so a
streaming app that starts a response and then waits still shows its head.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import TYPE_CHECKING, Any

from ..errors import ClientDisconnected
from ..protocols.http11 import HTTP11Request
from .sendfile import send_file

if TYPE_CHECKING:
    from .http11 import HTTP11Transport

log = logging.getLogger("monoceros.error")

_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_WRITELINES_MIN = 16384  # body pieces this large go out with writelines, never copied to frame them
_COALESCE_MAX = 262144  # large pieces sent in one go are written together, up to this much at a time
SENDFILE_CHUNK = 1 << 20
SMALL_FILE = 65536  # files up to this size are read on the loop and sent with the head


class HTTP11Exchange:
    """The request and response of one HTTP/1.1 exchange."""

    __slots__ = (
        "_body",
        "_body_size",
        "_disconnect_waiter",
        "_flush_scheduled",
        "_head",
        "_pending",
        "_pending_size",
        "_response_headers",
        "_waiter",
        "body_done",
        "client",
        "conn",
        "continue_pending",
        "extensions",
        "failed",
        "request",
        "response_bytes",
        "response_done",
        "response_started",
        "scheme",
        "server",
        "start",
        "status",
    )

    def __init__(self, conn: HTTP11Transport, request: HTTP11Request) -> None:
        self.conn = conn
        self.request = request
        self.client = conn.client
        self.server = conn.server
        self.scheme = conn.scheme
        self.extensions = conn.extensions
        self.start = time.perf_counter() if conn.state.access_log is not None else 0.0
        self._body: list[bytes] = []
        self._body_size = 0
        self.body_done = False
        self.failed = False
        self._waiter: asyncio.Future[None] | None = None
        self._disconnect_waiter: asyncio.Future[None] | None = None
        self.continue_pending = request.expect_continue
        self.response_started = False
        self.response_done = False
        self.status = 0
        self._head = b""
        self._pending: list[bytes] | None = None  # made only for a response that streams large pieces
        self._pending_size = 0
        self._flush_scheduled = False
        self._response_headers: list[tuple[bytes, bytes]] = []
        self.response_bytes = 0

    @property
    def disconnected(self) -> bool:
        return self.failed or self.conn.lost

    def fail(self) -> None:
        """The request broke the protocol mid-body: to the app, the client is gone."""
        self.failed = True
        self.on_disconnect()

    # -- request body, connection side ---------------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        if self.response_done:
            return  # the app has answered; the rest of the body is drained and dropped
        self._body.append(data)
        self._body_size += len(data)
        self.conn.body_buffered(self._body_size)
        self._wake()

    def feed_end(self) -> None:
        self.body_done = True
        self._wake()

    def on_peer_eof(self) -> None:
        """The client half-closed. To an app waiting for ``http.disconnect`` it is gone (browsers never
        half-close); a response it still sends is delivered, since the client may be reading."""
        waiter = self._disconnect_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def on_disconnect(self) -> None:
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

    # -- request body, app side ----------------------------------------------------------------------------

    async def receive(self) -> tuple[bytes, bool]:
        while True:
            body = self._body
            if body:
                data = body[0] if len(body) == 1 else b"".join(body)
                body.clear()
                self._body_size = 0
                self.conn.body_buffered(0)
                return data, not self.body_done
            if self.body_done:
                return b"", False
            if self.disconnected:
                raise ClientDisconnected("client disconnected before sending the whole body")
            if self.continue_pending:
                self.continue_pending = False
                if not self.response_started:
                    self.conn.transport.write(_CONTINUE)
            waiter = self._waiter = self.conn.loop.create_future()
            await waiter

    async def wait_disconnect(self) -> None:
        if self.response_done or self.disconnected or self.conn.peer_eof:
            return
        waiter = self._disconnect_waiter
        if waiter is None:
            waiter = self._disconnect_waiter = self.conn.loop.create_future()
        await waiter

    # -- response ------------------------------------------------------------------------------------------

    def start_response(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        if self.response_started:
            raise RuntimeError("the response has already started")
        conn = self.conn
        # A final answer before any 100 Continue: the client holds its body back, so the connection closes
        # after this response (see HTTP11Transport.response_complete). RFC 9110 §10.1.1: say so in the head.
        holding_back = self.continue_pending and not self.body_done
        self._head = conn.h11.response_head(
            self.request,
            status,
            headers,
            conn.state.default_headers,
            keep_alive=not conn.state.shutting_down and not holding_back,
        )
        self.status = status
        self._response_headers = headers
        self.response_started = True
        if status < 200:
            # An informational response (e.g. 103 Early Hints) goes out at once; a final one follows.
            self.response_started = False
            if not self.disconnected:
                conn.transport.write(self._head)
            self._head = b""
            return
        if not conn.h11.response_length_known:
            # A streamed response (no Content-Length): its body may be a long time coming (server-sent
            # events), so the client gets the head now. Otherwise it leaves with the body, in one write.
            self._flush_head()

    def _flush_head(self) -> None:
        head = self._head
        # Not after fail(): the connection then carries the server's own error response and is half-closed.
        if head and not self.disconnected:
            self._head = b""
            self.conn.transport.write(head)

    async def send(self, data: bytes, more: bool) -> None:
        if self._write(data, more) or not more:
            return
        await self.conn.drain()

    def send_nowait(self, data: bytes, coalesce: bool = True) -> bool:
        """Write body bytes now (more follow); False when the client is behind and ``drain`` is due."""
        return self._write(data, True, coalesce)

    async def drain(self) -> None:
        await self.conn.drain()

    def _write(self, data: bytes, more: bool, coalesce: bool = True) -> bool:
        """Frame and write; the head goes in the same write. True while the transport takes more."""
        conn = self.conn
        if self.failed or conn.lost:
            raise ClientDisconnected("client disconnected")
        h11 = conn.h11
        self.response_bytes += len(data)
        if len(data) >= _WRITELINES_MIN:
            parts = h11.response_body_parts(data)
            if self._head:
                parts = (self._head, *parts)
                self._head = b""
            if more and coalesce:
                # Large pieces sent in one go (an app streaming a file or a big body) are written together,
                # up to _COALESCE_MAX at a time and at the latest when the loop comes round: one large write
                # costs the kernel far less than many (scenario e: 82 % of the server's CPU is the kernel's).
                pending = self._pending
                if pending is None:
                    pending = self._pending = []
                    if not self._flush_scheduled:
                        self._flush_scheduled = True
                        conn.loop.call_soon(self._flush_soon)
                pending.extend(parts)
                self._pending_size += len(data)
                if self._pending_size < _COALESCE_MAX:
                    return True
                self._flush_pending()
                return not conn.write_paused
            if not more:
                parts += (h11.response_end(),)
            pending = self._pending
            if pending:
                pending.extend(parts)
                self._flush_pending()
            else:
                conn.transport.writelines(parts)
            if more:
                return not conn.write_paused
            self._finish()
            return True
        if self._pending:
            self._flush_pending()
        out = h11.response_body(data)
        if not more:
            out += h11.response_end()
        head = self._head
        if head:  # small by now (large pieces took the writelines path): one copy, one write
            self._head = b""
            conn.transport.write(head + out)
        elif out:
            conn.transport.write(out)
        if not more:
            self._finish()
            return True
        return not conn.write_paused

    def _flush_pending(self) -> None:
        pending = self._pending
        if pending:
            self._pending = None
            self._pending_size = 0
            if not self.conn.lost:
                self.conn.transport.write(b"".join(pending))

    def _flush_soon(self) -> None:
        self._flush_scheduled = False
        self._flush_pending()

    async def sendfile(self, file: Any, offset: int, count: int | None) -> None:
        """Zero-copy when the body needs no framing and the transport is a plain socket (server/sendfile.py)."""
        self._flush_pending()
        conn = self.conn
        if count is None:
            count = os.fstat(file.fileno()).st_size - offset
        h11 = conn.h11
        if not h11.response_has_body:
            await self.send(b"", False)
            return
        if count <= SMALL_FILE:
            # A small file costs less read here, from the page cache, and sent with the head in one write than
            # a duplicate descriptor, sendfile(2) and a separate write of the head (16 KB: about 1.3x the rate).
            data = os.pread(file.fileno(), count, offset)
            log.debug("Sent %d bytes of %s with the head, read on the loop", count, getattr(file, "name", "a file"))
            await self.send(data, False)
            if len(data) < count:
                self.log_error(f"the file ended {count - len(data)} bytes before its length; closing the connection")
                self.abort()
            return
        if h11.response_is_raw and conn.scheme == "http" and conn.state.sendfile:
            self._flush_head()
            if count:
                h11.account_body(count)
                try:
                    sent = await send_file(conn, file.fileno(), offset, count)
                except ClientDisconnected:
                    # The kernel said so before the transport did: gone, for the app and the connection alike.
                    self.fail()
                    if not conn.lost:
                        conn.transport.abort()
                    raise
                self.response_bytes += sent
                log.debug("Sent %d bytes of %s with sendfile(2)", sent, getattr(file, "name", "a file"))
                if sent < count:
                    # The file shrank while it was sent: the client waits for bytes that will never come.
                    self.log_error(f"the file ended {count - sent} bytes before its length; closing the connection")
                    self.abort()
                    return
            await self.send(b"", False)
            return
        # Otherwise read it in pieces off the loop thread (a disk read may block) and send them with
        # flow control, so a slow client holds one piece in memory, not the file.
        if log.isEnabledFor(logging.DEBUG):
            why = "TLS" if conn.scheme != "http" else "--no-sendfile" if not conn.state.sendfile else "chunked"
            log.debug("Sending %d bytes of %s in pieces (%s)", count, getattr(file, "name", "a file"), why)
        await conn.loop.run_in_executor(None, file.seek, offset)
        remaining = count
        while remaining > 0:
            chunk = await conn.loop.run_in_executor(None, file.read, min(SENDFILE_CHUNK, remaining))
            if not chunk:
                break
            remaining -= len(chunk)
            await self.send(chunk, True)
        await self.send(b"", False)

    def _finish(self) -> None:
        self.response_done = True
        conn = self.conn
        access_log = conn.state.access_log
        if access_log is not None:
            access_log.log_request(
                self.request,
                self.client,
                self.status,
                self.response_bytes,
                time.perf_counter() - self.start,
                self._response_headers,
                time.time(),
            )
        waiter = self._disconnect_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        conn.response_complete(self)

    def abort(self) -> None:
        self.response_done = True
        if not self.conn.lost:
            self.conn.transport.abort()

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
