"""Where a connection's protocol is chosen.

A listener's connections start with the protocol :func:`protocol_factory` picks. Today that is HTTP/1.1
whatever the client offers: a TLS client's ALPN list is answered with ``http/1.1`` only (server/tls.py), and a
cleartext client that opens with HTTP/2's preface gets HTTP/1.1's 400. When HTTP/2 comes, the choice is made
here: by the protocol ALPN selected once the TLS handshake is done, or by the preface's first bytes; an
``Upgrade: h2c`` request hands its connection over (server/handover.py) as the WebSocket upgrade does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from .http11 import HTTP11Transport
from .state import ServerState


def protocol_factory(state: ServerState, scheme: str) -> Callable[[], asyncio.Protocol]:
    """What each new connection of a listener starts speaking: HTTP/1.1, the one protocol served yet."""
    return lambda: HTTP11Transport(state, scheme)
