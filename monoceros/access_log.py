"""The access log's writer: one line per request, batched per loop turn past ``logging``'s machinery.

The lines are formatted by access_format.py; this module decides how they reach the file. See
:class:`AccessLogger` for when lines go through ``logging`` and when they are joined into one write.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from .access_format import AccessFormat, AccessRecord, _collect, json_line
from .config.registry import Config
from .logs import ACCESS_LOGGER, access_handler

if TYPE_CHECKING:
    from .protocols.events import Request


class Finished(Protocol):
    """What a finished request offers its log line (server/stream.py's Stream)."""

    request: Request
    client: tuple[str, int] | None
    status: int
    response_bytes: int
    response_headers: list[tuple[bytes, bytes]]
    start: float  # time.perf_counter() when it began
    received: int  # request body bytes


class RequestLog(Protocol):
    """Where finished requests and the server's own refusals are told: the access log (here), or
    the metrics (server/metrics.py), which pass them on to the access log when it is on."""

    def finished(self, stream: Finished) -> None: ...

    def log_request(
        self,
        request: Request,
        client: tuple[str, int] | None,
        status: int,
        response_bytes: int,
        duration_s: float,
        response_headers: Sequence[tuple[bytes, bytes]],
        request_time: float,
    ) -> None:
        """A request that is not a stream (a WebSocket's handshake)."""

    def log_refusal(self, client: tuple[str, int] | None, status: int, response_bytes: int) -> None:
        """An answer the server gave by itself (a malformed head, a limit, the connection limit)."""

    def flush(self) -> None: ...


_BATCH_MAX = 256  # lines held for one write at most; a loop turn that finishes more writes more than once


class AccessLogger:
    """Formats and writes one access-log line per request.

    Through ``logging``, a line costs more than a small request does: a LogRecord (the caller's frame,
    the pid, the thread), a handler lock and a write(2) with a flush. So when the line would only reach the
    handler :func:`configure_logging` made, the logger on the event loop's thread skips the machinery: lines
    finished in one loop turn are joined and written together, at the end of that turn (one write(2) for
    many requests). Whenever the logging setup differs (``log_config``, a handler or filter an app added, a
    level raised at run time) or the caller is not the loop's thread, lines go through ``logging`` as usual.
    """

    def __init__(self, cfg: Config) -> None:
        self._logger = logging.getLogger(ACCESS_LOGGER)
        self.enabled: bool = cfg.access_log and self._logger.isEnabledFor(logging.INFO)
        # The loop whose thread may batch (None: never batch), and that thread. Python 3.11 checks the running
        # loop with a getpid(2), so each line compares thread idents instead.
        try:
            self._loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:  # made outside a loop (a script, a test): every line goes through logging
            self._loop = None
        self._thread = threading.get_ident()
        handler = access_handler()
        self._handler = handler
        self._only = [handler]
        self._lines: list[str] = []
        fmt = AccessFormat(cfg.access_logformat, cfg.access_log_json)
        self._json = fmt.json
        self._format = fmt.format
        self._atoms = fmt.atoms
        self._req_names = fmt.req_names
        self._resp_names = fmt.resp_names
        self._positional = fmt.positional
        self._atom_list = fmt.atom_list

    def log(
        self,
        *,
        client: tuple[str, int] | None,
        method: str,
        target: str,
        http_version: str,
        status: int,
        response_bytes: int,
        duration_s: float,
        request_headers: Sequence[tuple[bytes, bytes]],
        response_headers: Sequence[tuple[bytes, bytes]],
        request_time: float,
    ) -> None:
        """Write the line for one finished request.

        ``target`` is the request target as sent (raw path, '?', query); ``http_version`` is the ASGI
        spelling ('1.1'); ``request_time`` is ``time.time()`` when the request started.
        """
        if not self.enabled:
            return
        if http_version.startswith("HTTP/"):
            http_version = http_version[5:]
        r = AccessRecord(
            client,
            method,
            target,
            http_version,
            status,
            response_bytes,
            duration_s,
            request_time,
            _collect(request_headers, self._req_names, not self._json) if self._req_names else {},
            _collect(response_headers, self._resp_names, True) if self._resp_names else {},
        )
        if self._json:
            line = json_line(r)
        elif self._positional is not None:
            line = self._positional % tuple([atom(r) for atom in self._atom_list])
        else:
            line = self._format % {key: atom(r) for key, atom in self._atoms}
        loop = self._loop
        if loop is None or threading.get_ident() != self._thread:
            self._logger.info(line)
            return
        if not self._direct():
            if self._lines:
                self.flush()  # the lines held before the setup changed go first: the order holds
            self._logger.info(line)
            return
        lines = self._lines
        lines.append(line)
        if len(lines) == 1:
            loop.call_soon(self.flush)
        elif len(lines) >= _BATCH_MAX:
            self.flush()

    def log_refusal(self, client: tuple[str, int] | None, status: int, response_bytes: int) -> None:
        """The line for an answer the server gave with no request to show (a malformed head, the connection
        limit, a head that never came): its method and target are "-"."""
        self.log(
            client=client,
            method="-",
            target="-",
            http_version="1.1",
            status=status,
            response_bytes=response_bytes,
            duration_s=0.0,
            request_headers=(),
            response_headers=(),
            request_time=time.time(),
        )

    def _direct(self) -> bool:
        """True while a line would reach our own handler and nothing else, as it is."""
        logger = self._logger
        handler = self._handler
        return (
            logger.handlers == self._only
            and handler is not None
            and logger.isEnabledFor(logging.INFO)
            and not logger.propagate
            and not logger.filters
            and not handler.filters
            and handler.level <= logging.INFO
        )

    def flush(self) -> None:
        """Write the lines held back, in one write; the worker calls it once more as it stops."""
        lines = self._lines
        if not lines:
            return
        self._lines = []
        handler = self._handler
        if handler is None or not self._direct():
            for line in lines:  # the setup changed since these were held: let logging route them
                self._logger.info(line)
            return
        terminator = handler.terminator
        text = terminator.join(lines) + terminator
        handler.acquire()
        try:
            handler.stream.write(text)
            handler.flush()
        except RecursionError:
            raise
        except Exception:
            handler.handleError(logging.makeLogRecord({"name": ACCESS_LOGGER, "msg": text, "levelno": logging.INFO}))
        finally:
            handler.release()

    def finished(self, stream: Finished) -> None:
        """The line for a request whose response is complete."""
        self.log_request(
            stream.request,
            stream.client,
            stream.status,
            stream.response_bytes,
            time.perf_counter() - stream.start,
            stream.response_headers,
            time.time(),
        )

    def log_request(
        self,
        request: Request,
        client: tuple[str, int] | None,
        status: int,
        response_bytes: int,
        duration_s: float,
        response_headers: Sequence[tuple[bytes, bytes]],
        request_time: float,
    ) -> None:
        """:meth:`log` for a request the protocol parsed: its method, target, version and headers."""
        self.log(
            client=client,
            method=request.method,
            target=request.target.decode("latin-1"),
            http_version=request.http_version,
            status=status,
            response_bytes=response_bytes,
            duration_s=duration_s,
            request_headers=request.headers,
            response_headers=response_headers,
            request_time=request_time,
        )
