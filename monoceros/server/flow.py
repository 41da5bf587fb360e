"""Flow control for an asyncio protocol: pause reading when the app falls behind, wait for drain when the
client does, and cut a client that stops reading. Shared by the HTTP/1.1, HTTP/2 and WebSocket drivers.

The send deadline (``--send-timeout``, nginx's ``send_timeout``) runs only while the transport has paused
writing, so it costs nothing while a client keeps up. When it passes, the client has taken none of what the
transport holds since the last check: the connection is aborted, which frees the buffered bytes at once and
wakes every sender with ClientDisconnected.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from typing import TYPE_CHECKING

from ..errors import ClientDisconnected

if TYPE_CHECKING:
    from .state import ServerState

log = logging.getLogger("monoceros.error")

_RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() resets and drops the unsent bytes


class FlowControl:
    """Mixed into an ``asyncio.Protocol`` that sets ``transport``, ``loop``, ``lost`` and ``state``."""

    __slots__ = ("_drain_waiters", "_read_paused", "_send_left", "_send_timer", "write_paused")

    transport: asyncio.Transport
    loop: asyncio.AbstractEventLoop
    lost: bool
    state: ServerState
    owns_socket = True  # False for a WebSocket on an HTTP/2 stream: cutting it must not reset the connection

    def __init__(self) -> None:
        self.write_paused = False
        self._read_paused = False
        self._drain_waiters: list[asyncio.Future[None]] = []
        self._send_timer: asyncio.TimerHandle | None = None

    @property
    def read_paused(self) -> bool:
        return self._read_paused

    def pause_writing(self) -> None:
        self.write_paused = True
        timeout = self.state.send_timeout
        if timeout and self._send_timer is None:
            self._send_left = self.transport.get_write_buffer_size()
            self._send_timer = self.loop.call_later(timeout, self._send_check)

    def resume_writing(self) -> None:
        self.write_paused = False
        if self._send_timer is not None:
            self._send_timer.cancel()
            self._send_timer = None
        self._wake_drain()

    def _send_check(self) -> None:
        """The send deadline: a client that took some of the buffer since the last check gets another period
        (nginx's rule: the time between two successful writes); one that took nothing is cut."""
        self._send_timer = None
        if self.lost or not self.write_paused:
            return
        left = self.transport.get_write_buffer_size()
        if left < self._send_left:
            self._send_left = left
            self._send_timer = self.loop.call_later(self.state.send_timeout, self._send_check)
            return
        self.send_timed_out(left)

    def send_timed_out(self, unsent: int | None) -> None:
        """Cut a client that stopped reading: abort frees what the transport holds and wakes every sender.
        The socket closes with a reset (SO_LINGER 0, nginx's ``reset_timedout_connection``), so the kernel
        drops what it still holds for the client too, instead of retrying it for many minutes."""
        held = "" if unsent is None else f", {unsent} bytes unsent"
        log.info(
            "Cut %s: it took none of the response for %g s (--send-timeout)%s",
            _who(self.transport), self.state.send_timeout, held,
        )  # fmt: skip
        if self.state.tally is not None:
            self.state.tally.refused("send_timeout")
        if self.owns_socket:
            sock = self.transport.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
        self.transport.abort()

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

    async def wait_writable_fd(self, fd: int) -> None:
        """Wait until the socket ``fd`` takes more bytes (sendfile's wait), bounded by the send deadline: a
        client whose window stays shut that long is cut. ClientDisconnected when it is gone."""
        loop = self.loop
        waiter: asyncio.Future[None] = loop.create_future()
        expired = False

        def ready() -> None:
            if not waiter.done():
                waiter.set_result(None)

        def expire() -> None:
            nonlocal expired
            expired = True
            ready()

        timeout = self.state.send_timeout
        timer = loop.call_later(timeout, expire) if timeout else None
        loop.add_writer(fd, ready)
        self._drain_waiters.append(waiter)  # connection_lost wakes it too
        try:
            await waiter
        finally:
            loop.remove_writer(fd)
            if timer is not None:
                timer.cancel()
        if expired and not self.lost:
            self.send_timed_out(None)
            raise ClientDisconnected("client cut: it stopped reading")
        if self.lost:
            raise ClientDisconnected("client disconnected")

    def _wake_drain(self) -> None:
        """Wake every sender waiting to drain; once the connection is lost (every driver's connection_lost
        calls this), the send deadline goes too: its timer would keep the whole connection alive for it."""
        if self.lost and self._send_timer is not None:
            self._send_timer.cancel()
            self._send_timer = None
        waiters, self._drain_waiters = self._drain_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)


def _who(transport: asyncio.BaseTransport) -> str:
    peer = transport.get_extra_info("peername")
    return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else "a client"
