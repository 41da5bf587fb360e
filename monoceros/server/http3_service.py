"""``--http3``: a worker's QUIC endpoints, one per TLS bind, and their advertisement (Alt-Svc).

aioquic is imported only here, and only when HTTP/3 is served: it is an optional extra (``monoceros[http3]``),
and a server without it must not pay its import.
"""

from __future__ import annotations

import logging
import socket
from typing import Any

from .state import ServerState

log = logging.getLogger("monoceros.error")


async def start_http3(state: ServerState, sockets: list[socket.socket]) -> list[Any]:
    """Bind this worker's UDP socket beside each TCP listener, serve QUIC on it, and have the TCP side's
    responses say so. Returns the endpoints, for the worker to stop."""
    from .quic_endpoint import QuicEndpoint, bind_udp, quic_configuration

    configuration = quic_configuration(state.config)
    endpoints = []
    ports = []
    for sock in sockets:
        if sock.family not in (socket.AF_INET, socket.AF_INET6) or sock.type != socket.SOCK_STREAM:
            continue  # a unix socket has no UDP twin
        host, port = sock.getsockname()[:2]
        udp = bind_udp(host, port, sock.family)
        endpoint = QuicEndpoint(state, configuration, (host, port))
        await state.loop.create_datagram_endpoint(lambda endpoint=endpoint: endpoint, sock=udp)  # type: ignore[misc]
        endpoints.append(endpoint)
        ports.append(port)
        shown = f"[{host}]" if sock.family == socket.AF_INET6 else host
        log.info("Listening at: https://%s:%d over QUIC (HTTP/3, UDP)", shown, port)
    if not endpoints:
        log.warning("--http3: no TCP listener on an IP address to serve QUIC beside (unix sockets have none)")
    value = state.config.http3_alt_svc
    if value and ports:
        state.advertise_http3(", ".join(value.replace("{port}", str(port)) for port in sorted(set(ports))))
    return endpoints


def stop_http3(endpoints: list[Any]) -> None:
    for endpoint in endpoints:
        endpoint.close()
