"""Listening with ``--proxy-protocol``: each connection's PROXY header is read before anything else.

The header comes before the TLS handshake, so it cannot be read by the protocol object asyncio makes for a
TLS listener; and a byte read past it would be lost to TLS. So these listeners accept connections themselves:
the header is read from the socket with ``MSG_PEEK``, exactly its own bytes are taken off, and only then is
the socket handed to the loop (``connect_accepted_socket``, with TLS when it is on) and to the usual
protocol, which learns the client's address from the header instead of from the socket.

A peer not in ``forwarded_allow_ips``, a malformed or truncated header, or one that does not arrive within
``header_timeout``: the connection is closed without an answer (a proxy that is not one should learn
nothing), and counted by kind in the metrics.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections.abc import Callable

from ..protocols.proxy_protocol import MAX_HEADER, ProxyHeader, ProxyHeaderError, parse
from .state import ServerState

log = logging.getLogger("monoceros.error")

ACCEPT_BATCH = 64  # connections accepted per wake-up, so one busy listener cannot starve the loop
Factory = Callable[[ProxyHeader], asyncio.Protocol]


class _Pending:
    """A connection whose header is still arriving."""

    __slots__ = ("buffer", "peer", "sock", "timer")

    def __init__(self, sock: socket.socket, peer: str) -> None:
        self.sock = sock
        self.peer = peer
        self.buffer = b""
        self.timer: asyncio.TimerHandle | None = None


class ProxiedListener:
    """One listening socket whose connections start with a PROXY header."""

    def __init__(
        self,
        state: ServerState,
        sock: socket.socket,
        factory: Factory,
        ssl_context: ssl.SSLContext | None,
    ) -> None:
        self.state = state
        self.loop = state.loop
        self.sock = sock
        self.factory = factory
        self.ssl_context = ssl_context
        self.pending: dict[int, _Pending] = {}
        self.closed = False
        self._untrusted_logged = False

    def start(self) -> None:
        self.sock.setblocking(False)
        self.loop.add_reader(self.sock.fileno(), self._accept)

    def close(self) -> None:
        """Accept no more, and drop the connections whose header has not arrived."""
        if self.closed:
            return
        self.closed = True
        self.loop.remove_reader(self.sock.fileno())
        for pending in list(self.pending.values()):
            self._drop(pending, None)

    def _accept(self) -> None:
        for _ in range(ACCEPT_BATCH):
            try:
                conn, address = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # out of descriptors, say: wait a little rather than spin
                log.error("Cannot accept a connection: %s; pausing for 0.5 s", exc)
                self.loop.remove_reader(self.sock.fileno())
                self.loop.call_later(0.5, self._resume)
                return
            peer = address[0] if isinstance(address, tuple) else ""
            proxy = self.state.proxy_trust
            if proxy is not None and not proxy.trusts(peer or None):
                self._count("proxy_untrusted")
                if not self._untrusted_logged:
                    self._untrusted_logged = True  # once per worker: the log must not be a flood's amplifier
                    log.warning(
                        "Closing connections from %s: it is not in forwarded_allow_ips, so it may not send a "
                        "PROXY protocol header (this is logged once)",
                        peer,
                    )
                conn.close()
                continue
            conn.setblocking(False)
            pending = _Pending(conn, peer)
            self.pending[conn.fileno()] = pending
            pending.timer = self.loop.call_later(self.state.header_timeout, self._late, pending)
            self.loop.add_reader(conn.fileno(), self._read, pending)

    def _resume(self) -> None:
        if not self.closed:
            self.loop.add_reader(self.sock.fileno(), self._accept)

    def _read(self, pending: _Pending) -> None:
        sock = pending.sock
        try:
            peeked = sock.recv(MAX_HEADER, socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._drop(pending, "proxy_header")
            return
        if not peeked:
            self._drop(pending, "proxy_header")  # closed before the header was whole: truncated
            return
        try:
            header = parse(pending.buffer + peeked)
        except ProxyHeaderError as exc:
            log.debug("Closing a connection from %s: %s", pending.peer or "a unix socket", exc)
            self._drop(pending, "proxy_header")
            return
        try:
            if header is None:
                # Every byte so far belongs to the header (it is not over yet): take them all off.
                pending.buffer += sock.recv(len(peeked))
                if len(pending.buffer) >= MAX_HEADER:
                    self._drop(pending, "proxy_header")
                return
            rest = header.length - len(pending.buffer)
            if rest:
                sock.recv(rest)  # exactly the header's own bytes: the client's first byte stays in the socket
        except OSError:
            self._drop(pending, "proxy_header")
            return
        self._forget(pending)
        self.loop.create_task(self._hand_over(sock, header))

    async def _hand_over(self, sock: socket.socket, header: ProxyHeader) -> None:
        try:
            await self.loop.connect_accepted_socket(lambda: self.factory(header), sock=sock, ssl=self.ssl_context)
        except (OSError, ssl.SSLError, asyncio.TimeoutError) as exc:
            log.debug("A proxied connection failed before it was served: %s", exc)
            sock.close()

    def _late(self, pending: _Pending) -> None:
        pending.timer = None
        log.debug(
            "Closing a connection from %s: no PROXY header within %.1f s", pending.peer, self.state.header_timeout
        )
        self._drop(pending, "proxy_header")

    def _forget(self, pending: _Pending) -> None:
        self.pending.pop(pending.sock.fileno(), None)
        self.loop.remove_reader(pending.sock.fileno())
        if pending.timer is not None:
            pending.timer.cancel()
            pending.timer = None

    def _drop(self, pending: _Pending, kind: str | None) -> None:
        self._forget(pending)
        pending.sock.close()
        if kind is not None:
            self._count(kind)

    def _count(self, kind: str) -> None:
        if self.state.tally is not None:
            self.state.tally.refused(kind)
