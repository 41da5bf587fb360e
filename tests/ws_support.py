"""Helpers for the WebSocket end-to-end tests: a real client (the ``websockets`` library, sync API) and a
raw one (exact handshake bytes and RFC 6455 frames on a :class:`~server_process.Wire`), for what a
well-behaved client cannot do: never answer a ping, send unmasked or broken frames, stop reading.
"""

from __future__ import annotations

import base64
import hashlib
import inspect
import json
import os
import struct
import time
from collections.abc import Sequence
from typing import Any, NamedTuple

from server_process import RawResponse, ServerProcess, Wire, request
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.http11 import Response
from websockets.sync.client import ClientConnection, connect

LEGACY_FLAG = "legacy" in inspect.signature(connect).parameters  # new in websockets 17.1

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def ws_url(server: ServerProcess, target: str) -> str:
    scheme = "wss" if server.scheme == "https" else "ws"
    return f"{scheme}://{server.host}:{server.port}{target}"


def client(server: ServerProcess, target: str, **options: Any) -> ClientConnection:
    """A ``websockets`` sync client connected to ``target``: no proxy from the environment, short timeouts,
    no client-side pings (the server's are what the tests look at) and no message size limit."""
    if LEGACY_FLAG:
        options.setdefault("legacy", True)  # the connection itself: websockets >= 17.1 otherwise wants a with block
    options.setdefault("proxy", None)
    options.setdefault("open_timeout", 5)
    options.setdefault("close_timeout", 2)
    options.setdefault("ping_interval", None)
    options.setdefault("max_size", None)
    ws = connect(ws_url(server, target), **options)
    assert isinstance(ws, ClientConnection)
    return ws


def response_headers(ws: ClientConnection) -> Headers:
    """The headers of the 101 response that opened ``ws``."""
    assert ws.response is not None
    return ws.response.headers


def wait_closed(ws: ClientConnection, timeout: float = 5.0) -> tuple[int, str]:
    """Read (and drop) messages until the server closes the connection; the code and reason of its close
    frame. Fails if the connection is still open after ``timeout`` or ends without a close frame."""
    deadline = time.monotonic() + timeout
    received: list[str | bytes] = []
    try:
        while True:
            received.append(ws.recv(timeout=max(0.0, deadline - time.monotonic())))
    except ConnectionClosed as exc:
        if exc.rcvd is None:
            raise AssertionError(f"the connection ended without a close frame from the server: {exc!r}") from None
        return exc.rcvd.code, exc.rcvd.reason
    except TimeoutError:
        raise AssertionError(f"still open after {timeout} s; received {received[:3]!r}") from None


def denied(server: ServerProcess, target: str, **options: Any) -> Response:
    """The HTTP response that refused the opening handshake for ``target`` (fails if it succeeds)."""
    try:
        ws = client(server, target, **options)
    except InvalidStatus as exc:
        return exc.response
    ws.close()
    raise AssertionError(f"the handshake for {target} succeeded; it should have been refused")


def read_json_record(server: ServerProcess, name: str, timeout: float = 5.0) -> Any:
    return json.loads(server.wait_record(name, timeout))


def disconnect_of(server: ServerProcess, ident: str, timeout: float = 5.0) -> tuple[int, str]:
    """The (code, reason) of the websocket.disconnect message the app got on connection ``ident``."""
    seen = read_json_record(server, f"ws-disconnect-{ident}", timeout)
    return seen["code"], seen["reason"]


# -- the raw client: handshake ------------------------------------------------------------------------------


def new_key() -> str:
    return base64.b64encode(os.urandom(16)).decode()


def accept_value(key: str) -> str:
    return base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()


def upgrade_request(
    target: str,
    *,
    key: str | None = None,
    version: str | None = "13",
    connection: str | None = "Upgrade",
    upgrade: str | None = "websocket",
    extra: Sequence[tuple[str, str]] = (),
) -> bytes:
    """The bytes of an opening handshake; pass None to leave a header out."""
    headers: list[tuple[str, str]] = []
    if upgrade is not None:
        headers.append(("Upgrade", upgrade))
    if connection is not None:
        headers.append(("Connection", connection))
    if key is not None:
        headers.append(("Sec-WebSocket-Key", key))
    if version is not None:
        headers.append(("Sec-WebSocket-Version", version))
    return request("GET", target, [*headers, *extra], host="127.0.0.1")


def handshake(
    wire: Wire, target: str, *, extra: Sequence[tuple[str, str]] = (), connection: str = "Upgrade"
) -> RawResponse:
    """Send an opening handshake for ``target`` and check the 101 that must answer it."""
    key = new_key()
    wire.send(upgrade_request(target, key=key, extra=extra, connection=connection))
    response = wire.read_response()
    check_switching(response, key)
    return response


def check_switching(response: RawResponse, key: str) -> None:
    assert response.status == 101, response
    assert (response.header("upgrade") or "").lower() == "websocket", response
    assert "upgrade" in (response.header("connection") or "").lower(), response
    assert response.header("sec-websocket-accept") == accept_value(key), response


# -- the raw client: frames ---------------------------------------------------------------------------------


class Frame(NamedTuple):
    fin: bool
    rsv: int  # the three RSV bits, as the high nibble's low three bits (RSV1 = 4)
    opcode: int
    payload: bytes
    masked: bool


def mask_bytes(payload: bytes, key: bytes) -> bytes:
    if not payload:
        return payload
    repeated = (key * (len(payload) // 4 + 1))[: len(payload)]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(len(payload), "big")


def encode_frame(
    opcode: int, payload: bytes = b"", *, fin: bool = True, mask: bool = True, rsv: int = 0, key: bytes | None = None
) -> bytes:
    """One frame as a client sends it (masked, unless ``mask`` is False)."""
    head = bytes([(0x80 if fin else 0) | (rsv << 4) | opcode])
    length = len(payload)
    mask_bit = 0x80 if mask else 0
    if length < 126:
        head += bytes([mask_bit | length])
    elif length < 1 << 16:
        head += bytes([mask_bit | 126]) + struct.pack(">H", length)
    else:
        head += bytes([mask_bit | 127]) + struct.pack(">Q", length)
    if not mask:
        return head + payload
    key = key if key is not None else os.urandom(4)
    return head + key + mask_bytes(payload, key)


def close_frame(code: int | None = 1000, reason: str = "") -> bytes:
    payload = b"" if code is None else struct.pack(">H", code) + reason.encode()
    return encode_frame(CLOSE, payload)


def read_frame(wire: Wire) -> Frame:
    """The next frame from the server (EOFError if the connection ends first)."""
    first, second = wire.read_exact(2)
    length = second & 0x7F
    if length == 126:
        (length,) = struct.unpack(">H", wire.read_exact(2))
    elif length == 127:
        (length,) = struct.unpack(">Q", wire.read_exact(8))
    masked = bool(second & 0x80)
    key = wire.read_exact(4) if masked else b""
    payload = wire.read_exact(length)
    if masked:
        payload = mask_bytes(payload, key)
    return Frame(bool(first & 0x80), (first >> 4) & 0x7, first & 0x0F, payload, masked)


def read_message(wire: Wire) -> tuple[int, bytes]:
    """The next data message (opcode TEXT or BINARY, fragments joined) or control frame (its opcode)."""
    frame = read_frame(wire)
    if frame.opcode >= CLOSE or frame.fin:
        return frame.opcode, frame.payload
    opcode, parts = frame.opcode, [frame.payload]
    while True:
        frame = read_frame(wire)
        assert frame.opcode in (CONTINUATION, PING, PONG), f"frame {frame.opcode:#x} inside a fragmented message"
        if frame.opcode != CONTINUATION:
            continue  # control frames may come between fragments
        parts.append(frame.payload)
        if frame.fin:
            return opcode, b"".join(parts)


def read_data(wire: Wire) -> tuple[int, bytes]:
    """The next data message; pings that come first are answered, pongs dropped."""
    while True:
        opcode, payload = read_message(wire)
        if opcode == PING:
            wire.send(encode_frame(PONG, payload))
        elif opcode != PONG:
            return opcode, payload


def parse_close(payload: bytes) -> tuple[int | None, str]:
    if not payload:
        return None, ""
    (code,) = struct.unpack(">H", payload[:2])
    return code, payload[2:].decode()


def frames_until_eof(wire: Wire, timeout: float) -> tuple[list[Frame], float]:
    """Every frame the server sends until it closes the connection; and how long that took. Fails if the
    connection is still open after ``timeout`` seconds."""
    frames: list[Frame] = []
    start = time.monotonic()
    deadline = start + timeout
    try:
        while True:
            wire.sock.settimeout(max(0.01, deadline - time.monotonic()))
            frames.append(read_frame(wire))
    except (EOFError, ConnectionResetError):
        return frames, time.monotonic() - start
    except TimeoutError:
        raise AssertionError(f"the connection is still open after {timeout} s; frames so far: {frames}") from None
