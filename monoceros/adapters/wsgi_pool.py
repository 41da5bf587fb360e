"""The pool execution model: the app call, the iteration of its response and its ``close()`` run in one
pool thread (one hand-off per request, see thread_pool.py); requests past the pool size queue for a thread
while the loop goes on serving.

From the thread, body pieces go to an outbox that the loop flushes (one ``call_soon_threadsafe`` per batch,
not per piece); the thread waits only while the outbox is full or the client is behind. The request body
it pulls, and a file it sends, through ``run_coroutine_threadsafe(...).result()``: the thread waits until
the loop has done it, which is the backpressure both ways.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from ..errors import ClientDisconnected
from .exchange import Exchange
from .thread_pool import ThreadPool
from .wsgi_call import Call, WSGIApp
from .wsgi_inline import OUTBOX_HIGH_WATER

T = TypeVar("T")


class PoolCall(Call):
    """One app invocation in a pool thread."""

    __slots__ = ("cond", "failure", "outbox", "paused", "pending", "pool", "scheduled")

    def __init__(self, app: WSGIApp, loop: asyncio.AbstractEventLoop, exchange: Exchange, pool: ThreadPool) -> None:
        super().__init__(app, loop, exchange)
        self.pool = pool
        self.cond = threading.Condition()  # the thread and the loop hand pieces over under it
        self.outbox: list[bytes] = []
        self.scheduled = False
        self.paused = False
        self.failure: BaseException | None = None
        self.pending: concurrent.futures.Future[Any] | None = None

    async def execute(self) -> bytes | None:
        body = await self.pool.run(self.run)
        self.flush()  # what the thread queued last, before the final piece
        return body  # type: ignore[no-any-return]

    # -- the thread's side -------------------------------------------------------------------------------

    def receive(self) -> tuple[bytes, bool]:
        """The next piece of request body, for ``wsgi.input``."""
        return self._wait(self._receive())

    def _push(self, data: bytes) -> bool:
        self.headers_sent = True
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

    def _file(self, file: Any, offset: int, count: int) -> Any:
        self._wait(self._send_file(file, offset, count))
        return None

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
        self.cancelled = True
        future = self.pending
        if future is not None:
            future.cancel()
        with self.cond:
            self.cond.notify_all()

    # -- the loop's side ---------------------------------------------------------------------------------

    def flush(self) -> None:
        """Write what the thread queued, in one piece; note when the client falls behind."""
        with self.cond:
            chunks, self.outbox, self.queued, self.scheduled = self.outbox, [], 0, False
            if not chunks:
                self.cond.notify_all()
                return
        exchange = self.exchange
        try:
            if exchange.response_done:
                raise ClientDisconnected("the response was given up")  # --request-timeout answered for the app
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
