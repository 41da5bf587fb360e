"""End to end, the deadlines a slow or stuck party meets: a request body that trickles (``--body-min-rate``)
or stops (``--body-timeout``) over HTTP/1.1 and HTTP/2, a client that stops reading (``--send-timeout``: a
shut TCP window, or an HTTP/2 stream window that never opens), and an app that takes too long
(``--request-timeout``), in ASGI and WSGI. Real servers, raw sockets and the h2 client; each app records
what it saw (tests/apps/deadline_apps.py).
"""

from __future__ import annotations

import socket
import time

import httpx
import pytest
from h2_support import ENGINES, H2Client
from server_process import ServerFactory, ServerProcess, Wire, request
from ws_support import new_key, upgrade_request

CANCEL = 0x8


@pytest.fixture(scope="module")
def paced(module_serve: ServerFactory) -> ServerProcess:
    return module_serve("deadline_apps:app", "--body-timeout", "1", "--body-min-rate", "200")


@pytest.fixture(scope="module")
def paced_wsgi(module_serve: ServerFactory) -> ServerProcess:
    return module_serve("deadline_apps:wsgi", "--body-timeout", "1", "--body-min-rate", "200")


@pytest.fixture(scope="module")
def sender(module_serve: ServerFactory) -> ServerProcess:
    return module_serve("deadline_apps:app", "--send-timeout", "1")


@pytest.fixture(scope="module")
def sender_wsgi(module_serve: ServerFactory) -> ServerProcess:
    return module_serve("deadline_apps:wsgi", "--send-timeout", "1")


@pytest.fixture(scope="module")
def timed(module_serve: ServerFactory) -> ServerProcess:
    return module_serve("deadline_apps:app", "--request-timeout", "1")


@pytest.fixture(scope="module")
def timed_wsgi(module_serve: ServerFactory) -> ServerProcess:
    return module_serve("deadline_apps:wsgi", "--request-timeout", "1", "--threads", "4")


def post_head(tag: str, length: int) -> bytes:
    return request("POST", f"/echo?tag={tag}", [("Content-Length", str(length))])


def trickle(server: ServerProcess, tag: str, piece: int, every: float, pieces: int) -> tuple[bytes, float]:
    """POST a body of ``piece * pieces`` bytes, ``piece`` bytes every ``every`` seconds, reading as it goes;
    return what came back (to EOF or the end of the time) and how long after the head the answer began."""
    sock = socket.create_connection(server.address)
    start = time.monotonic()
    answered = 0.0
    got = b""
    try:
        sock.sendall(post_head(tag, piece * pieces))
        sock.settimeout(every)
        for _ in range(pieces):
            try:
                sock.sendall(b"x" * piece)
            except OSError:
                break  # the server closed after its answer
            try:
                data = sock.recv(65536)
            except TimeoutError:
                continue
            got += data
            answered = answered or time.monotonic() - start
            if not data or b"\r\n\r\n" in got:
                break
        sock.settimeout(5)
        while True:
            try:
                data = sock.recv(65536)
            except (TimeoutError, ConnectionResetError):
                break
            if not data:
                break
            got += data
            answered = answered or time.monotonic() - start
    finally:
        sock.close()
    return got, answered


# -- the request body's pace --------------------------------------------------------------------------------


def test_a_body_slower_than_the_minimum_rate_gets_408(paced: ServerProcess) -> None:
    # 100 bytes/s, half the minimum: the first 1 s window brings 100 bytes where 200 are due.
    got, after = trickle(paced, "slow", 10, 0.1, 40)
    assert got.startswith(b"HTTP/1.1 408 "), got
    assert b"--body-min-rate" in got and b"connection: close" in got.lower(), got
    assert 0.9 <= after < 3.0, after
    assert paced.wait_record("echo-slow").startswith("disconnect after "), "the app saw the client go"


def test_a_body_at_the_minimum_rate_is_served(paced: ServerProcess) -> None:
    # 500 bytes/s for 2.4 s: three windows, each above the minimum.
    got, _ = trickle(paced, "brisk", 50, 0.1, 24)
    assert got.startswith(b"HTTP/1.1 200 ") and got.endswith(b"\r\n\r\n1200"), got


def test_a_body_that_stops_gets_408_and_wsgi_input_raises(paced_wsgi: ServerProcess) -> None:
    # More than the pool reads ahead, so the app is reading when the body stops.
    with Wire(paced_wsgi.connect()) as wire:
        started = time.monotonic()
        wire.send(post_head("stop", 300_000) + b"x" * 100_000)
        response = wire.read_response()
        waited = time.monotonic() - started
    assert response.status == 408 and b"did not arrive in time" in response.body, response
    assert 0.9 <= waited < 3.0, waited
    assert paced_wsgi.wait_record("wsgi-echo-stop") == "ClientDisconnected"


@pytest.mark.parametrize("http2", [False, True], ids=["http1", "h2"])
def test_time_the_app_spends_not_reading_is_not_the_clients(paced: ServerProcess, http2: bool) -> None:
    # /lazy leaves the body unread for 2.5 s (two whole windows), then reads it: reading pauses meanwhile
    # (HTTP/2: the window shuts), and that time does not count against the client.
    body = b"y" * 300_000
    if http2:
        with H2Client.connect(paced.host, paced.port) as h2:
            answer = h2.wait(h2.request("POST", "/lazy?s=2.5", body=body))
            assert (answer.status, answer.body) == (200, b"300000"), answer
        return
    reply = httpx.post(paced.url + "/lazy?s=2.5", content=body, timeout=10)
    assert (reply.status_code, reply.text) == (200, "300000")


def test_http2_a_body_that_stops_gets_408_on_its_stream_only(paced: ServerProcess) -> None:
    with H2Client.connect(paced.host, paced.port) as h2:
        started = time.monotonic()
        sid = h2.request("POST", "/echo?tag=h2stop", body=b"x" * 500, end=False)
        answer = h2.wait(sid, timeout=10)
        waited = time.monotonic() - started
        assert answer.status == 408 and b"did not arrive in time" in answer.body, answer
        assert 0.9 <= waited < 3.0, waited
        assert paced.wait_record("echo-h2stop") == "disconnect after 500"
        again = h2.wait(h2.request("POST", "/echo?tag=h2next", body=b"z" * 700))
        assert (again.status, again.body) == (200, b"700"), "the connection serves on"


def test_http2_a_body_that_trickles_gets_408(paced: ServerProcess) -> None:
    with H2Client.connect(paced.host, paced.port) as h2:
        sid = h2.request("POST", "/echo?tag=h2slow", [("content-length", "1000")], body=b"", end=False)
        started = time.monotonic()
        answer = h2.answers[sid]
        while not (answer.ended or answer.reset is not None) and time.monotonic() - started < 5:
            h2.send(sid, b"x" * 10)  # 100 bytes/s
            try:
                h2.read(lambda: answer.ended or answer.reset is not None, timeout=0.1)
            except TimeoutError:
                pass
        assert answer.status == 408 and b"--body-min-rate" in answer.body, answer
        assert time.monotonic() - started < 3.0


# -- a client that stops reading --------------------------------------------------------------------------------


def stalled_reader(server: ServerProcess, target: str) -> socket.socket:
    """A connection that asks for a response and then reads none of it (a small receive buffer, so the
    server's side fills soon)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(server.address)
    sock.sendall(request("GET", target))
    return sock


def test_a_client_that_stops_reading_is_cut_and_send_raises_at_once(sender: ServerProcess) -> None:
    sock = stalled_reader(sender, "/endless?tag=stall")
    try:
        started = time.monotonic()
        seen = sender.wait_record("endless-stall", timeout=10)
        waited = time.monotonic() - started
        assert seen.startswith("ClientDisconnected after "), seen
        assert 1.0 <= waited < 4.0, waited
        # ASGI 2.4: once the client is gone, send raises (an OSError) at once rather than waiting.
        again = sender.wait_record("endless-again-stall")
        assert float(again.split()[-1]) < 0.05, again
        sender.wait_output("took none of the response for 1 s (--send-timeout)")
        sock.settimeout(5)
        with pytest.raises(ConnectionResetError):  # aborted: what the server held is dropped, not sent
            while sock.recv(1 << 20):
                pass
    finally:
        sock.close()
    assert httpx.get(sender.url + "/echo").text == "0", "the worker serves on"


def test_a_wsgi_client_that_stops_reading_is_cut_and_the_iterable_closed(sender_wsgi: ServerProcess) -> None:
    sock = stalled_reader(sender_wsgi, "/endless?tag=stall")
    try:
        started = time.monotonic()
        closed = sender_wsgi.wait_record("wsgi-endless-stall", timeout=10)
        assert closed.startswith("closed after "), closed
        assert 1.0 <= time.monotonic() - started < 4.0
    finally:
        sock.close()
    assert httpx.get(sender_wsgi.url + "/echo").text == "0"


def test_http2_a_stream_window_that_never_opens_is_reset(sender: ServerProcess) -> None:
    with H2Client.connect(sender.host, sender.port, window=0) as h2:
        started = time.monotonic()
        sid = h2.request("GET", "/endless?tag=h2window")
        answer = h2.wait(sid, timeout=10)
        assert answer.reset == CANCEL, answer
        assert 1.0 <= time.monotonic() - started < 4.0
        assert sender.wait_record("endless-h2window").startswith("ClientDisconnected after ")
    sender.wait_output("its window took none of the response for 1 s (--send-timeout)")


# -- an app that takes too long --------------------------------------------------------------------------------


def test_an_asgi_app_past_the_request_timeout_is_cancelled_and_the_client_gets_503(timed: ServerProcess) -> None:
    started = time.monotonic()
    reply = httpx.get(timed.url + "/sleep?tag=slow&s=30", timeout=10)
    assert reply.status_code == 503 and b"took too long" in reply.content
    assert reply.headers["connection"] == "close"
    assert 1.0 <= time.monotonic() - started < 3.0
    assert timed.wait_record("sleep-slow") == "cancelled"
    timed.wait_output("(request: GET /sleep?tag=slow&s=30 HTTP/1.1 from")
    lines = [line for line in timed.output().splitlines() if "tag=slow" in line and "--request-timeout" in line]
    assert len(lines) == 1 and "answered 503 and cancelled the app" in lines[0], lines


def test_a_response_begun_before_the_request_timeout_is_cut(timed: ServerProcess) -> None:
    with Wire(timed.connect()) as wire:
        wire.send(request("GET", "/partial?tag=begun&s=30"))
        raw = wire.read_until(b"begun") + wire.read_to_eof()
    assert raw.startswith(b"HTTP/1.1 200 ") and b"begun" in raw, raw
    assert not raw.endswith(b"0\r\n\r\n"), "the chunked body must not end as if complete"
    assert timed.wait_record("sleep-begun") == "cancelled"


def test_an_app_that_finishes_in_time_is_untouched(timed: ServerProcess) -> None:
    reply = httpx.get(timed.url + "/sleep?tag=quick&s=0.2")
    assert (reply.status_code, reply.text) == (200, "late")
    assert timed.wait_record("sleep-quick") == "finished"


def test_a_wsgi_app_past_the_request_timeout_is_given_up(timed_wsgi: ServerProcess) -> None:
    started = time.monotonic()
    reply = httpx.get(timed_wsgi.url + "/sleep?tag=stuck&s=3", timeout=10)
    assert reply.status_code == 503 and 1.0 <= time.monotonic() - started < 2.5
    # The thread runs on; meanwhile the worker serves others.
    assert httpx.post(timed_wsgi.url + "/echo", content=b"abc").text == "3"
    assert timed_wsgi.wait_record("wsgi-sleep-stuck", timeout=10) == "returned"
    timed_wsgi.wait_output("The WSGI app given up earlier has returned: what it returned is discarded")
    out = timed_wsgi.output()
    assert "a thread cannot be stopped: the WSGI app runs on and what it returns is discarded" in out
    assert httpx.get(timed_wsgi.url + "/echo").text == "0"


def test_http2_an_app_past_the_request_timeout_gets_503_on_its_stream(timed: ServerProcess) -> None:
    with H2Client.connect(timed.host, timed.port) as h2:
        slow = h2.wait(h2.request("GET", "/sleep?tag=h2slow&s=30"), timeout=10)
        assert slow.status == 503 and b"took too long" in slow.body, slow
        quick = h2.wait(h2.request("GET", "/sleep?tag=h2quick&s=0.1"))
        assert (quick.status, quick.body) == (200, b"late"), "the connection serves on"
    assert timed.wait_record("sleep-h2slow") == "cancelled"


def test_a_websocket_client_that_stops_reading_is_cut(serve: ServerFactory) -> None:
    server = serve("ws_apps:app", "--send-timeout", "1")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(server.address)
    with Wire(sock) as wire:
        wire.send(upgrade_request("/flood?id=stall&size=65536&count=4096", key=new_key()))
        assert wire.read_response(head=True).status == 101
        started = time.monotonic()
        server.wait_output("took none of the response for 1 s (--send-timeout)", timeout=10)
        assert 1.0 <= time.monotonic() - started < 4.0
        sock.settimeout(5)
        with pytest.raises(ConnectionResetError):
            while sock.recv(1 << 20):
                pass
    sent = int(httpx.get(server.url + "/progress", params={"id": "stall"}).text)
    assert sent < 4096, "the app's sends stopped when the client was cut"


@pytest.mark.parametrize("engine", ENGINES)
def test_http2_deadlines_on_every_engine(serve: ServerFactory, engine: str) -> None:
    """The stream deadlines live above the engine; each engine tier must reset and answer alike."""
    server = serve(
        "deadline_apps:app", "--http2-engine", engine, "--send-timeout", "0.5", "--body-timeout", "0.5"
    )  # fmt: skip
    with H2Client.connect(server.host, server.port, window=0) as h2:
        assert h2.wait(h2.request("GET", "/endless?tag=window"), timeout=10).reset == CANCEL
    with H2Client.connect(server.host, server.port) as h2:
        stopped = h2.wait(h2.request("POST", "/echo?tag=stop", body=b"x" * 10, end=False), timeout=10)
        assert stopped.status == 408, stopped
        assert h2.get("/echo").body == b"0"
