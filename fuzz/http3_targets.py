"""Fuzz targets for HTTP/3's datagram path (protocols/http3.py on aioquic), when aioquic is installed.

``quic_datagrams``: datagrams as they come off the socket, random or truncated or a real client Initial with
bytes overwritten, into the endpoint's header parser and a fresh server connection. ``http3_frames``: what a
handshaken client sends on a request stream (HTTP/3 frames, QPACK blocks, bytes the first byte chooses), or
on a new unidirectional stream (a control or QPACK stream of its own), encrypted as a real client would: it
reaches the frame parser and the QPACK decoder. The oracle: nothing but the protocol's own answers (a reset
stream, a closed connection), no exception, no hang, and the server holds no more than its windows allow.
"""

from __future__ import annotations

import ssl
import tempfile
from pathlib import Path
from typing import Any

from aioquic.buffer import Buffer  # type: ignore[attr-defined]
from aioquic.h3.connection import H3_ALPN
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.packet import pull_quic_header

from monoceros.protocols.http3 import HTTP3Engine

ADDR = ("127.0.0.1", 4433)
CLIENT = ("127.0.0.1", 50000)
_now = [0.0]


def _clock() -> float:
    """A clock the targets move by hand, 10 ms a step (aioquic paces its sending by it)."""
    return _now[0]


def _tick() -> None:
    _now[0] += 0.01


def _server_configuration() -> QuicConfiguration:
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("localhost")
    directory = Path(tempfile.mkdtemp(prefix="monoceros-fuzz-h3-"))
    cert.cert_chain_pems[0].write_to_path(str(directory / "server.pem"))
    cert.private_key_pem.write_to_path(str(directory / "server-key.pem"))
    configuration = QuicConfiguration(
        is_client=False, alpn_protocols=H3_ALPN, max_data=1 << 20, max_stream_data=1 << 16, idle_timeout=30
    )
    configuration.load_cert_chain(str(directory / "server.pem"), str(directory / "server-key.pem"))
    return configuration


SERVER = _server_configuration()


def _client() -> QuicConnection:
    configuration = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN, server_name="localhost")
    configuration.verify_mode = ssl.CERT_NONE
    client = QuicConnection(configuration=configuration)
    client.connect(ADDR, now=_clock())
    return client


def _initial() -> bytes:
    return _client().datagrams_to_send(now=_clock())[0][0]


INITIAL = _initial()


def _engine_for(datagram: bytes) -> HTTP3Engine:
    header = pull_quic_header(Buffer(data=datagram), host_cid_length=8)
    return HTTP3Engine(SERVER, header.destination_cid, 100, None, _clock)


def _drain(engine: HTTP3Engine) -> None:
    engine.datagrams()
    engine.events.clear()
    if engine.timer() is not None:
        _tick()
        engine.handle_timer()
        engine.events.clear()


def quic_datagrams(data: bytes) -> None:
    """Random, truncated or corrupted datagrams: header parsing, then a server connection's whole input path."""
    if not data:
        return
    mode, rest = data[0] % 3, data[1:]
    if mode == 0:  # bytes as they are
        datagram = rest
    elif mode == 1:  # a real Initial, cut short
        datagram = INITIAL[: len(rest) % len(INITIAL)]
    else:  # a real Initial with bytes overwritten at places the input chooses
        buf = bytearray(INITIAL)
        for i in range(0, len(rest) - 1, 2):
            buf[rest[i] * 7 % len(buf)] = rest[i + 1]
        datagram = bytes(buf)
    try:
        pull_quic_header(Buffer(data=datagram), host_cid_length=8)
    except ValueError:
        return  # the endpoint drops what it cannot parse
    engine = _engine_for(INITIAL if mode == 0 else datagram)
    engine.receive_datagram(datagram, CLIENT)
    _drain(engine)


class _Pair:
    """A client and a server connection that have completed their handshake, in memory."""

    def __init__(self) -> None:
        self.client = _client()
        first = self.client.datagrams_to_send(now=_clock())
        self.server = _engine_for(first[0][0])
        outbound: list[tuple[bytes, Any]] = first
        for _ in range(20):
            _tick()
            for datagram, _addr in outbound:
                self.server.receive_datagram(datagram, CLIENT)
            for datagram, _addr in self.server.datagrams():
                self.client.receive_datagram(datagram, ADDR, now=_clock())
            outbound = self.client.datagrams_to_send(now=_clock())
            if self.server.handshake_done and not outbound:
                break
        assert self.server.handshake_done, "the in-memory handshake did not complete"

    def send(self, stream_id: int, payload: bytes, end: bool) -> None:
        self.client.send_stream_data(stream_id, payload, end_stream=end)
        for _ in range(8):
            _tick()
            outbound = self.client.datagrams_to_send(now=_clock())
            if not outbound:
                break
            for datagram, _addr in outbound:
                self.server.receive_datagram(datagram, CLIENT)
            for datagram, _addr in self.server.datagrams():
                self.client.receive_datagram(datagram, ADDR, now=_clock())
        self.events = [type(event).__name__ for event in self.server.events]
        self.server.events.clear()


_pair: list[_Pair] = []


def http3_frames(data: bytes) -> None:
    """Arbitrary bytes as a client's request stream, or as a unidirectional stream of its own."""
    if not data:
        return
    if not _pair or _pair[0].server.terminated or _pair[0].client._close_event is not None:
        _pair[:] = [_Pair()]  # the last input closed the connection (as it may): a fresh one
    pair = _pair[0]
    mode, rest = data[0], data[1:]
    unidirectional = mode & 1
    stream_id = pair.client.get_next_available_stream_id(is_unidirectional=bool(unidirectional))
    try:
        pair.send(stream_id, rest, end=bool(mode & 2))
    except (ValueError, AssertionError):
        _pair.clear()  # the client side refused to send it (its own state): not the server's doing
    held = sum(pair.server.pending(sid) for sid in list(pair.server.quic._streams))
    assert held < 1 << 24, f"the server holds {held} bytes of responses"


TARGETS = {"quic_datagrams": quic_datagrams, "http3_frames": http3_frames}
