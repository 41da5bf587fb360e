"""The PROXY protocol header, v1 (text) and v2 (binary), as HAProxy's specification defines it.

A TCP proxy (HAProxy ``send-proxy``, an AWS Network Load Balancer, nginx's stream module) puts one header at
the very start of the connection, before any byte of the client's: who the client is and which address it
reached. :func:`parse` reads it from the bytes received so far and says whether it is complete. Everything
is checked, and anything doubtful is an error rather than a guess: the header decides which address the app
and the access log see.

No well-kept parser exists for this (uvicorn and hypercorn do not read the header; gunicorn parses v1 in its
own code), and it is small and fully specified, so it is written here, bounded: nothing past
:data:`MAX_HEADER` bytes is ever buffered.
"""

from __future__ import annotations

import ipaddress
import struct
from typing import NamedTuple

V1_PREFIX = b"PROXY "
V1_MAX = 107  # the longest v1 line, CRLF included (TCP6 with the longest addresses and ports)
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
MAX_HEADER = 16 + 1024  # v2's fixed part and the addresses and TLVs we accept (HAProxy sends far less)
_V2_FIXED = struct.Struct("!12sBBH")
_INET = struct.Struct("!4s4sHH")
_INET6 = struct.Struct("!16s16sHH")

Address = tuple[str, int]


class ProxyHeaderError(ValueError):
    """The header is malformed (the message says how)."""


class ProxyHeader(NamedTuple):
    """A complete header: its length in bytes, and the client and server addresses, or None for both when
    the proxy says the connection is its own (v2 LOCAL, a health check) or does not know (v1 UNKNOWN, or
    v2 with an unspecified or unix family): the connection's own addresses stand then."""

    length: int
    client: Address | None
    server: Address | None
    version: int


def parse(data: bytes) -> ProxyHeader | None:
    """The header at the start of ``data``, or None when more bytes are needed. ProxyHeaderError when the
    bytes cannot be the start of a valid header."""
    if data[:1] == b"P":
        return _parse_v1(data)
    if data[:1] == b"\r":
        return _parse_v2(data)
    if not data:
        return None
    raise ProxyHeaderError("the connection does not start with a PROXY protocol header")


def _parse_v1(data: bytes) -> ProxyHeader | None:
    if not data.startswith(V1_PREFIX[: len(data)]) or (len(data) >= 6 and not data.startswith(V1_PREFIX)):
        raise ProxyHeaderError("the connection does not start with a PROXY protocol header")
    end = data.find(b"\r\n", 0, V1_MAX)
    if end < 0:
        if len(data) >= V1_MAX or b"\n" in data[:V1_MAX]:
            raise ProxyHeaderError("a v1 header longer than 107 bytes, or without CRLF")
        return None
    line = data[len(V1_PREFIX) : end]
    try:
        text = line.decode("ascii")
    except UnicodeDecodeError:
        raise ProxyHeaderError("a v1 header with bytes that are not ASCII") from None
    parts = text.split(" ")
    if parts[0] == "UNKNOWN":
        return ProxyHeader(end + 2, None, None, 1)
    if len(parts) != 5 or parts[0] not in ("TCP4", "TCP6"):
        raise ProxyHeaderError(f"a v1 header that is not TCP4, TCP6 or UNKNOWN with four fields: {text[:60]!r}")
    version = 4 if parts[0] == "TCP4" else 6
    source = _v1_address(parts[1], version)
    dest = _v1_address(parts[2], version)
    return ProxyHeader(end + 2, (source, _v1_port(parts[3])), (dest, _v1_port(parts[4])), 1)


def _v1_address(text: str, version: int) -> str:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise ProxyHeaderError(f"a v1 header with an address that is not one: {text[:45]!r}") from None
    if address.version != version:
        raise ProxyHeaderError(f"a v1 TCP{version} header with an IPv{address.version} address")
    return str(address)


def _v1_port(text: str) -> int:
    if not text.isascii() or not text.isdigit() or (len(text) > 1 and text[0] == "0") or int(text) > 65535:
        raise ProxyHeaderError(f"a v1 header with a port that is not one: {text[:8]!r}")
    return int(text)


def _parse_v2(data: bytes) -> ProxyHeader | None:
    if not data.startswith(V2_SIGNATURE[: len(data)]) or (len(data) >= 12 and not data.startswith(V2_SIGNATURE)):
        raise ProxyHeaderError("the connection does not start with a PROXY protocol header")
    if len(data) < _V2_FIXED.size:
        return None
    _, version_command, family_transport, size = _V2_FIXED.unpack_from(data)
    if version_command >> 4 != 2:
        raise ProxyHeaderError(f"a v2 header of version {version_command >> 4}")
    command = version_command & 0x0F
    if command > 1:
        raise ProxyHeaderError(f"a v2 header with the unknown command {command}")
    length = _V2_FIXED.size + size
    if length > MAX_HEADER:
        raise ProxyHeaderError(f"a v2 header of {length} bytes (at most {MAX_HEADER} are accepted)")
    if len(data) < length:
        return None
    family, transport = family_transport >> 4, family_transport & 0x0F
    if family > 3 or transport > 2:
        raise ProxyHeaderError(f"a v2 header with the unknown family or transport byte {family_transport:#04x}")
    if command == 0 or family in (0, 3):  # LOCAL, or addresses the app cannot use: the connection's stand
        return ProxyHeader(length, None, None, 2)
    if transport != 1:
        raise ProxyHeaderError("a v2 header for a datagram or unspecified transport on a TCP connection")
    body = data[_V2_FIXED.size : length]
    shape = _INET if family == 1 else _INET6
    if len(body) < shape.size:
        raise ProxyHeaderError(f"a v2 header whose addresses take {len(body)} bytes, not {shape.size}")
    source, dest, source_port, dest_port = shape.unpack_from(body)
    make = ipaddress.IPv4Address if family == 1 else ipaddress.IPv6Address
    return ProxyHeader(length, (str(make(source)), source_port), (str(make(dest)), dest_port), 2)
