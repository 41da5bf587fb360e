"""What a TLS handshake established, as the ASGI ``tls`` scope extension (version, cipher, client cert)."""

from __future__ import annotations

import asyncio
import ssl
from typing import Any


def tls_extension(transport: asyncio.Transport) -> dict[str, Any]:
    """The ASGI TLS extension: what the handshake established."""
    ssl_object = transport.get_extra_info("ssl_object")
    peercert = transport.get_extra_info("peercert")
    version = ssl_object.version() if ssl_object is not None else None
    cipher = ssl_object.cipher() if ssl_object is not None else None
    chain: list[str] = []
    if ssl_object is not None:
        der = ssl_object.getpeercert(binary_form=True)
        if der:
            chain.append(ssl.DER_cert_to_PEM_cert(der))
    subject = ""
    if peercert:
        subject = ",".join("=".join(pair) for rdn in peercert.get("subject", ()) for pair in rdn)
    return {
        "server_cert": None,
        "client_cert_chain": chain,
        "client_cert_name": subject or None,
        "client_cert_error": None,
        "tls_version": _TLS_VERSIONS.get(version or ""),
        "cipher_suite": None,
        "cipher_name": cipher[0] if cipher else None,
    }


_TLS_VERSIONS = {"TLSv1.2": 0x0303, "TLSv1.3": 0x0304}


def alpn(transport: asyncio.BaseTransport) -> str | None:
    """The protocol TLS's ALPN chose (None without TLS or ALPN)."""
    ssl_object = transport.get_extra_info("ssl_object")
    return ssl_object.selected_alpn_protocol() if ssl_object is not None else None
