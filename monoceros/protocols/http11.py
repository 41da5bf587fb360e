"""HTTP/1.1, server side, sans-IO: bytes in, events out; response parts in, bytes out.

Theory of operation
-------------------
:meth:`HTTP11Connection.receive_data` feeds bytes to httptools (llhttp, in strict
mode). Its callbacks collect the request line and header fields into plain lists,
enforce the size limits as the bytes arrive, and append :class:`Request`,
:class:`Body` and :class:`EndBody` events to :attr:`events`. The caller drains
``events`` after every call. Pipelined requests simply produce several ``Request``
events in order; answering them in order is the caller's job (RFC 9112 §9.3.2).

The response side is :meth:`response_head`, :meth:`response_body` and
:meth:`response_end`. They frame what the app sends: Content-Length when the app
gives one, chunked otherwise (or close-delimited for HTTP/1.0), nothing for HEAD,
1xx, 204 and 304. After ``response_end`` the caller reads :attr:`keep_alive` to
know whether the connection can carry another request.

Any violation by the peer raises :class:`ProtocolError` carrying the status to
answer with (400, 413, 414, 431, 501, 505); after that the connection is unusable.
This module imports no asyncio, socket or threading.
"""

from __future__ import annotations

from dataclasses import dataclass
from http import HTTPStatus
from typing import NamedTuple

import httptools

from .events import Body, EndBody, Event, ProtocolError, Request
from .headers import HASH as _HASH
from .headers import UNDERSCORE as _UNDERSCORE
from .headers import Memo, check_header

STREAM = 1  # the one stream id of an HTTP/1.1 connection
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


@dataclass(slots=True, eq=False, repr=False)
class HTTP11Request(Request):
    """A request with what only HTTP/1.1 knows of it: whether the client keeps the connection (its version
    and its Connection header), and the protocol its Upgrade header asks for, lowercased."""

    keep_alive: bool
    upgrade: bytes | None


_END = EndBody(STREAM)

# Bytes a client may send past the limits before the head is refused even if no single
# field has completed yet; it bounds what httptools buffers for a never-ending field.
_HEAD_SLACK = 4096


class Limits(NamedTuple):
    """Request size limits, in bytes (``fields`` is a count; ``body`` 0 means none). No defaults: the settings
    registry owns them, and a second set here could only disagree with it."""

    request_line: int
    field_size: int
    fields: int
    headers_size: int
    body: int


def _status_line(status: int) -> bytes:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = ""
    return f"HTTP/1.1 {status} {phrase}\r\n".encode("latin-1")


_STATUS_LINES = {s.value: _status_line(s.value) for s in HTTPStatus}

# Request headers that decide how the request is framed or answered (see on_headers_complete).
_FRAMING = frozenset((b"host", b"content-length", b"transfer-encoding", b"expect", b"upgrade"))


# Memoised work (see Memo): apps send the same few things again and again.
_LINES: Memo[tuple[bytes, bytes], tuple[bytes, bytes]] = Memo("checked, encoded response header lines")
_REQUEST_LENGTHS: Memo[bytes, int] = Memo("request Content-Length values, checked (1*DIGIT) and parsed")
_LENGTHS: Memo[bytes, int] = Memo("response Content-Length values, parsed (int() of bytes is dear)")
_CHUNK_LINES: Memo[int, bytes] = Memo("chunk-size lines by size (a stream repeats a few sizes)")
# The names response_head does more with than copy the line: the framing, and the server's own defaults, which
# an app's header of the same name replaces (a Date or Server set by the app is sent once).
_SPECIAL_NAMES = frozenset((b"content-length", b"transfer-encoding", b"connection", b"server", b"date"))
_FRAMING_NAMES = frozenset((b"content-length", b"transfer-encoding", b"connection"))


def _header_line(item: tuple[bytes, bytes]) -> tuple[bytes, bytes]:
    """Check one response header and return (lowercase name, ``b"name: value\\r\\n"``), memoised."""
    name, value = item
    check_header(name, value)
    cached = (name.lower(), b"%s: %s\r\n" % (name, value))
    try:
        return _LINES.remember(item, cached)
    except TypeError:  # an unhashable pair (a list): fine, just not memoised
        return cached


def status_line(status: int) -> bytes:
    """``HTTP/1.1 <status> <phrase>\\r\\n``, precomputed for the known statuses."""
    line = _STATUS_LINES.get(status)
    if line is None:
        if not 100 <= status <= 999:
            raise ValueError(f"status {status!r} is not a three-digit HTTP status")
        line = _STATUS_LINES[status] = _status_line(status)
    return line


class HTTP11Connection:
    """The server side of one HTTP/1.1 connection, as a sans-IO state machine."""

    __slots__ = (
        "_body_bytes",
        "_chunked",
        "_field_size",
        "_fields_left",
        "_framing",
        "_head_bytes",
        "_headers",
        "_headers_done",
        "_headers_max",
        "_headers_size",
        "_in_head",
        "_input_closed",
        "_last_request",
        "_max_head",
        "_no_body",
        "_parser",
        "_remaining",
        "_request",
        "_special",
        "_url",
        "events",
        "keep_alive",
        "limits",
        "upgrade_request",
        "upgrade_tail",
    )

    def __init__(self, limits: Limits, default_names: frozenset[bytes] = frozenset()) -> None:
        """``default_names``: lowercase names of the default headers beyond Server and Date (``--header``)."""
        self.limits = limits
        self._special = _SPECIAL_NAMES | default_names if default_names else _SPECIAL_NAMES
        self.events: list[Event] = []
        self.keep_alive = True
        self._parser = httptools.HttpRequestParser(self)
        self._max_head = self.limits.request_line + self.limits.headers_size + _HEAD_SLACK
        self._in_head = False
        self._head_bytes = 0
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._framing: list[tuple[bytes, bytes]] = []  # the headers on_headers_complete must look at
        self._field_size = self.limits.field_size
        self._headers_max = self.limits.headers_size
        self._fields_left = self.limits.fields
        self._headers_size = 0
        self._body_bytes = 0
        self._headers_done = False
        self._request: HTTP11Request | None = None
        self._last_request: HTTP11Request | None = None
        self._input_closed = False
        # A WebSocket upgrade request ends HTTP/1.1 on this connection: the request, and what followed it.
        self.upgrade_request: HTTP11Request | None = None
        self.upgrade_tail = b""
        # response framing state, valid between response_head and response_end
        self._chunked = False
        self._no_body = False
        self._remaining: int | None = None

    # -- input -------------------------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Feed bytes from the peer; then drain :attr:`events`. Raises :class:`ProtocolError`."""
        if self._input_closed:
            if self.upgrade_request is not None:
                self.upgrade_tail += data  # the WebSocket's bytes, read before the connection was handed over
            return  # RFC 9112 §9.6: nothing after a request that closes the connection is read
        was_in_head = self._in_head
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            # llhttp stops after the head of an Upgrade or CONNECT request (one with "Connection: upgrade").
            offset = exc.args[0]
            request = self._last_request
            if request is not None and request.upgrade == b"websocket" and self.upgrade_request is None:
                # A WebSocket handshake: HTTP/1.1 ends here whatever the answer. The bytes after the head
                # belong to the WebSocket (or to nobody, if the handshake is refused and we close).
                self.upgrade_request = request
                self.upgrade_tail = data[offset:]
                self._input_closed = True
                return
            # Any other upgrade (h2c, CONNECT) we do not agree to, so the request is an ordinary one
            # (RFC 9110 §7.8: a server may ignore Upgrade) and the bytes after it are the next request.
            if offset < len(data):
                self.receive_data(data[offset:])
            return
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            if isinstance(cause, ProtocolError):
                raise cause from None
            raise ProtocolError(f"malformed request: {cause or exc}") from None
        except httptools.HttpParserInvalidMethodError:
            raise ProtocolError("invalid request method") from None
        except httptools.HttpParserInvalidURLError:
            raise ProtocolError("invalid request target") from None
        except httptools.HttpParserError as exc:
            if self._input_closed:
                return  # llhttp refuses bytes after "Connection: close"; they are simply not read
            raise _classify(exc) from None
        if self._in_head:
            self._head_bytes = self._head_bytes + len(data) if was_in_head else 0
            if self._head_bytes > self._max_head:
                if not self._headers:
                    raise ProtocolError("request line too long", 414)
                raise ProtocolError("request header fields too large", 431)

    def release(self) -> None:
        """The connection is gone: read nothing more, and drop the parser. It holds this object's callbacks,
        a reference cycle that would otherwise leave about 16 objects per connection to the cyclic garbage
        collector (docs/performance.md, "Memory", counts what that cost)."""
        self._input_closed = True
        del self._parser

    def receive_eof(self) -> None:
        """The peer closed its sending side. Raises if that cuts a request short."""
        if self._in_head and (self._url or self._headers):
            raise ProtocolError("connection closed in the middle of a request head")
        if self._request is not None:
            raise ProtocolError("connection closed in the middle of a request body")

    # httptools callbacks ----------------------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._in_head = True
        self._head_bytes = 0
        self._url = b""
        self._headers = []
        self._framing = []
        self._headers_size = 0
        self._fields_left = self.limits.fields
        self._body_bytes = 0
        self._headers_done = False

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
        if name in _FRAMING:
            self._framing.append((name, value))
        self._headers.append((name, value))

    def _header_limit(self, size: int) -> None:
        if size > self._field_size:
            raise ProtocolError("request header field too large", 431)
        if self._headers_size > self._headers_max:
            raise ProtocolError("request header fields too large", 431)
        raise ProtocolError("too many request header fields", 431)

    def on_headers_complete(self) -> None:
        parser = self._parser
        self._in_head = False
        self._headers_done = True
        version = parser.get_http_version()
        if version not in ("1.1", "1.0"):
            raise ProtocolError(f"HTTP/{version} is not supported", 505)
        method = parser.get_method().decode("ascii")
        hosts = 0
        authority = None
        expect_continue = False
        upgrade = None
        content_length = None
        chunked = False
        for name, value in self._framing:  # only the fields that shape the request, as on_header noted them
            if name == b"host":
                hosts += 1
                authority = value
            elif name == b"content-length":
                content_length = _content_length(value, content_length)
            elif name == b"transfer-encoding":
                if version == "1.0":
                    # RFC 9112 §6.1: Transfer-Encoding in an HTTP/1.0 message means faulty framing (an HTTP/1.0
                    # hop reads that body another way); de-chunking it and keeping the connection would let a
                    # request be smuggled past such a hop. Refuse it.
                    raise ProtocolError("Transfer-Encoding in an HTTP/1.0 request")
                chunked = _transfer_coding(value, chunked)
            elif name == b"expect":
                if value.lower() != b"100-continue":
                    raise ProtocolError(f"unsupported expectation {value!r}", 417)
                expect_continue = version == "1.1"
            elif name == b"upgrade":
                upgrade = value.lower()
        # RFC 9112 §3.2: a server MUST answer 400 to an HTTP/1.1 request without exactly one Host.
        if hosts != 1 and (hosts > 1 or version == "1.1"):
            raise ProtocolError("missing or repeated Host header")
        # RFC 9112 §6.3: Content-Length beside Transfer-Encoding is a smuggling attempt; refuse it.
        if chunked and content_length is not None:
            raise ProtocolError("both Content-Length and Transfer-Encoding")
        limit = self.limits.body
        if limit and content_length is not None and content_length > limit:
            raise ProtocolError("request body too large", 413)
        url = self._url
        if url[:1] == b"/":
            path, _, query = url.partition(b"?")
            if _HASH in path:
                path = path.partition(b"#")[0]
        elif url == b"*":
            if method != "OPTIONS":  # RFC 9112 §3.2.4: asterisk-form is only for OPTIONS
                raise ProtocolError("request target '*' is only allowed with OPTIONS")
            path, query = url, b""
        elif method == "CONNECT":
            path, query = url, b""
        else:
            path, query = _absolute_form(url)
        request = HTTP11Request(
            STREAM,
            method,
            url,
            path,
            query,
            version,
            self._headers,
            authority,
            chunked or bool(content_length),
            expect_continue,
            None,
            parser.should_keep_alive(),
            upgrade,
        )
        self._request = self._last_request = request
        self.events.append(request)

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)
        limit = self.limits.body
        if limit and self._body_bytes > limit:
            raise ProtocolError("request body too large", 413)
        self.events.append(Body(STREAM, body))

    def on_message_complete(self) -> None:
        if not self._parser.should_keep_alive():
            self._input_closed = True
        self._request = None
        self.events.append(_END)

    # -- output ------------------------------------------------------------------------------------------

    def response_head(
        self,
        request: HTTP11Request,
        status: int,
        headers: list[tuple[bytes, bytes]],
        default_headers: bytes = b"",
        *,
        keep_alive: bool = True,
    ) -> bytes:
        """Serialise a response head for ``request``; ``default_headers`` (Date, Server) are pre-encoded.

        ``keep_alive=False`` asks for the connection to close after this response.
        Raises ValueError for a header that would break the framing.
        """
        keep_alive = keep_alive and request.keep_alive
        content_length: int | None = None
        chunked = False
        replaced: list[bytes] | None = None
        parts = [status_line(status)]
        append = parts.append
        lines = _LINES.data
        special = self._special
        for item in headers:
            cached = lines.get(item)
            if cached is None:
                cached = _header_line(item)
            lname, line = cached
            if lname not in special:
                append(line)
                continue
            value = item[1]
            if lname not in _FRAMING_NAMES:  # a default header the app sets itself: its value, not ours
                if replaced is None:
                    replaced = []
                replaced.append(lname)
            elif lname == b"content-length":
                content_length = _LENGTHS.data.get(value)
                if content_length is None:
                    content_length = _response_length(value)
            elif lname == b"transfer-encoding":
                if value.lower() != b"chunked":
                    raise ValueError(f"the server frames the body; transfer-encoding {value!r} is not allowed")
                continue  # we add our own below when the body needs it
            elif lname == b"connection":
                if value.lower().find(b"close") >= 0:
                    keep_alive = False
                continue  # we send our own Connection header
            append(line)
        if default_headers:
            if replaced is not None:
                default_headers = _without(default_headers, replaced)
            append(default_headers)
        no_body = request.method == "HEAD" or status < 200 or status in (204, 304)
        if no_body or status < 200:
            pass
        elif content_length is None:
            if request.http_version == "1.1":
                chunked = True
                append(b"transfer-encoding: chunked\r\n")
            else:
                keep_alive = False  # HTTP/1.0: the end of the body is the end of the connection
        if status >= 200:
            if not keep_alive:
                append(b"connection: close\r\n")
            elif request.http_version == "1.0":
                append(b"connection: keep-alive\r\n")
            self.keep_alive = keep_alive
            self._chunked = chunked
            self._no_body = no_body
            self._remaining = None if no_body else content_length
        append(b"\r\n")
        return b"".join(parts)

    def response_body(self, data: bytes) -> bytes:
        """Frame a piece of the response body. Raises ValueError past the declared Content-Length."""
        if self._no_body or not data:
            return b""
        if self._remaining is not None:
            if len(data) > self._remaining:
                raise ValueError("response body is longer than its Content-Length")
            self._remaining -= len(data)
            return data
        if self._chunked:
            return b"%x\r\n%b\r\n" % (len(data), data)
        return data

    def response_body_parts(self, data: bytes) -> tuple[bytes, ...]:
        """As :meth:`response_body`, in pieces for ``writelines``, so a large chunk is never copied to frame it."""
        if self._chunked and data and not self._no_body:
            size = len(data)
            line = _CHUNK_LINES.data.get(size)
            if line is None:
                line = _CHUNK_LINES.remember(size, b"%x\r\n" % size)
            return (line, data, b"\r\n")
        return (self.response_body(data),)

    def response_end(self, trailers: list[tuple[bytes, bytes]] | None = None) -> bytes:
        """Finish the response body, with ``trailers`` where the body is chunked (RFC 9112 §7.1.2; a body with a
        Content-Length has nowhere to put them). A body shorter than its Content-Length forbids reuse."""
        if self._remaining:
            self.keep_alive = False  # the peer waits for bytes that never come; only closing ends it
        self._remaining = None
        if self._chunked:
            self._chunked = False
            if trailers:
                lines = _LINES.data
                fields = [(lines.get(item) or _header_line(item))[1] for item in trailers]
                return b"0\r\n" + b"".join(fields) + b"\r\n"
            return b"0\r\n\r\n"
        return b""

    def continue_response(self) -> bytes:
        """The interim ``100 Continue`` for a client that waits for it before sending the body."""
        return _CONTINUE

    @property
    def response_length_known(self) -> bool:
        """True when the app declared the body's length (or there is none): its end is near, so holding
        the head back to send it with the body costs the client nothing."""
        return self._remaining is not None or self._no_body

    @property
    def response_has_body(self) -> bool:
        """False for HEAD, 1xx, 204 and 304 responses, whose body is never sent."""
        return not self._no_body

    @property
    def response_is_raw(self) -> bool:
        """True when body bytes go out as they are (no chunk framing), so they may be sent zero-copy."""
        return not self._chunked and not self._no_body

    def account_body(self, size: int) -> None:
        """Count body bytes sent around :meth:`response_body` (by sendfile). ValueError past Content-Length."""
        if self._remaining is not None:
            if size > self._remaining:
                raise ValueError("response body is longer than its Content-Length")
            self._remaining -= size

    @property
    def request_in_progress(self) -> bool:
        """True while a request's head or body has started but not finished arriving."""
        return self._in_head or self._request is not None


def _without(block: bytes, names: list[bytes]) -> bytes:
    """The default header lines whose names are not in ``names`` (lowercase)."""
    return b"".join(
        line + b"\r\n" for line in block.split(b"\r\n") if line and line.partition(b":")[0].lower() not in names
    )


def _classify(exc: Exception) -> ProtocolError:
    text = str(exc)
    if "Invalid method" in text or "Invalid HTTP method" in text:
        return ProtocolError("invalid request method")
    if "transfer-encoding" in text.lower() and "Invalid" in text:
        return ProtocolError(f"malformed request: {text}", 501 if "Unexpected" not in text else 400)
    return ProtocolError(f"malformed request: {text}")


def _content_length(value: bytes, previous: int | None) -> int:
    # RFC 9112 §6.3: Content-Length is 1*DIGIT; a repeated header must agree or the message is invalid.
    length = _REQUEST_LENGTHS.data.get(value)
    if length is None:
        if not value.isdigit():
            raise ProtocolError(f"invalid Content-Length {value!r}")
        length = _REQUEST_LENGTHS.remember(value, int(value))
    if previous is not None and previous != length:
        raise ProtocolError("conflicting Content-Length headers")
    return length


def _transfer_coding(value: bytes, chunked: bool) -> bool:
    # RFC 9112 §6.1: chunked must be the final coding, applied once. We decode no other coding: 501.
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


def _response_length(value: bytes) -> int:
    if not value.strip().isdigit():
        raise ValueError(f"invalid response content-length {value!r}")
    return _LENGTHS.remember(value, int(value))


def _absolute_form(url: bytes) -> tuple[bytes, bytes]:
    """RFC 9112 §3.2.2: a server must accept absolute-form; the path is what follows the authority."""
    try:
        parsed = httptools.parse_url(url)
    except httptools.HttpParserInvalidURLError:
        raise ProtocolError(f"invalid request target {url!r}") from None
    return parsed.path or b"/", parsed.query or b""
