"""Throwaway TLS certificates for tests, made with trustme.

Any test that needs TLS (unit or end to end) gets a CA, a server certificate for localhost / 127.0.0.1 /
::1, the same key encrypted with a password, and client certificates for mutual TLS: one signed by the CA
and one by a stranger CA that the server must reject.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import trustme
from cryptography.hazmat.primitives import serialization

KEY_PASSWORD = "correct horse battery staple"


@dataclass(frozen=True)
class TLSFiles:
    """Paths of the PEM files :func:`make_tls_files` wrote."""

    ca_cert: Path  # the CA that signed the server and client certificates
    server_cert: Path  # server leaf + chain
    server_key: Path  # unencrypted
    server_key_encrypted: Path  # same key, encrypted with ``key_password``
    key_password: str
    server_combined: Path  # certificate chain and key in one file
    client_cert: Path  # client leaf + chain, signed by ``ca_cert``
    client_key: Path
    stranger_client_cert: Path  # signed by another CA: a server verifying clients must refuse it
    stranger_client_key: Path

    def client_context(self, *, with_cert: bool = False, stranger: bool = False) -> ssl.SSLContext:
        """A client context that trusts ``ca_cert`` and optionally presents a client certificate."""
        ctx = ssl.create_default_context(cafile=str(self.ca_cert))
        if stranger:
            ctx.load_cert_chain(str(self.stranger_client_cert), str(self.stranger_client_key))
        elif with_cert:
            ctx.load_cert_chain(str(self.client_cert), str(self.client_key))
        return ctx


def make_tls_files(directory: Path, hostnames: tuple[str, ...] = ("localhost", "127.0.0.1", "::1")) -> TLSFiles:
    """Write a fresh CA, server and client certificates into ``directory`` and return their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    server = ca.issue_cert(*hostnames)
    client = ca.issue_cert("client@example.com", common_name="test client")
    stranger = trustme.CA().issue_cert("stranger@example.com", common_name="stranger")

    def write(name: str, *blobs: trustme.Blob) -> Path:
        path = directory / name
        path.write_bytes(b"".join(blob.bytes() for blob in blobs))
        return path

    key = serialization.load_pem_private_key(server.private_key_pem.bytes(), password=None)
    encrypted = directory / "server-key-encrypted.pem"
    encrypted.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(KEY_PASSWORD.encode()),
        )
    )
    return TLSFiles(
        ca_cert=write("ca.pem", ca.cert_pem),
        server_cert=write("server.pem", *server.cert_chain_pems),
        server_key=write("server-key.pem", server.private_key_pem),
        server_key_encrypted=encrypted,
        key_password=KEY_PASSWORD,
        server_combined=write("server-combined.pem", *server.cert_chain_pems, server.private_key_pem),
        client_cert=write("client.pem", *client.cert_chain_pems),
        client_key=write("client-key.pem", client.private_key_pem),
        stranger_client_cert=write("stranger.pem", *stranger.cert_chain_pems),
        stranger_client_key=write("stranger-key.pem", stranger.private_key_pem),
    )
