"""End to end, the ASGI side: what a real app sees in its scope and messages, lifespan, app failures,
ASGI misuse, and trusted proxy headers. The apps are in tests/apps/asgi_apps.py.
"""

from __future__ import annotations

import json
import signal
import time

import httpx
import pytest
from server_process import RawResponse, ServerFactory, ServerProcess, Wire, request


@pytest.fixture(scope="module")
def server(module_serve: ServerFactory) -> ServerProcess:
    return module_serve("asgi_apps:app")


def scope_of(server: ServerProcess, raw_request: bytes) -> tuple[dict, tuple[str, int]]:
    """Send ``raw_request`` to /scope...; return the scope the app saw and the client's own address."""
    with Wire(server.connect()) as w:
        w.send(raw_request)
        response = w.read_response()
        local = w.sock.getsockname()
    assert response.status == 200, response
    return json.loads(response.body), local


# -- the scope ---------------------------------------------------------------------------------------------


def test_http_scope(server: ServerProcess) -> None:
    raw = request(
        "PATCH",
        "/scope/caf%C3%A9/a%2Fb%20c?x=1&y=%20&z=caf%C3%A9",
        [("X-Mixed-Case", "Value With  Inner Spaces"), ("X-Dup", "1"), ("X-Dup", "2"), ("X-Latin", "caf\xe9")],
        body=b"12345",
        host="example.test:8080",
    )
    scope, local = scope_of(server, raw)
    assert scope["type"] == "http"
    assert scope["asgi"] == {"version": "3.0", "spec_version": "2.4"}
    assert scope["http_version"] == "1.1"
    assert scope["method"] == "PATCH"
    assert scope["scheme"] == "http"
    assert scope["path"] == "/scope/café/a/b c"  # percent-decoded, as UTF-8
    assert scope["raw_path"] == "/scope/caf%C3%A9/a%2Fb%20c"  # exactly as sent
    assert scope["raw_path_type"] == "bytes"
    assert scope["query_string"] == "x=1&y=%20&z=caf%C3%A9"  # never decoded
    assert scope["query_string_type"] == "bytes"
    assert scope["root_path"] == ""
    assert scope["header_types"] == ["bytes/bytes"]
    assert scope["headers"] == [
        ["host", "example.test:8080"],
        ["x-mixed-case", "Value With  Inner Spaces"],  # name lowercased, value untouched
        ["x-dup", "1"],
        ["x-dup", "2"],  # repeated fields kept, in order
        ["x-latin", "caf\xe9"],  # obs-text byte passed through raw
        ["content-length", "5"],
    ]
    assert scope["client"] == [local[0], local[1]]
    assert scope["server"] == ["127.0.0.1", server.port]
    assert scope["state"] == {"greeting": "hello from lifespan"}  # from lifespan startup
    # the file body and trailer extensions, plain HTTP too
    assert scope["extensions"] == {"http.response.pathsend": {}, "http.response.trailers": {}}
    assert scope["body_length"] == 5


def test_each_request_gets_its_own_copy_of_the_lifespan_state(server: ServerProcess) -> None:
    for _ in range(2):  # /scope writes into its state; the next request must not see it
        assert httpx.get(server.url + "/scope").json()["state"] == {"greeting": "hello from lifespan"}


def test_absolute_form_target(server: ServerProcess) -> None:
    scope, _ = scope_of(server, request("GET", "http://example.test/scope/abs?q=1"))
    assert (scope["path"], scope["query_string"]) == ("/scope/abs", "q=1")


def test_root_path_is_part_of_path(serve: ServerFactory) -> None:
    mounted = serve("asgi_apps:app", "--root-path", "/api")
    scope, _ = scope_of(mounted, request("GET", "/scope/items%20x?a=b"))
    assert scope["root_path"] == "/api"
    assert scope["path"] == "/api/scope/items x"  # as uvicorn does: path includes root_path
    assert scope["raw_path"] == "/api/scope/items%20x"
    assert scope["query_string"] == "a=b"


# -- request body messages ------------------------------------------------------------------------------------


def test_large_pieces_sent_together_arrive_in_order_and_without_waiting_for_the_end(server: ServerProcess) -> None:
    """Large body pieces sent in one go are written together (see exchange.py _COALESCE_MAX); a small piece
    between them keeps its place, and nothing waits for the app's next, much later, send."""
    expected = b"A" * 20000 + b"b" * 10 + b"C" * 30000 + b"D" * 40000
    with server.connect() as sock:
        sock.sendall(request("GET", "/mixed-stream"))
        started = time.monotonic()
        received = b""
        while b"4\r\nend" not in received and len(_dechunk(received)) < len(expected):
            received += sock.recv(65536)
        took = time.monotonic() - started
    assert took < 0.8, f"the pieces took {took:.2f} s: they waited for the app's last send (1 s later)"
    assert _dechunk(received).startswith(expected)


def _dechunk(raw: bytes) -> bytes:
    """The body of a chunked response received so far (complete chunks only)."""
    body = raw.partition(b"\r\n\r\n")[2]
    out = b""
    while True:
        line, sep, rest = body.partition(b"\r\n")
        if not sep:
            return out
        size = int(line, 16)
        if size == 0 or len(rest) < size + 2:
            return out
        out += rest[:size]
        body = rest[size + 2 :]


def test_request_body_streams_as_several_messages(server: ServerProcess) -> None:
    with Wire(server.connect()) as w:
        w.send(request("POST", "/messages?id=chunked", [("Transfer-Encoding", "chunked")]))
        sent = 0
        for piece in (b"first", b"second", b"third"):
            w.send(b"%x\r\n%s\r\n" % (len(piece), piece))
            sent += len(piece)
            server.wait_record("messages-chunked", equals=str(sent))  # the app has it before the next one
        w.send(b"0\r\n\r\n")
        seen = json.loads(w.read_response().body)
    assert seen == [[5, True], [6, True], [5, True], [0, False]]


def test_content_length_body_in_pieces(server: ServerProcess) -> None:
    with Wire(server.connect()) as w:
        w.send(request("POST", "/messages?id=length", [("Content-Length", "12")]))
        for sent, piece in ((4, b"abcd"), (8, b"efgh")):
            w.send(piece)
            server.wait_record("messages-length", equals=str(sent))
        w.send(b"ijkl")  # the last piece completes the body: more_body is False with it
        seen = json.loads(w.read_response().body)
    assert seen == [[4, True], [4, True], [4, False]]


def test_empty_body_is_one_message(server: ServerProcess) -> None:
    assert httpx.get(server.url + "/messages").json() == [[0, False]]


# -- ASGI 2 ------------------------------------------------------------------------------------------------


def test_asgi2_function_app_is_detected_and_wrapped(serve: ServerFactory) -> None:
    app2 = serve("asgi_apps:asgi2_function")
    assert "Serving ASGI2 app" in app2.output()
    response = httpx.post(app2.url + "/path", content=b"body")
    assert response.content == b"asgi2 function /path body"


def test_asgi2_class_app_with_interface_flag(serve: ServerFactory) -> None:
    app2 = serve("asgi_apps:ASGI2App", "--interface", "asgi2")
    response = httpx.post(app2.url + "/cls", content=b"body")
    assert response.content == b"asgi2 class /cls body"


def test_asgi2_class_app_is_detected(serve: ServerFactory) -> None:
    app2 = serve("asgi_apps:ASGI2App")
    assert "Serving ASGI2 app" in app2.output()
    assert httpx.post(app2.url + "/cls", content=b"body").content == b"asgi2 class /cls body"


# -- lifespan ----------------------------------------------------------------------------------------------


def test_lifespan_startup_and_shutdown_run(serve: ServerFactory) -> None:
    app = serve("asgi_apps:app")
    assert app.record("lifespan-startup").exists()  # before the server said it was serving
    assert not app.record("lifespan-shutdown").exists()
    assert httpx.get(app.url + "/scope").json()["state"]["greeting"] == "hello from lifespan"
    assert app.stop(signal.SIGTERM) == 0
    assert app.record("lifespan-shutdown").exists()


def test_lifespan_on_with_a_failing_startup_exits_nonzero(serve: ServerFactory) -> None:
    failing = serve("asgi_apps:startup_raises", "--lifespan", "on", wait=False)
    assert failing.wait() == 3
    out = failing.output()
    assert "lifespan failed: application startup failed (RuntimeError: cannot connect to the e2e cache)" in out
    assert 'raise RuntimeError("cannot connect to the e2e cache")' in out  # the user's traceback
    assert "Listening at" not in out


def test_lifespan_startup_failed_message_is_shown(serve: ServerFactory) -> None:
    failing = serve("asgi_apps:startup_failed", wait=False)  # fatal even with --lifespan auto
    assert failing.wait() == 3
    out = failing.output()
    assert "application startup failed: database e2e-db is unreachable" in out
    assert "Listening at" not in out


def test_lifespan_auto_serves_an_app_without_lifespan_support(serve: ServerFactory) -> None:
    app = serve("asgi_apps:no_lifespan")  # raises on the lifespan scope
    assert "lifespan' protocol appears unsupported" in app.output()
    assert httpx.get(app.url + "/").content == b"served without lifespan"
    assert app.stop() == 0


def test_lifespan_auto_serves_an_app_that_raises_in_startup(serve: ServerFactory) -> None:
    app = serve("asgi_apps:startup_raises")  # auto: an exception means "no lifespan support"
    assert httpx.get(app.url + "/").content == b"served although startup raised"


def test_lifespan_auto_serves_an_app_that_returns_on_lifespan(serve: ServerFactory) -> None:
    app = serve("asgi_apps:returns_on_lifespan")
    assert httpx.get(app.url + "/").content == b"served without lifespan"


def test_lifespan_off_never_calls_lifespan(serve: ServerFactory) -> None:
    app = serve("asgi_apps:app", "--lifespan", "off")
    assert httpx.get(app.url + "/scope").json()["state"] == {}
    assert app.stop() == 0
    assert not app.record("lifespan-startup").exists()
    assert not app.record("lifespan-shutdown").exists()


# -- app failures ------------------------------------------------------------------------------------------


def _settle(server: ServerProcess, text: str) -> str:
    """Wait for ``text`` in the log, then a little longer, so a duplicate log line would show up too."""
    server.wait_output(text)
    time.sleep(0.2)
    return server.output()


def test_exception_before_the_response_is_a_500_logged_once(server: ServerProcess) -> None:
    before = server.output().count("RuntimeError: boom before the response started")
    response = httpx.get(server.url + "/raise-before?id=once")
    assert response.status_code == 500
    assert response.text == "Internal Server Error\n"
    assert response.headers["connection"] == "close"
    out = _settle(server, "GET /raise-before?id=once HTTP/1.1 from 127.0.0.1)")
    assert out.count("Exception in ASGI application (request: GET /raise-before?id=once HTTP/1.1") == 1
    assert out.count("RuntimeError: boom before the response started") == before + 1
    assert httpx.get(server.url + "/still-alive").status_code == 200


def test_exception_after_the_response_started_aborts_the_connection(server: ServerProcess) -> None:
    before = server.output().count("RuntimeError: boom after the response started")
    with Wire(server.connect()) as w:
        w.send(request("GET", "/raise-after?id=raw"))
        head = w.read_response(head=True)
        assert head.status == 200
        assert head.header("transfer-encoding") == "chunked"
        rest = w.read_to_eof()
    assert b"partial body" in rest
    assert not rest.endswith(b"0\r\n\r\n")  # never completed: the client can tell the body is cut short
    out = _settle(server, "GET /raise-after?id=raw HTTP/1.1 from 127.0.0.1)")
    assert out.count("Exception in ASGI application (request: GET /raise-after?id=raw HTTP/1.1") == 1
    assert out.count("RuntimeError: boom after the response started") == before + 1

    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(server.url + "/raise-after?id=httpx")


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/misuse-body-first", "Expected ASGI message 'http.response.start', but got 'http.response.body'."),
        ("/misuse-wrong-type", "Expected ASGI message 'http.response.start', but got 'http.response.begin'."),
        ("/misuse-status-type", "'http.response.start' status must be an int, got '200'"),
    ],
)
def test_asgi_misuse_is_a_500_with_a_clear_log(server: ServerProcess, path: str, expected: str) -> None:
    before = server.output().count(expected)
    response = httpx.get(server.url + path)
    assert response.status_code == 500
    out = _settle(server, f"GET {path} HTTP/1.1 from 127.0.0.1)")
    assert out.count(expected) == before + 1
    assert out.count(f"Exception in ASGI application (request: GET {path} HTTP/1.1") == 1


# -- connection lifetime --------------------------------------------------------------------------------------


def test_closed_connections_leave_no_cyclic_garbage(server: ServerProcess) -> None:
    """A finished connection is freed by reference counting: nothing of it waits for the cyclic collector,
    which would cost every ``Connection: close`` request a share of a collection (and hold its memory)."""

    def call(raw: bytes) -> RawResponse:
        with Wire(server.connect()) as w:
            w.send(raw)
            return w.read_response()

    assert json.loads(call(request("GET", "/garbage?op=arm", [("Connection", "close")])).body) == "armed"
    for _ in range(20):  # the server closes: Connection: close
        assert call(request("GET", "/", [("Connection", "close")])).status == 200
    for _ in range(5):  # the client closes a keep-alive connection, after two requests
        with Wire(server.connect()) as w:
            w.send(request("GET", "/") * 2)
            assert w.read_response().status == 200
            assert w.read_response().status == 200
    for _ in range(5):  # a malformed request: 400 and a lingering close
        with Wire(server.connect()) as w:
            w.send(b"GET / HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n")
            assert w.read_response().status == 400
    for _ in range(5):  # the client leaves in the middle of a body
        with Wire(server.connect()) as w:
            w.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc")
    time.sleep(0.2)  # the server sees those last disconnects
    found = json.loads(call(request("GET", "/garbage?op=count", [("Connection", "close")])).body)
    assert found == []


def test_access_log_has_one_line_per_request(serve: ServerFactory) -> None:
    """Lines of requests answered in the same loop turn are written together: none lost, none doubled,
    including those still held when a graceful stop ends the worker."""
    server = serve("asgi_apps:app")
    wires = [Wire(server.connect()) for _ in range(8)]
    for c, w in enumerate(wires):  # pipelined: many requests end in one loop turn
        w.send(b"".join(request("GET", f"/logged/{c}-{i}") for i in range(25)))
    for w in wires:
        for _ in range(25):
            assert w.read_response().status == 200
        w.close()
    server.wait_output('"GET /logged/7-24 HTTP/1.1" 200 ')
    assert server.stop(signal.SIGTERM) == 0
    out = server.output()
    for c in range(8):
        for i in range(25):
            assert out.count(f'"GET /logged/{c}-{i} HTTP/1.1" 200 ') == 1, (c, i)


# -- proxy headers --------------------------------------------------------------------------------------------

_FORWARDED = {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"}


def test_forwarded_headers_are_honoured_from_localhost(server: ServerProcess) -> None:
    scope = httpx.get(server.url + "/scope", headers=_FORWARDED).json()
    assert scope["client"] == ["203.0.113.7", 0]
    assert scope["scheme"] == "https"


@pytest.mark.parametrize("flags", [("--forwarded-allow-ips", "10.0.0.1"), ("--no-proxy-headers",)])
def test_forwarded_headers_ignored_when_not_trusted(serve: ServerFactory, flags: tuple[str, ...]) -> None:
    untrusting = serve("asgi_apps:app", *flags)
    with httpx.Client() as client:
        response = client.get(untrusting.url + "/scope", headers=_FORWARDED)
    scope = response.json()
    assert scope["client"][0] == "127.0.0.1"
    assert scope["client"][1] > 0
    assert scope["scheme"] == "http"


def test_trailers_follow_a_chunked_body(serve: ServerFactory) -> None:
    server = serve("asgi_apps:app")
    with Wire(server.connect()) as wire:
        wire.send(request("GET", "/trailers") + request("GET", "/trailers?length=1", [("Connection", "close")]))
        chunked = wire.read_response()
        assert chunked.body == b"helloworld"
        assert chunked.raw.endswith(b"0\r\nx-checksum: abc\r\nx-count: 2\r\n\r\n"), chunked.raw
        framed = wire.read_response()  # the connection stayed in step: the next answer is whole
        assert framed.body == b"helloworld" and framed.header("content-length") == "10"
        assert b"x-checksum" not in framed.raw  # nowhere to put them beside a Content-Length
