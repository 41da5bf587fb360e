"""End to end, the ways in: TLS (server and client certificates, an encrypted key), unix sockets, several
listeners at once, and inherited file descriptors. Certificates come from tests/tls_certs.py.
"""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

import httpx
import pytest
from server_process import ServerFactory, ServerProcess, free_port, ipv6_available, short_socket_path
from tls_certs import TLSFiles

# -- TLS -----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def https_server(module_serve: ServerFactory, tls_files: TLSFiles) -> ServerProcess:
    return module_serve(
        "asgi_apps:app", "--certfile", str(tls_files.server_cert), "--keyfile", str(tls_files.server_key),
        scheme="https",
    )  # fmt: skip


def test_https_request_verified_against_the_test_ca(https_server: ServerProcess, tls_files: TLSFiles) -> None:
    assert "Listening at: https://127.0.0.1:" in https_server.output()
    with httpx.Client(verify=tls_files.client_context()) as client:
        response = client.get(https_server.url + "/scope")
        again = client.get(https_server.url + "/scope")  # keep-alive works over TLS too
    assert response.http_version == "HTTP/1.1"
    scope = response.json()
    assert scope["scheme"] == "https"
    assert again.json()["client"] == scope["client"]
    tls = scope["extensions"]["tls"]
    assert tls["tls_version"] in (0x0303, 0x0304)
    assert tls["client_cert_chain"] == []
    assert tls["client_cert_name"] is None


def test_https_refused_by_a_client_that_does_not_trust_the_ca(https_server: ServerProcess) -> None:
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(https_server.url + "/")


def test_plain_http_to_a_tls_port_fails(https_server: ServerProcess) -> None:
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{https_server.port}/", timeout=5)
    assert httpx.get(https_server.url + "/", verify=False).status_code == 200  # the listener is unharmed


@pytest.fixture(scope="module")
def mtls_server(module_serve: ServerFactory, tls_files: TLSFiles) -> ServerProcess:
    return module_serve(
        "asgi_apps:app",
        "--certfile", str(tls_files.server_cert),
        "--keyfile", str(tls_files.server_key),
        "--ca-certs", str(tls_files.ca_cert),
        "--cert-reqs", "required",
        scheme="https",
    )  # fmt: skip


def test_client_certificate_required(mtls_server: ServerProcess, tls_files: TLSFiles) -> None:
    with httpx.Client(verify=tls_files.client_context(with_cert=True)) as client:
        response = client.get(mtls_server.url + "/scope")
    assert response.status_code == 200
    tls = response.json()["extensions"]["tls"]
    assert "test client" in tls["client_cert_name"]
    assert tls["client_cert_chain"][0].startswith("-----BEGIN CERTIFICATE-----")


@pytest.mark.parametrize("stranger", [False, True], ids=["no client cert", "cert from another CA"])
def test_client_without_a_trusted_certificate_is_refused(
    mtls_server: ServerProcess, tls_files: TLSFiles, stranger: bool
) -> None:
    context = tls_files.client_context(stranger=stranger)
    with pytest.raises(httpx.TransportError):  # at the handshake, or (TLS 1.3) at the first read
        httpx.get(mtls_server.url + "/scope", verify=context, timeout=5)
    # and the server still serves those who have one
    assert httpx.get(mtls_server.url + "/", verify=tls_files.client_context(with_cert=True)).status_code == 200


def test_encrypted_key_with_password(serve: ServerFactory, tls_files: TLSFiles) -> None:
    server = serve(
        "asgi_apps:app",
        "--certfile", str(tls_files.server_cert),
        "--keyfile", str(tls_files.server_key_encrypted),
        "--keyfile-password", tls_files.key_password,
        scheme="https",
    )  # fmt: skip
    response = httpx.get(server.url + "/scope", verify=tls_files.client_context())
    assert response.json()["scheme"] == "https"


def test_encrypted_key_with_a_wrong_password_exits_with_a_clear_error(
    serve: ServerFactory, tls_files: TLSFiles
) -> None:
    server = serve(
        "asgi_apps:app",
        "--certfile", str(tls_files.server_cert),
        "--keyfile", str(tls_files.server_key_encrypted),
        "--keyfile-password", "not the password",
        wait=False,
    )  # fmt: skip
    assert server.wait() == 2
    assert "cannot decrypt the key; is keyfile_password right?" in server.output()


# -- unix sockets ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("flags", "mode"), [((), 0o666), (("--uds-perms", "600"), 0o600)])
def test_unix_socket(serve: ServerFactory, flags: tuple[str, ...], mode: int) -> None:
    server = serve("asgi_apps:app", *flags, listen="uds")
    assert server.uds is not None
    info = os.stat(server.uds)
    assert stat.S_ISSOCK(info.st_mode)
    assert stat.S_IMODE(info.st_mode) == mode
    with httpx.Client(transport=httpx.HTTPTransport(uds=server.uds)) as client:
        scope = client.get("http://localhost/scope").json()
        forwarded = client.get("http://localhost/scope", headers={"X-Forwarded-For": "203.0.113.9"}).json()
    assert scope["client"] is None
    assert scope["server"] == [server.uds, None]
    assert scope["scheme"] == "http"
    assert forwarded["client"] == ["203.0.113.9", 0]  # a unix-socket peer is a trusted proxy


# -- several listeners and inherited sockets ------------------------------------------------------------------


def test_several_binds_at_once(serve: ServerFactory, tmp_path: Path) -> None:
    v4 = free_port()
    args = ["-b", f"127.0.0.1:{v4}"]
    v6 = None
    if ipv6_available():
        v6 = free_port(socket.AF_INET6, "::1")
        args += ["-b", f"[::1]:{v6}"]
    uds = short_socket_path(tmp_path, "multi.sock")
    args += ["--uds", uds]
    server = serve("asgi_apps:app", *args, listen=None)
    out = server.output()
    assert f"Listening at: http://127.0.0.1:{v4}" in out
    assert f"Listening at: unix:{uds}" in out

    assert httpx.get(f"http://127.0.0.1:{v4}/scope").json()["server"] == ["127.0.0.1", v4]
    with httpx.Client(transport=httpx.HTTPTransport(uds=uds)) as client:
        assert client.get("http://localhost/scope").json()["server"] == [uds, None]
    if v6 is None:
        pytest.skip("IPv6 loopback is not available; the IPv4 and unix listeners were checked")
    assert f"Listening at: http://[::1]:{v6}" in out
    scope = httpx.get(f"http://[::1]:{v6}/scope").json()
    assert scope["server"] == ["::1", v6]
    assert scope["client"][0] == "::1"


def test_inherited_socket_by_fd_flag(serve: ServerFactory) -> None:
    server = serve("asgi_apps:app")  # ServerProcess passes its listener with --fd by default
    assert f"Listening at: http://127.0.0.1:{server.port}" in server.output()
    assert httpx.get(server.url + "/scope").json()["server"] == ["127.0.0.1", server.port]


def test_inherited_socket_by_bind_fd_url(serve: ServerFactory) -> None:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        port = listener.getsockname()[1]
        fd = listener.fileno()
        server = serve("asgi_apps:app", "-b", f"fd://{fd}", listen=None, pass_fds=[fd])
    finally:
        listener.close()  # the server holds the only copy now
    server.port = port
    assert f"Listening at: http://127.0.0.1:{port}" in server.output()
    assert httpx.get(server.url + "/hi").content == b"ok /hi"
    assert server.stop() == 0
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2)
