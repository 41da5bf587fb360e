"""Fuzz targets: each takes arbitrary bytes and drives one parser the server owns or drives. The oracle is
the parser's own contract: it may refuse (its protocol's error), never raise anything else, never hang, and
never hold more memory than its limits allow. scripts/fuzz runs them under atheris (coverage-guided), or
hypothesis where atheris is missing; tests/test_fuzz_targets.py runs each briefly in the suite.

The first bytes of an input choose how the rest is cut into reads (a parser must not care), so the fuzzer
explores the cuts as well as the bytes.
"""

from __future__ import annotations

import logging
import os
import tempfile
import zlib
from collections.abc import Callable

from monoceros.argv import UsageError, read
from monoceros.cli import build_parser
from monoceros.errors import ConfigError
from monoceros.protocols.events import ProtocolError, Request
from monoceros.protocols.http11 import HTTP11Connection, Limits
from monoceros.protocols.proxy_protocol import ProxyHeaderError
from monoceros.protocols.proxy_protocol import parse as parse_proxy_header
from monoceros.protocols.websocket import WebSocketProtocol

LIMITS = Limits(request_line=8190, field_size=8190, fields=100, headers_size=65536, body=1 << 20)
WS_MAX = 1 << 16
_QUIET = logging.getLogger("monoceros.fuzz")
_QUIET.addHandler(logging.NullHandler())
_QUIET.propagate = False
_PARSER = build_parser()


def pieces(data: bytes) -> list[bytes]:
    """The input after its first byte, cut at points the first byte seeds (1 to 8 reads)."""
    if not data:
        return []
    seed, rest = data[0], data[1:]
    count = seed % 8 + 1
    if count == 1 or len(rest) < 2:
        return [rest]
    cuts = sorted({(seed * (i + 7) * 2654435761) % len(rest) for i in range(count - 1)})
    return [rest[a:b] for a, b in zip([0, *cuts], [*cuts, len(rest)], strict=True) if b > a]


def http11(data: bytes) -> None:
    """HTTP/1.1 requests in any cut; every request answered, so the response side moves too."""
    conn = HTTP11Connection(LIMITS, h2c=True)
    try:
        for piece in pieces(data):
            conn.receive_data(piece)
            for event in conn.events:
                if isinstance(event, Request) and conn.response_state.value <= 1:
                    conn.response_head(event, 200, [(b"content-length", b"0")])  # type: ignore[arg-type]
                    conn.response_end()
            conn.events.clear()
        conn.receive_eof()
    except ProtocolError:
        pass
    assert len(conn.upgrade_tail) <= len(data)


_HANDSHAKE = (
    b"GET /chat HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    b"Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n"
)


def websocket(data: bytes) -> None:
    """Frames after a handshake that negotiated permessage-deflate: the parser fails the connection (a close
    code) or delivers messages, never one past the size limit (a deflate bomb closes with 1009)."""
    conn = HTTP11Connection(LIMITS)
    conn.receive_data(_HANDSHAKE)
    request = conn.upgrade_request
    assert request is not None
    ws = WebSocketProtocol(WS_MAX, True, _QUIET, date_header=False)
    assert ws.handshake(request) is None
    ws.accept(None, [])
    for piece in pieces(data):
        ws.receive_data(piece)
        for message in ws.messages:
            assert len(message) <= WS_MAX, len(message)
        ws.messages.clear()
        ws.data_to_send()
        if ws.closed is not None:
            break
    ws.receive_eof()


def deflate_bomb(size: int) -> bytes:
    """A masked, compressed binary frame whose message inflates to ``size`` zero bytes (for the tests)."""
    body = zlib.compressobj(9, zlib.DEFLATED, -15)
    payload = body.compress(bytes(size)) + body.flush(zlib.Z_SYNC_FLUSH)
    payload = payload[:-4]  # permessage-deflate strips the sync flush's tail
    mask = b"\x01\x02\x03\x04"
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    length = len(payload)
    head = b"\xc2"  # FIN, RSV1 (compressed), binary
    if length < 126:
        head += bytes([0x80 | length])
    elif length < 65536:
        head += b"\xfe" + length.to_bytes(2, "big")
    else:
        head += b"\xff" + length.to_bytes(8, "big")
    return head + mask + masked


def proxy_protocol(data: bytes) -> None:
    """The PROXY header, fed as it grows: more needed, a header no longer than what came, or its error."""
    buffer = b""
    for piece in pieces(data):
        buffer += piece
        try:
            header = parse_proxy_header(buffer)
        except ProxyHeaderError:
            return
        if header is not None:
            assert 0 < header.length <= len(buffer)
            return


def config(data: bytes) -> None:
    """A config file (TOML), environment values and command-line values: a Config, or a ConfigError that says
    what is wrong. The input's pieces are a TOML text, then NAME=VALUE environment lines."""
    from monoceros.config.sources import load_config

    parts = pieces(data) or [b""]
    toml_text = parts[0].decode("utf-8", "replace")
    env = {}
    for line in b"\n".join(parts[1:]).decode("utf-8", "replace").splitlines():
        name, _, value = line.partition("=")
        if name and "\0" not in name + value:
            env["MONOCEROS_" + name.upper().replace("-", "_")] = value
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "monoceros.toml")
        with open(path, "w", encoding="utf-8", errors="replace") as f:
            f.write(toml_text.replace("\0", ""))
        try:
            load_config(config_file=path, env=env, cwd=tmp)
        except ConfigError:
            pass
        try:
            read(toml_text.split()[:16], _PARSER)  # the words as a command line: translated, or UsageError
        except UsageError:
            pass


TARGETS: dict[str, Callable[[bytes], None]] = {
    "http11": http11,
    "websocket": websocket,
    "proxy_protocol": proxy_protocol,
    "config": config,
}
try:  # HTTP/3's datagram path, where aioquic (the http3 extra) is installed
    from fuzz.http3_targets import TARGETS as _HTTP3
except ImportError:
    _HTTP3 = {}
TARGETS.update(_HTTP3)
