"""End to end, a certificate swapped under a running server: new connections get the new one, open ones keep
theirs and stay up, and a broken new certificate is logged while the old one keeps serving. By file watch
(--ssl-reload-interval), by SIGHUP in one process, and by a HUP reload under a master."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import ssl
from pathlib import Path

from server_process import ServerFactory, ServerProcess
from supervisor_support import supervise, wait_for
from tls_certs import TLSFiles, make_tls_files


def served_cert(server: ServerProcess) -> bytes:
    """The DER certificate a new TLS connection is given."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection(server.address, timeout=5) as raw, context.wrap_socket(raw) as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return der


def leaf(path: Path) -> bytes:
    pem = path.read_text()
    first = pem[: pem.index("-----END CERTIFICATE-----") + len("-----END CERTIFICATE-----")]
    return ssl.PEM_cert_to_DER_cert(first)


def install(files: TLSFiles, live: Path) -> None:
    """Put ``files``' certificate and key in place the way certbot does: new files, then a rename."""
    for source, name in ((files.server_cert, "cert.pem"), (files.server_key, "key.pem")):
        shutil.copyfile(source, live / (name + ".new"))
        os.replace(live / (name + ".new"), live / name)


def open_connection(server: ServerProcess) -> ssl.SSLSocket:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    tls = context.wrap_socket(socket.create_connection(server.address, timeout=5))
    return tls


def ask(tls: ssl.SSLSocket) -> bytes:
    tls.sendall(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data or not data.endswith(b"ok /"):
        chunk = tls.recv(65536)
        assert chunk, data
        data += chunk
    return data


def setup(tmp_path: Path) -> tuple[Path, TLSFiles, TLSFiles]:
    old = make_tls_files(tmp_path / "old")
    new = make_tls_files(tmp_path / "new")
    live = tmp_path / "live"
    live.mkdir()
    install(old, live)
    return live, old, new


def test_a_changed_certificate_is_loaded_and_open_connections_stay(serve: ServerFactory, tmp_path: Path) -> None:
    live, old, new = setup(tmp_path)
    server = serve(
        "asgi_apps:app", "--certfile", str(live / "cert.pem"), "--keyfile", str(live / "key.pem"),
        "--ssl-reload-interval", "0.2", scheme="https",
    )  # fmt: skip
    assert served_cert(server) == leaf(old.server_cert)
    kept = open_connection(server)
    assert ask(kept).startswith(b"HTTP/1.1 200")
    install(new, live)
    server.wait_output("TLS certificate reloaded", 5)
    assert served_cert(server) == leaf(new.server_cert)
    assert kept.getpeercert(binary_form=True) == leaf(old.server_cert)
    assert ask(kept).startswith(b"HTTP/1.1 200")  # the open connection was not cut
    kept.close()

    # A broken certificate: logged, and the last good one stays
    (live / "cert.pem").write_text("-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n")
    server.wait_output("TLS certificate not reloaded", 5)
    assert "keeping the old one" in server.output()
    assert str(live / "cert.pem") in server.output()  # the message names the user's file, not a copy
    assert served_cert(server) == leaf(new.server_cert)
    # A key that does not match the certificate: the same
    shutil.copyfile(old.server_cert, live / "cert.pem")
    wait_for(lambda: server.output().count("TLS certificate not reloaded") >= 2, timeout=5, what="a second refusal")
    assert "does not match" in server.output()
    assert served_cert(server) == leaf(new.server_cert)


def test_sighup_reloads_the_certificate_in_one_process(serve: ServerFactory, tmp_path: Path) -> None:
    live, old, new = setup(tmp_path)
    server = serve(
        "asgi_apps:app", "--certfile", str(live / "cert.pem"), "--keyfile", str(live / "key.pem"), scheme="https"
    )
    assert served_cert(server) == leaf(old.server_cert)
    install(new, live)
    server.send_signal(signal.SIGHUP)
    server.wait_output("TLS certificate reloaded from", 5)
    assert "(SIGHUP)" in server.output()
    assert served_cert(server) == leaf(new.server_cert)


def test_a_hup_under_a_master_loads_the_new_certificate_or_keeps_the_old(serve: ServerFactory, tmp_path: Path) -> None:
    live, old, new = setup(tmp_path)
    server = supervise(
        serve, "--supervisor", "--certfile", str(live / "cert.pem"), "--keyfile", str(live / "key.pem"),
        app="asgi_apps:app", scheme="https",
    )  # fmt: skip
    install(new, live)
    server.send_signal(signal.SIGHUP)
    server.wait_output("Reloaded in", 10)
    assert served_cert(server) == leaf(new.server_cert)
    shutil.copyfile(old.server_cert, live / "cert.pem")  # the key no longer matches
    server.send_signal(signal.SIGHUP)
    server.wait_output("Reload failed", 10)
    assert "does not match" in server.output()
    assert served_cert(server) == leaf(new.server_cert)  # the workers that serve keep theirs
