"""HTTP/1.1 response framing: a response's parts as bytes on the wire.

:class:`ResponseFraming` is the base of :class:`~monoceros.protocols.http11.HTTP11Connection`. It frames
what the app sends: Content-Length when the app gives one, chunked otherwise (or close-delimited for
HTTP/1.0), nothing for HEAD, 1xx, 204 and 304. Whether the connection persists is the state machine's to
decide; this half only says when the framing itself forbids it (an HTTP/1.0 body without a length, an app's
``Connection: close``).
"""

from __future__ import annotations

from http import HTTPStatus

from .headers import NO_SLOTS, Memo, check_header
from .http11_request import HTTP11Request

CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
# RFC 7540 §3.2: the answer that accepts "Upgrade: h2c"; HTTP/2 follows on the same connection.
SWITCHING_TO_H2C = b"HTTP/1.1 101 Switching Protocols\r\nconnection: Upgrade\r\nupgrade: h2c\r\n\r\n"


def _status_line(status: int) -> bytes:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = ""
    return f"HTTP/1.1 {status} {phrase}\r\n".encode("latin-1")


_STATUS_LINES = {s.value: _status_line(s.value) for s in HTTPStatus}

# Memoised work (see Memo): apps send the same few things again and again.
_LINES: Memo[tuple[bytes, bytes], tuple[bytes, bytes]] = Memo("checked, encoded response header lines")
_LENGTHS: Memo[bytes, int] = Memo("response Content-Length values, parsed (int() of bytes is dear)")
_CHUNK_LINES: Memo[int, bytes] = Memo("chunk-size lines by size (a stream repeats a few sizes)")
# The names the head writer does more with than copy the line: the framing, and the server's own defaults,
# which an app's header of the same name replaces (a Date or Server set by the app is sent once).
SPECIAL_NAMES = frozenset((b"content-length", b"transfer-encoding", b"connection", b"server", b"date"))
_FRAMING_NAMES = frozenset((b"content-length", b"transfer-encoding", b"connection"))


def status_line(status: int) -> bytes:
    """``HTTP/1.1 <status> <phrase>\\r\\n``, precomputed for the known statuses."""
    line = _STATUS_LINES.get(status)
    if line is None:
        if not 100 <= status <= 999:
            raise ValueError(f"status {status!r} is not a three-digit HTTP status")
        line = _STATUS_LINES[status] = _status_line(status)
    return line


def _header_line(item: tuple[bytes, bytes]) -> tuple[bytes, bytes]:
    """Check one response header and return (lowercase name, ``b"name: value\\r\\n"``), memoised."""
    name, value = item
    check_header(name, value)
    cached = (name.lower(), b"%s: %s\r\n" % (name, value))
    try:
        return _LINES.remember(item, cached)
    except TypeError:  # an unhashable pair (a list): fine, just not memoised
        return cached


def trailer_section(trailers: list[tuple[bytes, bytes]]) -> bytes:
    """The last chunk of a chunked body, carrying ``trailers`` (RFC 9112 §7.1.2)."""
    lines = _LINES.data
    return b"0\r\n" + b"".join((lines.get(item) or _header_line(item))[1] for item in trailers) + b"\r\n"


class ResponseFraming:
    """The framing state of the response in progress, valid from its head to its end. The connection class
    holds the fields (one slotted layout, set in its own ``__init__``)."""

    __slots__ = NO_SLOTS  # the connection class holds the fields, in one slotted layout

    _special: frozenset[bytes]  # the names _frame_head looks at: SPECIAL_NAMES and the --header ones
    _chunked: bool
    _no_body: bool
    _remaining: int | None  # body bytes the declared Content-Length still owes, if it declared one
    _closes: bool  # the head says Connection: close

    def _frame_head(
        self,
        request: HTTP11Request,
        status: int,
        headers: list[tuple[bytes, bytes]],
        default_headers: bytes,
        keep_alive: bool,
    ) -> bytes:
        """Serialise a head; a final one sets the body's framing and :attr:`_closes`. ValueError for a header
        that would break the framing."""
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
            self._closes = not keep_alive
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

    def account_body(self, size: int) -> None:
        """Count body bytes sent around :meth:`response_body` (by sendfile). ValueError past Content-Length."""
        if self._remaining is not None:
            if size > self._remaining:
                raise ValueError("response body is longer than its Content-Length")
            self._remaining -= size

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


def _without(block: bytes, names: list[bytes]) -> bytes:
    """The default header lines whose names are not in ``names`` (lowercase)."""
    return b"".join(
        line + b"\r\n" for line in block.split(b"\r\n") if line and line.partition(b":")[0].lower() not in names
    )


def _response_length(value: bytes) -> int:
    if not value.strip().isdigit():
        raise ValueError(f"invalid response content-length {value!r}")
    return _LENGTHS.remember(value, int(value))
