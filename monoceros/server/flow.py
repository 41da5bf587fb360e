"""Flow control for an asyncio protocol: pause reading when the app falls behind, wait for drain when the
client does. Shared by the HTTP/1.1 and WebSocket connection drivers."""

from __future__ import annotations

import asyncio

from ..errors import ClientDisconnected


class FlowControl:
    """Mixed into an ``asyncio.Protocol`` that sets ``transport``, ``loop`` and ``lost``."""

    __slots__ = ("_drain_waiters", "_read_paused", "write_paused")

    transport: asyncio.Transport
    loop: asyncio.AbstractEventLoop
    lost: bool

    def __init__(self) -> None:
        self.write_paused = False
        self._read_paused = False
        self._drain_waiters: list[asyncio.Future[None]] = []

    @property
    def read_paused(self) -> bool:
        return self._read_paused

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        self._wake_drain()

    def _pause_reading(self) -> None:
        if not self._read_paused and not self.lost:
            self._read_paused = True
            self.transport.pause_reading()

    def _resume_reading(self) -> None:
        if self._read_paused and not self.lost:
            self._read_paused = False
            self.transport.resume_reading()

    async def drain(self) -> None:
        """Wait until the transport's write buffer is below its high-water mark."""
        if self.lost:
            raise ClientDisconnected("client disconnected")
        if not self.write_paused:
            return
        waiter = self.loop.create_future()
        self._drain_waiters.append(waiter)
        await waiter
        if self.lost:
            raise ClientDisconnected("client disconnected")

    async def wait_flushed(self) -> None:
        """Wait until the transport has written all it holds, so bytes written around it (by sendfile) come
        after. The high-water mark drops to 0 meanwhile, so the transport pauses this protocol while it holds
        anything and calls ``resume_writing`` once its buffer is empty (asyncio's and uvloop's both do)."""
        transport = self.transport
        if self.lost or not transport.get_write_buffer_size():
            return
        low, high = transport.get_write_buffer_limits()
        transport.set_write_buffer_limits(high=0, low=0)
        try:
            while transport.get_write_buffer_size() and not self.lost:
                if self.write_paused:
                    await self.drain()
                else:
                    await asyncio.sleep(0.001)  # not paused by a transport that only checks on its next write
        finally:
            if not self.lost:
                transport.set_write_buffer_limits(high=high, low=low)
        if self.lost:
            raise ClientDisconnected("client disconnected")

    def add_waiter(self, waiter: asyncio.Future[None]) -> None:
        """Have ``waiter`` woken when the transport drains or the connection is lost."""
        self._drain_waiters.append(waiter)

    def _wake_drain(self) -> None:
        waiters, self._drain_waiters = self._drain_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
