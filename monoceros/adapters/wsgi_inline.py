"""The inline execution model: the app runs on the event loop thread, as in gunicorn's prefork "sync"
worker, with no hand-off to a pool. The handler reads the whole body first (it must never wait on the
network from the loop thread); pieces of the response are written at once, and the iteration pauses
(returning :data:`~monoceros.adapters.wsgi_call.DRAIN`) while the client is behind, and every
``OUTBOX_HIGH_WATER`` bytes to let the other connections run.
"""

from __future__ import annotations

import asyncio
from typing import Any

from .wsgi_call import DRAIN, FILE, Call

OUTBOX_HIGH_WATER = 262144  # body bytes written before the iteration pauses to let the loop run


class InlineCall(Call):
    """One app invocation on the loop thread."""

    __slots__ = ("file_span",)

    async def execute(self) -> bytes | None:
        exchange = self.exchange
        try:
            body = self.run()
            while body is DRAIN:
                await exchange.drain()
                await asyncio.sleep(0)  # a turn for the other connections (and to notice this one leave)
                body = self.resume()
            if body is FILE:
                if not exchange.response_started:
                    exchange.start_response(self.code, self.headers)
                await exchange.sendfile(*self.file_span)
                return None
            return body  # type: ignore[no-any-return]
        finally:
            if self.result is not None:
                self.close_result()  # an iteration cut short (the client left while we drained), or a file sent

    def _push(self, data: bytes) -> bool:
        self.headers_sent = True
        exchange = self.exchange
        if not exchange.response_started:
            exchange.start_response(self.code, self.headers)
        self.queued += len(data)
        if self.queued >= OUTBOX_HIGH_WATER:  # a long response lets the loop run in between
            self.queued = 0
            exchange.send_nowait(data)
            return False
        return exchange.send_nowait(data)

    def _file(self, file: Any, offset: int, count: int) -> Any:
        self.file_span = (file, offset, count)
        return FILE  # execute() sends it; close() waits until then
