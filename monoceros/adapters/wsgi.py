"""WSGI (PEP 3333): runs a WSGI app in a bounded thread pool for every :class:`Exchange`.

Theory of operation
-------------------
The environ is built on the event loop; the app call, the iteration of its response
and its ``close()`` all run in one pool thread (one hand-off to the pool per
request, see thread_pool.py). Requests past the pool size queue for a thread while the loop goes on
serving. From the thread, the request body is pulled and the response pushed through
``run_coroutine_threadsafe(...).result()``: the thread waits until the loop has done
it, which is the backpressure both ways.

Round trips to the loop: a list or tuple body (what most frameworks return) costs
none; the thread joins it and the coroutine sends head and body at once, with a
Content-Length. A streamed body costs one per non-empty chunk, sent as soon as it is
produced (PEP 3333 forbids holding a block back); the final empty send is again made
by the coroutine. A ``wsgi.file_wrapper`` over a regular file is sent with
``exchange.sendfile``.

Headers are sent with the first non-empty body chunk, or at the end for an empty
body. The reason phrase of the app's status is not kept: the exchange writes the
standard one. Request headers whose names contain ``_`` are dropped, as gunicorn
does: ``X_Forwarded_For`` would otherwise turn into the same ``HTTP_X_FORWARDED_FOR``
as ``X-Forwarded-For`` and let a client spoof a header a proxy vouches for.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Callable, Coroutine, Iterable, Iterator
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import unquote_to_bytes

from .._version import __version__
from ..config import Config
from ..errors import ClientDisconnected
from ..protocols.headers import Memo
from .exchange import Exchange, fail
from .thread_pool import ThreadPool
from .wsgi_input import (
    ErrorStream,
    FileWrapper,
    WSGIInput,
    encode_headers,
    parse_status,
    regular_file_size,
)

Environ = dict[str, Any]
ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]
Write = Callable[[bytes], None]
StartResponse = Callable[..., Write]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]
T = TypeVar("T")

log = logging.getLogger("monoceros.error")

_SPECIAL = {b"content-type": "CONTENT_TYPE", b"content-length": "CONTENT_LENGTH"}
_PROTOCOLS = {"1.1": "HTTP/1.1", "1.0": "HTTP/1.0", "2": "HTTP/2", "3": "HTTP/3"}  # SERVER_PROTOCOL, made once
OUTBOX_HIGH_WATER = 262144  # body bytes a pool thread may queue for the loop before it waits
INLINE_BODY_MAX = 1 << 20  # inline mode holds request bodies up to this size before calling the app
POOL_BODY_AHEAD = 65536  # the pool reads this much body ahead of the app: what READ_HIGH_WATER buffers anyway
_DRAIN = object()  # inline: the client is behind; drain, then resume the iteration
_FILE = object()  # inline: send call.file_span with sendfile, then close the iterable


class WSGIHandler:
    """Runs one WSGI app for every HTTP exchange of a worker. Create one per worker; :meth:`close` it last."""

    def __init__(self, app: WSGIApp, config: Config, loop: asyncio.AbstractEventLoop) -> None:
        self.app = app
        self.loop = loop
        self.pool = ThreadPool(loop, config.threads, "monoceros-wsgi")
        self.inline = config.wsgi_mode == "inline"
        script_name = config.root_path.rstrip("/").encode("utf-8").decode("latin-1")
        self._script_name = script_name
        self._calls: set[_Call] = set()
        self._names: Memo[bytes, str] = Memo("environ keys by request header name", 512)
        self._template: Environ = {
            "SCRIPT_NAME": script_name,
            "SERVER_SOFTWARE": f"monoceros/{__version__}",
            "wsgi.version": (1, 0),
            "wsgi.multithread": True,
            "wsgi.multiprocess": config.workers > 1,
            "wsgi.run_once": False,
            "wsgi.input_terminated": True,
            "wsgi.file_wrapper": FileWrapper,
        }

    def close(self) -> None:
        """Shut the pool down without blocking the loop. Requests still in flight are cancelled: their
        threads are released from any wait on the loop, and their handler tasks end at the next iteration."""
        for call in list(self._calls):
            call.cancel()
            if call.task is not None:
                call.task.cancel()
        self.pool.close()

    async def __call__(self, exchange: Exchange) -> None:
        call = _Call(self, exchange)
        call.task = asyncio.current_task(self.loop)  # with the loop: Python 3.11 finds it with a getpid(2)
        self._calls.add(call)
        try:
            prefix = b""
            complete = False
            if not exchange.request.expect_continue:
                # (With Expect: 100-continue the rule is that 100 goes out only if the app reads: no read-ahead.)
                # Inline: the body is read before the call (a body too large to hold goes to the pool). Pool:
                # a body that fits in what the connection buffers anyway is read first too, so the thread
                # never waits on the loop for it (a round trip per piece otherwise).
                prefix, complete = await _read_body(exchange, INLINE_BODY_MAX if self.inline else POOL_BODY_AHEAD)
                call.inline = self.inline and complete
            if not call.inline:
                call.cond = threading.Condition()  # the pool thread and the loop hand pieces over under it
            call.environ = self.environ(exchange, call, prefix, None if complete else call.receive)
            if call.inline:
                body = call.run()
                while body is _DRAIN:
                    await exchange.drain()
                    await asyncio.sleep(0)  # a turn for the other connections (and to notice this one leave)
                    body = call.resume()
                if body is _FILE:
                    if not exchange.response_started:
                        exchange.start_response(call.code, call.headers)
                    await exchange.sendfile(*call.file_span)
                    body = None
            else:
                body = await self.pool.run(call.run)
                call.flush()  # what the thread queued last, before the final piece
            if body is not None:
                if not exchange.response_started:
                    exchange.start_response(call.code, call.headers)
                await exchange.send(body, False)
        except asyncio.CancelledError:
            call.cancel()
            await fail(exchange)
            raise
        except GeneratorExit:  # the coroutine is being closed, not failing
            call.cancel()
            raise
        except BaseException as exc:  # the app's failure must not take the worker down
            if isinstance(exc, OSError) and exchange.disconnected:
                log.debug("client went away during a WSGI response: %s", exc)
                return
            exchange.log_error("Exception in WSGI application", exc)
            await fail(exchange)
        finally:
            self._calls.discard(call)
            if call.inline and call.result is not None:
                call.close_result()  # an inline iteration cut short (the client left while we drained)

    def environ(
        self,
        exchange: Exchange,
        call: _Call,
        prefix: bytes = b"",
        receive: Callable[[], tuple[bytes, bool]] | None = None,
    ) -> Environ:
        """The PEP 3333 environ of one request (strings are bytes-as-latin-1, as the PEP asks)."""
        request = exchange.request
        env = self._template.copy()
        raw_path = request.path
        path = (unquote_to_bytes(raw_path) if 0x25 in raw_path else raw_path).decode("latin-1")
        script_name = self._script_name
        if script_name and path.startswith(script_name):
            rest = path[len(script_name) :]
            if not rest or rest[0] == "/":  # "/app" is under "/app" and so is "/app/x"; "/apple" is not
                path = rest
        target = request.target.decode("latin-1")
        env["REQUEST_METHOD"] = request.method
        env["PATH_INFO"] = path
        env["QUERY_STRING"] = request.query.decode("latin-1")
        env["RAW_URI"] = env["REQUEST_URI"] = target
        env["SERVER_PROTOCOL"] = _PROTOCOLS.get(request.http_version) or "HTTP/" + request.http_version
        env["wsgi.url_scheme"] = exchange.scheme
        client = exchange.client
        if client is not None:
            env["REMOTE_ADDR"] = client[0]
            env["REMOTE_PORT"] = str(client[1])
        else:
            env["REMOTE_ADDR"] = ""
        names = self._names.data
        for name, value in request.headers:
            key = names.get(name)
            if key is None:
                if 0x5F in name:  # "_", as an int: see protocols/headers.py UNDERSCORE
                    continue  # see the module docstring: it could impersonate a dashed header
                key = _SPECIAL.get(name) or "HTTP_" + name.decode("latin-1").upper().replace("-", "_")
                self._names.remember(name, key)
            text = value.decode("latin-1")
            old = env.get(key)
            if old is None:
                env[key] = text
            elif key == "HTTP_COOKIE":
                env[key] = old + "; " + text  # RFC 6265: cookie pairs are separated by "; "
            elif key != "CONTENT_LENGTH":
                env[key] = old + "," + text
        server = exchange.server
        if server is not None and server[1] is not None:
            env["SERVER_NAME"], env["SERVER_PORT"] = server[0], str(server[1])
        else:  # a unix socket: the best name is the one the client used
            env["SERVER_NAME"], env["SERVER_PORT"] = _split_host(env.get("HTTP_HOST"), exchange.scheme)
        env["wsgi.input"] = WSGIInput(receive if request.has_body else None, prefix)
        env["wsgi.errors"] = call.errors
        return env


def _split_host(host: str | None, scheme: str) -> tuple[str, str]:
    """SERVER_NAME and SERVER_PORT from a Host header ('localhost' and '0' without one)."""
    if not host:
        return "localhost", "0"
    default = "443" if scheme == "https" else "80"
    if host.startswith("["):  # an IPv6 literal
        end = host.find("]") + 1
        name, rest = (host[:end], host[end:]) if end else (host, "")
        return name, rest[1:] if rest.startswith(":") and rest[1:] else default
    name, sep, port = host.partition(":")
    return name, port if sep and port else default


# Inline calls never wait on their condition (only cancel() notifies it, with nobody waiting), so they
# share this one instead of making a Condition, an RLock and a deque per request.
_UNUSED = threading.Condition()


class _Call:
    """One app invocation: ``start_response``, ``write`` and the response loop.

    In a pool thread, body pieces go to an outbox that the loop flushes (one ``call_soon_threadsafe``
    per batch, not per piece); the thread waits only while the outbox is full or the client is behind.
    Inline, on the loop thread, pieces are written at once and iteration pauses (returning
    :data:`_DRAIN`) while the client is behind, and every OUTBOX_HIGH_WATER bytes to let the loop run.
    """

    __slots__ = (
        "app",
        "cancelled",
        "code",
        "cond",
        "environ",
        "errors",
        "exchange",
        "failure",
        "file_span",
        "framed",
        "headers",
        "headers_sent",
        "inline",
        "iterator",
        "loop",
        "outbox",
        "paused",
        "pending",
        "queued",
        "result",
        "scheduled",
        "status",
        "task",
    )

    def __init__(self, handler: WSGIHandler, exchange: Exchange) -> None:
        self.app = handler.app
        self.loop = handler.loop
        self.exchange = exchange
        self.environ: Environ = {}
        self.errors = ErrorStream()
        self.status: str | None = None
        self.code = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.framed = False  # the app framed the body itself (Content-Length or Transfer-Encoding)
        self.headers_sent = False
        self.cancelled = False
        self.inline = False
        self.pending: concurrent.futures.Future[Any] | None = None
        self.task: asyncio.Task[Any] | None = None
        self.result: Iterable[bytes] | None = None
        self.iterator: Iterator[bytes] | None = None
        self.cond = _UNUSED  # a Condition of its own once the call is known to run on the pool
        self.outbox: list[bytes] = []
        self.queued = 0
        self.scheduled = False
        self.paused = False
        self.failure: BaseException | None = None
        self.file_span: tuple[Any, int, int] = (None, 0, 0)

    # -- the app's side (a pool thread, or the loop thread inline) -------------------------------------------

    def run(self) -> Any:
        """Call the app and consume its response. Returns the last piece of body for the coroutine to send
        (with the head, if it has not gone yet), None when the response is over already, or, inline,
        :data:`_DRAIN` when the client is behind: the coroutine then drains and calls :meth:`resume`."""
        try:
            self.result = self.app(self.environ, self.start_response)
        except BaseException:
            self.close_result()
            raise
        return self.resume()

    def resume(self) -> Any:
        try:
            out = self._consume()
        except BaseException:
            self.close_result()
            raise
        if out is not _DRAIN and out is not _FILE:
            self.close_result()
        return out

    def close_result(self) -> None:
        """PEP 3333: the iterable's close() is always called, once."""
        result, self.result = self.result, None
        try:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        finally:
            self.errors.flush()

    def _consume(self) -> Any:
        result = self.result
        if self.iterator is None:
            if isinstance(result, (list, tuple)):
                if len(result) == 1 and type(result[0]) is bytes:
                    body = result[0]
                else:
                    body = b"".join(_check_chunk(chunk) for chunk in result)
                return self._last(body)
            if type(result) is FileWrapper and (size := regular_file_size(result.filelike)) is not None:
                offset, count = self._file_span(result.filelike, size)
                self.headers_sent = True
                if self.inline:
                    self.file_span = (result.filelike, offset, count)
                    return _FILE  # the coroutine sends it; close() waits until then
                self._wait(self._send_file(result.filelike, offset, count))
                return None
            assert result is not None
            self.iterator = iter(result)
        try:
            for chunk in self.iterator:
                if _check_chunk(chunk):
                    self._started()
                    if not self._push(chunk):
                        return _DRAIN
        except ClientDisconnected as exc:
            log.debug("client went away during a WSGI response: %s", exc)
            return None
        return self._last(b"")

    def _last(self, body: bytes) -> bytes:
        """The whole rest of the body; when the head has not gone, the body is all there is: frame it."""
        self._started()
        if not self.headers_sent:
            self.headers = _with_length(self.headers, self.framed, self.code, len(body), self.environ["REQUEST_METHOD"])
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
                self.headers = _with_length(self.headers, self.framed, self.code, count, "GET")
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
        if _check_chunk(data):
            self._push(data)

    def receive(self) -> tuple[bytes, bool]:
        """The next piece of request body, for ``wsgi.input``."""
        return self._wait(self._receive())

    def _started(self) -> None:
        if self.status is None:
            raise RuntimeError("the WSGI app produced a response without calling start_response()")

    def _push(self, data: bytes) -> bool:
        """Hand a body piece on. False (inline only) when the client is behind and the loop must drain."""
        self.headers_sent = True
        if self.inline:
            exchange = self.exchange
            if not exchange.response_started:
                exchange.start_response(self.code, self.headers)
            self.queued += len(data)
            if self.queued >= OUTBOX_HIGH_WATER:  # a long response lets the loop run in between
                self.queued = 0
                exchange.send_nowait(data)
                return False
            return exchange.send_nowait(data)
        with self.cond:
            if self.failure is not None or self.cancelled:
                raise ClientDisconnected("client disconnected")
            self.outbox.append(data)
            self.queued += len(data)
            schedule, self.scheduled = not self.scheduled, True
        if schedule:
            try:
                self.loop.call_soon_threadsafe(self.flush)
            except RuntimeError:  # the loop is closed
                raise ClientDisconnected("the server has stopped") from None
        with self.cond:
            while (self.queued >= OUTBOX_HIGH_WATER or self.paused) and self.failure is None and not self.cancelled:
                self.cond.wait(1.0)
            if self.failure is not None or self.cancelled:
                raise ClientDisconnected("client disconnected")
        return True

    def _wait(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the loop and block this thread until it is done."""
        if self.cancelled:
            coro.close()
            raise ClientDisconnected("the request was cancelled")
        try:
            future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        except RuntimeError:  # the loop is closed
            coro.close()
            raise ClientDisconnected("the server has stopped") from None
        self.pending = future
        if self.cancelled:
            future.cancel()
        try:
            return future.result()
        except concurrent.futures.CancelledError:
            raise ClientDisconnected("the request was cancelled") from None
        finally:
            self.pending = None

    def cancel(self) -> None:
        """Release the thread from whatever it waits for on the loop (the handler was cancelled)."""
        self.cancelled = True
        future = self.pending
        if future is not None:
            future.cancel()
        with self.cond:
            self.cond.notify_all()

    # -- the loop's side -------------------------------------------------------------------------------------

    def flush(self) -> None:
        """Write what the thread queued, in one piece; note when the client falls behind."""
        with self.cond:
            chunks, self.outbox, self.queued, self.scheduled = self.outbox, [], 0, False
            if not chunks:
                self.cond.notify_all()
                return
        exchange = self.exchange
        try:
            if not exchange.response_started:
                exchange.start_response(self.code, self.headers)
            # The outbox is the batch: holding it for more would only delay it a loop iteration.
            exchange.send_nowait(chunks[0] if len(chunks) == 1 else b"".join(chunks))
            keeping_up = exchange.flush()
        except (ClientDisconnected, ValueError) as exc:
            with self.cond:
                self.failure = exc
                self.cond.notify_all()
            return
        with self.cond:
            if not keeping_up:
                self.paused = True
                self.loop.create_task(self._drained())
            self.cond.notify_all()

    async def _drained(self) -> None:
        try:
            await self.exchange.drain()
        except ClientDisconnected as exc:
            with self.cond:
                self.failure = exc
        with self.cond:
            self.paused = False
            self.cond.notify_all()

    async def _receive(self) -> tuple[bytes, bool]:
        return await self.exchange.receive()

    async def _send_file(self, file: Any, offset: int, count: int) -> None:
        exchange = self.exchange
        if not exchange.response_started:
            exchange.start_response(self.code, self.headers)
        await exchange.sendfile(file, offset, count)


async def _read_body(exchange: Exchange, limit: int) -> tuple[bytes, bool]:
    """The request body before the app runs: inline, it must never wait on the network from the loop
    thread; on the pool, it saves the thread a round trip to the loop per piece. Returns the body and True,
    or what came so far and False once it outgrows ``limit``: the app then streams the rest."""
    chunks: list[bytes] = []
    size = 0
    while True:
        data, more = await exchange.receive()
        if data:
            chunks.append(data)
            size += len(data)
        if not more or size > limit:
            body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
            return body, not more


def _check_chunk(chunk: object) -> bytes:
    if type(chunk) is bytes:
        return chunk
    raise TypeError(f"a WSGI response body must be bytes, got {type(chunk).__name__}")


def _with_length(
    headers: list[tuple[bytes, bytes]], framed: bool, code: int, length: int, method: str
) -> list[tuple[bytes, bytes]]:
    """Add a Content-Length when the app gave no framing and the body is known whole."""
    if framed or method == "HEAD" or code in (204, 304):
        return headers
    return [*headers, (b"content-length", str(length).encode("ascii"))]
