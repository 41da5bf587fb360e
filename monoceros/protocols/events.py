"""The event vocabulary every protocol speaks to the layer above it.

HTTP/1.1 today (and HTTP/2 streams later) turn bytes into these events, keyed by
``stream_id``; the adapters never learn which protocol carried a request. HTTP/1.1
has one request at a time, so its events all carry stream id 1.

Events are plain slotted classes rather than dataclasses with defaults: one is
made for every request and body chunk, so construction cost matters.
"""

from __future__ import annotations


class Request:
    """A complete request head.

    ``headers`` keep the order and the raw bytes of the wire, with names lowercased
    (ASGI wants them so, and every lookup in the server is by lowercase name).
    ``path`` and ``query`` are the raw, still percent-encoded parts of ``target``.
    """

    __slots__ = (
        "expect_continue",
        "headers",
        "http_version",
        "keep_alive",
        "method",
        "path",
        "query",
        "stream_id",
        "target",
        "upgrade",
    )

    def __init__(
        self,
        stream_id: int,
        method: str,
        target: bytes,
        path: bytes,
        query: bytes,
        http_version: str,
        headers: list[tuple[bytes, bytes]],
        keep_alive: bool,
        expect_continue: bool,
        upgrade: bytes | None,
    ) -> None:
        self.stream_id = stream_id
        self.method = method
        self.target = target
        self.path = path
        self.query = query
        self.http_version = http_version
        self.headers = headers
        self.keep_alive = keep_alive
        self.expect_continue = expect_continue
        self.upgrade = upgrade

    def __repr__(self) -> str:
        return f"<Request {self.stream_id} {self.method} {self.target!r} HTTP/{self.http_version}>"


class Body:
    """A chunk of request body, de-chunked."""

    __slots__ = ("data", "stream_id")

    def __init__(self, stream_id: int, data: bytes) -> None:
        self.stream_id = stream_id
        self.data = data

    def __repr__(self) -> str:
        return f"<Body {self.stream_id} {len(self.data)} bytes>"


class EndBody:
    """The request body (possibly empty) is complete."""

    __slots__ = ("stream_id",)

    def __init__(self, stream_id: int) -> None:
        self.stream_id = stream_id

    def __repr__(self) -> str:
        return f"<EndBody {self.stream_id}>"


Event = Request | Body | EndBody


class ProtocolError(Exception):
    """The peer broke the protocol. ``status`` is the HTTP status to answer with before closing.

    As in h11, peer misbehaviour never escapes a protocol object as any other exception.
    """

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status
