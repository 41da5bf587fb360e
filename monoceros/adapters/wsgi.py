"""WSGI (PEP 3333): runs a WSGI app for every :class:`Exchange`, in one of two execution models.

Theory of operation
-------------------
The environ is built on the event loop (wsgi_environ.py). Then the app runs either in a bounded thread pool
(wsgi_pool.py, the default: a slow app holds a thread, not the loop) or inline on the loop thread
(wsgi_inline.py, ``--wsgi-mode inline``: no hand-off, for apps that never block long). Both share one
``start_response``, ``write`` and ``close`` (wsgi_call.py). The handler picks the model per request: an
inline request whose body is too large to hold before the call goes to the pool.
"""

from __future__ import annotations

import asyncio
import logging

from ..config import Config
from .exchange import Exchange, fail
from .thread_pool import ThreadPool
from .wsgi_call import Call, StartResponse, WSGIApp
from .wsgi_environ import Environ, EnvironBuilder
from .wsgi_inline import InlineCall
from .wsgi_pool import PoolCall

__all__ = ["Environ", "StartResponse", "WSGIApp", "WSGIHandler"]

log = logging.getLogger("monoceros.error")

INLINE_BODY_MAX = 1 << 20  # inline mode holds request bodies up to this size before calling the app
POOL_BODY_AHEAD = 65536  # the pool reads this much body ahead of the app: what READ_HIGH_WATER buffers anyway


class WSGIHandler:
    """Runs one WSGI app for every HTTP exchange of a worker. Create one per worker; :meth:`close` it last."""

    def __init__(self, app: WSGIApp, config: Config, loop: asyncio.AbstractEventLoop) -> None:
        self.app = app
        self.loop = loop
        self.pool = ThreadPool(loop, config.threads, "monoceros-wsgi")
        self.inline = config.wsgi_mode == "inline"
        self.environ = EnvironBuilder(config)
        self._tasks: dict[asyncio.Task[None], Call | None] = {}  # requests in flight, and their calls once made

    def close(self) -> None:
        """Shut the pool down without blocking the loop. Requests still in flight are cancelled: their
        threads are released from any wait on the loop, and their handler tasks end at the next iteration."""
        for task, call in list(self._tasks.items()):
            if call is not None:
                call.cancel()
            task.cancel()
        self.pool.close()

    async def __call__(self, exchange: Exchange) -> None:
        # With the loop given, Python 3.11 does not look it up (a getpid(2) per request).
        task: asyncio.Task[None] = asyncio.current_task(self.loop)  # type: ignore[assignment]
        tasks = self._tasks
        tasks[task] = None
        call: Call | None = None
        try:
            prefix = b""
            complete = False
            if not exchange.request.expect_continue:
                # (With Expect: 100-continue the rule is that 100 goes out only if the app reads: no read-ahead.)
                # Inline: the body is read before the call (a body too large to hold goes to the pool). Pool:
                # a body that fits in what the connection buffers anyway is read first too, so the thread
                # never waits on the loop for it (a round trip per piece otherwise).
                prefix, complete = await _read_body(exchange, INLINE_BODY_MAX if self.inline else POOL_BODY_AHEAD)
            if self.inline and complete:
                call = InlineCall(self.app, self.loop, exchange)
                call.environ = self.environ.build(exchange, call.errors, prefix)
            else:
                call = pool_call = PoolCall(self.app, self.loop, exchange, self.pool)
                call.environ = self.environ.build(
                    exchange, call.errors, prefix, None if complete else pool_call.receive
                )
            tasks[task] = call
            body = await call.execute()
            if body is not None:
                if not exchange.response_started:
                    exchange.start_response(call.code, call.headers)
                await exchange.send(body, False)
        except asyncio.CancelledError:
            if call is not None:
                call.cancel()
            await fail(exchange)
            raise
        except GeneratorExit:  # the coroutine is being closed, not failing
            if call is not None:
                call.cancel()
            raise
        except BaseException as exc:  # the app's failure must not take the worker down
            if isinstance(exc, OSError) and exchange.disconnected:
                log.debug("client went away during a WSGI response: %s", exc)
                return
            exchange.log_error("Exception in WSGI application", exc)
            await fail(exchange)
        finally:
            del tasks[task]


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
