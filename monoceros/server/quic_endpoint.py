"""A worker's QUIC endpoint: one UDP socket on a TLS bind's host and port, and the connections it carries.

UDP has no accept to share, so each worker binds its own socket to the port with SO_REUSEPORT and the kernel
spreads datagrams over them by their addresses (the 4-tuple's hash). A connection therefore stays with the
worker that took its first packet for as long as the client's address and port stay the same; a client that
migrates (a NAT rebinding, Wi-Fi to mobile) may land on another worker, which does not know its connection
ID and drops its packets: the client's connection times out and it reconnects (docs/http3.md measures it).

Datagrams are routed by destination connection ID. An Initial packet for an unknown ID starts a connection
(unless the worker is stopping); a long-header packet of a version we do not speak gets Version Negotiation;
anything else unknown or unparsable is dropped, as RFC 9000 §5.2 allows.
"""

from __future__ import annotations

import logging
import socket
from typing import TYPE_CHECKING, Any

from aioquic.buffer import Buffer  # type: ignore[attr-defined]  # re-exported from its C module
from aioquic.h3.connection import H3_ALPN
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.packet import (
    QuicPacketType,
    encode_quic_version_negotiation,
    pull_quic_header,
)

from ..protocols.http3 import HTTP3Engine, Tickets
from .http3 import HTTP3Connection

if TYPE_CHECKING:
    import asyncio

    from ..config import Config
    from .state import ServerState

log = logging.getLogger("monoceros.error")

CID_LENGTH = 8
MIN_INITIAL = 1200  # RFC 9000 §14.1: a client's Initial datagram is at least this large


def quic_configuration(config: Config) -> QuicConfiguration:
    """The server's QUIC settings, with its certificate (read once per worker)."""
    configuration = QuicConfiguration(
        is_client=False,
        alpn_protocols=H3_ALPN,
        connection_id_length=CID_LENGTH,
        idle_timeout=config.quic_idle_timeout,
        max_data=config.quic_max_data,
        max_stream_data=config.quic_max_stream_data,
    )
    assert config.certfile is not None, "--http3 is refused without --certfile (config/checks.py)"
    configuration.load_cert_chain(config.certfile, config.keyfile, config.keyfile_password)
    return configuration


def bind_udp(host: str, port: int, family: int) -> socket.socket:
    """This worker's UDP socket on a TLS bind's address, shared with the other workers by SO_REUSEPORT."""
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((host, port))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


class QuicEndpoint:
    """An ``asyncio.DatagramProtocol``: the worker's QUIC connections on one UDP socket."""

    def __init__(self, state: ServerState, configuration: QuicConfiguration, address: tuple[str, int]) -> None:
        self.state = state
        self.configuration = configuration
        self.address: tuple[str, int | None] = address
        config = state.config
        self.max_streams = config.quic_max_streams
        self.tickets = Tickets() if config.quic_early_data == "safe" else None
        self.transport: asyncio.DatagramTransport | None = None
        self._routes: dict[bytes, HTTP3Connection] = {}
        self._cids: dict[HTTP3Connection, set[bytes]] = {}
        self.stopping = False

    # -- asyncio.DatagramProtocol --------------------------------------------------------------------------

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def error_received(self, exc: Exception) -> None:
        log.debug("QUIC endpoint %s: %s", self.address, exc)  # an ICMP error for a datagram sent earlier

    def datagram_received(self, data: bytes, addr: Any) -> None:
        try:
            header = pull_quic_header(Buffer(data=data), host_cid_length=CID_LENGTH)
        except ValueError:
            return  # not QUIC: dropped
        conn = self._routes.get(header.destination_cid)
        if conn is not None:
            conn.datagram_received(data, addr)
            return
        version = header.version
        if (
            version is not None
            and header.packet_type != QuicPacketType.VERSION_NEGOTIATION
            and version not in self.configuration.supported_versions
        ):
            self.sendto(
                encode_quic_version_negotiation(
                    source_cid=header.destination_cid,
                    destination_cid=header.source_cid,
                    supported_versions=self.configuration.supported_versions,
                ),
                addr,
            )
            return
        if header.packet_type != QuicPacketType.INITIAL or len(data) < MIN_INITIAL or self.stopping:
            return
        loop = self.state.loop
        engine = HTTP3Engine(
            self.configuration, header.destination_cid, self.max_streams, self.tickets, loop.time, self.state.limits
        )
        conn = HTTP3Connection(self, engine, addr)
        self._cids[conn] = set()
        self.route(conn, [header.destination_cid, *engine.issued], [])
        engine.issued = []
        conn.datagram_received(data, addr)
        if not engine.accepted:  # an Initial that does not decrypt: no connection is kept for it
            conn.drop()

    # -- for the connections -------------------------------------------------------------------------------

    def sendto(self, data: bytes, addr: Any) -> None:
        if self.transport is not None:
            self.transport.sendto(data, addr)

    def route(self, conn: HTTP3Connection, issued: list[bytes], retired: list[bytes]) -> None:
        """The connection IDs that name ``conn`` now."""
        cids = self._cids.get(conn)
        if cids is None:
            return
        for cid in issued:
            self._routes[cid] = conn
            cids.add(cid)
        for cid in retired:
            if self._routes.get(cid) is conn:
                del self._routes[cid]
            cids.discard(cid)

    def forget(self, conn: HTTP3Connection) -> None:
        """The connection is over: its IDs route nowhere."""
        for cid in self._cids.pop(conn, ()):
            if self._routes.get(cid) is conn:
                del self._routes[cid]

    @property
    def connections(self) -> list[HTTP3Connection]:
        return list(self._cids)

    def close(self) -> None:
        """The worker has stopped: the socket closes (the connections were told GOAWAY and have ended)."""
        self.stopping = True
        for conn in list(self._cids):
            conn.cut()
        if self.transport is not None:
            self.transport.close()
