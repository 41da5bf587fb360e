"""HTTP/1.1, server side, sans-IO: bytes in, events out; response parts in, bytes out; and the connection's
state, in one place.

Theory of operation
-------------------
A connection has two halves, each in one :class:`State` (as in h11): the request side, as far as the
parser has read, and the response side, the answer in progress. :meth:`HTTP11Connection.receive_data` feeds
bytes to httptools (llhttp, strict); its callbacks collect the head within the limits (``HeadParser``) and
append :class:`Request`, :class:`Body` and :class:`EndBody` events to :attr:`events`, which the caller
drains after every call. The parser reads ahead: pipelined requests come out as events in order, and the
caller answers them in order (RFC 9112 §9.3.2). :meth:`response_head`, :meth:`response_body` and
:meth:`response_end` frame the answer (``ResponseFraming``); after the end, ``response_state`` says whether
the connection carries another request (DONE) or ends (MUST_CLOSE).

These are every transition (:data:`TRANSITIONS` holds them as data, and the tests hold the code to it)::

    request side                                        response side
    IDLE, DONE      -- a message begins -> RECV_HEAD    IDLE, DONE -- a final head -> SENDING
    RECV_HEAD       -- its head ends    -> RECV_BODY    SENDING    -- its end      -> DONE or MUST_CLOSE
    RECV_BODY       -- it ends          -> DONE, or MUST_CLOSE if it ends the connection
    DONE, MUST_CLOSE -- it asked for a WebSocket -> SWITCHED
    IDLE, DONE, RECV_HEAD (nothing yet) -- EOF, or release -> MUST_CLOSE
    RECV_HEAD, RECV_BODY -- bytes that break the protocol, EOF or release inside a message -> ERROR
    IDLE, DONE (response side) -- an error response -> MUST_CLOSE

The rules that decide between DONE and MUST_CLOSE live here too: the request's own wish (its version and
Connection header), the app's ``Connection: close``, a body whose end only the close can mark (HTTP/1.0),
a body shorter than its Content-Length, :meth:`close_after_response` (the server is stopping, or keeps no
connection alive), and 100-continue: :meth:`continue_response` gives the interim answer while it is due,
and a final answer before it means the client still holds its body back, so that body is never read and
the head says ``Connection: close``.

Any violation by the peer raises :class:`ProtocolError` carrying the status to answer with (400, 413, 414,
417, 431, 501, 505); :meth:`error_response` writes that answer. No asyncio, socket or threading here.
"""

from __future__ import annotations

import enum
from http import HTTPStatus

import httptools

from .events import Body, EndBody, Event, ProtocolError
from .headers import HASH as _HASH
from .http11_request import (
    HEAD_SLACK,
    HOSTS,
    STREAM,
    HeadParser,
    HTTP11Request,
    Limits,
    classify,
    content_length,
    other_target,
    switches,
    transfer_coding,
    valid_host,
)
from .http11_response import CONTINUE, SPECIAL_NAMES, ResponseFraming, status_line, trailer_section

__all__ = ["STREAM", "TRANSITIONS", "HTTP11Connection", "HTTP11Request", "Limits", "State", "status_line"]


class State(enum.IntEnum):
    """One half's state. Ordered so that "still reading" is ``<= RECEIVING_BODY``."""

    IDLE = 0  # nothing yet on this connection
    DONE = 1  # a message is complete and the connection carries the next
    RECEIVING_HEAD = 2
    RECEIVING_BODY = 3
    SENDING = 4  # a final response head is written and its body is under way
    MUST_CLOSE = 5  # nothing more is read (request side) or sent (response side)
    SWITCHED = 6  # the connection now speaks the protocol its Upgrade asked for
    ERROR = 7  # the peer broke the protocol


IDLE, DONE, SENDING, MUST_CLOSE = State.IDLE, State.DONE, State.SENDING, State.MUST_CLOSE
RECEIVING_HEAD, RECEIVING_BODY, SWITCHED, ERROR = (
    State.RECEIVING_HEAD, State.RECEIVING_BODY, State.SWITCHED, State.ERROR,
)  # fmt: skip

TRANSITIONS: dict[str, frozenset[tuple[State, State]]] = {
    "request": frozenset((
        (IDLE, RECEIVING_HEAD), (DONE, RECEIVING_HEAD), (RECEIVING_HEAD, RECEIVING_BODY), (RECEIVING_BODY, DONE),
        (RECEIVING_BODY, MUST_CLOSE), (DONE, SWITCHED), (MUST_CLOSE, SWITCHED), (IDLE, MUST_CLOSE),
        (DONE, MUST_CLOSE), (RECEIVING_HEAD, MUST_CLOSE), (RECEIVING_HEAD, ERROR), (RECEIVING_BODY, ERROR),
    )),
    "response": frozenset((
        (IDLE, SENDING), (DONE, SENDING), (SENDING, DONE), (SENDING, MUST_CLOSE), (IDLE, MUST_CLOSE),
        (DONE, MUST_CLOSE),
    )),
}  # fmt: skip

_END = EndBody(STREAM)
_HOST_VERDICTS = HOSTS.data
# What an error response answers when no request head could be read: GET over HTTP/1.1, for no connection.
_NO_REQUEST = HTTP11Request(STREAM, "GET", b"", b"", b"", "1.1", [], None, False, False, None, False, None)
_PLAIN = (b"content-type", b"text/plain; charset=utf-8")


class HTTP11Connection(HeadParser, ResponseFraming):
    """The server side of one HTTP/1.1 connection, as a sans-IO state machine."""

    __slots__ = (
        "_awaiting_continue",
        "_body_bytes",
        "_chunked",
        "_closes",
        "_field_size",
        "_fields_left",
        "_framing",
        "_h2c",
        "_head_bytes",
        "_headers",
        "_headers_done",
        "_headers_max",
        "_headers_size",
        "_max_head",
        "_no_body",
        "_parser",
        "_persistent",
        "_remaining",
        "_request",
        "_special",
        "_url",
        "events",
        "last_request",
        "limits",
        "request_state",
        "response_state",
        "upgrade_request",
        "upgrade_tail",
    )

    _head_bytes: int  # bytes of the head so far, against _max_head
    _body_bytes: int  # bytes of the body so far, against the body limit

    def __init__(
        self, limits: Limits, default_names: frozenset[bytes] = frozenset(), persistent: bool = True, h2c: bool = False
    ) -> None:
        """``default_names``: lowercase names of the default headers beyond Server and Date (``--header``).
        ``persistent=False``: every response closes the connection (keep-alive is off). ``h2c``: agree to
        ``Upgrade: h2c``."""
        self.limits = limits
        self._h2c = h2c
        self.events: list[Event] = []
        self.request_state = IDLE
        self.response_state = IDLE
        self._persistent = persistent
        self._parser = httptools.HttpRequestParser(self)
        self._max_head = limits.request_line + limits.headers_size + HEAD_SLACK
        self._field_size = limits.field_size
        self._headers_max = limits.headers_size
        # The head's own fields (_url, _headers, _framing and their counts) are set by on_message_begin, which
        # comes before any use of them.
        self._request: HTTP11Request | None = None  # the request whose body is arriving
        self.last_request: HTTP11Request | None = None  # the latest request head parsed (None: none yet)
        self._awaiting_continue: HTTP11Request | None = None  # holds its body back until 100 Continue
        # A WebSocket upgrade request ends HTTP/1.1 on this connection: the request, and what followed it.
        self.upgrade_request: HTTP11Request | None = None
        self.upgrade_tail = b""
        self._special = SPECIAL_NAMES | default_names if default_names else SPECIAL_NAMES
        self._chunked = False
        self._no_body = False
        self._remaining: int | None = None
        self._closes = False

    # -- input -------------------------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Feed bytes from the peer; then drain :attr:`events`. Raises :class:`ProtocolError`."""
        state = self.request_state
        if state > RECEIVING_BODY:
            if state is SWITCHED:
                self.upgrade_tail += data  # the WebSocket's bytes, read before the connection was handed over
            return  # RFC 9112 §9.6: nothing after a request that closes the connection is read
        was_in_head = state is RECEIVING_HEAD
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            # llhttp stops after the head of an Upgrade or CONNECT request (one with "Connection: upgrade").
            offset = exc.args[0]
            request = self.last_request
            if request is not None and self.upgrade_request is None and switches(request, self._h2c):
                # HTTP/1.1 ends here whatever the answer; the bytes after the head are the next protocol's.
                self.upgrade_request = request
                self.upgrade_tail = data[offset:]
                self.request_state = SWITCHED
                return
            # Any other upgrade (h2c off, CONNECT) we do not agree to, so the request is an ordinary one
            # (RFC 9110 §7.8: a server may ignore Upgrade) and the bytes after it are the next request.
            if offset < len(data):
                self.receive_data(data[offset:])
            return
        except httptools.HttpParserCallbackError as exc:
            self.request_state = ERROR
            cause = exc.__context__
            if isinstance(cause, ProtocolError):
                raise cause from None
            raise ProtocolError(f"malformed request: {cause or exc}") from None
        except httptools.HttpParserError as exc:
            if self.request_state is MUST_CLOSE:
                return  # llhttp refuses bytes after "Connection: close"; they are simply not read
            self.request_state = ERROR
            if isinstance(exc, httptools.HttpParserInvalidMethodError):
                raise ProtocolError("invalid request method") from None
            if isinstance(exc, httptools.HttpParserInvalidURLError):
                raise ProtocolError("invalid request target") from None
            raise classify(exc) from None
        if self.request_state is RECEIVING_HEAD:
            self._head_bytes = self._head_bytes + len(data) if was_in_head else 0
            if self._head_bytes > self._max_head:
                self.request_state = ERROR
                if not self._headers:
                    raise ProtocolError("request line too long", 414)
                raise ProtocolError("request header fields too large", 431)

    def receive_eof(self) -> None:
        """The peer closed its sending side. Raises if that cuts a request short."""
        state = self.request_state
        if state is RECEIVING_BODY or (state is RECEIVING_HEAD and (self._url or self._headers)):
            self.request_state = ERROR
            part = "body" if state is RECEIVING_BODY else "head"
            raise ProtocolError(f"connection closed in the middle of a request {part}")
        if state <= RECEIVING_HEAD:
            self.request_state = MUST_CLOSE

    def release(self) -> None:
        """The connection is gone: read nothing more, and drop the parser. It holds this object's callbacks,
        a reference cycle that would otherwise leave about 16 objects per connection to the cyclic garbage
        collector (docs/performance.md, "Memory", counts what that cost)."""
        if self.request_state <= RECEIVING_HEAD:
            self.request_state = MUST_CLOSE
        elif self.request_state is RECEIVING_BODY:
            self.request_state = ERROR
        del self._parser

    @property
    def request_in_progress(self) -> bool:
        """True while a request's head or body has started but not finished arriving."""
        return RECEIVING_HEAD <= self.request_state <= RECEIVING_BODY

    # httptools' callbacks that move the request side (on_url and on_header are HeadParser's) ---------------

    def on_message_begin(self) -> None:
        self.request_state = RECEIVING_HEAD
        self._head_bytes = 0
        self._url = b""
        self._headers = []
        self._framing = []
        self._headers_size = 0
        self._fields_left = self.limits.fields
        self._body_bytes = 0
        self._headers_done = False

    def on_headers_complete(self) -> None:
        parser = self._parser
        self.request_state = RECEIVING_BODY
        self._headers_done = True
        version = parser.get_http_version()
        if version not in ("1.1", "1.0"):
            raise ProtocolError(f"HTTP/{version} is not supported", 505)
        method = parser.get_method().decode("ascii")
        hosts = 0
        authority = None
        expect_continue = False
        upgrade = None
        length = None
        chunked = False
        for name, value in self._framing:  # only the fields that shape the request, as on_header noted them
            if name == b"host":
                hosts += 1
                authority = value
            elif name == b"content-length":
                length = content_length(value, length)
            elif name == b"transfer-encoding":
                if version == "1.0":
                    # RFC 9112 §6.1: Transfer-Encoding in an HTTP/1.0 message means faulty framing (an HTTP/1.0
                    # hop reads that body another way); de-chunking it and keeping the connection would let a
                    # request be smuggled past such a hop. Refuse it.
                    raise ProtocolError("Transfer-Encoding in an HTTP/1.0 request")
                chunked = transfer_coding(value, chunked)
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
        if chunked and length is not None:
            raise ProtocolError("both Content-Length and Transfer-Encoding")
        limit = self.limits.body
        if limit and length is not None and length > limit:
            raise ProtocolError("request body too large", 413)
        if authority and not (_HOST_VERDICTS.get(authority) or valid_host(authority)):  # a dict hit, mostly
            raise ProtocolError("invalid Host header")
        url = self._url
        if url[:1] == b"/":
            path, _, query = url.partition(b"?")
            if _HASH in url or method == "CONNECT":  # RFC 9112 §3.2: a fragment, or CONNECT without host:port
                raise ProtocolError("a target has no '#' fragment" if _HASH in url else "CONNECT needs host:port")
        else:
            path, query, target_host = other_target(url, method, self._headers)
            authority = target_host or authority
        has_body = chunked or bool(length)
        request = HTTP11Request(
            STREAM, method, url, path, query, version, self._headers, authority, has_body, expect_continue, None,
            parser.should_keep_alive(), upgrade,
        )  # fmt: skip
        self._request = self.last_request = request
        if expect_continue and has_body:
            self._awaiting_continue = request
        self.events.append(request)

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)
        limit = self.limits.body
        if limit and self._body_bytes > limit:
            raise ProtocolError("request body too large", 413)
        self.events.append(Body(STREAM, body))

    def on_message_complete(self) -> None:
        self.request_state = DONE if self._parser.should_keep_alive() else MUST_CLOSE
        self._request = self._awaiting_continue = None
        self.events.append(_END)

    # -- output: the decisions; the framing is ResponseFraming's ------------------------------------------

    def response_head(
        self,
        request: HTTP11Request,
        status: int,
        headers: list[tuple[bytes, bytes]],
        default_headers: bytes = b"",
        *,
        close: bool = False,
    ) -> bytes:
        """Serialise a response head for ``request``; ``default_headers`` (Date, Server) are pre-encoded.

        ``close=True`` asks for the connection to close after this response.
        Raises ValueError for a header that would break the framing.
        """
        if self.response_state is SENDING:
            raise RuntimeError("a response is already in progress on this connection")
        keep_alive = request.keep_alive and self._persistent and not close and self._awaiting_continue is not request
        head = self._frame_head(request, status, headers, default_headers, keep_alive)
        if status >= 200:
            self.response_state = SENDING
        return head

    def response_end(self, trailers: list[tuple[bytes, bytes]] | None = None) -> bytes:
        """Finish the response body, with ``trailers`` where the body is chunked (RFC 9112 §7.1.2; a body with a
        Content-Length has nowhere to put them). A body shorter than its Content-Length forbids reuse."""
        if self._remaining:
            self._closes = True  # the peer waits for bytes that never come; only closing ends it
        self._remaining = None
        self.response_state = MUST_CLOSE if self._closes or not self._persistent else DONE
        if self._chunked:
            self._chunked = False
            return trailer_section(trailers) if trailers else b"0\r\n\r\n"
        return b""

    def continue_response(self, request: HTTP11Request) -> bytes:
        """The interim ``100 Continue`` if it is due: the client holds the body of ``request`` back until it
        comes, and no final answer has started (after one, RFC 9110 §10.1.1, the body is not wanted). Else
        nothing."""
        if self._awaiting_continue is request and self.response_state <= DONE:
            self._awaiting_continue = None
            return CONTINUE
        return b""

    def error_response(self, status: int, detail: str, default_headers: bytes = b"") -> bytes:
        """A final error answer, plain text, after which the connection ends (the request, if any, is left).
        Written by the same head writer as every response."""
        if self.response_state is SENDING:
            raise RuntimeError("a response is already in progress on this connection")
        phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else str(status)
        body = (detail or phrase).encode("latin-1", "replace") + b"\n"
        headers = [_PLAIN, (b"content-length", b"%d" % len(body))]
        head = self._frame_head(_NO_REQUEST, status, headers, default_headers, False)
        self._remaining = None
        self.response_state = MUST_CLOSE
        self._awaiting_continue = None
        return head + body

    def close_after_response(self) -> None:
        """The server stops taking requests: the response in progress, or else the next, is the last one, and
        says ``Connection: close``."""
        self._persistent = False
