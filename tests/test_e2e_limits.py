"""End to end, the server's defences: size limits, malformed and smuggling requests, deadlines, the
connection limit, and flow control both ways (memory stays bounded whatever the client or app does).
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time

import httpx
import pytest
from server_process import ServerFactory, ServerProcess, Wire, request

MiB = 1 << 20


@pytest.fixture(scope="module")
def limited(module_serve: ServerFactory) -> ServerProcess:
    return module_serve(
        "asgi_apps:app",
        "--limit-request-line", "1024",
        "--limit-request-field-size", "512",
        "--limit-request-fields", "20",
        "--limit-request-headers-size", "4096",
        "--limit-request-body", "1000",
        "--header-timeout", "1",
        "--keep-alive", "1",
    )  # fmt: skip


@pytest.fixture(scope="module")
def plain(module_serve: ServerFactory) -> ServerProcess:
    return module_serve("asgi_apps:app")


def refused(server: ServerProcess, raw: bytes) -> tuple[int, bytes]:
    """Send ``raw``; expect one error response and a close. Return its status and anything after it."""
    with Wire(server.connect()) as w:
        w.send(raw)
        response = w.read_response()
        assert response.header("connection") == "close", response
        rest = w.read_to_eof()
    return response.status, rest


def assert_still_serving(server: ServerProcess) -> None:
    assert httpx.get(server.url + "/alive").content == b"ok /alive"


# -- size limits -----------------------------------------------------------------------------------------


def test_request_line_too_long_is_414(limited: ServerProcess) -> None:
    assert refused(limited, request("GET", "/" + "a" * 2000)) == (414, b"")
    assert_still_serving(limited)


def test_request_line_at_the_limit_is_fine(limited: ServerProcess) -> None:
    target = "/x" + "a" * 900
    with Wire(limited.connect()) as w:
        w.send(request("GET", target))
        assert w.read_response().body == f"ok {target}".encode()


@pytest.mark.parametrize(
    ("name", "headers"),
    [
        ("field too large", [("X-Big", "b" * 600)]),
        ("too many fields", [(f"X-H{i}", "v") for i in range(25)]),
        ("all fields too large", [(f"X-H{i}", "v" * 450) for i in range(10)]),
    ],
)
def test_header_limits_are_431(limited: ServerProcess, name: str, headers: list[tuple[str, str]]) -> None:
    assert refused(limited, request("GET", "/", headers))[0] == 431
    assert_still_serving(limited)


def test_body_over_the_limit_with_content_length_is_413(limited: ServerProcess) -> None:
    # Refused from the head alone: the client need not send the body (it may never read our answer else).
    with Wire(limited.connect()) as w:
        w.send(request("POST", "/echo", [("Content-Length", "2000")]))
        response = w.read_response()
        assert response.status == 413
        assert w.closed_by_peer(5)
    assert_still_serving(limited)


def test_body_over_the_limit_when_chunked_is_413(limited: ServerProcess) -> None:
    with Wire(limited.connect()) as w:
        w.send(request("POST", "/echo", [("Transfer-Encoding", "chunked")]))
        w.send(b"258\r\n" + b"a" * 600 + b"\r\n")  # 600: within the limit, the app is already reading
        time.sleep(0.1)
        w.send(b"258\r\n" + b"b" * 600 + b"\r\n")  # 1200 in all: over it
        response = w.read_response()
        assert response.status == 413
        assert w.closed_by_peer(5)
    time.sleep(0.2)
    # The app saw the client go away; answering then is not an error worth a log line, and nothing the
    # app sends leaks onto the closed connection.
    assert "Traceback" not in limited.output()
    assert "Exception in" not in limited.output()
    assert_still_serving(limited)


def test_body_at_the_limit_is_accepted(limited: ServerProcess) -> None:
    assert httpx.post(limited.url + "/echo", content=b"z" * 1000).content == b"z" * 1000


# -- malformed requests ----------------------------------------------------------------------------------


def test_malformed_request_is_400_and_close_and_the_worker_goes_on(limited: ServerProcess) -> None:
    status, rest = refused(limited, b"GET /not http HTTP/1.1\r\n\r\n")
    assert (status, rest) == (400, b"")
    assert_still_serving(limited)  # a second connection works


def test_a_first_line_that_is_neither_http1_nor_http2_closes_without_an_answer(limited: ServerProcess) -> None:
    """Not HTTP/1.x, and not HTTP/2's preface: a client that speaks neither would read an HTTP/1.1 answer as
    garbage (h2spec's invalid-preface case reads it as a frame), so the connection just closes."""
    with Wire(limited.connect()) as w:
        w.send(b"THIS IS NOT HTTP\r\n\r\n")
        assert w.closed_by_peer(5)
        assert w.buffer == b""
    assert_still_serving(limited)


def test_requests_before_the_bad_bytes_are_still_answered(limited: ServerProcess) -> None:
    with Wire(limited.connect()) as w:
        w.send(request("GET", "/good") + b"GET /bad HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n")
        first = w.read_response()
        second = w.read_response()
        assert (first.status, first.body) == (200, b"ok /good")
        assert second.status == 400
        assert w.closed_by_peer(5)


SMUGGLED = b"GET /smuggled?id=%s HTTP/1.1\r\nHost: x\r\n\r\n"
CHUNKED_POST = b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"

SMUGGLING = {
    "content-length and transfer-encoding": b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "transfer-encoding and content-length": b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
    b"Content-Length: 5\r\n\r\n0\r\n\r\n",
    "transfer-encoding by obs-fold": b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n chunked\r\n\r\n"
    b"0\r\n\r\n",
    "obs-fold hiding transfer-encoding": b"POST /echo HTTP/1.1\r\nHost: x\r\nX-Pad: a\r\n Transfer-Encoding: "
    b"chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
    "duplicate content-length": b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 40\r\n\r\n"
    b"hello",
    "content-length list": b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\n\r\nhello",
    "signed content-length": b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\nhello",
    "chunk size overflow": CHUNKED_POST + b"FFFFFFFFFFFFFFFFF1\r\nhello\r\n0\r\n\r\n",
    "bare LF in the head": b"POST /echo HTTP/1.1\nHost: x\nContent-Length: 5\n\nhello",
    "bare LF after a chunk size": CHUNKED_POST + b"5\nhello\r\n0\r\n\r\n",
    "chunk data longer than its size": CHUNKED_POST + b"5\r\nhelloXX\r\n0\r\n\r\n",
    "invalid chunk extension": CHUNKED_POST + b"5;e\x01xt\r\nhello\r\n0\r\n\r\n",
    "transfer-encoding in HTTP/1.0": b"POST /echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "transfer-encoding in HTTP/1.0 keep-alive": b"POST /echo HTTP/1.0\r\nConnection: keep-alive\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "space before colon": b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length : 5\r\n\r\nhello",
    "space before colon in transfer-encoding": b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n"
    b"\r\n0\r\n\r\n",
    "NUL in a header value": b"POST /echo HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\nContent-Length: 5\r\n\r\nhello",
    "vertical tab before a value": b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\x0bchunked\r\n\r\n0\r\n\r\n",
    "chunked not the final coding": b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n"
    b"0\r\n\r\n",
    "chunked twice": b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "unknown transfer coding": b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
    "two hosts": b"GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",
    "no host in HTTP/1.1": b"GET / HTTP/1.1\r\n\r\n",
}


@pytest.mark.parametrize("name", list(SMUGGLING))
def test_request_smuggling_is_refused(limited: ServerProcess, name: str) -> None:
    ident = name.replace(" ", "-").replace("/", "")
    status, rest = refused(limited, SMUGGLING[name] + SMUGGLED % ident.encode())
    assert status in (400, 501)
    assert b"HTTP/1.1" not in rest  # one answer, the refusal, then the close
    time.sleep(0.05)
    assert not limited.record(f"smuggled-{ident}").exists()
    assert_still_serving(limited)


# -- deadlines -------------------------------------------------------------------------------------------


def test_half_a_head_gets_408_within_the_header_timeout(limited: ServerProcess) -> None:
    with Wire(limited.connect(timeout=10)) as w:
        started = time.monotonic()
        w.send(b"GET / HTTP/1.1\r\nHost: x\r\n")  # and nothing more
        response = w.read_response()
        elapsed = time.monotonic() - started
        assert response.status == 408
        assert 0.5 < elapsed < 5  # --header-timeout 1
        assert w.closed_by_peer(5)


def test_a_trickling_head_is_cut_at_the_header_timeout(limited: ServerProcess) -> None:
    # A slowloris: bytes keep coming, but the head never ends. Arriving data must not extend the deadline.
    with Wire(limited.connect()) as w:
        w.send(b"GET / HTTP/1.1\r\nHost: x\r\n")
        w.sock.settimeout(0.2)
        started = time.monotonic()
        answer = b""
        while not answer and time.monotonic() - started < 8:
            try:
                w.sock.sendall(b"X: y\r\n")
                answer = w.sock.recv(65536)
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                break
        elapsed = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert elapsed < 5


def test_idle_keep_alive_connection_is_closed(limited: ServerProcess) -> None:
    with Wire(limited.connect(timeout=10)) as w:
        w.send(request("GET", "/ka"))
        assert w.read_response().status == 200
        idle_since = time.monotonic()
        assert w.closed_by_peer(6)  # --keep-alive 1
        assert time.monotonic() - idle_since > 0.5
        assert w.buffer == b""  # closed quietly: no 408 for a connection that had not started a request


def test_limit_concurrency_reclaims_the_longest_idle_then_answers_503(serve: ServerFactory) -> None:
    """At the limit a newcomer takes the slot of the keep-alive connection idle the longest (nginx's reuse);
    only when every connection is inside a request is it answered 503."""
    server = serve("asgi_apps:app", "--limit-concurrency", "2")
    first, second = Wire(server.connect()), Wire(server.connect())
    try:
        for w in (first, second):  # both served, then idle on keep-alive: first the longer
            w.send(request("GET", "/held"))
            assert w.read_response().status == 200
            time.sleep(0.05)
        with Wire(server.connect()) as third:
            third.send(request("GET", "/third"))
            assert third.read_response().status == 200  # served, not refused
        assert first.closed_by_peer(5)  # the longest idle made room
        second.send(request("GET", "/still"))
        assert second.read_response().status == 200  # the other kept its connection
        second.send(request("GET", "/slow?s=2"))
        time.sleep(0.2)
        with Wire(server.connect()) as busy:  # reclaims nothing yet: second is inside a request, busy is new
            busy.send(request("GET", "/slow?s=2"))
            time.sleep(0.3)
            with Wire(server.connect()) as refused:
                response = refused.read_response()
                assert response.status == 503  # both are inside requests: nothing to reclaim
                assert refused.closed_by_peer(5)
            assert busy.read_response().status == 200
        assert second.read_response().status == 200
    finally:
        first.close()
        second.close()


def test_limit_concurrency_reclaims_a_stalled_head(serve: ServerFactory) -> None:
    server = serve("asgi_apps:app", "--limit-concurrency", "1")
    with Wire(server.connect()) as stalled:
        stalled.send(b"GET /never HTTP/1.1\r\nHost: x\r\n")  # and no more
        time.sleep(0.2)
        with Wire(server.connect()) as newcomer:
            newcomer.send(request("GET", "/new"))
            assert newcomer.read_response().status == 200
        assert stalled.closed_by_peer(5)


# -- flow control ----------------------------------------------------------------------------------------


def test_reading_pauses_while_the_app_does_not_consume_the_body(plain: ServerProcess) -> None:
    total = 8 * MiB
    chunk = b"u" * 65536
    rss_before = plain.rss_kib()
    sock = plain.connect(timeout=10)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)  # fixed: no send-buffer autotuning
    with Wire(sock) as w:
        w.send(request("POST", "/upload-gated?id=up", [("Content-Length", str(total))]))
        plain.wait_record("upload-waiting-up")
        sent = 0
        sock.settimeout(1.0)
        try:
            while sent < total:
                sent += sock.send(chunk[: total - sent])
        except TimeoutError:
            pass  # the send blocked: the server has stopped reading
        assert sent < 4 * MiB, f"{sent} bytes of {total} went in while the app read nothing"
        grown = plain.rss_kib() - rss_before
        assert grown < 4096, f"server RSS grew by {grown} KiB while holding back an 8 MiB upload"

        plain.record("go-up").write_text("")  # now the app reads, and the upload flows again
        sock.settimeout(20)
        while sent < total:
            sent += sock.send(chunk[: total - sent])
        response = w.read_response()
    assert (response.status, response.body) == (200, str(total).encode())
    assert plain.wait_record("upload-total-up") == str(total)


def progress(server: ServerProcess, ident: str) -> int:
    return int(httpx.get(server.url + f"/progress?id={ident}").json())


def test_send_waits_while_the_client_does_not_read(plain: ServerProcess) -> None:
    total = 64 * MiB
    rss_before = plain.rss_kib()
    sock = plain.connect(timeout=20)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    with Wire(sock) as w:
        w.send(request("GET", "/big-stream?mb=64&id=down"))
        # Wait until the app's progress stops moving (three equal readings): send() is blocked.
        deadline = time.monotonic() + 10
        readings = [-1]
        while not (len(readings) >= 3 and readings[-1] == readings[-2] == readings[-3] > 0):
            time.sleep(0.25)
            readings.append(progress(plain, "down"))
            assert time.monotonic() < deadline, f"the app never stalled: {readings}"
        last = readings[-1]
        assert last < 16 * MiB, f"the app sent {last} bytes to a client that read nothing"
        grown = plain.rss_kib() - rss_before
        assert grown < 16 * 1024, f"server RSS grew by {grown} KiB while the client read nothing"

        response = w.read_response()  # reading resumes the app, to the end
    assert response.status == 200
    assert len(response.body) == total
    assert progress(plain, "down") == total


@pytest.mark.parametrize(
    "raw",
    [
        b"GET /a HTTP/1.1 \r\nHost: x\r\n\r\n",  # answered 400, not closed as another protocol's bytes
        b"GET /a#frag HTTP/1.1\r\nHost: x\r\n\r\n",
        b"CONNECT /a HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /a HTTP/1.1\r\nHost: x y\r\n\r\n",
    ],
)
def test_strict_request_lines_and_hosts_are_400_over_sockets(limited: ServerProcess, raw: bytes) -> None:
    with Wire(limited.connect()) as w:
        w.send(raw)
        assert w.read_response().status == 400
        assert w.closed_by_peer(5)
    assert_still_serving(limited)


def test_absolute_form_reaches_the_app_with_its_own_host(serve: ServerFactory) -> None:
    server = serve("asgi_apps:app")
    with Wire(server.connect()) as w:
        w.send(b"GET http://shop.example:8080/scope HTTP/1.1\r\nHost: elsewhere\r\nConnection: close\r\n\r\n")
        response = w.read_response()
    scope = json.loads(response.body)
    assert ["host", "shop.example:8080"] in scope["headers"]
    assert scope["path"] == "/scope"


RAISE_LIMIT = (
    "import os, resource, sys; resource.setrlimit(resource.RLIMIT_NOFILE, (256, 4096)); "
    "os.execv(sys.argv[1], sys.argv[1:])"
)


def test_the_worker_raises_its_open_file_limit_to_the_hard_one(serve: ServerFactory) -> None:
    server = serve("asgi_apps:app", launcher=[sys.executable, "-c", RAISE_LIMIT])
    server.wait_output("Raised the open-file limit (RLIMIT_NOFILE) from 256 to 4096")
    with open(f"/proc/{server.pid}/limits") as f:
        line = next(line for line in f if line.startswith("Max open files"))
    assert line.split()[3:5] == ["4096", "4096"], line


# -- the body deadline (--body-timeout) ------------------------------------------------------------------

WSGI_READER = """
import sys
import threading

def app(environ, start_response):
    try:
        body = environ["wsgi.input"].read()
    except Exception as exc:
        print(f"read failed: {type(exc).__name__}", file=sys.stderr, flush=True)
        raise
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]
"""


@pytest.mark.parametrize("app", ["asgi", "wsgi"])
def test_a_body_that_stops_arriving_gets_408_and_the_app_sees_the_client_gone(serve: ServerFactory, app: str) -> None:
    if app == "asgi":
        server = serve("asgi_apps:app", "--body-timeout", "0.5")
        target = "/echo"
    else:
        server = serve("reader:app", "--body-timeout", "0.5", sources={"reader.py": WSGI_READER})
        target = "/"
    with Wire(server.connect()) as w:
        # Past what the WSGI adapter reads ahead (64 KiB), so that the app is running and reading when it stops.
        head = f"POST {target} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n".encode()
        w.send(head + b"x" * 100_000)
        started = time.monotonic()
        response = w.read_response()
        assert response.status == 408, response
        assert 0.4 < time.monotonic() - started < 3
        assert w.closed_by_peer(5)
    if app == "wsgi":
        server.wait_output("read failed: ClientDisconnected")
        assert httpx.get(server.url + "/").status_code == 200  # the worker serves on
    else:
        assert_still_serving(server)


def test_a_slow_but_steady_body_is_not_cut(serve: ServerFactory) -> None:
    # Without a minimum rate, only the gap counts (3 bytes/s is far under the default --body-min-rate).
    server = serve("asgi_apps:app", "--body-timeout", "0.6", "--body-min-rate", "0")
    with Wire(server.connect()) as w:
        w.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 8\r\nConnection: close\r\n\r\n")
        for _ in range(8):  # a byte every 0.3 s: 2.4 s in all, never 0.6 s without one
            time.sleep(0.3)
            w.send(b"y")
        response = w.read_response()
    assert (response.status, response.body) == (200, b"y" * 8)


def test_the_app_not_reading_does_not_count_against_the_client(serve: ServerFactory) -> None:
    """The app holds the body back (reading pauses at 64 KiB): the client is not late, and is not cut."""
    server = serve("asgi_apps:app", "--body-timeout", "0.5")
    body = b"z" * (1 << 20)
    with Wire(server.connect()) as w:
        w.send(b"POST /upload-gated?id=held HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body))
        w.sock.settimeout(10)
        sender = threading.Thread(target=w.sock.sendall, args=(body,))
        sender.start()
        server.wait_record("upload-waiting-held")
        time.sleep(1.5)  # three body timeouts with the app not reading
        server.record("go-held").write_text("")
        response = w.read_response()
        sender.join(10)
    assert (response.status, response.body) == (200, str(len(body)).encode())
