"""Where a connection's protocol is chosen.

Every connection starts with HTTP/1.1's driver (:func:`protocol_factory`), which costs nothing when the
client speaks HTTP/1.1. It switches to HTTP/2 (server/http2.py, handed over as server/handover.py does) in
three places, by the rules here and in ``protocols/http2.py``:

- TLS: once the handshake is done, if ALPN chose ``h2`` (offered first, :func:`alpn_protocols`);
- cleartext: if the first bytes are HTTP/2's preface (prior knowledge, as load balancers and gRPC use it);
- an ``Upgrade: h2c`` request without a body (RFC 7540 §3.2), answered 101.

``--http 1`` turns all three off; ``--http 2`` offers only ``h2`` and refuses HTTP/1.x requests with 505.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from ..errors import ConfigError
from ..protocols.http2 import HTTP2Settings
from ..protocols.http2_engines import engine_factory
from ..protocols.proxy_protocol import ProxyHeader
from .http2 import HTTP2Transport
from .http11 import HTTP11Transport
from .state import HTTP2Service, ServerState

log = logging.getLogger("monoceros.error")

# An HTTP/2 connection's budget of resets (both ways) and control frames: libnghttp2's own reset limit as
# Debian backported it (1,000, refilled at 33 a second), applied to both engines.
RESET_BURST, RESET_RATE = 1000, 33.0


def protocol_factory(state: ServerState, scheme: str) -> Callable[[], asyncio.Protocol]:
    """What each new connection of a listener starts speaking: HTTP/1.1, which hands over to HTTP/2."""
    return lambda: HTTP11Transport(state, scheme)


class ProxiedHTTP11Transport(HTTP11Transport):
    """HTTP/1.1 on a connection that began with a PROXY header: the addresses are the header's."""

    __slots__ = ("header",)
    header: ProxyHeader

    def _addresses(self, transport: asyncio.BaseTransport) -> None:
        super()._addresses(transport)
        header = self.header
        if header.client is not None:
            self.client, self.server = header.client, header.server


def proxied_factory(state: ServerState, scheme: str) -> Callable[[ProxyHeader], asyncio.Protocol]:
    """The protocol of a connection whose PROXY header was read (server/proxied.py)."""

    def make(header: ProxyHeader) -> asyncio.Protocol:
        protocol = ProxiedHTTP11Transport(state, scheme)
        protocol.header = header
        return protocol

    return make


def alpn_protocols(state: ServerState) -> tuple[str, ...]:
    """The protocols TLS offers in ALPN, the server's preference first."""
    if state.http2 is None:
        return ("http/1.1",)
    return ("h2", "http/1.1") if state.http1 else ("h2",)


def serve_http2(state: ServerState) -> None:
    """HTTP/2 on the engine --http2-engine asks for (unless --http 1): the log says which serves."""
    config = state.config
    if config.http == "1":
        return
    try:
        make, description = engine_factory(config.http2_engine)
    except ImportError as exc:
        if config.http == "2" or config.http2_engine != "auto":
            setting = "http" if config.http == "2" else "http2_engine"
            raise ConfigError(f"setting '{setting}' asks for HTTP/2, which cannot be served here: {exc}") from None
        log.warning("HTTP/2 is not served: %s", exc)
        return
    settings = HTTP2Settings(
        max_concurrent_streams=config.http2_max_concurrent_streams,
        initial_window_size=config.http2_initial_window_size,
        connection_window_size=config.http2_connection_window_size,
        max_frame_size=config.http2_max_frame_size,
        max_header_list_size=config.limit_request_headers_size,
        max_header_count=config.limit_request_fields,
        connect_protocol=state.ws_handler is not None,  # RFC 8441: WebSockets on streams, when served
        reset_burst=RESET_BURST,
        reset_rate=RESET_RATE,
    )
    state.http2 = HTTP2Service(make, settings, config.http2_max_requests, description, HTTP2Transport)
    log.info("HTTP/2 served by %s", description)
