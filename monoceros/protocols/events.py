"""The event vocabulary every protocol speaks to the layer above it.

HTTP/1.1 today, HTTP/2 and HTTP/3 streams later, turn bytes into these events, keyed by ``stream_id``; the
adapters never learn which protocol carried a request. HTTP/1.1 has one request at a time, so its events all
carry stream id 1.

A :class:`Request` holds what every HTTP version has. What only one connection's protocol knows (HTTP/1.1's
keep-alive and Upgrade) stays in that protocol's own subclass. The classes are slotted dataclasses without
defaults: one is made for every request and body chunk, and their ``__init__`` is as plain as a hand-written
one.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True, eq=False, repr=False)
class Request:
    """A complete request head.

    ``headers`` keep the order and the raw bytes of the wire, with names lowercased (ASGI wants them so, and
    every lookup in the server is by lowercase name). ``path`` and ``query`` are the raw, still
    percent-encoded parts of ``target``. ``authority`` is the Host header (``:authority`` in HTTP/2 and 3);
    ``has_body`` says whether a body follows the head, which only the framing knows (Content-Length or
    chunked; in HTTP/2 a HEADERS frame without END_STREAM). ``protocol`` is extended CONNECT's ``:protocol``
    (RFC 8441: a WebSocket over an HTTP/2 stream), None otherwise.
    """

    stream_id: int
    method: str
    target: bytes
    path: bytes
    query: bytes
    http_version: str
    headers: list[tuple[bytes, bytes]]
    authority: bytes | None
    has_body: bool
    expect_continue: bool  # the client waits for 100 Continue before it sends the body (RFC 9110 §10.1.1)
    protocol: str | None

    def __repr__(self) -> str:
        return f"<Request {self.stream_id} {self.method} {self.target!r} HTTP/{self.http_version}>"


@dataclass(slots=True, eq=False, repr=False)
class Body:
    """A piece of request body, de-framed."""

    stream_id: int
    data: bytes

    def __repr__(self) -> str:
        return f"<Body {self.stream_id} {len(self.data)} bytes>"


@dataclass(slots=True, eq=False, repr=False)
class EndBody:
    """The request body (possibly empty) is complete."""

    stream_id: int

    def __repr__(self) -> str:
        return f"<EndBody {self.stream_id}>"


@dataclass(slots=True, eq=False)
class Trailers:
    """Header fields after the body (HTTP/1.1 chunked trailers, an HTTP/2 trailing HEADERS frame)."""

    stream_id: int
    headers: list[tuple[bytes, bytes]]


@dataclass(slots=True, eq=False)
class StreamReset:
    """The peer abandoned the stream (HTTP/2 RST_STREAM, HTTP/3 RESET_STREAM); ``code`` is its error code.
    HTTP/1.1 has one stream per connection, so there a reset is the connection's loss."""

    stream_id: int
    code: int


@dataclass(slots=True, eq=False)
class Rejected:
    """A request the protocol refused on its own stream without ending the connection (HTTP/2: a header list
    over the limits, 431): the server answers ``status`` and no app runs."""

    stream_id: int
    status: int
    detail: str
    ended: bool  # the request is complete (else its body follows, and the server asks the client to stop)


Event = Request | Body | EndBody | Trailers | StreamReset | Rejected


class ProtocolError(Exception):
    """The peer broke the protocol. ``status`` is the HTTP status to answer with before closing.

    As in h11, peer misbehaviour never escapes a protocol object as any other exception.
    """

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status

    def detached(self) -> ProtocolError:
        """This error without its traceback and context: kept on a connection, they would tie it into a
        reference cycle (error, traceback, frame, connection) that only the cyclic collector frees."""
        self.__traceback__ = None
        self.__context__ = None
        self.__cause__ = None
        return self
