"""End to end, HTTP/1.1 on the wire: a real server process, real sockets, httpx and hand-written bytes.

One server (tests/apps/asgi_apps.py) serves most tests of this module; tests that need other flags start
their own. Raw sockets are used wherever the exact bytes matter (framing, 100 Continue, connection reuse).
"""

from __future__ import annotations

import email.utils
import socket
import struct
import threading
import time

import httpx
import pytest
from server_process import ServerFactory, ServerProcess, Wire, request


@pytest.fixture(scope="module")
def server(module_serve: ServerFactory) -> ServerProcess:
    return module_serve("asgi_apps:app")


def wire(server: ServerProcess) -> Wire:
    return Wire(server.connect())


# -- connection reuse ---------------------------------------------------------------------------------------


def test_keep_alive_serves_several_requests_on_one_connection(server: ServerProcess) -> None:
    with httpx.Client(base_url=server.url) as client:
        ports = {client.get("/scope", params={"n": i}).json()["client"][1] for i in range(5)}
    assert len(ports) == 1  # the app saw the same client port five times: one TCP connection

    with wire(server) as w:
        for i in range(3):
            w.send(request("POST", "/echo", body=b"request %d" % i))
            response = w.read_response()
            assert response.status == 200
            assert response.body == b"request %d" % i
            assert response.header("connection") is None  # HTTP/1.1 persists without saying so
        assert not w.closed_by_peer(0.2)


def test_pipelined_requests_are_answered_in_order(server: ServerProcess) -> None:
    # The first is slow, so answering in order means holding the later ones back.
    pipeline = (
        request("GET", "/slow?s=0.3&id=pipeline") + request("POST", "/echo", body=b"second") + request("GET", "/third")
    )
    with wire(server) as w:
        w.send(pipeline)
        bodies = [w.read_response().body for _ in range(3)]
        assert bodies == [b"slept", b"second", b"ok /third"]
        assert not w.closed_by_peer(0.1)


def test_chunked_request_body_is_decoded(server: ServerProcess) -> None:
    with wire(server) as w:
        w.send(request("POST", "/echo", [("Transfer-Encoding", "chunked")]))
        w.send(b"7\r\nhello, \r\n")
        w.send(b"8;note=extension\r\nchunked \r\n")
        w.send(b"5\r\nworld\r\n0\r\nx-trailer: ignored\r\n\r\n")
        response = w.read_response()
        assert response.status == 200
        assert response.body == b"hello, chunked world"
        # and the connection is still in sync for the next request
        w.send(request("GET", "/after-chunked"))
        assert w.read_response().body == b"ok /after-chunked"


def test_chunked_upload_from_httpx(server: ServerProcess) -> None:
    def parts():  # an iterator has no length, so httpx sends it chunked
        for i in range(50):
            yield b"%04d" % i

    response = httpx.post(server.url + "/scope", content=parts())
    assert response.status_code == 200
    view = response.json()
    assert ["transfer-encoding", "chunked"] in view["headers"]
    assert view["body_length"] == 200


# -- Expect: 100-continue -----------------------------------------------------------------------------------


def test_no_100_continue_when_the_app_never_reads_the_body(server: ServerProcess) -> None:
    with wire(server) as w:
        w.send(request("POST", "/noread", [("Content-Length", "1000"), ("Expect", "100-continue")]))
        response = w.read_response()  # the body was never sent; the final answer comes anyway
        assert response.status == 200
        assert response.body == b"did not read the body"
        assert b"100 Continue" not in response.raw
        # The client holds back a body the server will never read, so the connection cannot carry
        # another request: the server says so and closes.
        assert response.header("connection") == "close"
        assert w.closed_by_peer(5)
        assert w.buffer == b""


def test_100_continue_then_final_status_when_the_app_reads(server: ServerProcess) -> None:
    with wire(server) as w:
        w.send(request("POST", "/read", [("Content-Length", "11"), ("Expect", "100-continue")]))
        interim = w.read_response()
        assert (interim.status, interim.raw) == (100, b"HTTP/1.1 100 Continue\r\n\r\n")
        w.send(b"hello world")
        final = w.read_response()
        assert (final.status, final.body) == (200, b"read 11 bytes")
        w.send(request("GET", "/next"))  # the connection stays usable
        assert w.read_response().body == b"ok /next"


# -- HTTP/1.0 ------------------------------------------------------------------------------------------------


def test_http10_without_keep_alive_closes_after_the_response(server: ServerProcess) -> None:
    with wire(server) as w:
        w.send(request("GET", "/http10", version="1.0", host=""))
        response = w.read_response()
        assert response.version == "HTTP/1.1"  # RFC 9110 §2.5: we answer with our highest version
        assert response.status == 200
        assert response.body == b"ok /http10"
        assert response.header("connection") == "close"
        assert w.closed_by_peer(5)


def test_http10_keep_alive_is_echoed_and_honoured(server: ServerProcess) -> None:
    with wire(server) as w:
        for i in range(2):
            w.send(request("GET", f"/http10-ka-{i}", [("Connection", "keep-alive")], version="1.0", host=""))
            response = w.read_response()
            assert response.status == 200
            assert response.body == f"ok /http10-ka-{i}".encode()
            assert response.header("connection") == "keep-alive"
        assert not w.closed_by_peer(0.2)


def test_http10_scope_version(server: ServerProcess) -> None:
    with wire(server) as w:
        w.send(request("GET", "/scope", version="1.0", host=""))
        response = w.read_response()
    assert b'"http_version": "1.0"' in response.body


# -- response framing ------------------------------------------------------------------------------------


def test_head_sends_headers_but_no_body(server: ServerProcess) -> None:
    with wire(server) as w:
        w.send(request("POST", "/echo", body=b"0123456789"))
        get = w.read_response()
        w.send(request("HEAD", "/echo", [("Content-Length", "10")], body=b"0123456789"))
        head = w.read_response(head=True)
        assert head.status == 200
        assert head.header("content-length") == get.header("content-length") == "10"
        assert head.header("x-method") == "HEAD"
        assert w.buffer == b""
        assert not w.closed_by_peer(0.3)  # nothing more arrives: the app's body was not sent
        assert w.buffer == b""
        # The next response starts right where the HEAD head ended.
        w.send(request("GET", "/after-head"))
        assert w.read_response().body == b"ok /after-head"


def test_head_of_a_streamed_response_has_no_chunks(server: ServerProcess) -> None:
    with wire(server) as w:
        w.send(request("HEAD", "/stream?n=3"))
        head = w.read_response(head=True)
        assert head.status == 200
        assert not w.closed_by_peer(0.3)
        assert w.buffer == b""


def test_streamed_response_is_chunked_in_http11(server: ServerProcess) -> None:
    with wire(server) as w:
        w.send(request("GET", "/stream?n=3"))
        response = w.read_response()
    assert response.header("transfer-encoding") == "chunked"
    assert response.header("content-length") is None
    assert response.body == b"chunk-0\nchunk-1\nchunk-2\n"
    assert response.raw.endswith(b"8\r\nchunk-0\n\r\n8\r\nchunk-1\n\r\n8\r\nchunk-2\n\r\n0\r\n\r\n")


def test_streamed_response_is_close_delimited_in_http10(server: ServerProcess) -> None:
    with wire(server) as w:
        w.send(request("GET", "/stream?n=3", [("Connection", "keep-alive")], version="1.0", host=""))
        response = w.read_response()  # no length, no chunks: the body runs to the end of the connection
    assert response.header("transfer-encoding") is None
    assert response.header("content-length") is None
    assert response.header("connection") == "close"
    assert response.body == b"chunk-0\nchunk-1\nchunk-2\n"


def test_httpx_reads_a_streamed_response(server: ServerProcess) -> None:
    with httpx.Client(base_url=server.url) as client, client.stream("GET", "/stream?n=20") as response:
        lines = list(response.iter_lines())
    assert lines == [f"chunk-{i}" for i in range(20)]


# -- Date and Server -------------------------------------------------------------------------------------


def test_date_and_server_headers(server: ServerProcess) -> None:
    response = httpx.get(server.url + "/dated")
    assert response.headers["server"] == "monoceros"
    sent = email.utils.parsedate_to_datetime(response.headers["date"])
    assert response.headers["date"].endswith(" GMT")
    assert abs(sent.timestamp() - time.time()) < 60


def test_the_apps_server_header_replaces_ours(server: ServerProcess) -> None:
    response = httpx.get(server.url + "/own-server-header")
    assert response.headers.get_list("server") == ["custom-app"]


def test_no_date_and_no_server_header(serve: ServerFactory) -> None:
    quiet = serve("asgi_apps:app", "--no-date-header", "--no-server-header")
    response = httpx.get(quiet.url + "/plain")
    assert response.status_code == 200
    assert "date" not in response.headers
    assert "server" not in response.headers
    with wire(quiet) as w:  # the server's own error responses follow the same settings
        w.send(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")  # a request line, then a bad head
        error = w.read_response()
    assert error.status == 400
    assert error.header("date") is None
    assert error.header("server") is None


def test_keep_alive_0_says_close_and_closes(serve: ServerFactory) -> None:
    once = serve("asgi_apps:app", "--keep-alive", "0")
    with wire(once) as w:
        w.send(request("GET", "/plain"))
        response = w.read_response()
        assert response.status == 200
        assert response.header("connection") == "close"  # the client learns it before it tries a second request
        assert w.closed_by_peer(5)


# -- disconnects -------------------------------------------------------------------------------------------


def test_app_sees_the_client_disconnect_and_send_raises_oserror(server: ServerProcess) -> None:
    w = wire(server)
    w.send(request("GET", "/disconnect?id=gone"))
    assert server.wait_record("waiting-gone") == "http.request"
    # An abortive close (RST), as when a client process dies. A plain close() only sends FIN, which the
    # server cannot tell from a half-close (see the next test) until it writes.
    w.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    w.close()
    assert server.wait_record("disconnect-gone") == "http.disconnect"
    error = server.wait_record("send-error-gone")
    assert error == "start ClientDisconnected oserror=True"  # even http.response.start raises
    # A client that leaves is not an application error.
    time.sleep(0.1)
    assert "Exception in ASGI application (request: GET /disconnect?id=gone" not in server.output()


def test_half_closed_client_still_gets_its_responses(server: ServerProcess) -> None:
    with wire(server) as w:
        w.send(request("GET", "/slow?s=0.2&id=halfclose") + request("POST", "/echo", body=b"after half-close"))
        w.sock.shutdown(socket.SHUT_WR)  # "nothing more from me", as `nc -N` does
        first, second = w.read_response(), w.read_response()
        assert (first.body, second.body) == (b"slept", b"after half-close")
        assert w.closed_by_peer(5)


def test_server_keeps_serving_while_a_request_is_in_flight(server: ServerProcess) -> None:
    results: list[bytes] = []
    slow = threading.Thread(target=lambda: results.append(httpx.get(server.url + "/slow?s=1&id=par").content))
    slow.start()
    server.wait_record("slow-started-par")
    assert httpx.get(server.url + "/quick").content == b"ok /quick"
    assert not server.record("slow-done-par").exists()  # the quick one did not wait for the slow one
    slow.join(10)
    assert results == [b"slept"]
