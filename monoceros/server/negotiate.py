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
from collections.abc import Callable

from .http11 import HTTP11Transport
from .state import ServerState


def protocol_factory(state: ServerState, scheme: str) -> Callable[[], asyncio.Protocol]:
    """What each new connection of a listener starts speaking: HTTP/1.1, which hands over to HTTP/2."""
    return lambda: HTTP11Transport(state, scheme)


def alpn_protocols(state: ServerState) -> tuple[str, ...]:
    """The protocols TLS offers in ALPN, the server's preference first."""
    if state.http2 is None:
        return ("http/1.1",)
    return ("h2", "http/1.1") if state.http1 else ("h2",)
