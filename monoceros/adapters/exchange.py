"""What an adapter sees of one request/response exchange, whichever protocol carries it.

An HTTP/1.1 connection offers one exchange at a time; an HTTP/2 connection will
offer one per stream. Adapters (ASGI, WSGI) are written once against this
interface and never touch a socket; it says nothing of any one protocol's framing
or batching. The server's implementation is ``server/stream.py``.

All methods must be called on the event loop thread. ``receive`` and ``send`` apply
flow control: ``receive`` waits for the peer, ``send`` waits while this stream may
not send more (the socket's buffer, and a stream's flow window where there is one).
"""

from __future__ import annotations

from typing import Any, Protocol

from ..protocols.events import Request


class Exchange(Protocol):
    """One request and its response."""

    @property
    def request(self) -> Request:
        """The request head (any protocol's; HTTP/1.1 gives its own subclass)."""
        ...

    scheme: str  # "http" or "https", after trusted proxy headers
    client: tuple[str, int] | None
    server: tuple[str, int | None] | None
    extensions: dict[str, Any]  # ASGI scope extensions this transport supports (e.g. "tls")

    @property
    def disconnected(self) -> bool:
        """True once the client is gone."""
        ...

    @property
    def response_started(self) -> bool:
        """True once :meth:`start_response` has been called."""
        ...

    @property
    def response_done(self) -> bool:
        """True once the response is complete, or was given up (reset, or answered by the server itself)."""
        ...

    async def receive(self) -> tuple[bytes, bool]:
        """The next piece of request body and whether more follows; ``(b"", False)`` at the end.

        Raises :class:`~monoceros.errors.ClientDisconnected` if the client left first.
        Sends ``100 Continue`` first when the client asked for it.
        """
        ...

    async def wait_disconnect(self) -> None:
        """Return once the client is gone or the response is complete."""
        ...

    def start_response(self, status: int, headers: list[tuple[bytes, bytes]], close: bool = False) -> None:
        """Set the response status and headers. ValueError for headers that would break framing. ``close``:
        the connection should end after this response, where that is the connection's to decide (HTTP/1.1)."""
        ...

    async def send(self, data: bytes, more: bool) -> None:
        """Send response body; ``more=False`` completes the response.

        Raises :class:`~monoceros.errors.ClientDisconnected` if the client is gone.
        """
        ...

    def send_nowait(self, data: bytes) -> bool:
        """Send body bytes, more to follow, without waiting; the protocol may batch them with what follows in
        this loop turn. Returns False when the client is not keeping up: the caller should then ``await
        drain()`` before sending more. For callers that cannot await at every piece (a WSGI app's iterable)."""
        ...

    def flush(self) -> bool:
        """Write what ``send_nowait`` batched, now (for a caller that batched by itself). Returns False when
        the client is not keeping up, as ``send_nowait`` does."""
        ...

    async def drain(self) -> None:
        """Wait until this stream may send more."""
        ...

    async def send_trailers(self, headers: list[tuple[bytes, bytes]]) -> None:
        """Complete the response with trailer fields (dropped where the protocol cannot carry them)."""
        ...

    async def sendfile(self, file: Any, offset: int, count: int | None) -> None:
        """Send ``count`` bytes of an open binary file as body (zero-copy where the transport allows)."""
        ...

    def abort(self) -> None:
        """Reset this stream: the response cannot be completed (the app failed mid-response). HTTP/1.1 can only
        end the connection; HTTP/2 and 3 reset the one stream."""
        ...

    def log_error(self, message: str, exc: BaseException | None = None) -> None:
        """Log an error about this exchange once, with the request line for context."""
        ...


ERROR_BODY = b"Internal Server Error\n"
ERROR_HEADERS = [
    (b"content-type", b"text/plain; charset=utf-8"),
    (b"content-length", str(len(ERROR_BODY)).encode()),
]


async def fail(exchange: Exchange) -> None:
    """The app failed. Answer 500 if nothing was sent yet; otherwise the response is broken: cut the connection.
    A response already complete (or given up by the server, at --request-timeout) is left as it is."""
    if exchange.disconnected or exchange.response_done:
        return
    if exchange.response_started:
        exchange.abort()
        return
    exchange.start_response(500, ERROR_HEADERS, close=True)
    try:
        await exchange.send(ERROR_BODY, False)
    except OSError:
        pass  # the client left meanwhile
