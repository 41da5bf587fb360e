"""Zero-copy file bodies: sendfile(2) straight onto the connection's socket, whatever the event loop.

uvloop has no ``loop.sendfile`` (asyncio's falls back to reading and writing there), so a Flask ``send_file`` went
out as hundreds of writes through Python (docs/performance.md, "Files"). Here the file goes from the page cache to
the socket in the kernel: the transport's own buffer is flushed first, so no byte overtakes another; then
``os.sendfile`` runs on a duplicate of the socket's descriptor until the socket is full, and again each time the
loop says it is writable. The duplicate keeps the transport's descriptor out of reach of a second watcher (asyncio
and libuv each refuse two on one descriptor) and is closed at once when the client goes.

Plain sockets only: over TLS the bytes must be encrypted in this process, and the caller reads the file in
pieces instead. A disk read for pages not yet cached happens inside the call, on the loop thread, as with
nginx's sendfile without aio; each call is bounded to ``MAX_CALL`` bytes so one call cannot stall the loop long.
"""

from __future__ import annotations

import asyncio
import os
from typing import Protocol

from ..errors import ClientDisconnected

MAX_CALL = 1 << 24  # 16 MiB: a loopback socket takes several MiB a call; the loop gets a turn in between


class _Connection(Protocol):
    transport: asyncio.Transport
    loop: asyncio.AbstractEventLoop
    lost: bool

    async def wait_flushed(self) -> None: ...

    async def wait_writable_fd(self, fd: int) -> None: ...


async def send_file(conn: _Connection, file_fd: int, offset: int, count: int) -> int:
    """Send ``count`` bytes of ``file_fd`` from ``offset``; return how many went (fewer if the file ended).

    Raises :class:`ClientDisconnected` when the client goes away meanwhile."""
    await conn.wait_flushed()
    sock = conn.transport.get_extra_info("socket")
    if conn.lost or sock is None:
        raise ClientDisconnected("client disconnected")
    fd = os.dup(sock.fileno())
    sent = 0
    try:
        while sent < count:
            try:
                done = os.sendfile(fd, file_fd, offset + sent, min(count - sent, MAX_CALL))
            except BlockingIOError:
                await conn.wait_writable_fd(fd)  # bounded by --send-timeout
                continue
            except (BrokenPipeError, ConnectionResetError) as exc:
                raise ClientDisconnected("client disconnected") from exc
            if done == 0:
                break  # the file is shorter than it was said to be
            sent += done
    finally:
        os.close(fd)
    return sent
