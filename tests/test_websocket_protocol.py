"""The WebSocket's sans-IO half, without sockets: the handshake's completion, messages from frames whatever
their cuts, UTF-8 and size failures, and how the end is reported."""

from __future__ import annotations

import base64
import hashlib
import logging
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_http11_protocol import split_at
from ws_support import BINARY, CLOSE, CONTINUATION, PING, PONG, TEXT, encode_frame, parse_close

from monoceros.protocols.http11 import HTTP11Connection, HTTP11Request, Limits
from monoceros.protocols.websocket import Closed, WebSocketProtocol

KEY = "dGhlIHNhbXBsZSBub25jZQ=="
LIMITS = Limits(8190, 8190, 100, 65536, 0)


def handshake_request(extra: bytes = b"", version: bytes = b"13") -> HTTP11Request:
    """The request as the HTTP/1.1 parser hands it over."""
    conn = HTTP11Connection(LIMITS)
    conn.receive_data(
        b"GET /chat HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: " + KEY.encode() + b"\r\nSec-WebSocket-Version: " + version + b"\r\n" + extra + b"\r\n"
    )
    assert conn.upgrade_request is not None
    return conn.upgrade_request


def opened(max_size: int | None = 1 << 20, deflate: bool = False, extra: bytes = b"") -> WebSocketProtocol:
    ws = WebSocketProtocol(max_size, deflate, logging.getLogger("test"), date_header=False)
    assert ws.handshake(handshake_request(extra)) is None
    ws.accept(None, [])
    return ws


def frames_out(data: list[bytes]) -> list[tuple[int, bytes]]:
    """The server's frames (unmasked) as (opcode, payload)."""
    raw = b"".join(data)
    out = []
    while raw:
        opcode, length = raw[0] & 0x0F, raw[1] & 0x7F
        start = 2
        if length == 126:
            (length,) = struct.unpack(">H", raw[2:4])
            start = 4
        out.append((opcode, raw[start : start + length]))
        raw = raw[start + length :]
    return out


def test_the_handshake_is_completed_with_the_apps_subprotocol_and_headers() -> None:
    ws = WebSocketProtocol(None, False, logging.getLogger("test"), date_header=False)
    assert ws.handshake(handshake_request(b"Sec-WebSocket-Protocol: chat, superchat\r\n")) is None
    assert ws.subprotocols == ["chat", "superchat"] and not ws.open
    with pytest.raises(ValueError):
        ws.accept("other", [])
    with pytest.raises(ValueError):
        ws.accept("chat", [(b"x-bad", b"a\r\nb")])  # would split the response
    response = ws.accept("superchat", [(b"x-extra", b"1")])
    head = response.decode()
    accept = base64.b64encode(hashlib.sha1((KEY + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest())
    assert head.startswith("HTTP/1.1 101 Switching Protocols\r\n")
    assert f"Sec-WebSocket-Accept: {accept.decode()}\r\n" in head
    assert "Sec-WebSocket-Protocol: superchat\r\n" in head and "x-extra: 1\r\n" in head
    assert "Server: monoceros\r\n" in head and "Date:" not in head
    assert ws.open


def test_a_bad_handshake_is_refused_before_the_app() -> None:
    ws = WebSocketProtocol(None, False, logging.getLogger("test"))
    refusal = ws.handshake(handshake_request(version=b"8"))
    assert refusal is not None and refusal.status == 400
    assert refusal.data.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert refusal.data.endswith(b"invalid Sec-WebSocket-Version header: 8.\n")
    assert refusal.body_size == len(refusal.data.partition(b"\r\n\r\n")[2])
    assert not ws.open


MESSAGES = [
    encode_frame(TEXT, "héllo".encode()),
    encode_frame(BINARY, b"\x00\x01\x02"),
    encode_frame(TEXT, b"fr", fin=False)
    + encode_frame(PING, b"p")  # a control frame between fragments
    + encode_frame(CONTINUATION, "ag€".encode()[:3], fin=False)
    + encode_frame(CONTINUATION, "ag€".encode()[3:]),  # a character cut between frames
    encode_frame(BINARY, b"ab", fin=False) + encode_frame(CONTINUATION, b"cd"),
]
EXPECTED: list[str | bytes] = ["héllo", b"\x00\x01\x02", "frag€", b"abcd"]


@settings(max_examples=150, deadline=None)
@given(cuts=st.lists(st.integers(0, 200), max_size=8))
def test_messages_are_whole_whatever_the_cuts(cuts: list[int]) -> None:
    ws = opened()
    for piece in split_at(b"".join(MESSAGES), cuts):
        ws.receive_data(piece)
    assert list(ws.messages) == EXPECTED
    chunks, eof = ws.data_to_send()
    assert frames_out(chunks) == [(PONG, b"p")] and not eof  # the ping was answered
    assert ws.closed is None and ws.open


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (encode_frame(TEXT, b"\xff"), 1007),  # a whole text message that is not UTF-8
        (encode_frame(TEXT, b"ok\xc3", fin=False) + encode_frame(CONTINUATION, b"(", fin=False), 1007),
        (encode_frame(BINARY, b"x" * 2000), 1009),  # past max_size
        (encode_frame(BINARY, b"x", mask=False), 1002),  # RFC 6455 §5.1: a client masks every frame
    ],
)
def test_failures_close_with_their_code(data: bytes, code: int) -> None:
    ws = opened(max_size=1000)
    ws.receive_data(data)
    closed = ws.closed
    assert closed is not None and closed.code == code
    chunks, eof = ws.data_to_send()
    assert frames_out(chunks)[-1][0] == CLOSE and parse_close(frames_out(chunks)[-1][1])[0] == code and eof
    assert not ws.open and not ws.messages


def test_the_invalid_fragment_fails_before_the_message_ends() -> None:
    """RFC 6455 §8.1: a fragment that cannot be UTF-8 fails the connection as it arrives (Autobahn 6.4)."""
    ws = opened()
    ws.receive_data(encode_frame(TEXT, b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce", fin=False))
    assert ws.closed is None
    ws.receive_data(encode_frame(CONTINUATION, b"\xff\xff", fin=False))  # not the end yet, and already invalid
    assert ws.closed == Closed(1007, "invalid UTF-8: invalid continuation byte")


def test_a_close_between_fragments_is_a_normal_close() -> None:
    ws = opened()
    ws.receive_data(encode_frame(TEXT, b"half", fin=False) + encode_frame(CLOSE, struct.pack(">H", 1000) + b"bye"))
    assert ws.closed == Closed(1000, "bye") and not ws.messages
    chunks, eof = ws.data_to_send()
    assert frames_out(chunks) == [(CLOSE, struct.pack(">H", 1000) + b"bye")] and eof


def test_our_close_then_theirs_and_a_dropped_connection() -> None:
    ws = opened()
    ws.send_close(1001, "going away")
    assert not ws.open and ws.closed is None  # ours alone is not the end: the peer answers
    ws.receive_data(encode_frame(CLOSE, struct.pack(">H", 1001)))
    assert ws.closed == Closed(1001, "")
    ws = opened()
    ws.receive_eof()
    assert ws.closed is None  # no close frame either way: the connection reports 1006 (ABNORMAL)


def test_ping_and_its_pong() -> None:
    ws = opened()
    ws.send_ping()
    chunks, _ = ws.data_to_send()
    ((opcode, payload),) = frames_out(chunks)
    assert opcode == PING and len(payload) == 4
    assert not ws.receive_data(encode_frame(PONG, b"else"))  # an unsolicited pong is not the answer
    assert ws.receive_data(encode_frame(PONG, payload))


def test_messages_out_and_permessage_deflate() -> None:
    ws = opened(deflate=True, extra=b"Sec-WebSocket-Extensions: permessage-deflate\r\n")
    ws.send("text " * 100)
    ws.send(b"bytes")
    chunks, _ = ws.data_to_send()
    frames = frames_out(chunks)
    assert [op for op, _ in frames] == [TEXT, BINARY]
    assert len(frames[0][1]) < 100  # compressed
