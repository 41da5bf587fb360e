"""A bounded pool of threads that runs blocking calls for the event loop, with the cheapest hand-off.

``loop.run_in_executor`` on a ``concurrent.futures.ThreadPoolExecutor`` costs, per call, a Python-level
lock and semaphore, a work item, a concurrent future, and two Python callbacks that chain it to an
asyncio future: a large share of a whole WSGI request (docs/performance.md). Here a call is one
``SimpleQueue.put`` (C) to a waiting thread and one ``call_soon_threadsafe`` back that settles the
asyncio future on the loop.

Threads start on demand, up to ``max_threads``, and then stay: one is started when more calls are in
flight than there are threads. All bookkeeping happens on the loop thread, so it needs no lock.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from queue import SimpleQueue
from typing import Any, TypeVar

T = TypeVar("T")

_Item = tuple[Callable[[], Any], "asyncio.Future[Any]"] | None


class ThreadPool:
    """Runs callables in at most ``max_threads`` threads; :meth:`run` returns an asyncio future."""

    def __init__(self, loop: asyncio.AbstractEventLoop, max_threads: int, name: str) -> None:
        self._loop = loop
        self._max = max_threads
        self._name = name
        self._queue: SimpleQueue[_Item] = SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._in_flight = 0
        self._closed = False

    def run(self, fn: Callable[[], T]) -> asyncio.Future[T]:
        """Call ``fn()`` in a pool thread. Must be called on the loop thread."""
        if self._closed:
            raise RuntimeError("the thread pool is closed")
        future: asyncio.Future[T] = self._loop.create_future()
        self._in_flight += 1
        self._queue.put((fn, future))
        if self._in_flight > len(self._threads) and len(self._threads) < self._max:
            thread = threading.Thread(target=self._work, name=f"{self._name}_{len(self._threads)}", daemon=True)
            self._threads.append(thread)
            thread.start()
        return future

    def close(self) -> None:
        """Stop the threads once their current call returns, without waiting; calls not yet started are
        cancelled. Must be called on the loop thread."""
        self._closed = True
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if item is not None:
                item[1].cancel()
        for _ in self._threads:
            self._queue.put(None)

    def _work(self) -> None:
        get = self._queue.get
        settle = self._settle
        while True:
            item = get()
            if item is None:
                return
            fn, future = item
            outcome: tuple[Any, BaseException | None]
            try:
                outcome = (fn(), None)  # no name of its own: an idle thread must not hold its last result
            except BaseException as exc:  # handed to the awaiting coroutine, as run_in_executor does
                outcome = (None, exc)
            try:
                self._loop.call_soon_threadsafe(settle, future, outcome)
            except RuntimeError:
                return  # the loop is closed: nobody waits any more
            del item, fn, future, outcome  # drop references while idle

    def _settle(self, future: asyncio.Future[Any], outcome: tuple[Any, BaseException | None]) -> None:
        self._in_flight -= 1
        if future.cancelled():
            return
        result, exc = outcome
        if exc is None:
            future.set_result(result)
        else:
            future.set_exception(exc)
