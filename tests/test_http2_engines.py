"""The HTTP/2 engines without sockets: an ``h2`` client (and raw frames where a client would refuse to send
them) talks to each tier in memory: libnghttp2 through the compiled glue, libnghttp2 in ABI mode, and ``h2``.

What each engine must do the same: requests and bodies as events, trailers both ways, flow control that
follows the app's reads, and the defences (header lists bounded while they arrive, reset and control-frame
budgets, the lower-stream-id rule), each ending in the right GOAWAY.
"""

from __future__ import annotations

from collections.abc import Callable

import h2.config
import h2.connection
import h2.events
import pytest
from h2_support import ENGINES
from hpack import Encoder
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    Frame,
    HeadersFrame,
    PingFrame,
    SettingsFrame,
    WindowUpdateFrame,
)

from monoceros.protocols.events import Body, EndBody, Event, Rejected, Request, StreamReset, Trailers
from monoceros.protocols.http2 import ENHANCE_YOUR_CALM, PROTOCOL_ERROR, HTTP2Engine, HTTP2Error, HTTP2Settings
from monoceros.protocols.http2_engines import engine_factory

BURST = 20  # a small budget, so a flood is a few dozen frames
GET = [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"example.test"), (b":path", b"/x?y=1")]


def settings(**changes: int) -> HTTP2Settings:
    base = HTTP2Settings(
        max_concurrent_streams=100, initial_window_size=65535, connection_window_size=1 << 20,
        max_frame_size=16384, max_header_list_size=8192, max_header_count=100, connect_protocol=False,
        reset_burst=BURST, reset_rate=0.001,
    )  # fmt: skip
    return base._replace(**changes)


class Pair:
    """An engine and an ``h2`` client, with the bytes between them moved by :meth:`pump`."""

    def __init__(self, choice: str, **changes: int) -> None:
        self.now = 1000.0
        factory, self.description = engine_factory(choice)
        if choice == "nghttp2":
            assert "(glue)" in self.description
        self.engine: HTTP2Engine = factory(settings(**changes), self.clock)
        self.client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
        self.client.initiate_connection()
        self.events: list[Event] = []
        self.client_events: list[h2.events.Event] = []
        self.error: HTTP2Error | None = None
        self.encoder = Encoder()  # for raw HEADERS frames (its own table: used only where h2's is not)
        self.pump()

    def clock(self) -> float:
        return self.now

    def feed(self, data: bytes) -> None:
        """Bytes from the client to the engine; an engine error is kept (the connection is over)."""
        if self.error is not None:
            return
        try:
            self.engine.receive_data(data)
        except HTTP2Error as exc:
            self.error = exc
        self.events += self.engine.events
        self.engine.events.clear()

    def raw(self, *frames: Frame) -> None:
        self.feed(b"".join(frame.serialize() for frame in frames))

    def pump(self) -> None:
        for _ in range(20):
            sent = self.client.data_to_send()
            if sent:
                self.feed(sent)
            back = self.engine.data_to_send()
            self.events += self.engine.events  # streams the engine closed as it wrote
            self.engine.events.clear()
            if back:
                try:
                    self.client_events += self.client.receive_data(back)
                except h2.exceptions.ProtocolError:
                    break
            if not sent and not back:
                break

    def goaway(self) -> int | None:
        """The error code of the GOAWAY the client got, if any."""
        for event in self.client_events:
            if isinstance(event, h2.events.ConnectionTerminated):
                return int(event.error_code)
        return None

    def of(self, kind: type, stream_id: int | None = None) -> list[Event]:
        return [e for e in self.events if isinstance(e, kind) and (stream_id is None or e.stream_id == stream_id)]


@pytest.fixture(params=ENGINES)
def choice(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_get_then_response_with_body_and_trailers(choice: str) -> None:
    pair = Pair(choice)
    pair.client.send_headers(1, [*GET, (b"user-agent", b"test")], end_stream=True)
    pair.pump()
    (request,) = pair.of(Request)
    assert isinstance(request, Request)
    assert (request.method, request.target, request.path, request.query) == ("GET", b"/x?y=1", b"/x", b"y=1")
    assert request.http_version == "2"
    assert (b"host", b"example.test") in request.headers and (b"user-agent", b"test") in request.headers
    assert pair.of(EndBody, 1)
    engine = pair.engine
    engine.send_headers(1, 200, [(b":status", b"200"), (b"content-type", b"text/plain")], False)
    engine.send_data(1, b"hello ", False)
    engine.send_data(1, b"world", False)
    engine.send_trailers(1, [(b"x-checksum", b"abc")])
    pair.pump()
    kinds = {type(e): e for e in pair.client_events}
    assert dict(kinds[h2.events.ResponseReceived].headers)[b":status"] == b"200"  # type: ignore[attr-defined]
    body = b"".join(e.data for e in pair.client_events if isinstance(e, h2.events.DataReceived))  # type: ignore[attr-defined]
    assert body == b"hello world"
    assert kinds[h2.events.TrailersReceived].headers == [(b"x-checksum", b"abc")]  # type: ignore[attr-defined]
    assert h2.events.StreamEnded in kinds
    assert pair.error is None and pair.goaway() is None


def test_request_body_and_trailers_arrive_as_events(choice: str) -> None:
    pair = Pair(choice)
    pair.client.send_headers(1, [(b":method", b"POST"), *GET[1:3], (b":path", b"/up"), (b"te", b"trailers")])
    pair.client.send_data(1, b"abc")
    pair.client.send_data(1, b"def")
    pair.client.send_headers(1, [(b"x-sum", b"6")], end_stream=True)
    pair.pump()
    assert b"".join(e.data for e in pair.of(Body, 1)) == b"abcdef"  # type: ignore[attr-defined]
    (trailers,) = pair.of(Trailers, 1)
    assert trailers.headers == [(b"x-sum", b"6")]  # type: ignore[attr-defined]
    assert pair.of(EndBody, 1)


def test_the_window_reopens_only_as_the_app_consumes(choice: str) -> None:
    pair = Pair(choice)
    pair.client.send_headers(1, [(b":method", b"POST"), *GET[1:]])
    for offset in range(0, 65535, 16384):
        pair.client.send_data(1, b"x" * min(16384, 65535 - offset))
    pair.pump()
    assert sum(len(e.data) for e in pair.of(Body, 1)) == 65535  # type: ignore[attr-defined]
    assert pair.client.local_flow_control_window(1) == 0
    pair.pump()
    assert pair.client.local_flow_control_window(1) == 0  # nobody read it: no WINDOW_UPDATE
    pair.engine.consume(1, 65535)
    pair.pump()
    assert pair.client.local_flow_control_window(1) > 0


def test_a_header_list_over_the_limit_is_answered_431_and_the_connection_goes_on(choice: str) -> None:
    pair = Pair(choice)
    pair.client.send_headers(1, [*GET, (b"x-big", b"v" * 9000)], end_stream=True)
    pair.pump()
    (rejected,) = pair.of(Rejected, 1)
    assert rejected.status == 431  # type: ignore[attr-defined]
    assert not pair.of(Request, 1)
    pair.client.send_headers(3, GET, end_stream=True)
    pair.pump()
    assert pair.of(Request, 3) and pair.error is None


def test_too_many_fields_are_431(choice: str) -> None:
    pair = Pair(choice)
    pair.client.send_headers(1, [*GET, *[(b"x-%d" % i, b"1") for i in range(120)]], end_stream=True)
    pair.pump()
    assert pair.of(Rejected, 1) and not pair.of(Request, 1)


def test_an_hpack_bomb_is_cut_while_it_decodes(choice: str) -> None:
    """One 4,000-byte field in the dynamic table, referenced 2,000 times: about 8 MB decoded from about 6 KB."""
    pair = Pair(choice)
    fields = [*GET, *[(b"x-bomb", b"b" * 4000)] * 2000]
    pair.client.send_headers(1, fields, end_stream=True)
    pair.pump()
    assert not pair.of(Request, 1)
    kept = sum(len(n) + len(v) for e in pair.of(Trailers) for n, v in e.headers)  # type: ignore[attr-defined]
    assert kept == 0
    reset = pair.of(StreamReset, 1) or pair.of(Rejected, 1)
    assert reset or pair.error is not None  # the stream is reset, or (h2: hpack's own bound) the connection


def test_rapid_reset_ends_the_connection_with_enhance_your_calm(choice: str) -> None:
    pair = Pair(choice)
    for i in range(BURST + 10):
        sid = 1 + 2 * i
        pair.client.send_headers(sid, GET, end_stream=True)
        pair.client.reset_stream(sid)
        pair.pump()
        if pair.error is not None:
            break
    assert pair.error is not None
    assert pair.goaway() == ENHANCE_YOUR_CALM


def test_resets_the_server_is_made_to_send_count_too(choice: str) -> None:
    """MadeYouReset: a WINDOW_UPDATE that overflows an open stream's window makes the server reset the stream
    (RFC 9113 §6.9.1, a stream error)."""
    pair = Pair(choice)
    for i in range(BURST + 10):
        sid = 1 + 2 * i
        pair.client.send_headers(sid, [(b":method", b"POST"), *GET[1:]])
        pair.pump()
        pair.raw(WindowUpdateFrame(sid, window_increment=2**31 - 1))
        pair.pump()
        if pair.error is not None or pair.goaway() is not None:
            break
    assert pair.goaway() == ENHANCE_YOUR_CALM
    assert len(pair.of(StreamReset)) <= BURST + 1


FLOODS: dict[str, Callable[[int], Frame]] = {
    "ping": lambda i: PingFrame(0, opaque_data=i.to_bytes(8, "big")),
    "settings": lambda i: SettingsFrame(0),
    "empty-data": lambda i: DataFrame(1, b""),
    "window-update": lambda i: WindowUpdateFrame(0, window_increment=1),
}


@pytest.mark.parametrize("flood", sorted(FLOODS))
def test_control_frame_floods_end_with_enhance_your_calm(choice: str, flood: str) -> None:
    pair = Pair(choice)
    pair.client.send_headers(1, [(b":method", b"POST"), *GET[1:]])
    pair.pump()
    for i in range(BURST + 10):
        pair.raw(FLOODS[flood](i))
        pair.pump()
        if pair.error is not None:
            break
    assert pair.error is not None, flood
    assert pair.goaway() == ENHANCE_YOUR_CALM


def test_a_continuation_flood_ends_the_connection(choice: str) -> None:
    pair = Pair(choice)
    block = pair.encoder.encode(GET)
    frames: list[Frame] = [HeadersFrame(1, block[:5], flags=["END_STREAM"])]
    frames += [ContinuationFrame(1, b"") for _ in range(100)]
    pair.raw(*frames)
    assert pair.error is not None
    assert not pair.of(Request)


def test_headers_on_a_stream_id_the_client_skipped_end_the_connection(choice: str) -> None:
    pair = Pair(choice)
    pair.raw(HeadersFrame(5, pair.encoder.encode(GET), flags=["END_STREAM", "END_HEADERS"]))
    pair.pump()
    assert pair.of(Request, 5)
    pair.raw(HeadersFrame(3, pair.encoder.encode(GET), flags=["END_STREAM", "END_HEADERS"]))
    pair.pump()
    assert not pair.of(Request, 3)
    assert pair.goaway() == PROTOCOL_ERROR


def test_a_response_before_the_request_ends_is_followed_by_reset_no_error(choice: str) -> None:
    pair = Pair(choice)
    pair.client.send_headers(1, [(b":method", b"POST"), *GET[1:]])
    pair.client.send_data(1, b"part")
    pair.pump()
    engine = pair.engine
    engine.send_headers(1, 413, [(b":status", b"413")], True)
    engine.stop_after_response(1)
    pair.pump()
    kinds = [type(e) for e in pair.client_events]
    assert h2.events.ResponseReceived in kinds
    resets = [e for e in pair.client_events if isinstance(e, h2.events.StreamReset)]
    assert resets and resets[0].error_code == 0  # type: ignore[attr-defined]
    assert kinds.index(h2.events.ResponseReceived) < kinds.index(h2.events.StreamReset)
