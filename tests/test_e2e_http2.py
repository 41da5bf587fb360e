"""HTTP/2 end to end: a real server, a real HTTP/2 client (h2's client side over a socket, curl where it is
installed), on every engine tier: libnghttp2 through the compiled glue (where it is built), libnghttp2 bound
at run time, and the pure-Python h2.
"""

from __future__ import annotations

import base64
import json
import shutil
import socket
import subprocess
import time

import httpx
import pytest
from h2_support import ENGINES, Answer, H2Client, tls_client_context
from server_process import ServerFactory, ServerProcess
from tls_certs import TLSFiles


@pytest.fixture(scope="module", params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def asgi(module_serve: ServerFactory, engine: str) -> ServerProcess:
    return module_serve("asgi_apps:app", "--http2-engine", engine, "--limit-request-body", "1000000")


@pytest.fixture(scope="module")
def wsgi(module_serve: ServerFactory, engine: str) -> ServerProcess:
    return module_serve("h2_apps:wsgi", "--http2-engine", engine)


def client(server: ServerProcess, **options: int) -> H2Client:
    return H2Client.connect(server.host, server.port, **options)  # type: ignore[arg-type]


def test_the_log_says_which_engine_serves(asgi: ServerProcess, engine: str) -> None:
    tier = {"nghttp2": "(glue)", "nghttp2-abi": "(abi)", "h2": "h2 "}[engine]
    line = next(line for line in asgi.output().splitlines() if "HTTP/2 served by" in line)
    assert tier in line, line


def test_prior_knowledge_get_and_the_scope(asgi: ServerProcess) -> None:
    with client(asgi) as h2:
        answer = h2.get("/scope/x?a=1", [("x-thing", "v")])
    assert answer.status == 200, answer
    scope = json.loads(answer.body)
    assert scope["http_version"] == "2"
    assert scope["path"] == "/scope/x" and scope["query_string"] == "a=1"
    headers = dict(scope["headers"])
    assert headers["x-thing"] == "v" and headers["host"] == "localhost"  # from :authority
    assert answer.header(b"server") == b"monoceros" and answer.header(b"date")


def test_upload_past_the_windows_is_echoed(asgi: ServerProcess) -> None:
    body = bytes(range(256)) * 1200  # 300 KiB: five stream windows, the app reading as it goes
    with client(asgi) as h2:
        sid = h2.request("POST", "/echo", body=body)
        answer = h2.wait(sid)
    assert (answer.status, answer.body) == (200, body)


def test_download_under_a_small_client_window(asgi: ServerProcess) -> None:
    with client(asgi, window=16384) as h2:
        answer = h2.get("/big-stream?mb=1")
    assert answer.status == 200 and len(answer.body) == 1 << 20


def test_streamed_response_and_trailers(asgi: ServerProcess) -> None:
    with client(asgi) as h2:
        streamed = h2.get("/stream?n=4")
        trailed = h2.get("/trailers")
    assert streamed.body == b"".join(b"chunk-%d\n" % i for i in range(4))
    assert trailed.body == b"helloworld"
    assert trailed.trailers == [(b"x-checksum", b"abc"), (b"x-count", b"2")]


def test_head_has_no_body(asgi: ServerProcess) -> None:
    with client(asgi) as h2:
        answer = h2.wait(h2.request("HEAD", "/echo"))
    assert answer.status == 200 and answer.body == b"" and answer.ended


def test_many_streams_at_once_on_one_connection(asgi: ServerProcess) -> None:
    with client(asgi) as h2:
        sids = [h2.request("GET", f"/n{i}") for i in range(60)]
        answers = [h2.wait(sid) for sid in sids]
    assert [a.body for a in answers] == [b"ok /n%d" % i for i in range(60)]


def test_a_client_reset_reaches_the_app_and_the_connection_goes_on(asgi: ServerProcess) -> None:
    with client(asgi) as h2:
        sid = h2.request("GET", "/disconnect?id=h2reset")
        asgi.wait_record("waiting-h2reset", equals="http.request")
        h2.conn.reset_stream(sid, 0x8)  # CANCEL, as a browser that navigates away
        h2.sock.sendall(h2.conn.data_to_send())
        asgi.wait_record("disconnect-h2reset", equals="http.disconnect")
        asgi.wait_record("send-error-h2reset", equals="start ClientDisconnected oserror=True")
        assert h2.get("/after").body == b"ok /after"


def test_body_and_header_limits(asgi: ServerProcess) -> None:
    with client(asgi) as h2:
        too_big = h2.wait(h2.request("POST", "/echo", [("content-length", "2000000")], end=False))
        many = h2.get("/", [(f"x-h{i}", "v") for i in range(150)])
        assert h2.get("/still").body == b"ok /still"  # stream errors: the connection goes on
    assert too_big.status == 413
    assert many.status == 431


def test_wsgi_over_http2(wsgi: ServerProcess) -> None:
    with client(wsgi) as h2:
        facts = json.loads(h2.get("/facts?q=1").body)
        body = b"x" * 200000
        echoed = h2.wait(h2.request("POST", "/echo", body=body))  # no Content-Length: wsgi.input streams it
        streamed = h2.get("/stream", None)
    assert facts == {
        "protocol": "HTTP/2", "host": "localhost", "method": "GET", "path": "/facts", "query": "q=1",
        "length": None, "body": 0,
    }  # fmt: skip
    assert echoed.body == body
    assert streamed.body == b"chunk-0\nchunk-1\nchunk-2\n"


def test_h2c_upgrade(asgi: ServerProcess) -> None:
    settings = base64.urlsafe_b64encode(b"").rstrip(b"=").decode()
    sock = socket.create_connection((asgi.host, asgi.port), timeout=10)
    sock.sendall(
        b"GET /upgraded HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade, HTTP2-Settings\r\n"
        b"Upgrade: h2c\r\nHTTP2-Settings: " + settings.encode() + b"\r\n\r\n"
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    with H2Client(sock, upgraded=True) as h2:
        h2.answers[1] = Answer()  # stream 1 is the upgrade request, already sent
        answer = h2.wait(1)
    assert (answer.status, answer.body) == (200, b"ok /upgraded")


def test_h1_still_served_beside_h2(asgi: ServerProcess) -> None:
    assert httpx.get(asgi.url + "/plain").text == "ok /plain"


def test_tls_alpn_chooses_h2_or_http11_on_one_port(serve: ServerFactory, tls_files: TLSFiles, engine: str) -> None:
    cert, key = str(tls_files.server_cert), str(tls_files.server_key)
    server = serve("asgi_apps:app", "--http2-engine", engine, "--certfile", cert, "--keyfile", key, scheme="https")
    ca = str(tls_files.ca_cert)
    with H2Client.connect(server.host, server.port, tls=tls_client_context(ca, ["h2", "http/1.1"])) as h2:
        assert h2.sock.selected_alpn_protocol() == "h2"  # type: ignore[union-attr]
        answer = h2.get("/scope")
    assert json.loads(answer.body)["scheme"] == "https"
    assert json.loads(answer.body)["http_version"] == "2"
    old = tls_client_context(ca, ["http/1.1"])
    response = httpx.get(server.url + "/plain", verify=old)
    assert (response.http_version, response.text) == ("HTTP/1.1", "ok /plain")


def test_graceful_stop_sends_goaway_and_finishes_the_stream(serve: ServerFactory, engine: str) -> None:
    server = serve("asgi_apps:app", "--http2-engine", engine)
    with client(server) as h2:
        sid = h2.request("GET", "/slow?s=1&id=h2stop")
        time.sleep(0.3)
        server.send_signal(15)
        answer = h2.wait(sid)
        h2.read(lambda: h2.goaway is not None and h2.closed, 10)
    assert (answer.status, answer.body) == (200, b"slept")
    assert h2.goaway is not None and h2.goaway.error_code == 0


def test_max_requests_per_connection_then_goaway(serve: ServerFactory, engine: str) -> None:
    server = serve("asgi_apps:app", "--http2-engine", engine, "--http2-max-requests", "3")
    with client(server) as h2:
        answers = [h2.get(f"/r{i}") for i in range(3)]
        h2.read(lambda: h2.goaway is not None, 5)
    assert [a.status for a in answers] == [200, 200, 200]
    assert h2.goaway is not None and h2.goaway.last_stream_id == 5


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_prior_knowledge_and_upgrade(asgi: ServerProcess) -> None:
    for flag in ("--http2-prior-knowledge", "--http2"):
        out = subprocess.run(
            ["curl", "-s", flag, "-o", "-", "-w", "|%{http_version}", asgi.url + "/plain"],
            capture_output=True, text=True, timeout=10, check=True,
        )  # fmt: skip
        assert out.stdout == "ok /plain|2", (flag, out.stdout)
