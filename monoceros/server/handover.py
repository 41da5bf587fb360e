"""How a connection changes hands between protocols' drivers.

A connection that changes protocol (a WebSocket upgrade, ``Upgrade: h2c``, HTTP/2's preface, or ALPN's
``h2`` seen once the TLS handshake is done) is handed over with a :class:`Handover`: the transport, what the
first protocol learnt about the peer, and the bytes it read past the point of the switch. The next protocol
takes the transport with :func:`hand_over`, so no driver ever holds on to another.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, cast

from ..protocols.http11 import HTTP11Connection, HTTP11Request

if TYPE_CHECKING:
    from .state import ServerState


@dataclass(slots=True, eq=False)
class Handover:
    """A connection passed from one protocol's driver to the next."""

    state: ServerState
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    request: HTTP11Request | None  # the request that asked for the switch (None: ALPN, or HTTP/2's preface)
    tail: bytes  # what was read after it, the next protocol's first bytes
    client: tuple[str, int] | None
    server: tuple[str, int | None] | None
    scheme: str
    extensions: dict[str, Any]
    read_paused: bool
    write_paused: bool
    h11: HTTP11Connection  # frames an HTTP/1.1 answer refusing the switch (a WebSocket denial)


class Taker(Protocol):
    """An asyncio protocol that takes a connection over."""

    def start(self) -> None:
        """Begin, now that the transport delivers to this protocol."""


def hand_over(handover: Handover, make: Callable[[Handover], Taker]) -> Taker:
    """Give the connection to the protocol ``make`` builds from ``handover``, and start it."""
    taker = make(handover)
    handover.transport.set_protocol(cast(asyncio.BaseProtocol, taker))
    taker.start()
    return taker
