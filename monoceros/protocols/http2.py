"""HTTP/2 (RFC 9113), server side, sans-IO: what every engine shares, and the choice of engine.

Theory of operation
-------------------
An engine turns bytes into events keyed by stream id (:class:`Request`, :class:`Body`, :class:`EndBody`,
:class:`Trailers`, :class:`StreamReset`, :class:`Rejected`) and takes a response's parts per stream (headers,
data with an end flag, trailers, a reset), giving back the bytes to write. Two engines implement
:class:`HTTP2Engine`: libnghttp2 (``http2_nghttp2.py``, through cffi: the compiled glue, else ABI mode) and the
pure-Python ``h2`` package (``http2_h2.py``), for where the library cannot be loaded.
``http2_engines.engine_factory`` picks one.

Flow control is the app's both ways. Inbound, windows reopen only as the app consumes the body
(:meth:`HTTP2Engine.consume`), so a slow reader pushes back on its client as HTTP/1.1 does. Outbound, data
waits per stream until the peer's windows let it go; :meth:`HTTP2Engine.pending` says how much waits, which
is how the connection decides when a sender must pause.

What the engines do not enforce, this module does, the same way for both (:class:`Budget`,
:class:`HeaderBudget`, :func:`request_from_fields`): a header list bounded while it arrives, by size and
count; a budget of resets in both directions and of control frames; RFC 9113 §8.3's request rules where
an engine leaves them to the server. This module imports no asyncio, socket or threading.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import NamedTuple, Protocol

from .events import Event, ProtocolError, Request
from .headers import CONNECTION_SPECIFIC

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# Error codes (RFC 9113 §7).
NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, FLOW_CONTROL_ERROR = 0x0, 0x1, 0x2, 0x3
STREAM_CLOSED, REFUSED_STREAM, CANCEL, ENHANCE_YOUR_CALM = 0x5, 0x7, 0x8, 0xB


# DATA bytes sent that make the next WINDOW_UPDATE free of the control budget: a client reading a response
# opens windows as it goes, a flood opens windows nothing waits on (the glue is given it too).
FREE_UPDATE = 1024


def is_preface(data: bytes) -> bool:
    """Whether a connection's first bytes open HTTP/2 with prior knowledge (RFC 9113 §3.4): the preface, or
    its beginning when the first read is short. Four bytes decide: no HTTP/1.x method is "PRI "."""
    return data[:4] == b"PRI " and PREFACE.startswith(data[:24])


class HTTP2Settings(NamedTuple):
    """What the server advertises and enforces on every HTTP/2 connection (from the settings registry)."""

    max_concurrent_streams: int
    initial_window_size: int  # per stream, for request bodies
    connection_window_size: int  # for all request bodies together
    max_frame_size: int
    max_header_list_size: int  # bytes of a header block, decoded (name + value + 32 per field, RFC 9113 §6.5.2)
    max_header_count: int
    connect_protocol: bool  # SETTINGS_ENABLE_CONNECT_PROTOCOL (RFC 8441): WebSocket over a stream
    reset_burst: int  # resets (both ways) and control frames a connection may send before the budget bites
    reset_rate: float  # and how fast that budget refills, per second


class HTTP2Error(Exception):
    """The connection cannot go on (the peer broke the protocol, or spent its budget): write what
    :meth:`HTTP2Engine.data_to_send` still has (a GOAWAY, usually), then close."""


class HTTP2Engine(Protocol):
    """One HTTP/2 connection, server side, sans-IO."""

    events: list[Event]
    name: str  # "nghttp2 (glue)", "nghttp2 (abi)" or "h2", for the log

    def receive_data(self, data: bytes) -> None:
        """Feed bytes from the peer; then drain :attr:`events`. Raises :class:`HTTP2Error`."""

    def data_to_send(self) -> bytes:
        """The bytes to write now (frames the engine produced, as the windows allow)."""

    def send_headers(self, stream_id: int, status: int, headers: list[tuple[bytes, bytes]], end_stream: bool) -> None:
        """A response head (``status`` < 200: an interim one). ``end_stream``: the response has no body."""

    def send_response(self, stream_id: int, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        """A whole response at once (the usual case): the head, and the body that ends it."""

    def send_data(self, stream_id: int, data: bytes, end_stream: bool) -> None:
        """Body bytes, queued until the windows let them go."""

    def send_trailers(self, stream_id: int, headers: list[tuple[bytes, bytes]]) -> None:
        """End the body with trailer fields."""

    def reset_stream(self, stream_id: int, code: int) -> None:
        """RST_STREAM: the response cannot be completed (counted in the reset budget)."""

    def stop_after_response(self, stream_id: int) -> None:
        """The response is complete before the request: once its last frame has gone, RST_STREAM(NO_ERROR)
        asks the client to stop sending the body (RFC 9113 §8.1). Sent earlier, the reset would overtake the
        response and the client would lose it."""

    def consume(self, stream_id: int, size: int) -> None:
        """The app has taken ``size`` bytes of the body: the windows reopen by that much."""

    def pending(self, stream_id: int) -> int:
        """Body bytes queued for ``stream_id`` that the windows have not let go yet."""

    def shutdown(self) -> None:
        """Graceful stop: GOAWAY with the last stream id taken (after a notice a round trip earlier, where
        the engine can); streams already open are answered."""

    def terminate(self, code: int) -> None:
        """GOAWAY with ``code`` now; nothing more is read."""

    def upgrade(self, settings_payload: bytes, head_request: bool) -> None:
        """Take over from HTTP/1.1 after ``Upgrade: h2c`` (RFC 7540 §3.2): stream 1 is the upgrade request,
        already received. ``settings_payload`` is the decoded HTTP2-Settings header."""

    @property
    def finished(self) -> bool:
        """True once the connection has nothing more to read or write (after GOAWAY both ways)."""

    def close(self) -> None:
        """Release what the engine holds (the C session)."""


class HeadThenBody:
    """``send_response`` as a head and then the body that ends it: for the engines with no faster way (the glue
    sends both in one call)."""

    __slots__ = ()

    def send_headers(self, stream_id: int, status: int, headers: list[tuple[bytes, bytes]], end_stream: bool) -> None:
        raise NotImplementedError

    def send_data(self, stream_id: int, data: bytes, end_stream: bool) -> None:
        raise NotImplementedError

    def send_response(self, stream_id: int, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        self.send_headers(stream_id, status, headers, not body)
        if body:
            self.send_data(stream_id, body, True)


class Outbound:
    """A response body waiting for the peer's windows: both engines keep one per answered stream."""

    __slots__ = ("chunks", "deferred", "ended", "size", "trailers")

    def __init__(self) -> None:
        self.chunks: deque[bytes] = deque()
        self.size = 0
        self.ended = False
        self.deferred = False  # libnghttp2 was told "nothing yet": resume_data when something comes
        self.trailers: list[tuple[bytes, bytes]] | None = None

    def add(self, data: bytes, end_stream: bool) -> bool:
        """Queue ``data``; False when the body had ended already (the caller then has nothing to push)."""
        if self.ended:
            return False
        if data:
            self.chunks.append(data)
            self.size += len(data)
        self.ended = end_stream
        return True


class Budget:
    """A token bucket: ``spend`` is False once the burst is used faster than the rate refills it. The clock
    is the caller's (``time.monotonic``), so the protocol stays sans-IO and tests can drive it."""

    __slots__ = ("_clock", "_last", "_rate", "_size", "_tokens")

    def __init__(self, burst: int, rate: float, clock: Callable[[], float]) -> None:
        self._size = float(burst)
        self._tokens = float(burst)
        self._rate = rate
        self._clock = clock
        self._last = clock()

    def spend(self, cost: float = 1.0) -> bool:
        now = self._clock()
        tokens = min(self._size, self._tokens + (now - self._last) * self._rate)
        self._last = now
        if tokens < cost:
            self._tokens = tokens
            return False
        self._tokens = tokens - cost
        return True


class HeaderBudget:
    """Bounds one header block while it arrives (an engine may hand over a decoded HPACK bomb field by field).
    Past the limits the fields are no longer kept, and the request is answered 431; four times past them, the
    engine resets the stream instead of decoding on."""

    __slots__ = ("count", "max_count", "max_size", "over", "size")

    def __init__(self, max_size: int, max_count: int) -> None:
        self.max_size = max_size
        self.max_count = max_count
        self.size = 0
        self.count = 0
        self.over = False

    def start(self) -> None:
        self.size = 0
        self.count = 0
        self.over = False

    def add(self, name_length: int, value_length: int) -> int:
        """1: keep the field; 0: over the limits, drop it (431 follows); -1: far over, reset the stream."""
        self.size += name_length + value_length + 32
        self.count += 1
        if self.size <= self.max_size and self.count <= self.max_count:
            return 1
        self.over = True
        if self.size > 4 * self.max_size or self.count > 4 * self.max_count:
            return -1
        return 0


def request_from_fields(
    stream_id: int, fields: list[tuple[bytes, bytes]], end_stream: bool, version: str = "2"
) -> Request:
    """The :class:`Request` of a header block (RFC 9113 §8.3, and RFC 9114 §4.3 for HTTP/3's, ``version``
    "3", which has the same rules): pseudo-headers first, then the fields, names
    lowercase. Raises :class:`ProtocolError` for a malformed request (the stream is reset with PROTOCOL_ERROR).
    The engine has checked the field characters and the pseudo-header order already; this adds what it
    leaves to the server. A Host header is made from ``:authority`` when the client sent none, as the apps
    and WSGI's ``HTTP_HOST`` expect one."""
    method = path = scheme = authority = protocol = None
    headers: list[tuple[bytes, bytes]] = []
    host = None
    for name, value in fields:
        if name[:1] == b":":
            if name == b":method":
                method = value
            elif name == b":path":
                path = value
            elif name == b":scheme":
                scheme = value
            elif name == b":authority":
                authority = value
            elif name == b":protocol":
                protocol = value
            else:
                raise ProtocolError(f"unknown pseudo-header {name!r}")
            continue
        if name in CONNECTION_SPECIFIC or (name == b"te" and value != b"trailers"):
            raise ProtocolError(f"connection-specific header {name!r} in an HTTP/{version} request")
        if name == b"host":
            host = value
        headers.append((name, value))
    if method is None:
        raise ProtocolError("request without :method")
    if method == b"CONNECT" and protocol is None:
        # RFC 9113 §8.5: plain CONNECT carries :authority only; a tunnel is not something we serve
        if path is not None or scheme is not None:
            raise ProtocolError("CONNECT with :path or :scheme")
        target = authority or b""
        path_part, query = target, b""
    else:
        if not path or scheme is None:
            raise ProtocolError("request without :path or :scheme")
        target = path
        if path[:1] == b"/":
            path_part, _, query = path.partition(b"?")
        elif path == b"*" and method == b"OPTIONS":
            path_part, query = path, b""
        else:
            raise ProtocolError(f"invalid :path {path!r}")
    if authority is not None and host is None:
        headers.append((b"host", authority))
    elif authority is None:
        authority = host
    return Request(
        stream_id, method.decode("ascii", "replace"), target, path_part, query, version, headers, authority,
        not end_stream, False, protocol.decode("ascii", "replace") if protocol is not None else None,
    )  # fmt: skip


def response_fields(
    status: int, headers: list[tuple[bytes, bytes]], default_headers: bytes
) -> list[tuple[bytes, bytes]]:
    """A response head as HTTP/2 fields: ``:status`` first, names lowercase, and without the connection-specific
    fields an HTTP/1.1 app may send (RFC 9113 §8.2.2 forbids them here). ``default_headers`` is the server's
    own block (``date: ...\\r\\nserver: ...\\r\\n``); an app's field of the same name replaces it."""
    fields = [(b":status", b"%d" % status)]
    names = set()
    for name, value in headers:
        lname = name.lower()
        if lname in CONNECTION_SPECIFIC:
            continue
        names.add(lname)
        fields.append((lname, value))
    if default_headers:
        for name, value in _default_fields(default_headers):
            if name not in names:
                fields.append((name, value))
    return fields


_defaults: tuple[bytes, list[tuple[bytes, bytes]]] = (b"", [])


def _default_fields(block: bytes) -> list[tuple[bytes, bytes]]:
    """The server's own header block as fields; it changes once a second (the date), so the last is kept."""
    global _defaults
    if _defaults[0] is not block:
        fields = [line.partition(b": ")[::2] for line in block.split(b"\r\n") if line]
        _defaults = (block, fields)
    return _defaults[1]
