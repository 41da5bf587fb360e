"""HTTP/1.1's output policy: how a stream's response becomes writes on one connection.

The head is framed by the sans-IO protocol (``protocols/http11.py``) and held back until the first body
bytes, so that a small response leaves in a single ``transport.write``; a head with no length declared goes
at once, since its body may be a long time coming (server-sent events). Large body pieces go out with
``writelines``, never copied to be framed, and pieces sent in one go are joined, up to ``COALESCE_MAX`` at a
time and at the latest when the loop turns: one large write costs the kernel far less than many (see
docs/performance.md). A file goes out with sendfile(2) where nothing frames it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ..protocols.http11 import HTTP11Connection, HTTP11Request
from .flow import FlowControl
from .sendfile import send_file

if TYPE_CHECKING:
    from .state import ServerState
    from .stream import Stream

log = logging.getLogger("monoceros.error")

WRITELINES_MIN = 16384  # body pieces this large go out with writelines, never copied to frame them
COALESCE_MAX = 262144  # large pieces sent in one go are written together, up to this much at a time


class HTTP11Output(FlowControl):
    """The output side of an HTTP/1.1 connection, one response at a time: the ``Output`` its streams write
    through (``buffered`` and ``done``, which steer reading and the next request, are the driver's). The
    connection driver (server/http11.py) is one, so that no object of its own ties a reference cycle to the
    connection; this class holds the output's policy and state."""

    __slots__ = ("_flush_scheduled", "_head", "_held", "_held_size")

    trailers = True  # chunked bodies carry them; a body with a Content-Length ends without them

    # Set by the connection driver.
    h11: HTTP11Connection
    state: ServerState
    scheme: str

    def __init__(self) -> None:
        super().__init__()
        self._head = b""
        self._held: list[bytes] | None = None  # made only for a response that streams large pieces
        self._held_size = 0
        self._flush_scheduled = False

    def send_head(self, stream: Stream, status: int, headers: list[tuple[bytes, bytes]], close: bool) -> None:
        h11 = self.h11
        if self.state.shutting_down:
            h11.close_after_response()  # the worker is stopping: this response is the connection's last
        request: HTTP11Request = stream.request  # type: ignore[assignment]  # this connection's own
        head = h11.response_head(request, status, headers, self.state.default_headers, close=close)
        if status < 200:
            if not stream.gone:  # an informational response (103 Early Hints) goes out at once
                self.transport.write(head)
            return
        self._head = head
        if not h11.response_length_known:
            # A streamed response (no Content-Length): its body may be a long time coming (server-sent
            # events), so the client gets the head now. Otherwise it leaves with the body, in one write.
            self._flush_head(stream)

    def _flush_head(self, stream: Stream) -> None:
        head = self._head
        # Not after a failure: the connection then carries the server's own error response and is half-closed.
        if head and not stream.gone:
            self._head = b""
            self.transport.write(head)

    def send_data(self, stream: Stream, data: bytes, more: bool, batch: bool) -> bool:
        """Frame and write; the head goes in the same write. True while the transport takes more."""
        h11 = self.h11
        if len(data) >= WRITELINES_MIN:
            parts = h11.response_body_parts(data)
            if self._head:
                parts = (self._head, *parts)
                self._head = b""
            if more and batch:
                held = self._held
                if held is None:
                    held = self._held = []
                    if not self._flush_scheduled:
                        self._flush_scheduled = True
                        self.loop.call_soon(self._flush_soon)
                held.extend(parts)
                self._held_size += len(data)
                if self._held_size < COALESCE_MAX:
                    return True
                self._flush_held()
                return not self.write_paused
            if not more:
                parts += (h11.response_end(),)
            held = self._held
            if held:
                held.extend(parts)
                self._flush_held()
            else:
                self.transport.writelines(parts)
            return not more or not self.write_paused
        if self._held:
            self._flush_held()
        out = h11.response_body(data)
        if not more:
            out += h11.response_end()
        head = self._head
        if head:  # small by now (large pieces took the writelines path): one copy, one write
            self._head = b""
            self.transport.write(head + out)
        elif out:
            self.transport.write(out)
        return not more or not self.write_paused

    def flush(self, stream: Stream) -> bool:
        self._flush_held()
        return not self.write_paused

    def _flush_held(self) -> None:
        held = self._held
        if held:
            self._held = None
            self._held_size = 0
            if not self.lost:
                self.transport.write(b"".join(held))

    def _flush_soon(self) -> None:
        self._flush_scheduled = False
        self._flush_held()

    def send_trailers(self, stream: Stream, headers: list[tuple[bytes, bytes]]) -> None:
        self._flush_held()
        out = self._head + self.h11.response_end(headers)
        self._head = b""
        if out:
            self.transport.write(out)

    async def wait_writable(self, stream: Stream) -> None:
        await self.drain()

    def send_continue(self, stream: Stream) -> None:
        interim = self.h11.continue_response(stream.request)  # type: ignore[arg-type]  # this connection's own
        if interim:
            self.transport.write(interim)

    def body_allowed(self, stream: Stream) -> bool:
        return self.h11.response_has_body

    async def send_file(self, stream: Stream, fd: int, offset: int, count: int, name: str) -> int | None:
        self._flush_held()
        h11 = self.h11
        if h11.response_is_raw and self.scheme == "http" and self.state.sendfile:
            self._flush_head(stream)
            h11.account_body(count)
            return await send_file(self, fd, offset, count)
        if log.isEnabledFor(logging.DEBUG):
            why = "TLS" if self.scheme != "http" else "--no-sendfile" if not self.state.sendfile else "chunked"
            log.debug("Sending %d bytes of %s in pieces (%s)", count, name, why)
        return None

    def reset(self, stream: Stream) -> None:
        if not self.lost:
            self.transport.abort()
