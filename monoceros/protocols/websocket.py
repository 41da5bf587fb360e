"""WebSocket (RFC 6455), server side, sans-IO: the handshake's completion, frames to whole messages, and how
a WebSocket ends. Bytes in, messages out; messages in, bytes out.

Theory of operation
-------------------
websockets' sans-IO ``ServerProtocol`` reads and writes the frames (with its C speedups and
permessage-deflate); this class adds what a server around it needs, whatever carries the connection
(HTTP/1.1's Upgrade today; RFC 8441's extended CONNECT over an HTTP/2 stream can reuse all but
:meth:`WebSocketProtocol.handshake`):

- :meth:`~WebSocketProtocol.handshake` checks the request the HTTP parser already read (it is handed over,
  never re-serialised) and either keeps the 101 for the app to complete, or returns the refusal (400,
  426...). :meth:`~WebSocketProtocol.accept` completes it with the app's subprotocol and headers; only then
  are frames read.
- :meth:`~WebSocketProtocol.receive_data` assembles messages into :attr:`~WebSocketProtocol.messages`:
  text is decoded as the fragments arrive, so bad UTF-8 fails the connection early with 1007 (RFC 6455
  §8.1); a message past ``max_size`` fails it with 1009.
- :attr:`~WebSocketProtocol.closed` says how it ended: the peer's close frame, or the code we sent when we
  failed the connection; :data:`ABNORMAL` (1006) is for a connection that dropped without either.

This module imports no asyncio, socket or threading.
"""

from __future__ import annotations

import base64
import codecs
import logging
import os
from collections import deque
from dataclasses import replace
from typing import Any, NamedTuple, cast

from websockets.datastructures import Headers
from websockets.extensions.base import ServerExtensionFactory
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
from websockets.frames import Frame, Opcode
from websockets.headers import parse_subprotocol
from websockets.http11 import Request as HandshakeRequest
from websockets.http11 import Response
from websockets.protocol import OPEN
from websockets.server import ServerProtocol
from websockets.typing import Subprotocol

from .events import Request
from .headers import check_header

GOING_AWAY, SERVICE_RESTART = 1001, 1012
_TEXT, _BINARY, _CONT, _PONG = Opcode.TEXT, Opcode.BINARY, Opcode.CONT, Opcode.PONG
_utf8_decoder = codecs.getincrementaldecoder("utf-8")


# What an RFC 6455 handshake over HTTP/1.1 has and one over HTTP/2 has not (RFC 8441 §5).
_HTTP1_HANDSHAKE = frozenset((b"upgrade", b"connection", b"sec-websocket-key"))
_HTTP1_HANDSHAKE_ANSWER = frozenset((b"upgrade", b"connection", b"sec-websocket-accept", b"date", b"server"))


def _stand_in_key() -> bytes:
    """A Sec-WebSocket-Key for the RFC 6455 checks to pass over HTTP/2, where the handshake has none."""
    return base64.b64encode(os.urandom(16))


class Closed(NamedTuple):
    """The WebSocket is over: the close code and reason the peer sent (1005 without a code, 1006 when the
    connection dropped without a close frame), or those we sent when we failed the connection."""

    code: int
    reason: str


ABNORMAL = Closed(1006, "")


class Refusal(NamedTuple):
    """A handshake refused before the app saw it: the response's status, its bytes, and its body's size."""

    status: int
    data: bytes
    body_size: int


def deflate_factory() -> ServerExtensionFactory:
    """permessage-deflate with bounded memory: 4 KiB windows and memLevel 5 make a compressor about 1/10 of
    zlib's default size, which matters with thousands of idle connections (websockets' own defaults)."""
    return ServerPerMessageDeflateFactory(
        server_max_window_bits=12,
        client_max_window_bits=12,
        compress_settings={"memLevel": 5},
    )


class _ServerProtocol(ServerProtocol):
    def recv_frame(self, frame: Frame) -> None:
        if frame.opcode is Opcode.CLOSE and self.current_size is not None:
            # RFC 6455 §5.4 lets control frames come between the fragments of a message, and a close there
            # ends the connection and the unfinished message with it: a normal close (Autobahn 7.1.5), where
            # websockets would fail the connection with 1002.
            self.current_size = None
        super().recv_frame(frame)


class WebSocketProtocol:
    """One WebSocket's protocol state; the connection that carries it does the IO and the timing."""

    __slots__ = (
        "_date_header",
        "_decoder",
        "_failed",
        "_fragmented_text",
        "_parts",
        "_ping_payload",
        "_response",
        "_server_header",
        "closed",
        "messages",
        "open",
        "subprotocols",
        "ws",
    )

    def __init__(
        self,
        max_size: int | None,
        per_message_deflate: bool,
        logger: logging.Logger,
        *,
        date_header: bool = True,
        server_header: bool = True,
    ) -> None:
        """``date_header`` and ``server_header``: whether the handshake's responses carry them (the settings)."""
        extensions = [deflate_factory()] if per_message_deflate else None
        self.ws = _ServerProtocol(extensions=extensions, max_size=max_size, logger=logger)
        self.messages: deque[str | bytes] = deque()  # whole messages, for the connection to hand to the app
        self.subprotocols: list[str] = []  # what the client offered, in its order
        self._date_header = date_header
        self._server_header = server_header
        self._response: Response | None = None
        self._parts: list[Any] = []  # a fragmented message so far: str pieces, or the frames' bytes-likes
        self._decoder: codecs.IncrementalDecoder | None = None
        self._fragmented_text = False
        self._ping_payload = b""
        self._failed: Closed | None = None
        # Plain attributes, not properties: the connection reads them for every message. Updated wherever the
        # state can change (the handshake, a frame in, a close or failure out, EOF).
        self.open = False  # messages may be sent: accepted, and no close sent or received
        self.closed: Closed | None = None  # how it ended (see _update); None while it has not

    # -- the opening handshake ---------------------------------------------------------------------------

    def handshake(self, request: Request) -> Refusal | None:
        """Check an HTTP/1.1 Upgrade handshake (RFC 6455 §4.2.1) and negotiate the extensions. None when it
        is good, and the app decides next (:meth:`accept`); else the refusal to send before closing."""
        headers = Headers([(name.decode("latin-1"), value.decode("latin-1")) for name, value in request.headers])
        handshake = HandshakeRequest(
            request.target.decode("latin-1"), headers, method=request.method, protocol=f"HTTP/{request.http_version}"
        )
        response = self.ws.accept(handshake)
        if response.status_code != 101:
            return Refusal(response.status_code, self._serialize(response), len(response.body))
        self._response = response
        # accept() has already parsed these (a malformed header was refused above)
        self.subprotocols = [p for value in headers.get_all("Sec-WebSocket-Protocol") for p in parse_subprotocol(value)]
        return None

    def handshake_over_http2(self, request: Request) -> Refusal | None:
        """Check an extended CONNECT (RFC 8441 §4: ``:protocol websocket`` on an HTTP/2 stream) and negotiate
        the extensions. There is no key to answer and no Upgrade: the rest is RFC 6455's handshake, so it is
        checked by the same code, given the fields HTTP/1.1 would have carried. A refusal's ``data`` is its
        body alone (the HTTP/2 stream frames it)."""
        fields = [(n, v) for n, v in request.headers if n not in _HTTP1_HANDSHAKE]
        fields += [(b"upgrade", b"websocket"), (b"connection", b"Upgrade"), (b"sec-websocket-key", _stand_in_key())]
        refusal = self.handshake(replace(request, headers=fields, method="GET", http_version="1.1"))
        if refusal is not None:
            body = refusal.data.partition(b"\r\n\r\n")[2]
            return Refusal(refusal.status, body, len(body))
        return None

    def accept_over_http2(
        self, subprotocol: str | None, headers: list[tuple[bytes, bytes]]
    ) -> list[tuple[bytes, bytes]]:
        """Complete an RFC 8441 handshake: the fields of the 200 response (the negotiated extension, the
        subprotocol, the app's headers), without HTTP/1.1's Upgrade, Connection and accept key."""
        response = self._complete(subprotocol, headers)
        return [
            (name.lower().encode("latin-1"), value.encode("latin-1"))
            for name, value in response.headers.raw_items()
            if name.lower().encode("latin-1") not in _HTTP1_HANDSHAKE_ANSWER
        ]

    def accept(self, subprotocol: str | None, headers: list[tuple[bytes, bytes]]) -> bytes:
        """Complete the handshake: the 101's bytes, with the app's subprotocol and headers. Frames are read
        from now on. ValueError for a subprotocol the client did not offer, or a header that would break the
        response."""
        return self._serialize(self._complete(subprotocol, headers))

    def _complete(self, subprotocol: str | None, headers: list[tuple[bytes, bytes]]) -> Response:
        response = self._response
        if response is None:
            raise RuntimeError("no handshake to accept")
        if subprotocol is not None:
            if subprotocol not in self.subprotocols:
                raise ValueError(f"subprotocol {subprotocol!r} was not offered by the client {self.subprotocols}")
            response.headers["Sec-WebSocket-Protocol"] = subprotocol
            self.ws.subprotocol = Subprotocol(subprotocol)
        for name, value in headers:
            check_header(name, value)
            response.headers[name.decode("latin-1")] = value.decode("latin-1")
        self._response = None
        ws = self.ws
        ws.state = OPEN
        # The handshake request did not come through the protocol's own parser, which is still waiting for
        # one: start a fresh parser, which in the OPEN state reads frames.
        ws.parser = ws.parse()
        next(ws.parser)
        self.open = True
        return response

    def _serialize(self, response: Response) -> bytes:
        headers = response.headers
        if not self._date_header:
            del headers["Date"]
        if self._server_header and "Server" not in headers:
            headers["Server"] = "monoceros"
        return response.serialize()

    # -- frames in -----------------------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> bool:
        """Feed bytes; whole messages go to :attr:`messages`. True when the pong to our last ping came."""
        ws = self.ws
        ws.receive_data(data)
        ponged = False
        for frame in cast("list[Frame]", ws.events_received()):  # in the OPEN state, frames only
            opcode = frame.opcode
            if opcode is _TEXT or opcode is _BINARY or opcode is _CONT:
                self._on_data(frame)
            elif opcode is _PONG and self._ping_payload and frame.data == self._ping_payload:
                self._ping_payload = b""
                ponged = True
        if ws.state is not OPEN:
            self._update()
        return ponged

    def receive_eof(self) -> None:
        self.ws.receive_eof()
        self._update()

    def _on_data(self, frame: Frame) -> None:
        if self.ws.state is not OPEN:
            return  # the connection failed earlier in this batch
        opcode = frame.opcode
        if frame.fin and opcode is not _CONT:  # a whole message in one frame: the common case
            if opcode is _TEXT:
                try:
                    self.messages.append(bytes(frame.data).decode())
                except UnicodeDecodeError as exc:
                    self.fail(1007, f"invalid UTF-8 at position {exc.start}")
            else:
                self.messages.append(bytes(frame.data))
            return
        try:
            if opcode is not _CONT:
                self._fragmented_text = opcode is _TEXT
                self._decoder = _utf8_decoder() if self._fragmented_text else None
                self._parts = []
            decoder = self._decoder
            # Decoding as the fragments arrive fails a bad message early (RFC 6455 §8.1, Autobahn 6.4).
            self._parts.append(decoder.decode(frame.data, frame.fin) if decoder is not None else frame.data)
        except UnicodeDecodeError as exc:
            self.fail(1007, f"invalid UTF-8: {exc.reason}")
            return
        if frame.fin:
            parts, self._parts = self._parts, []
            text = self._fragmented_text
            self.messages.append("".join(parts) if text else b"".join(parts))

    # -- frames out --------------------------------------------------------------------------------------

    @property
    def message_in_progress(self) -> bool:
        """A fragmented message has begun and not ended (its fragments are held)."""
        return bool(self._parts)

    @property
    def pending_writes(self) -> int:
        """Frames produced and not yet taken by :meth:`data_to_send`."""
        return len(self.ws.writes)

    def send(self, data: str | bytes) -> None:
        if type(data) is str:
            self.ws.send_text(data.encode())
        else:
            self.ws.send_binary(data)  # type: ignore[arg-type]

    def send_close(self, code: int, reason: str) -> None:
        self.ws.send_close(code, reason)
        self._update()

    def send_ping(self) -> None:
        """A keepalive ping; :meth:`receive_data` says when its pong came."""
        self._ping_payload = os.urandom(4)
        self.ws.send_ping(self._ping_payload)

    def fail(self, code: int, reason: str) -> None:
        """Fail the WebSocket connection (RFC 6455 §7.1.7): a close frame, then the end of the connection."""
        if self._failed is None:
            self._failed = Closed(code, reason)
        self.ws.fail(code, reason)
        self._update()

    def data_to_send(self) -> tuple[list[bytes], bool]:
        """The bytes to write, and whether the connection should end once they are written (after a close)."""
        eof = False
        chunks = []
        for chunk in self.ws.data_to_send():
            if chunk:
                chunks.append(chunk)
            else:
                eof = True  # websockets' "send EOF"
        return chunks, eof

    # -- the end -----------------------------------------------------------------------------------------

    def _update(self) -> None:
        """Set :attr:`open` and :attr:`closed`. How the WebSocket ended: the peer's close frame, or the code we
        sent when we failed the connection (protocol error, 1007, 1009); None while neither has happened."""
        ws = self.ws
        self.open = ws.state is OPEN
        if self.closed is not None:
            return
        if self._failed is not None:
            self.closed = self._failed
        elif ws.close_rcvd is not None:
            self.closed = Closed(ws.close_rcvd.code, ws.close_rcvd.reason)
        elif ws.close_sent is not None and ws.parser_exc is not None:
            self.closed = Closed(ws.close_sent.code, ws.close_sent.reason)
