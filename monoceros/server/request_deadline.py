"""``--request-timeout``: a bound on how long an app may take to complete one HTTP response.

It wraps the worker's handler (the ASGI or WSGI adapter) only when set, so it costs nothing otherwise. When
the time passes and the response is not complete, the server answers for the app: 503 when nothing was
sent, else the response is cut (HTTP/1.1: the connection; HTTP/2: the stream). Then the app's task is
cancelled. An ASGI app unwinds through CancelledError; a WSGI app's thread cannot be stopped, so the
adapter gives its response up and releases whatever the thread waits for, and the thread's late result is
discarded when it comes. Work an app does after its response is complete (background tasks) is not bounded:
the response is what the client waits for. The line is logged once, with the request.
"""

from __future__ import annotations

import asyncio
import logging
from asyncio import Task
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..adapters.exchange import Exchange
    from .state import Handler, ServerState
    from .stream import Stream

log = logging.getLogger("monoceros.error")

BODY = b"Service Unavailable: the request took too long\n"
HEADERS = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"%d" % len(BODY))]


class RequestDeadline:
    """The worker's HTTP handler, with a deadline on each response.

    No timer per request (one would cost more than the rest of a hello-world request's deadline work): each
    request notes when it began, and one sweep, every quarter of the timeout (at most a second), runs while
    any request is in flight. A response is given up between the timeout and one sweep later."""

    def __init__(self, inner: Handler, state: ServerState, wsgi: bool) -> None:
        self.inner = inner
        self.state = state
        self.loop = state.loop
        self.timeout = state.config.request_timeout
        self.every = min(1.0, self.timeout / 4)
        self.wsgi = wsgi
        self._running: dict[Task[None], tuple[float, Stream]] = {}
        self._expired: set[Task[None]] = set()
        self._sweeper: asyncio.TimerHandle | None = None

    async def __call__(self, exchange: Exchange) -> None:
        loop = self.loop
        task: Task[None] = asyncio.current_task(loop)  # type: ignore[assignment]
        running = self._running
        running[task] = (loop.time(), exchange)  # type: ignore[assignment]  # the server's exchanges are Streams
        if self._sweeper is None:
            self._sweeper = loop.call_later(self.every, self._sweep)
        try:
            await self.inner(exchange)
        except asyncio.CancelledError:
            if task not in self._expired:
                raise  # a shutdown's, not ours
        finally:
            del running[task]
            if self._expired and task in self._expired:
                self._expired.discard(task)
                uncancel = getattr(task, "uncancel", None)  # Python 3.11+; on 3.10 ending normally is enough
                if uncancel is not None:
                    uncancel()  # ours, and answered: the task ends normally

    def _sweep(self) -> None:
        self._sweeper = None
        running = self._running
        if not running:
            return  # idle: the next request starts the sweep again
        oldest = self.loop.time() - self.timeout
        for task, (began, stream) in list(running.items()):
            if began <= oldest and task not in self._expired:
                self._expire(task, stream)
        self._sweeper = self.loop.call_later(self.every, self._sweep)

    def _expire(self, task: Task[None], stream: Stream) -> None:
        if task.done() or stream.response_done:
            return
        if stream.gone:
            what = "the client had gone"
        elif not stream.response_started:
            stream.respond(503, HEADERS, BODY)
            what = "answered 503"
        else:
            stream.abort()
            what = "cut the response it had begun"
        if self.wsgi:
            what += "; a thread cannot be stopped: the WSGI app runs on and what it returns is discarded"
        else:
            what += " and cancelled the app"
        stream.log_error(f"The app did not complete its response within --request-timeout ({self.timeout:g} s): {what}")
        if self.state.tally is not None:
            self.state.tally.refused("request_timeout")
        self._expired.add(task)
        task.cancel()
