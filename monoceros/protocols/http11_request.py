"""HTTP/1.1 request heads: the field rules of RFC 9112 that decide how a request is framed, and the parser's
half that collects the request line and header fields within the size limits.

:class:`HeadParser` is the base of :class:`~monoceros.protocols.http11.HTTP11Connection`: httptools calls
its ``on_url`` and ``on_header`` as the bytes arrive; the connection's state machine owns the callbacks that
change state (a message begins, its head completes, it ends).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NamedTuple

import httptools

from .events import ProtocolError, Request
from .headers import NO_SLOTS, Memo
from .headers import UNDERSCORE as _UNDERSCORE

STREAM = 1  # the one stream id of an HTTP/1.1 connection

# Bytes a client may send past the limits before the head is refused even if no single
# field has completed yet; it bounds what httptools buffers for a never-ending field.
HEAD_SLACK = 4096

# Request headers that decide how the request is framed or answered (see on_headers_complete).
FRAMING = frozenset((b"host", b"content-length", b"transfer-encoding", b"expect", b"upgrade"))

_REQUEST_LENGTHS: Memo[bytes, int] = Memo("request Content-Length values, checked (1*DIGIT) and parsed")
HOSTS: Memo[bytes, bool] = Memo("Host values, checked against RFC 3986's host [ ':' port ]")
# RFC 3986 §3.2.2: an IP literal in brackets, or a reg-name (which takes in IPv4 addresses); then a port.
_REQUEST_START = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+ ")  # RFC 9110 §9.1: a method is a token
_HOST = re.compile(rb"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~%!$&'()*+,;=]*)(?::[0-9]*)?")


@dataclass(slots=True, eq=False, repr=False)
class HTTP11Request(Request):
    """A request with what only HTTP/1.1 knows of it: whether the client keeps the connection (its version
    and its Connection header), and the protocol its Upgrade header asks for, lowercased."""

    keep_alive: bool
    upgrade: bytes | None


class Limits(NamedTuple):
    """Request size limits, in bytes (``fields`` is a count; ``body`` 0 means none). No defaults: the settings
    registry owns them, and a second set here could only disagree with it."""

    request_line: int
    field_size: int
    fields: int
    headers_size: int
    body: int


class HeadParser:
    """Collects one request head at a time from httptools' callbacks, refusing it past the limits."""

    __slots__ = NO_SLOTS  # the connection class holds the fields, in one slotted layout

    limits: Limits
    _url: bytes
    _headers: list[tuple[bytes, bytes]]
    _framing: list[tuple[bytes, bytes]]  # the fields on_headers_complete must look at (FRAMING)
    _headers_size: int
    _headers_max: int
    _field_size: int
    _fields_left: int
    _headers_done: bool  # fields that arrive now are trailers

    def on_url(self, url: bytes) -> None:
        self._url += url
        if len(self._url) > self.limits.request_line:
            raise ProtocolError("request line too long", 414)

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._headers_done:
            return  # a trailer field: RFC 9110 §6.5.1 forbids merging it into the header section
        size = len(name) + len(value)
        self._headers_size += size
        if size > self._field_size or self._headers_size > self._headers_max or self._fields_left <= 0:
            self._header_limit(size)
        self._fields_left -= 1
        if _UNDERSCORE in name:
            # nginx drops these by default (underscores_in_headers off): in CGI and WSGI, "X_Foo" and
            # "X-Foo" both become HTTP_X_FOO, so a client could forge a header a proxy vouches for.
            return
        if value and value[-1] <= 0x20:  # llhttp (strict) lets no control byte but HTAB into a value
            value = value.rstrip(b" \t")  # RFC 9110 §5.5: trailing whitespace is not part of the value
        name = name.lower()
        if name in FRAMING:
            self._framing.append((name, value))
        self._headers.append((name, value))

    def _header_limit(self, size: int) -> None:
        if size > self._field_size:
            raise ProtocolError("request header field too large", 431)
        if self._headers_size > self._headers_max:
            raise ProtocolError("request header fields too large", 431)
        raise ProtocolError("too many request header fields", 431)


def content_length(value: bytes, previous: int | None) -> int:
    """RFC 9112 §6.3: Content-Length is 1*DIGIT; a repeated header must agree or the message is invalid."""
    length = _REQUEST_LENGTHS.data.get(value)
    if length is None:
        if not value.isdigit():
            raise ProtocolError(f"invalid Content-Length {value!r}")
        length = _REQUEST_LENGTHS.remember(value, int(value))
    if previous is not None and previous != length:
        raise ProtocolError("conflicting Content-Length headers")
    return length


def transfer_coding(value: bytes, chunked: bool) -> bool:
    """RFC 9112 §6.1: chunked must be the final coding, applied once. We decode no other coding: 501."""
    codings = [c.strip().lower() for c in value.split(b",")]
    for coding in codings:
        if coding == b"chunked":
            if chunked:
                raise ProtocolError("chunked applied twice")
            chunked = True
        elif chunked:
            raise ProtocolError("chunked is not the final transfer coding")
        else:
            raise ProtocolError(f"transfer coding {coding!r} is not implemented", 501)
    return chunked


def valid_host(value: bytes) -> bool:
    """RFC 9112 §3.2: a Host value must be host [ ":" port ] (a server MUST answer 400 to any other)."""
    verdict = HOSTS.data.get(value)
    if verdict is None:
        verdict = HOSTS.remember(value, _HOST.fullmatch(value) is not None)
    return verdict


def other_target(url: bytes, method: str, headers: list[tuple[bytes, bytes]]) -> tuple[bytes, bytes, bytes | None]:
    """Path, query and authority of a target not in origin-form (RFC 9112 §3.2): ``*``, CONNECT's authority,
    or an absolute URI, which a server must accept; its path is what follows the authority, and its authority
    replaces the Host header in ``headers`` (§3.2.2: the server MUST ignore Host then)."""
    if url == b"*":
        if method != "OPTIONS":  # RFC 9112 §3.2.4: asterisk-form is only for OPTIONS
            raise ProtocolError("request target '*' is only allowed with OPTIONS")
        return url, b"", None
    if method == "CONNECT":  # §3.2.3: authority-form, host and port
        if b":" not in url or url.endswith(b":") or not valid_host(url):
            raise ProtocolError(f"CONNECT needs a target of the form host:port, not {url[:60]!r}")
        return url, b"", None
    try:
        parsed = httptools.parse_url(url)
    except httptools.HttpParserInvalidURLError:
        raise ProtocolError(f"invalid request target {url!r}") from None
    if parsed.fragment:
        raise ProtocolError("a request target has no fragment ('#')")
    authority = None
    if parsed.host:
        host = b"[" + parsed.host + b"]" if b":" in parsed.host else parsed.host  # an IPv6 literal keeps its []
        authority = host + (b":%d" % parsed.port if parsed.port else b"")
    if authority is not None:
        headers[:] = [(n, authority if n == b"host" else v) for n, v in headers]
    return parsed.path or b"/", parsed.query or b"", authority


def classify(exc: Exception) -> ProtocolError:
    """The error to answer for what llhttp refused."""
    text = str(exc)
    if "Invalid method" in text or "Invalid HTTP method" in text:
        return ProtocolError("invalid request method")
    if "transfer-encoding" in text.lower() and "Invalid" in text:
        return ProtocolError(f"malformed request: {text}", 501 if "Unexpected" not in text else 400)
    return ProtocolError(f"malformed request: {text}")


def is_http1_line(data: bytes) -> bool:
    """Whether ``data`` starts as an HTTP/1.x request does (or is not a whole line yet): a first line that ends
    as a request line does, or one that starts with a method and a space and names HTTP/1 (trailing spaces,
    say), so that a malformed request is answered 400 rather than closed as bytes of another protocol."""
    line, crlf, _ = data.partition(b"\n")
    if not crlf or line.rstrip(b"\r")[-9:-1] == b" HTTP/1.":
        return True
    return b" HTTP/1." in line and _REQUEST_START.match(line) is not None


def switches(request: HTTP11Request, h2c: bool) -> bool:
    """Whether an Upgrade request ends HTTP/1.1: a WebSocket handshake always; ``h2c`` when served, for a request
    without a body that carries exactly one HTTP2-Settings (RFC 7540 §3.2)."""
    if request.upgrade == b"websocket":
        return True
    settings = sum(1 for name, _ in request.headers if name == b"http2-settings")
    return h2c and request.upgrade == b"h2c" and not request.has_body and settings == 1
