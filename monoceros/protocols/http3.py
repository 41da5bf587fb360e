"""HTTP/3 over QUIC, server side, sans-IO, on aioquic (QUIC and HTTP/3; QPACK through pylsqpack).

One :class:`HTTP3Engine` is one QUIC connection. It is driven as the HTTP/2 engines are (protocols/http2.py's
``HTTP2Engine``), so that HTTP/2's output (server/http2_output.py) writes HTTP/3 responses unchanged: datagrams
in, :class:`~monoceros.protocols.events.Event` objects out (``Request``, ``Body``, ``EndBody``, ``StreamReset``),
and ``send_headers`` / ``send_data`` / ``send_trailers`` / ``reset_stream`` / ``consume`` / ``pending`` for the
answers. Error codes come in as HTTP/2's (what the shared output speaks) and leave as HTTP/3's (RFC 9114 §8.1).

Flow control follows the app, not the network. aioquic raises a stream's and the connection's receive window
as soon as half of it has arrived, whether anyone read it or not; a client could then upload into a worker's
memory as fast as it can send. :class:`PacedQuicConnection` grants credit only for what the app has taken
(``consume``), as the HTTP/2 engines do: ``--quic-max-stream-data`` and ``--quic-max-data`` are the bytes a
client may have in flight, unread, per stream and per connection. It does so by overriding two of aioquic's
private methods (pinned to aioquic 1.x in the ``http3`` extra).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aioquic.buffer import encode_uint_var
from aioquic.h3.connection import FrameType, H3Connection, MessageError, encode_frame
from aioquic.h3.connection import ProtocolError as H3ProtocolError
from aioquic.h3.events import DataReceived, HeadersReceived
from aioquic.h3.exceptions import H3Error
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.events import (
    ConnectionIdIssued,
    ConnectionIdRetired,
    ConnectionTerminated,
    HandshakeCompleted,
    QuicEvent,
    StreamDataReceived,
)
from aioquic.quic.events import (
    StreamReset as QuicStreamReset,
)

from .events import Body, EndBody, Event, ProtocolError, Rejected, StreamReset
from .http2 import request_from_fields
from .http11_request import Limits

H3_NO_ERROR = 0x100
H3_GENERAL_PROTOCOL_ERROR = 0x101
H3_INTERNAL_ERROR = 0x102
H3_REQUEST_REJECTED = 0x10B
H3_REQUEST_CANCELLED = 0x10C
H3_MESSAGE_ERROR = 0x10E
# HTTP/2's codes (what server/http2_output.py and the driver pass) as HTTP/3's.
_FROM_H2 = {0x0: H3_NO_ERROR, 0x1: H3_MESSAGE_ERROR, 0x2: H3_INTERNAL_ERROR, 0x7: H3_REQUEST_REJECTED,
            0x8: H3_REQUEST_CANCELLED}  # fmt: skip
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})  # what may be served from 0-RTT data (RFC 8470 §3)


class Tickets:
    """A worker's TLS session tickets, for resumption and 0-RTT: each used once (a replayed ticket finds
    nothing), at most ``limit`` kept. Per worker: a client's next connection usually comes from a new port,
    which the kernel may hash to another worker, where it gets a full handshake instead."""

    def __init__(self, limit: int = 10000) -> None:
        self.limit = limit
        self._tickets: dict[bytes, Any] = {}

    def keep(self, ticket: Any) -> None:
        tickets = self._tickets
        if len(tickets) >= self.limit:
            del tickets[next(iter(tickets))]  # the oldest
        tickets[ticket.ticket] = ticket

    def fetch(self, label: bytes) -> Any:
        return self._tickets.pop(label, None)


class PacedQuicConnection(QuicConnection):
    """aioquic's QUIC connection, with receive windows that reopen only as the app reads (see the module)."""

    def __init__(self, *, configuration: QuicConfiguration, max_streams: int, **kwargs: Any) -> None:
        super().__init__(configuration=configuration, **kwargs)
        self._stream_window = configuration.max_stream_data
        self._connection_window = configuration.max_data
        self._taken: dict[int, int] = {}  # request streams: body bytes the app has taken
        self._taken_total = 0
        limit = self._local_max_streams_bidi
        limit.value = limit.sent = max_streams

    def watch(self, stream_id: int) -> None:
        """A request stream: its window follows what the app takes."""
        self._taken.setdefault(stream_id, 0)

    def take(self, stream_id: int, size: int) -> None:
        if stream_id in self._taken:
            self._taken[stream_id] += size
        self._taken_total += size

    def forget(self, stream_id: int) -> None:
        self._taken.pop(stream_id, None)

    def _write_connection_limits(self, builder: Any, space: Any) -> None:
        limit = self._local_max_data
        limit.value = max(limit.value, self._taken_total + self._connection_window)
        used, limit.used = limit.used, 0  # aioquic doubles the window when half is used: not here
        try:
            super()._write_connection_limits(builder, space)
        finally:
            limit.used = used

    def _write_stream_limits(self, builder: Any, space: Any, stream: Any) -> None:
        taken = self._taken.get(stream.stream_id)
        if taken is None:  # HTTP/3's own streams (control, QPACK): aioquic's policy
            super()._write_stream_limits(builder, space, stream)
            return
        stream.max_stream_data_local = max(stream.max_stream_data_local, taken + self._stream_window)
        receiver = stream.receiver
        highest, receiver.highest_offset = receiver.highest_offset, 0
        try:
            super()._write_stream_limits(builder, space, stream)
        finally:
            receiver.highest_offset = highest


class StreamErrorsH3(H3Connection):
    """aioquic's HTTP/3 layer, with a malformed request as a stream error (RFC 9114 §4.1.2: H3_MESSAGE_ERROR on
    that request's stream), where aioquic closes the whole connection for it and every other request with it."""

    def __init__(self, quic: QuicConnection) -> None:
        super().__init__(quic)
        self._failed: set[int] = set()

    def handle_event(self, event: QuicEvent) -> list[Any]:
        if type(event) is StreamDataReceived and event.stream_id % 4 == 0 and not self._is_done:
            sid = event.stream_id  # a client's request stream
            if sid in self._failed:
                return []
            try:
                return self._receive_stream_data(event)
            except MessageError as exc:
                self._failed.add(sid)
                for stop in (self._quic.reset_stream, self._quic.stop_stream):
                    try:
                        stop(sid, exc.error_code)
                    except ValueError:
                        pass  # that direction is already closed
                return []
            except H3ProtocolError as exc:  # a frame error: the connection's, as aioquic has it (RFC 9114 §7.1)
                self._is_done = True
                self._quic.close(error_code=exc.error_code, reason_phrase=exc.reason_phrase)
                return []
        return super().handle_event(event)


class HTTP3Engine:
    """One QUIC connection speaking HTTP/3 (server side): the HTTP/2 engine's interface over datagrams."""

    name = "aioquic"

    def __init__(
        self,
        configuration: QuicConfiguration,
        original_cid: bytes,
        max_streams: int,
        early_data: Tickets | None,
        clock: Callable[[], float],
        limits: Limits | None = None,
    ) -> None:
        """``early_data``: where this worker keeps its session tickets, when 0-RTT is allowed (safe methods)."""
        tickets: dict[str, Any] = {}
        if early_data is not None:  # resumption, and with it 0-RTT (aioquic accepts early data on every resumption)
            tickets = {"session_ticket_fetcher": early_data.fetch, "session_ticket_handler": early_data.keep}
        self.quic = PacedQuicConnection(
            configuration=configuration, original_destination_connection_id=original_cid, max_streams=max_streams,
            **tickets,
        )  # fmt: skip
        self.h3 = StreamErrorsH3(self.quic)
        self.clock = clock
        self.limits = limits  # the header list's (the HTTP/1.1 and HTTP/2 settings): past them, 431
        self.events: list[Event] = []
        self.issued: list[bytes] = [self.quic.host_cid]  # connection IDs to route to this connection
        self.retired: list[bytes] = []
        self.terminated = False
        self.handshake_done = False
        self.early_data = early_data is not None  # serve safe methods from 0-RTT data
        self._open: set[int] = set()  # request streams whose body has not ended
        self._heads: set[int] = set()  # streams whose request head came (a second HEADERS is trailers)
        self._last_stream = -1  # the highest request stream taken, for GOAWAY
        self._goaway_sent = False

    # -- input -----------------------------------------------------------------------------------------------

    def receive_datagram(self, data: bytes, addr: Any) -> None:
        self.quic.receive_datagram(data, addr, now=self.clock())
        self._pump()

    def handle_timer(self) -> None:
        self.quic.handle_timer(now=self.clock())
        self._pump()

    def timer(self) -> float | None:
        return self.quic.get_timer()

    def _pump(self) -> None:
        quic = self.quic
        while (event := quic.next_event()) is not None:
            kind = type(event)
            if kind is ConnectionIdIssued:
                self.issued.append(event.connection_id)  # type: ignore[attr-defined]
            elif kind is ConnectionIdRetired:
                self.retired.append(event.connection_id)  # type: ignore[attr-defined]
            elif kind is ConnectionTerminated:
                self.terminated = True
            elif kind is HandshakeCompleted:
                self.handshake_done = True
            elif kind is QuicStreamReset:
                sid = event.stream_id  # type: ignore[attr-defined]
                if sid in self._heads:
                    self.events.append(StreamReset(sid, event.error_code))  # type: ignore[attr-defined]
                    self._done_reading(sid)
            try:
                h3_events = self.h3.handle_event(event)
            except H3Error:  # the peer broke HTTP/3 on a connection-wide stream
                self.close(H3_GENERAL_PROTOCOL_ERROR, "malformed HTTP/3")
                continue
            for h3_event in h3_events:
                if type(h3_event) is HeadersReceived:
                    self._headers(h3_event)
                elif type(h3_event) is DataReceived:
                    self._data(h3_event)

    def _headers(self, event: HeadersReceived) -> None:
        sid = event.stream_id
        if sid in self._heads:  # trailers: the body ends (their fields are not passed on, as with HTTP/2)
            if event.stream_ended and sid in self._open:
                self.events.append(EndBody(sid))
                self._done_reading(sid)
            return
        self._heads.add(sid)
        fields = list(event.headers)
        limits = self.limits
        if limits is not None and (
            len(fields) > limits.fields
            or sum(len(name) + len(value) + 32 for name, value in fields) > limits.headers_size
            or any(len(value) > limits.field_size for _name, value in fields)
        ):  # counted as SETTINGS_MAX_FIELD_SECTION_SIZE counts (RFC 9114 §4.2.2): 32 bytes more per field
            why = "the request's header fields are too large or too many"
            self.events.append(Rejected(sid, 431, why, event.stream_ended))
            return
        try:
            request = request_from_fields(sid, fields, event.stream_ended, "3")
        except ProtocolError:  # a malformed request: H3_MESSAGE_ERROR on its stream (RFC 9114 §4.1.2)
            self.quic.reset_stream(sid, H3_MESSAGE_ERROR)
            if not event.stream_ended:
                self.quic.stop_stream(sid, H3_MESSAGE_ERROR)
            self._heads.discard(sid)
            return
        if request.protocol is not None:  # extended CONNECT (RFC 9220) is not served over HTTP/3 here
            why = "extended CONNECT is not served over HTTP/3 here"
            self.events.append(Rejected(sid, 501, why, event.stream_ended))
            return
        if not self.handshake_done and (not self.early_data or request.method not in SAFE_METHODS):
            why = "a request in 0-RTT data must be a safe one: retry"  # 425 Too Early (RFC 8470 §5.2)
            self.events.append(Rejected(sid, 425, why, event.stream_ended))
            return
        if self._goaway_sent and sid > self._last_stream:
            self.quic.reset_stream(sid, H3_REQUEST_REJECTED)
            return
        self._last_stream = max(self._last_stream, sid)
        self.quic.watch(sid)
        if not event.stream_ended:
            self._open.add(sid)
        self.events.append(request)
        if event.stream_ended:
            self.events.append(EndBody(sid))

    def _data(self, event: DataReceived) -> None:
        sid = event.stream_id
        if sid not in self._open:
            return
        if event.data:
            self.events.append(Body(sid, event.data))
        if event.stream_ended:
            self.events.append(EndBody(sid))
            self._done_reading(sid)

    def _done_reading(self, sid: int) -> None:
        self._open.discard(sid)

    # -- output --------------------------------------------------------------------------------------------

    @property
    def accepted(self) -> bool:
        """True once a datagram of this connection has been decrypted (a network path exists): before,
        aioquic has nowhere to send and fails if asked to (found by fuzz/http3_targets.py)."""
        return bool(self.quic._network_paths)

    def datagrams(self) -> list[tuple[bytes, Any]]:
        if not self.quic._network_paths:
            return []
        return self.quic.datagrams_to_send(now=self.clock())

    def send_headers(self, stream_id: int, status: int, headers: list[tuple[bytes, bytes]], end_stream: bool) -> None:
        self.h3.send_headers(stream_id, headers, end_stream=end_stream)

    def send_response(self, stream_id: int, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        self.h3.send_headers(stream_id, headers, end_stream=not body)
        if body:
            self.h3.send_data(stream_id, body, end_stream=True)

    def send_data(self, stream_id: int, data: bytes, end_stream: bool) -> None:
        self.h3.send_data(stream_id, data, end_stream=end_stream)

    def send_trailers(self, stream_id: int, headers: list[tuple[bytes, bytes]]) -> None:
        self.h3.send_headers(stream_id, headers, end_stream=True)

    def reset_stream(self, stream_id: int, code: int) -> None:
        h3_code = _FROM_H2.get(code, code)
        try:
            self.quic.reset_stream(stream_id, h3_code)
            if stream_id in self._open:
                self.quic.stop_stream(stream_id, h3_code)
        except ValueError:
            pass  # already closed for sending
        self._done_reading(stream_id)
        self.events.append(StreamReset(stream_id, code))

    def stop_after_response(self, stream_id: int) -> None:
        """The answer is complete before the body: ask the client to stop sending it (RFC 9114 §4.1)."""
        if stream_id in self._open:
            try:
                self.quic.stop_stream(stream_id, H3_NO_ERROR)
            except ValueError:
                pass
            self._done_reading(stream_id)

    def consume(self, stream_id: int, size: int) -> None:
        self.quic.take(stream_id, size)

    def pending(self, stream_id: int) -> int:
        """Body bytes queued on the stream that the peer has not acknowledged yet (what it holds in memory)."""
        stream = self.quic._streams.get(stream_id)
        if stream is None:
            return 0
        sender = stream.sender
        return int(sender._buffer_stop - sender._buffer_start)

    def forget(self, stream_id: int) -> None:
        """The stream is over for the server."""
        self.quic.forget(stream_id)
        self._heads.discard(stream_id)
        self._open.discard(stream_id)

    def shutdown(self) -> None:
        """Graceful stop: GOAWAY naming the first request stream not taken (RFC 9114 §5.2)."""
        if self._goaway_sent or self.terminated:
            return
        self._goaway_sent = True
        control = self.h3._local_control_stream_id
        if control is not None:
            next_id = self._last_stream + 4 if self._last_stream >= 0 else 0
            self.quic.send_stream_data(control, encode_frame(FrameType.GOAWAY, encode_uint_var(next_id)))

    def close(self, code: int = H3_NO_ERROR, reason: str = "") -> None:
        if not self.terminated:
            self.quic.close(error_code=code, reason_phrase=reason)
