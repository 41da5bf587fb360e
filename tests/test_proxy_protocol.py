"""The PROXY protocol header parser (protocols/proxy_protocol.py), without sockets: v1 and v2, whole, in
pieces, and every way a header can be wrong."""

from __future__ import annotations

import ipaddress
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monoceros.protocols.proxy_protocol import MAX_HEADER, V2_SIGNATURE, ProxyHeader, ProxyHeaderError, parse


def v2(command: int = 1, family: int = 1, transport: int = 1, body: bytes | None = None, tlvs: bytes = b"") -> bytes:
    if body is None:
        if family == 1:
            body = struct.pack("!4s4sHH", bytes([203, 0, 113, 7]), bytes([10, 0, 0, 1]), 51234, 443)
        elif family == 2:
            source = ipaddress.IPv6Address("2001:db8::7").packed
            body = struct.pack("!16s16sHH", source, ipaddress.IPv6Address("2001:db8::1").packed, 40000, 8443)
        else:
            body = b""
    body += tlvs
    return V2_SIGNATURE + bytes([0x20 | command, family << 4 | transport]) + struct.pack("!H", len(body)) + body


def test_v1_tcp4() -> None:
    data = b"PROXY TCP4 192.0.2.10 10.0.0.1 56324 443\r\nGET / HTTP/1.1\r\n"
    header = parse(data)
    assert header == ProxyHeader(data.index(b"GET"), ("192.0.2.10", 56324), ("10.0.0.1", 443), 1)


def test_v1_tcp6_and_unknown() -> None:
    data = b"PROXY TCP6 2001:db8::7 2001:db8::1 65535 0\r\n"
    assert parse(data) == ProxyHeader(len(data), ("2001:db8::7", 65535), ("2001:db8::1", 0), 1)
    assert parse(b"PROXY UNKNOWN\r\nrest") == ProxyHeader(15, None, None, 1)
    # UNKNOWN may carry anything up to the CRLF, which the receiver ignores
    assert parse(b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n") == ProxyHeader(35, None, None, 1)


def test_v2_inet_inet6_local_and_tlvs() -> None:
    data = v2()
    assert parse(data + b"\x16\x03\x01") == ProxyHeader(len(data), ("203.0.113.7", 51234), ("10.0.0.1", 443), 2)
    data = v2(family=2)
    assert parse(data) == ProxyHeader(len(data), ("2001:db8::7", 40000), ("2001:db8::1", 8443), 2)
    data = v2(command=0, family=0, transport=0)  # LOCAL: a health check from the proxy itself
    assert parse(data) == ProxyHeader(16, None, None, 2)
    tlv = b"\xea\x00\x05vpce1"  # AWS's VPC endpoint id TLV, skipped
    data = v2(tlvs=tlv)
    assert parse(data) == ProxyHeader(len(data), ("203.0.113.7", 51234), ("10.0.0.1", 443), 2)
    assert parse(v2(family=3, body=bytes(216))) == ProxyHeader(232, None, None, 2)  # unix: the socket's own


@pytest.mark.parametrize(
    "data",
    [v2(), v2(family=2), b"PROXY TCP4 192.0.2.10 10.0.0.1 56324 443\r\n", b"PROXY UNKNOWN\r\n"],
    ids=["v2-inet", "v2-inet6", "v1-tcp4", "v1-unknown"],
)
def test_every_prefix_asks_for_more(data: bytes) -> None:
    for end in range(len(data)):
        assert parse(data[:end]) is None, end
    assert parse(data) is not None


@pytest.mark.parametrize(
    "data, why",
    [
        (b"GET / HTTP/1.1\r\n\r\n", "does not start"),
        (b"PROXZ TCP4", "does not start"),
        (b"\r\n\r\nX", "does not start"),
        (b"PROXY TCP4 192.0.2.10 10.0.0.1 56324\r\n", "four fields"),
        (b"PROXY TCP5 192.0.2.10 10.0.0.1 1 2\r\n", "TCP4, TCP6 or UNKNOWN"),
        (b"PROXY TCP4 2001:db8::1 10.0.0.1 1 2\r\n", "IPv6 address"),
        (b"PROXY TCP4 192.0.2.300 10.0.0.1 1 2\r\n", "not one"),
        (b"PROXY TCP4 192.0.2.1 10.0.0.1 65536 2\r\n", "port"),
        (b"PROXY TCP4 192.0.2.1 10.0.0.1 080 2\r\n", "port"),
        (b"PROXY TCP4 192.0.2.1 10.0.0.1 -1 2\r\n", "port"),
        (b"PROXY TCP4  192.0.2.1 10.0.0.1 1 2\r\n", "four fields"),
        (b"PROXY TCP4 192.0.2.1 10.0.0.1 1 2\n", "without CRLF"),
        (b"PROXY " + b"A" * 120, "longer than 107"),
        (b"PROXY TCP4 \xff.0.2.1 10.0.0.1 1 2\r\n", "ASCII"),
        (v2()[:12] + b"\x10" + v2()[13:], "version 1"),
        (v2(command=2), "unknown command"),
        (v2(family=4), "family or transport"),
        (v2(transport=2), "datagram"),
        (v2(body=b"\x00" * 8), "not 12"),
        (V2_SIGNATURE + b"\x21\x11" + struct.pack("!H", MAX_HEADER), "at most"),
    ],
)
def test_malformed_headers_are_errors(data: bytes, why: str) -> None:
    with pytest.raises(ProxyHeaderError, match=why):
        parse(data)


@given(st.binary(max_size=300))
def test_any_bytes_give_a_header_more_or_an_error(data: bytes) -> None:
    try:
        header = parse(data)
    except ProxyHeaderError:
        return
    if header is not None:
        assert 15 <= header.length <= min(len(data), MAX_HEADER)
