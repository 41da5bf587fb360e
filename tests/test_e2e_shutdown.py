"""End to end, stopping: graceful shutdown on SIGTERM and SIGINT (in-flight requests finish, idle
connections close, new ones are refused, lifespan shutdown runs), the graceful timeout, and a second
signal that stops at once.
"""

from __future__ import annotations

import signal
import socket
import time

import httpx
import pytest
from server_process import ServerFactory, ServerProcess, Wire, in_background, request

SIGNALS = [pytest.param(signal.SIGTERM, id="SIGTERM"), pytest.param(signal.SIGINT, id="SIGINT")]


def wait_refused(server: ServerProcess, timeout: float = 5.0) -> None:
    """Wait until connecting is refused: the listener is closed."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            sock = socket.create_connection(server.address, timeout=1)
        except ConnectionRefusedError:
            return
        sock.close()  # raced the close: it was accepted (and will get a 503); try again
        assert time.monotonic() < deadline, "the server still accepts connections after the stop signal"
        time.sleep(0.02)


@pytest.mark.parametrize("sig", SIGNALS)
def test_graceful_shutdown(serve: ServerFactory, sig: signal.Signals) -> None:
    server = serve("asgi_apps:app")
    idle = Wire(server.connect())
    idle.send(request("GET", "/warm-up"))
    assert idle.read_response().status == 200  # an idle keep-alive connection from now on

    thread, result = in_background(server.url + "/slow?s=1.5&id=graceful")
    server.wait_record("slow-started-graceful")
    server.send_signal(sig)

    assert idle.closed_by_peer(5)  # idle connections are closed at once
    idle.close()
    wait_refused(server)
    thread.join(10)
    response = result["response"]
    assert (response.status_code, response.content) == (200, b"slept")  # the in-flight one completed
    assert response.headers["connection"] == "close"
    assert server.wait(10) == 0
    assert server.record("lifespan-shutdown").exists()
    out = server.output()
    assert f"Received {sig.name}: shutting down gracefully" in out
    assert "Waiting for 1 in-flight request(s) to finish" in out
    assert "Shutdown complete" in out
    assert "Traceback" not in out


def test_work_after_the_response_finishes_within_the_graceful_timeout(serve: ServerFactory) -> None:
    """The connection is done when the response is, but the app is not: the stop waits for it too."""
    server = serve("asgi_apps:app")
    response = httpx.get(server.url + "/background?s=0.7&id=bg", headers={"connection": "close"})
    assert response.content == b"answered"
    server.wait_record("background-started-bg")
    server.send_signal(signal.SIGTERM)
    assert server.wait(10) == 0
    assert server.record("background-done-bg").exists()


@pytest.mark.parametrize("sig", SIGNALS)
def test_graceful_timeout_cuts_long_requests(serve: ServerFactory, sig: signal.Signals) -> None:
    server = serve("asgi_apps:app", "--graceful-timeout", "0.5")
    thread, result = in_background(server.url + "/slow?s=5&id=cut")
    server.wait_record("slow-started-cut")
    signalled = time.monotonic()
    server.send_signal(sig)
    code = server.wait(10)
    took = time.monotonic() - signalled
    thread.join(10)
    assert code == 0
    assert took < 3.5  # 0.5 s of grace, then cut: nowhere near the 5 s the request wanted
    assert isinstance(result.get("error"), httpx.RemoteProtocolError)  # closed without a response
    assert not server.record("slow-done-cut").exists()
    assert server.record("lifespan-shutdown").exists()
    assert "Graceful timeout: cutting 1 request(s) still in flight" in server.output()


def test_second_signal_stops_at_once(serve: ServerFactory) -> None:
    server = serve("asgi_apps:app")  # default graceful timeout: 30 s
    thread, result = in_background(server.url + "/slow?s=20&id=twice")
    server.wait_record("slow-started-twice")
    server.send_signal(signal.SIGTERM)
    server.wait_output("Waiting for 1 in-flight request(s) to finish")
    signalled = time.monotonic()
    server.send_signal(signal.SIGTERM)
    assert server.wait(10) == 0
    assert time.monotonic() - signalled < 5
    thread.join(10)
    assert "error" in result
    assert "Received SIGTERM: stopping now" in server.output()


def test_requests_on_open_connections_after_the_signal_are_answered_with_close(serve: ServerFactory) -> None:
    # A keep-alive connection busy with a request when the signal comes: its response says "close".
    server = serve("asgi_apps:app")
    with Wire(server.connect()) as w:
        w.send(request("GET", "/slow?s=0.8&id=busy"))
        server.wait_record("slow-started-busy")
        server.send_signal(signal.SIGTERM)
        response = w.read_response()
        assert (response.status, response.body) == (200, b"slept")
        assert response.header("connection") == "close"
        assert w.closed_by_peer(5)
    assert server.wait(10) == 0


def test_cut_requests_end_without_spurious_errors(serve: ServerFactory) -> None:
    server = serve("asgi_apps:app", "--graceful-timeout", "0.2")
    thread, _ = in_background(server.url + "/slow?s=5&id=spurious")
    server.wait_record("slow-started-spurious")
    assert server.stop() == 0
    thread.join(10)
    out = server.output()
    assert "Task was destroyed but it is pending" not in out
    assert "Exception in ASGI application" not in out
