"""One WSGI app invocation: ``start_response``, ``write``, the iteration of the response and its ``close``
(PEP 3333), shared by the two execution models. How a body piece reaches the client, and how a file does,
is the model's: :class:`~monoceros.adapters.wsgi_pool.PoolCall` runs the app in a pool thread and hands
pieces to the loop, :class:`~monoceros.adapters.wsgi_inline.InlineCall` runs it on the loop thread and
writes them at once.

Round trips: a list or tuple body (what most frameworks return) is joined and sent with the head in one
piece, with a Content-Length. A streamed body goes piece by piece as it is produced (PEP 3333 forbids
holding a block back). A ``wsgi.file_wrapper`` over a regular file is sent with ``exchange.sendfile``. The
head goes with the first non-empty piece, or at the end for an empty body; the reason phrase of the app's
status is not kept (the exchange writes the standard one).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import Any

from ..errors import ClientDisconnected
from .exchange import Exchange
from .wsgi_environ import Environ
from .wsgi_input import ErrorStream, FileWrapper, encode_headers, parse_status, regular_file_size

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]
Write = Callable[[bytes], None]
StartResponse = Callable[..., Write]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]

log = logging.getLogger("monoceros.error")

DRAIN = object()  # inline: the client is behind; drain, then resume the iteration
FILE = object()  # inline: send call.file_span with sendfile, then close the iterable


class Call:
    """What both execution models share of one app invocation."""

    __slots__ = (
        "app",
        "cancelled",
        "code",
        "environ",
        "errors",
        "exchange",
        "framed",
        "headers",
        "headers_sent",
        "iterator",
        "loop",
        "queued",
        "result",
        "status",
    )

    def __init__(self, app: WSGIApp, loop: asyncio.AbstractEventLoop, exchange: Exchange) -> None:
        self.app = app
        self.loop = loop
        self.exchange = exchange
        self.environ: Environ = {}
        self.errors = ErrorStream()
        self.status: str | None = None
        self.code = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.framed = False  # the app framed the body itself (Content-Length or Transfer-Encoding)
        self.headers_sent = False
        self.cancelled = False
        self.result: Iterable[bytes] | None = None
        self.iterator: Iterator[bytes] | None = None
        self.queued = 0  # body bytes handed on since the loop last ran

    async def execute(self) -> bytes | None:
        """Run the app to the end of its response; the last piece of body is for the handler to send (with
        the head, if it has not gone yet), None when the response is over already."""
        raise NotImplementedError

    def cancel(self) -> None:
        """The handler was cancelled: stop, and release whatever the app's thread waits for."""
        self.cancelled = True

    # -- the app's side ----------------------------------------------------------------------------------

    def run(self) -> Any:
        """Call the app and consume its response (see :meth:`resume`)."""
        try:
            self.result = self.app(self.environ, self.start_response)
        except BaseException:
            self.close_result()
            raise
        return self.resume()

    def resume(self) -> Any:
        """Consume the response: the last piece of body, None, or (inline) :data:`DRAIN` or :data:`FILE`."""
        try:
            out = self._consume()
        except BaseException:
            self.close_result()
            raise
        if out is not DRAIN and out is not FILE:
            self.close_result()
        return out

    def close_result(self) -> None:
        """PEP 3333: the iterable's close() is always called, once, as the app's response ends: a call given
        up meanwhile (--request-timeout, the worker stopping) says here that what it returned is discarded."""
        result, self.result = self.result, None
        try:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        finally:
            self.errors.flush()
            if self.cancelled:
                self.exchange.log_error("The WSGI app given up earlier has returned: what it returned is discarded")

    def _consume(self) -> Any:
        result = self.result
        if self.iterator is None:
            if isinstance(result, (list, tuple)):
                if len(result) == 1 and type(result[0]) is bytes:
                    body = result[0]
                else:
                    body = b"".join(check_chunk(chunk) for chunk in result)
                return self._last(body)
            if type(result) is FileWrapper and (size := regular_file_size(result.filelike)) is not None:
                offset, count = self._file_span(result.filelike, size)
                self.headers_sent = True
                return self._file(result.filelike, offset, count)
            assert result is not None
            self.iterator = iter(result)
        try:
            for chunk in self.iterator:
                if check_chunk(chunk):
                    self._started()
                    if not self._push(chunk):
                        return DRAIN
        except ClientDisconnected as exc:
            log.debug("client went away during a WSGI response: %s", exc)
            return None
        return self._last(b"")

    def _push(self, data: bytes) -> bool:
        """Hand a body piece on. False (inline only) when the client is behind and the loop must drain."""
        raise NotImplementedError

    def _file(self, file: Any, offset: int, count: int) -> Any:
        """Send ``count`` bytes of a regular file from ``offset`` (the head is framed already)."""
        raise NotImplementedError

    def _last(self, body: bytes) -> bytes:
        """The whole rest of the body; when the head has not gone, the body is all there is: frame it."""
        self._started()
        if not self.headers_sent:
            self.headers = with_length(self.headers, self.framed, self.code, len(body), self.environ["REQUEST_METHOD"])
        return body

    def _file_span(self, file: Any, size: int) -> tuple[int, int]:
        """Where the rest of a regular file starts and how much of it to send; frames the head by it."""
        self._started()
        offset = file.tell() if hasattr(file, "tell") else 0
        count = max(size - offset, 0)
        if not self.headers_sent:
            declared = [int(value) for name, value in self.headers if name.lower() == b"content-length"]
            if declared:
                count = min(count, declared[0])
            else:  # the file's length is known, for HEAD too
                self.headers = with_length(self.headers, self.framed, self.code, count, "GET")
        return offset, count

    def start_response(self, status: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = None) -> Write:
        if exc_info:
            try:
                if self.headers_sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None  # no reference cycle through the traceback
        elif self.status is not None:
            raise RuntimeError("start_response() called again without exc_info")
        code = parse_status(status)
        self.headers, self.framed = encode_headers(headers)
        self.code = code
        self.status = status
        return self.write

    def write(self, data: bytes) -> None:
        """The legacy imperative ``write`` callable. In a thread it waits while the client is behind;
        inline it cannot wait, so the transport buffers."""
        if self.status is None:
            raise RuntimeError("write() called before start_response()")
        if check_chunk(data):
            self._push(data)

    def _started(self) -> None:
        if self.status is None:
            raise RuntimeError("the WSGI app produced a response without calling start_response()")


def check_chunk(chunk: object) -> bytes:
    if type(chunk) is bytes:
        return chunk
    raise TypeError(f"a WSGI response body must be bytes, got {type(chunk).__name__}")


def with_length(
    headers: list[tuple[bytes, bytes]], framed: bool, code: int, length: int, method: str
) -> list[tuple[bytes, bytes]]:
    """Add a Content-Length when the app gave no framing and the body is known whole."""
    if framed or method == "HEAD" or code in (204, 304):
        return headers
    return [*headers, (b"content-length", str(length).encode("ascii"))]
