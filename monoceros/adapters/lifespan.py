"""ASGI lifespan: startup before the first connection, shutdown after the last.

Spec: https://asgi.readthedocs.io/en/latest/specs/lifespan.html (version 2.0).
With ``--lifespan auto`` an app that raises before answering ``lifespan.startup``
is taken not to support lifespan, and serving goes on. An explicit
``lifespan.startup.failed`` is always fatal; with ``--lifespan on`` so is any
exception. The ``state`` dict given here is copied into every request scope.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ..errors import LifespanError
from .asgi_http import ASGI_VERSION, ASGIApp, Message

log = logging.getLogger("monoceros.error")


class Lifespan:
    """Drives the lifespan protocol of one ASGI app in one worker."""

    def __init__(self, app: ASGIApp, mode: str) -> None:
        self.app = app
        self.mode = mode  # "auto", "on" or "off"
        self.state: dict[str, Any] = {}
        self._inbox: asyncio.Queue[Message] = asyncio.Queue()
        self._startup_done: asyncio.Future[Message] | None = None
        self._shutdown_done: asyncio.Future[Message] | None = None
        self._task: asyncio.Task[None] | None = None
        self._supported = True

    async def startup(self) -> None:
        """Run the app's startup. Raises :class:`LifespanError` when the app reports failure."""
        if self.mode == "off":
            self._supported = False
            return
        loop = asyncio.get_running_loop()
        self._startup_done = loop.create_future()
        self._shutdown_done = loop.create_future()
        self._task = loop.create_task(self._run())
        await self._inbox.put({"type": "lifespan.startup"})
        message = await self._startup_done
        if message["type"] == "lifespan.startup.failed":
            raise LifespanError(f"application startup failed: {message.get('message') or 'no message given'}")
        if message["type"] == "app.exited":
            exc = message.get("exc")
            if self.mode == "on":
                detail = f"{type(exc).__name__}: {exc}" if exc is not None else "the app returned"
                raise LifespanError(f"application startup failed ({detail})") from exc
            self._supported = False
            log.info("ASGI 'lifespan' protocol appears unsupported by the app; serving without it.")

    async def shutdown(self) -> None:
        """Run the app's shutdown. A failure is logged; the worker is stopping anyway."""
        if not self._supported or self._task is None or self._shutdown_done is None:
            return
        if self._task.done():
            return
        await self._inbox.put({"type": "lifespan.shutdown"})
        message = await self._shutdown_done
        if message["type"] == "lifespan.shutdown.failed":
            log.error("application shutdown failed: %s", message.get("message") or "no message given")
        elif message["type"] == "app.exited" and message.get("exc") is not None:
            log.error("application shutdown failed", exc_info=message["exc"])

    async def _run(self) -> None:
        scope = {"type": "lifespan", "asgi": ASGI_VERSION, "state": self.state}
        exc: BaseException | None = None
        try:
            await self.app(scope, self._receive, self._send)
        except BaseException as error:
            exc = error
            if self._startup_done is not None and self._startup_done.done():
                log.error("Exception in ASGI lifespan", exc_info=error)
            if isinstance(error, (KeyboardInterrupt, SystemExit, asyncio.CancelledError)):
                raise
        finally:
            exited: Message = {"type": "app.exited", "exc": exc}
            for future in (self._startup_done, self._shutdown_done):
                if future is not None and not future.done():
                    future.set_result(exited)

    async def _receive(self) -> Message:
        return await self._inbox.get()

    async def _send(self, message: Message) -> None:
        kind = message.get("type")
        startup, shutdown = self._startup_done, self._shutdown_done
        assert startup is not None and shutdown is not None
        if kind in ("lifespan.startup.complete", "lifespan.startup.failed"):
            if startup.done():
                raise LifespanError(f"unexpected ASGI lifespan message {kind!r}: startup already answered")
            startup.set_result(message)
        elif kind in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
            if not startup.done() or shutdown.done():
                raise LifespanError(f"unexpected ASGI lifespan message {kind!r}")
            shutdown.set_result(message)
        else:
            raise LifespanError(
                f"Expected ASGI message 'lifespan.startup.complete', 'lifespan.startup.failed', "
                f"'lifespan.shutdown.complete' or 'lifespan.shutdown.failed', but got {kind!r}."
            )
