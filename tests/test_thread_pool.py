"""The WSGI thread pool (monoceros/adapters/thread_pool.py), on a real event loop and real threads."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from monoceros.adapters.thread_pool import ThreadPool


def test_results_and_exceptions_reach_the_awaiting_coroutine() -> None:
    async def main() -> None:
        pool = ThreadPool(asyncio.get_running_loop(), 2, "t")
        assert await pool.run(lambda: threading.current_thread().name) in ("t_0", "t_1")
        assert await pool.run(lambda: 6 * 7) == 42

        def boom() -> None:
            raise ValueError("from the thread")

        with pytest.raises(ValueError, match="from the thread"):
            await pool.run(boom)
        pool.close()

    asyncio.run(main())


def test_never_more_threads_than_the_limit_and_only_as_many_as_needed() -> None:
    running = 0
    most = 0
    lock = threading.Lock()

    def work() -> None:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.02)
        with lock:
            running -= 1

    async def main() -> tuple[int, int]:
        pool = ThreadPool(asyncio.get_running_loop(), 3, "t")
        await pool.run(work)  # one at a time: one thread is enough
        started_for_one = len(pool._threads)
        await asyncio.gather(*(pool.run(work) for _ in range(12)))
        pool.close()
        return started_for_one, len(pool._threads)

    for_one, for_twelve = asyncio.run(main())
    assert for_one == 1
    assert for_twelve == 3
    assert most == 3  # the twelve ran three at a time


def test_close_cancels_what_has_not_started_and_releases_the_threads() -> None:
    gate = threading.Event()

    async def main() -> None:
        pool = ThreadPool(asyncio.get_running_loop(), 1, "t")
        first = pool.run(gate.wait)
        await asyncio.sleep(0.05)  # the one thread is now blocked in gate.wait
        queued = pool.run(lambda: "never")
        pool.close()
        assert queued.cancelled()
        with pytest.raises(RuntimeError, match="closed"):
            pool.run(lambda: None)
        gate.set()
        assert await first is True  # the call in progress still completes
        thread = pool._threads[0]
        await asyncio.get_running_loop().run_in_executor(None, thread.join, 5)
        assert not thread.is_alive()

    asyncio.run(main())
