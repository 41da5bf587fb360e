"""End to end behind real proxies, with the configurations docs/deployment.md shows (deploy/): nginx over
TCP and over a unix socket with keep-alive upstreams (HTTP, a streamed response, a large upload, a
WebSocket), nginx's stream module with ``proxy_protocol on`` (PROXY v1), and HAProxy with ``send-proxy-v2``.

The client connects from 127.0.0.2 and the proxies from 127.0.0.1, so the address the app sees is the
client's only if the proxy's word was taken; nginx terminates TLS, so the scheme the app sees is https only
if X-Forwarded-Proto was. Needs root, nginx with its stream module, and haproxy (.ci/run installs them);
each test skips where they are missing.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from server_process import ServerFactory, ServerProcess, free_port
from supervisor_support import wait_for
from tls_certs import TLSFiles
from websockets.sync.client import connect
from ws_support import LEGACY_FLAG

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
HAPROXY = shutil.which("haproxy") or ("/usr/sbin/haproxy" if os.path.exists("/usr/sbin/haproxy") else None)
STREAM_MODULE = "/usr/lib/nginx/modules/ngx_stream_module.so"
CLIENT = "127.0.0.2"  # the client's own address; the proxies reach monoceros from 127.0.0.1

needs_nginx = pytest.mark.skipif(
    NGINX is None or os.geteuid() != 0, reason="needs nginx, and root (.ci/run installs it and runs as root)"
)

NGINX_MAIN = """\
{load_module}
daemon off;
master_process on;
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
{http}
}}
{stream}
"""


@pytest.fixture
def root() -> Iterator[Path]:
    """A directory nginx's workers (another user) may enter; pytest's own temporary directories are root's."""
    path = Path(tempfile.mkdtemp(prefix="mono-proxy-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def site_config(upstream: str, port: int, tls: TLSFiles) -> str:
    """deploy/nginx/monoceros.conf, as docs/deployment.md shows it, pointed at this test's addresses."""
    text = (DEPLOY / "nginx" / "monoceros.conf").read_text()
    for old, new in (
        ("    server 127.0.0.1:8000;\n", f"    server {upstream};\n"),
        ("listen 443 ssl http2;", f"listen 127.0.0.1:{port} ssl http2;"),
        ("/etc/ssl/example.com/fullchain.pem", str(tls.server_cert)),
        ("/etc/ssl/example.com/privkey.pem", str(tls.server_key)),
    ):
        assert old in text, old
        text = text.replace(old, new)
    return text


def stream_config(upstream: str, port: int) -> str:
    text = (DEPLOY / "nginx" / "monoceros-stream.conf").read_text()
    for old, new in (("server 127.0.0.1:8000;", f"server {upstream};"), ("listen 8443;", f"listen 127.0.0.1:{port};")):
        assert old in text, old
        text = text.replace(old, new)
    return text


def start_nginx(root: Path, port: int, http: str = "", stream: str = "") -> subprocess.Popen[bytes]:
    assert NGINX is not None
    load = f"load_module {STREAM_MODULE};" if stream and os.path.exists(STREAM_MODULE) else ""
    conf = root / "nginx.conf"
    conf.write_text(NGINX_MAIN.format(root=root, http=http, stream=stream, load_module=load))
    with open(root / "stderr.log", "wb") as stderr:
        proc = subprocess.Popen([NGINX, "-c", str(conf), "-p", str(root)], stderr=stderr)
    wait_for(lambda: _listening(port) or proc.poll() is not None, 10, "nginx to listen")
    assert proc.poll() is None, (root / "stderr.log").read_text() + _read(root / "error.log")
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGQUIT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _read(path: Path) -> str:
    return path.read_text() if path.exists() else ""


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def client(tls: TLSFiles | None = None) -> httpx.Client:
    """An HTTP client whose connections come from 127.0.0.2."""
    verify: ssl.SSLContext | bool = tls.client_context() if tls is not None else False
    return httpx.Client(transport=httpx.HTTPTransport(local_address=CLIENT, verify=verify), timeout=10)


def monoceros(serve: ServerFactory, root: Path, kind: str, *args: str) -> tuple[ServerProcess, str, str]:
    """A server for the proxy to reach over TCP or a unix socket; its upstream address for nginx, and its
    admin listener's URL."""
    admin = free_port()
    common = ["--admin-bind", f"127.0.0.1:{admin}", *args]
    if kind == "unix":
        path = root / "app.sock"
        server = serve("edge_apps:app", "--bind", f"unix:{path}", *common, listen=None, ready_text="Ready: ")
        upstream = f"unix:{path}"
    else:
        port = free_port()
        server = serve("edge_apps:app", "--bind", f"127.0.0.1:{port}", *common, listen=None, ready_text="Ready: ")
        upstream = f"127.0.0.1:{port}"
    return server, upstream, f"http://127.0.0.1:{admin}"


def open_connections(admin: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(httpx.get(admin + "/metrics").text):
        for s in family.samples:
            if s.name == "monoceros_connections_open" and s.labels["protocol"] == "http/1.1":
                return s.value
    return -1


@needs_nginx
@pytest.mark.parametrize("kind", ["tcp", "unix"])
def test_nginx_http_stream_upload_and_keep_alive(
    serve: ServerFactory, root: Path, tls_files: TLSFiles, kind: str
) -> None:
    server, upstream, admin = monoceros(serve, root, kind)
    port = free_port()
    proc = start_nginx(root, port, http=site_config(upstream, port, tls_files))
    base = f"https://localhost:{port}"
    try:
        with client(tls_files) as http:
            for _ in range(10):
                seen = http.get(base + "/who").json()
                assert seen["client"][0] == CLIENT, seen  # X-Forwarded-For, from a trusted proxy
                assert seen["scheme"] == "https", seen  # X-Forwarded-Proto
                assert seen["host"] == "localhost", seen  # Host $host
            streamed = http.get(base + "/stream")
            assert streamed.text == "".join(f"{i}\n" for i in range(20))
            upload = os.urandom(8 << 20)
            echoed = http.post(base + "/echo", content=upload)
            assert echoed.status_code == 200 and echoed.content == upload
        # keep-alive upstreams: nginx holds its connections to monoceros open between requests
        assert open_connections(admin) >= 1
        server.wait_output(f"{CLIENT} - - [")  # the access log names the client too
    finally:
        stop(proc)


@needs_nginx
@pytest.mark.parametrize("kind", ["tcp", "unix"])
def test_nginx_websocket(serve: ServerFactory, root: Path, tls_files: TLSFiles, kind: str) -> None:
    _, upstream, _ = monoceros(serve, root, kind)
    port = free_port()
    proc = start_nginx(root, port, http=site_config(upstream, port, tls_files))
    try:
        sock = socket.socket()
        sock.bind((CLIENT, 0))
        sock.connect(("127.0.0.1", port))
        options = {"legacy": True} if LEGACY_FLAG else {}
        ws = connect(f"wss://localhost:{port}/ws", sock=sock, ssl=tls_files.client_context(), proxy=None, **options)
        try:
            seen = json.loads(ws.recv(timeout=5))
            assert seen["client"][0] == CLIENT and seen["scheme"] == "wss", seen
            for i in range(5):
                ws.send(f"hello {i}")
                assert ws.recv(timeout=5) == f"hello {i}"
        finally:
            ws.close()
    finally:
        stop(proc)


@needs_nginx
@pytest.mark.skipif(not os.path.exists(STREAM_MODULE) and NGINX is not None, reason="nginx's stream module is missing")
def test_nginx_stream_module_with_proxy_protocol(serve: ServerFactory, root: Path) -> None:
    _, upstream, _ = monoceros(serve, root, "tcp", "--proxy-protocol")
    port = free_port()
    proc = start_nginx(root, port, stream=stream_config(upstream, port))
    try:
        with client() as http:
            seen = http.get(f"http://127.0.0.1:{port}/who").json()
        assert seen["client"][0] == CLIENT, seen  # PROXY v1, from nginx
    finally:
        stop(proc)


@pytest.mark.skipif(HAPROXY is None, reason="haproxy is not installed (.ci/run installs it)")
def test_haproxy_with_send_proxy_v2(serve: ServerFactory, root: Path) -> None:
    server, upstream, admin = monoceros(serve, root, "tcp", "--proxy-protocol", "--drain-delay", "30")
    admin_port = admin.rsplit(":", 1)[1]
    port = free_port()
    text = (DEPLOY / "haproxy" / "haproxy.cfg").read_text()
    for old, new in (
        ("bind :8080", f"bind 127.0.0.1:{port}"),
        (
            "server app1 127.0.0.1:8000 send-proxy-v2 check port 9000",
            f"server app1 {upstream} send-proxy-v2 check port {admin_port} inter 200ms",
        ),
    ):
        assert old in text, old
        text = text.replace(old, new)
    conf = root / "haproxy.cfg"
    conf.write_text(text)
    assert HAPROXY is not None
    with open(root / "haproxy.log", "wb") as log:
        proc = subprocess.Popen([HAPROXY, "-db", "-f", str(conf)], stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: _listening(port) or proc.poll() is not None, 10, "haproxy to listen")
        assert proc.poll() is None, _read(root / "haproxy.log")

        def ask() -> dict[str, object] | None:
            try:
                with client() as http:
                    data: dict[str, object] = http.get(f"http://127.0.0.1:{port}/who").json()
                    return data
            except (httpx.HTTPError, ValueError):
                return None

        seen = wait_for(ask, timeout=10, what="an answer through haproxy")
        assert seen["client"][0] == CLIENT, seen  # type: ignore[index]  # PROXY v2, from haproxy
        # haproxy's health check asks /readyz: a draining monoceros leaves the rotation while it still serves
        server.send_signal(signal.SIGTERM)
        wait_for(lambda: "app1 is DOWN" in _read(root / "haproxy.log"), 10, "haproxy to take app1 out")
        direct = socket.create_connection(("127.0.0.1", int(upstream.rsplit(":", 1)[1])), timeout=5)
        with direct:
            direct.sendall(
                b"PROXY TCP4 192.0.2.5 127.0.0.1 1 2\r\nGET /who HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
            )
            reply = b""
            while chunk := direct.recv(65536):
                reply += chunk
        assert reply.startswith(b"HTTP/1.1 200") and b"192.0.2.5" in reply  # still serving, draining
        server.send_signal(signal.SIGTERM)  # a second TERM ends the drain delay
        assert server.wait(10) == 0
    finally:
        stop(proc)
