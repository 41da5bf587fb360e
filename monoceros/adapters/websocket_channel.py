"""What an adapter sees of one WebSocket, whichever protocol carries it.

HTTP/1.1 offers a WebSocket through an upgrade request; HTTP/2 will offer one per
extended-CONNECT stream (RFC 8441). The ASGI adapter is written once against this
interface. Messages are whole: fragments are joined and text is decoded before
``receive`` returns them.

All methods must be called on the event loop thread.
"""

from __future__ import annotations

from typing import Any, Protocol

from ..protocols.events import Request
from ..protocols.websocket import Closed

__all__ = ["Closed", "WebSocketChannel"]


class WebSocketChannel(Protocol):
    """One WebSocket, from its opening handshake to its close."""

    @property
    def request(self) -> Request:
        """The request head (any protocol's; HTTP/1.1 gives its own subclass)."""
        ...

    scheme: str  # "ws" or "wss", after trusted proxy headers
    client: tuple[str, int] | None
    server: tuple[str, int | None] | None
    extensions: dict[str, Any]
    lost: bool  # the connection is gone: the client left, or was cut

    @property
    def subprotocols(self) -> list[str]:
        """Offered by the client, in its order."""

    @property
    def accepted(self) -> bool:
        """True once :meth:`accept` has sent the 101."""
        ...

    @property
    def denied(self) -> bool:
        """True once a denial response has begun."""
        ...

    async def accept(self, subprotocol: str | None, headers: list[tuple[bytes, bytes]]) -> None:
        """Complete the handshake. ValueError for a subprotocol the client did not offer or a bad header."""
        ...

    async def deny(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes, more: bool) -> None:
        """Refuse the handshake with an HTTP response; call again with ``status=0`` for more body."""
        ...

    async def receive(self) -> str | bytes | Closed:
        """The next whole message, or :class:`Closed` once the WebSocket is over (and ever after)."""
        ...

    async def send(self, data: str | bytes) -> None:
        """Send one message, waiting while the client is slow. ClientDisconnected once closed."""
        ...

    async def close(self, code: int, reason: str) -> None:
        """Start the closing handshake (a no-op once closing)."""
        ...

    def abort(self) -> None:
        """Drop the connection at once."""
        ...

    def log_error(self, message: str, exc: BaseException | None = None) -> None:
        """Log an app error with what identifies the connection."""
        ...
