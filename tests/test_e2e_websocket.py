"""End to end, WebSocket over ASGI: real Starlette and FastAPI endpoints driven by the ``websockets``
client; the ASGI scope and messages as a plain app sees them; handshake denials (403, 500, the denial
response extension) and refusals (WSGI apps, ``--ws none``, broken handshakes); the message size limit;
permessage-deflate; the access log. Shutdown, reload, pings and flow control are in
test_e2e_websocket_ops.py.

The plain apps are in tests/apps/ws_apps.py; the framework endpoints in starlette_app.py and
fastapi_app.py. Apps record each ``websocket.disconnect`` they get as ``ws-disconnect-<id>``.
"""

from __future__ import annotations

import json
import os
import time

import httpx
import pytest
from server_process import ServerFactory, ServerProcess, Wire, request
from tls_certs import TLSFiles
from websockets.typing import Subprotocol
from ws_support import (
    BINARY,
    CLOSE,
    CONTINUATION,
    PING,
    PONG,
    TEXT,
    check_switching,
    client,
    close_frame,
    denied,
    disconnect_of,
    encode_frame,
    frames_until_eof,
    handshake,
    new_key,
    parse_close,
    read_data,
    read_json_record,
    read_message,
    response_headers,
    upgrade_request,
    wait_closed,
)

# -- real frameworks --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=["starlette_app:app", "fastapi_app:app"], ids=["starlette", "fastapi"])
def framework(request: pytest.FixtureRequest, module_serve: ServerFactory) -> ServerProcess:
    return module_serve(request.param)


def framework_name(server: ServerProcess) -> str:
    assert server.app is not None
    return server.app.split("_")[0]


def test_framework_echo_text_and_bytes(framework: ServerProcess) -> None:
    with client(framework, "/ws/echo?id=echo") as ws:
        for message in ("héllo wörld", b"\x00\xff binary \x80", "", b""):
            ws.send(message)
            assert ws.recv(timeout=5) == message
    assert disconnect_of(framework, "echo") == (1000, "")


def test_framework_large_messages_both_ways(framework: ServerProcess) -> None:
    binary = os.urandom(1 << 20)
    text = "ü" * (1 << 19)  # 1 MiB of UTF-8
    with client(framework, "/ws/echo?id=large") as ws:
        ws.send(binary)
        assert ws.recv(timeout=10) == binary
        ws.send(text)
        assert ws.recv(timeout=10) == text


def test_framework_many_messages_in_order(framework: ServerProcess) -> None:
    with client(framework, "/ws/echo?id=many") as ws:
        for i in range(1000):  # all sent before any is read back
            ws.send(f"message {i}" if i % 2 else f"message {i}".encode())
        received = [ws.recv(timeout=5) for _ in range(1000)]
    assert received == [f"message {i}" if i % 2 else f"message {i}".encode() for i in range(1000)]


def test_framework_subprotocol_and_accept_headers(framework: ServerProcess) -> None:
    with client(framework, "/ws/protocols?id=proto", subprotocols=[Subprotocol("a"), Subprotocol("b")]) as ws:
        assert ws.subprotocol == "b"
        assert response_headers(ws)["Sec-WebSocket-Protocol"] == "b"
        assert response_headers(ws)["X-WS-Extra"] == framework_name(framework)
        assert json.loads(ws.recv(timeout=5)) == ["a", "b"]  # what the app saw, in the client's order


def test_framework_scope_query_and_headers(framework: ServerProcess) -> None:
    with client(framework, "/ws/scope?id=scope&q=caf%C3%A9&n=1", additional_headers={"X-Token": "secret"}) as ws:
        seen = json.loads(ws.recv(timeout=5))
    assert seen == {
        "type": "websocket",
        "scheme": "ws",
        "path": "/ws/scope",
        "query": {"id": "scope", "q": "café", "n": "1"},
        "token": "secret",
        "client_host": "127.0.0.1",
        "subprotocols": [],
    }


def test_framework_close_from_the_app(framework: ServerProcess) -> None:
    with client(framework, "/ws/close") as ws:
        assert wait_closed(ws) == (4001, "bye from the app")
        assert (ws.close_code, ws.close_reason) == (4001, "bye from the app")


def test_framework_close_from_the_client(framework: ServerProcess) -> None:
    ws = client(framework, "/ws/echo?id=client-close")
    ws.send("ping?")
    assert ws.recv(timeout=5) == "ping?"
    ws.close(4002, "client leaving")
    assert disconnect_of(framework, "client-close") == (4002, "client leaving")


@pytest.mark.parametrize(
    ("target", "status"),
    [
        ("/ws/deny", 403),  # websocket.close before accept (FastAPI: a WebSocketException)
        ("/ws/raise", 500),  # the endpoint raises before accept
        ("/ws/nowhere", 403),  # no such route: the router closes before accept
    ],
)
def test_framework_denials(framework: ServerProcess, target: str, status: int) -> None:
    assert denied(framework, target).status_code == status
    assert httpx.get(framework.url + "/state", timeout=5).status_code == 200


def test_framework_denial_response(framework: ServerProcess) -> None:
    response = denied(framework, "/ws/deny-response")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.body == b"go away"
    assert httpx.get(framework.url + "/state", timeout=5).status_code == 200


# -- the ASGI side, with a plain app ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(module_serve: ServerFactory) -> ServerProcess:
    return module_serve("ws_apps:app")


def test_scope_and_first_message(server: ServerProcess) -> None:
    key = new_key()
    target = "/scope/caf%C3%A9?x=1&y=%20&id=scope"
    extra = [("Sec-WebSocket-Protocol", "a, b"), ("Sec-WebSocket-Protocol", "c"), ("X-Custom", "Some  Value")]
    with Wire(server.connect()) as w:
        w.send(upgrade_request(target, key=key, extra=extra))
        response = w.read_response()
        check_switching(response, key)
        assert response.header("sec-websocket-protocol") is None  # the app chose none
        opcode, payload = read_message(w)
        local = w.sock.getsockname()
    assert opcode == TEXT
    scope = json.loads(payload)
    assert scope["type"] == "websocket"
    assert scope["asgi"] == {"version": "3.0", "spec_version": "2.4"}
    assert scope["http_version"] == "1.1"
    assert scope["scheme"] == "ws"
    assert scope["path"] == "/scope/café"
    assert scope["raw_path"] == "/scope/caf%C3%A9"
    assert scope["raw_path_type"] == "bytes"
    assert scope["query_string"] == "x=1&y=%20&id=scope"
    assert scope["query_string_type"] == "bytes"
    assert scope["root_path"] == ""
    assert scope["header_types"] == ["bytes/bytes"]
    assert scope["headers"] == [
        ["host", "127.0.0.1"],
        ["upgrade", "websocket"],
        ["connection", "Upgrade"],
        ["sec-websocket-key", key],
        ["sec-websocket-version", "13"],
        ["sec-websocket-protocol", "a, b"],
        ["sec-websocket-protocol", "c"],
        ["x-custom", "Some  Value"],
    ]
    assert scope["subprotocols"] == ["a", "b", "c"]
    assert scope["client"] == [local[0], local[1]]
    assert scope["server"] == ["127.0.0.1", server.port]
    assert scope["state"] == {"greeting": "hello from the ws lifespan"}
    assert scope["extensions"]["websocket.http.response"] == {}
    assert server.wait_record("ws-connect-scope") == "websocket.connect"


def test_wss_scheme(serve: ServerFactory, tls_files: TLSFiles) -> None:
    secure = serve(
        "ws_apps:app", "--certfile", str(tls_files.server_cert), "--keyfile", str(tls_files.server_key),
        scheme="https",
    )  # fmt: skip
    with client(secure, "/scope?id=tls", ssl=tls_files.client_context()) as ws:
        scope = json.loads(ws.recv(timeout=5))
        ws.send("over tls")
    assert scope["scheme"] == "wss"
    assert disconnect_of(secure, "tls") == (1000, "")


def test_accept_with_subprotocol_and_headers(server: ServerProcess) -> None:
    with client(server, "/headers?pick=b&id=hdrs", subprotocols=[Subprotocol("a"), Subprotocol("b")]) as ws:
        assert ws.subprotocol == "b"
        assert response_headers(ws)["X-WS-Extra"] == "hello"
        assert response_headers(ws)["Set-Cookie"] == "ws=1; Path=/"
        assert ws.recv(timeout=5) == "accepted with headers"


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("code=4003&reason=going%20away%20%E2%9C%93", (4003, "going away ✓")),
        ("", (1000, "")),  # websocket.close without code or reason: 1000, ""
    ],
    ids=["code-and-reason", "defaults"],
)
def test_close_from_the_app(server: ServerProcess, query: str, expected: tuple[int, str]) -> None:
    ident = f"app-close-{expected[0]}"
    with client(server, f"/close?id={ident}&{query}") as ws:
        assert wait_closed(ws) == expected
    disconnect_of(server, ident)  # after its close, the app's receive() says websocket.disconnect


@pytest.mark.parametrize(
    ("target", "messages", "code"),
    [
        ("/raise-after?id=raise-after", [], 1011),  # the app raised after accept: internal error
        ("/return-after?id=return-after", ["bye"], 1000),  # returned without closing: a normal close
    ],
    ids=["raise", "return"],
)
def test_app_ending_after_accept(server: ServerProcess, target: str, messages: list[str], code: int) -> None:
    with client(server, target) as ws:
        received = [ws.recv(timeout=5) for _ in messages]
        assert wait_closed(ws)[0] == code
    assert received == messages
    assert httpx.get(server.url + "/", timeout=5).text == "http ok"


def test_app_raising_after_accept_is_logged(server: ServerProcess) -> None:
    with client(server, "/raise-after?id=raise-logged") as ws:
        assert wait_closed(ws)[0] == 1011
    server.wait_output("RuntimeError: ws boom after accept")


@pytest.mark.parametrize(
    ("ident", "ending", "expected"),
    [
        ("code-reason", close_frame(4005, "raw reason"), (4005, "raw reason")),
        ("no-code", close_frame(None), (1005, "")),  # a close frame without a payload
        ("dropped", None, (1006, "")),  # the TCP connection ends without a close frame
    ],
    ids=["code-and-reason", "no-code-1005", "dropped-1006"],
)
def test_client_ending_the_connection(
    server: ServerProcess, ident: str, ending: bytes | None, expected: tuple[int, str]
) -> None:
    with Wire(server.connect()) as w:
        handshake(w, f"/echo?id=close-{ident}")
        w.send(encode_frame(TEXT, b"hi"))
        assert read_message(w) == (TEXT, b"hi")
        if ending is not None:
            w.send(ending)
            frames, _ = frames_until_eof(w, 3)  # the server answers the close, then ends the TCP connection
            assert [f.opcode for f in frames] == [CLOSE], frames
            answered = parse_close(frames[0].payload)[0]
            if expected[0] == 1005:
                assert answered in (None, 1000)  # 1005 itself never goes on the wire
            else:
                assert answered == expected[0]  # RFC 6455 §5.5.1: the endpoint echoes the status code
    assert disconnect_of(server, f"close-{ident}") == expected


def test_send_after_the_client_left_raises_client_disconnected(server: ServerProcess) -> None:
    with client(server, "/send-after-close?id=late") as ws:
        ws.send("anything")
    assert disconnect_of(server, "late") == (1000, "")
    raised = read_json_record(server, "send-after-close-late")
    assert raised == {"class": "monoceros.errors.ClientDisconnected", "oserror": True}


def test_fragmented_messages_are_reassembled_and_pings_answered(server: ServerProcess) -> None:
    with Wire(server.connect()) as w:
        handshake(w, "/echo?id=fragments")
        w.send(encode_frame(TEXT, "Hél".encode()[:2], fin=False))  # splits a UTF-8 sequence across frames
        w.send(encode_frame(PING, b"in between"))  # a control frame between fragments is allowed
        w.send(encode_frame(CONTINUATION, "Hél".encode()[2:] + b"lo, ", fin=False))
        w.send(encode_frame(CONTINUATION, b"world"))
        assert read_message(w) == (PONG, b"in between")
        assert read_message(w) == (TEXT, "Héllo, world".encode())
        w.send(encode_frame(BINARY, b"\x00\x01", fin=False) + encode_frame(CONTINUATION, b"\x02"))
        assert read_message(w) == (BINARY, b"\x00\x01\x02")
        w.send(encode_frame(PING, b""))
        assert read_message(w) == (PONG, b"")
        w.send(close_frame(1000))
        frames, _ = frames_until_eof(w, 3)
    assert [f.opcode for f in frames] == [CLOSE]
    assert all(not f.masked for f in frames)  # a server never masks


def test_unmasked_client_frame_fails_the_connection(server: ServerProcess) -> None:
    # RFC 6455 §5.1: the server MUST close the connection; it MAY send a close frame with 1002 first.
    with Wire(server.connect()) as w:
        handshake(w, "/echo?id=unmasked")
        w.send(encode_frame(TEXT, b"not masked", mask=False))
        frames, _ = frames_until_eof(w, 3)
    assert all(f.opcode == CLOSE for f in frames), frames
    assert [parse_close(f.payload)[0] for f in frames] in ([], [1002])
    disconnect_of(server, "unmasked")
    assert httpx.get(server.url + "/", timeout=5).text == "http ok"


def test_invalid_utf8_in_a_text_message_closes_with_1007(server: ServerProcess) -> None:
    with Wire(server.connect()) as w:
        handshake(w, "/echo?id=bad-utf8")
        w.send(encode_frame(TEXT, b"caf\xc3"))  # truncated sequence
        frames, _ = frames_until_eof(w, 3)
    assert [(f.opcode, parse_close(f.payload)[0]) for f in frames] == [(CLOSE, 1007)]
    assert disconnect_of(server, "bad-utf8")[0] == 1007


# -- denials ----------------------------------------------------------------------------------------------------


def raw_refusal(server: ServerProcess, target: str) -> bytes:
    """Send a valid opening handshake for ``target`` on a raw socket; return the exact bytes of the answer
    and check the server closes the connection after it."""
    with Wire(server.connect()) as w:
        w.send(upgrade_request(target, key=new_key()))
        response = w.read_response()
        assert w.closed_by_peer(3), f"the connection stays open after {response!r}"
    return response.raw


def test_close_before_accept_is_403(server: ServerProcess) -> None:
    assert denied(server, "/deny?id=deny").status_code == 403
    assert raw_refusal(server, "/deny?id=deny-raw").startswith(b"HTTP/1.1 403 ")
    assert httpx.get(server.url + "/", timeout=5).text == "http ok"


@pytest.mark.parametrize("length", [True, False], ids=["content-length", "no-length"])
def test_denial_response_extension(server: ServerProcess, length: bool) -> None:
    ident = f"denial-{int(length)}"
    with Wire(server.connect()) as w:
        w.send(upgrade_request(f"/deny-response?id={ident}&length={int(length)}", key=new_key()))
        response = w.read_response()
        assert w.closed_by_peer(3), "the connection stays open after the denial response"
    assert response.status == 401
    assert response.body == b"not allowed"  # both parts
    assert response.header("content-type") == "text/plain"
    assert response.header("www-authenticate") == 'Bearer realm="ws"'
    assert response.header("x-denied") == "yes"
    assert response.header("sec-websocket-accept") is None
    assert response.header("upgrade") is None
    via_client = denied(server, f"/deny-response?id={ident}-client&length={int(length)}")
    assert (via_client.status_code, via_client.body) == (401, b"not allowed")
    assert httpx.get(server.url + "/", timeout=5).text == "http ok"


def test_app_raising_before_accept_is_500(server: ServerProcess) -> None:
    assert denied(server, "/raise-before?id=raise-before").status_code == 500
    assert raw_refusal(server, "/raise-before?id=raise-before-raw").startswith(b"HTTP/1.1 500 ")
    server.wait_output("RuntimeError: ws boom before accept")
    assert httpx.get(server.url + "/", timeout=5).text == "http ok"


def test_app_returning_before_accept_is_403(server: ServerProcess) -> None:
    assert denied(server, "/return-before?id=return-before").status_code == 403
    assert httpx.get(server.url + "/", timeout=5).text == "http ok"


HTTP_ONLY_APP = """\
async def app(scope, receive, send):
    if scope["type"] != "http":
        return  # no lifespan, no websocket: returns at once
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"9")]})
    await send({"type": "http.response.body", "body": b"http only"})
"""


def test_http_only_asgi_app_is_403(serve: ServerFactory) -> None:
    plain = serve("http_only:app", sources={"http_only.py": HTTP_ONLY_APP})
    assert denied(plain, "/ws").status_code == 403
    assert raw_refusal(plain, "/ws").startswith(b"HTTP/1.1 403 ")
    assert httpx.get(plain.url + "/", timeout=5).text == "http only"


def test_django_asgi_without_channels_is_500(serve: ServerFactory) -> None:
    django = serve("django_app:application")
    assert denied(django, "/hello/").status_code == 500  # Django raises ValueError for a websocket scope
    assert httpx.get(django.url + "/hello/", timeout=5).json()["path"] == "/hello/"


FLASK_APP = """\
from flask import Flask

app = Flask(__name__)


@app.get("/")
def index():
    return "flask ok"


@app.get("/ws")
def ws():
    return "flask served the upgrade request"
"""


def test_wsgi_app_refuses_the_upgrade_with_400(serve: ServerFactory) -> None:
    flask = serve("flask_ws:app", sources={"flask_ws.py": FLASK_APP})
    assert raw_refusal(flask, "/ws").startswith(b"HTTP/1.1 400 ")
    assert denied(flask, "/ws").status_code == 400
    assert httpx.get(flask.url + "/", timeout=5).text == "flask ok"
    assert httpx.get(flask.url + "/ws", timeout=5).text == "flask served the upgrade request"
    out = flask.output()
    assert out.count("Refusing WebSocket upgrade requests with 400: WebSocket needs an ASGI application") == 1


def test_ws_none_refuses_the_upgrade_with_400(serve: ServerFactory) -> None:
    off = serve("ws_apps:app", "--ws", "none")
    assert raw_refusal(off, "/echo?id=ws-none").startswith(b"HTTP/1.1 400 ")
    assert denied(off, "/echo?id=ws-none-client").status_code == 400
    assert httpx.get(off.url + "/", timeout=5).text == "http ok"
    assert not off.record("ws-called-ws-none").exists()
    assert not off.record("ws-called-ws-none-client").exists()


def test_ws_none_from_the_environment(serve: ServerFactory) -> None:
    off = serve("ws_apps:app", env={"MONOCEROS_WS": "none"})
    assert denied(off, "/echo?id=ws-none-env").status_code == 400


def test_websocket_settings_from_the_environment(serve: ServerFactory) -> None:
    env = {"MONOCEROS_WS_MAX_SIZE": "1024", "MONOCEROS_WS_PER_MESSAGE_DEFLATE": "false"}
    configured = serve("ws_apps:app", env=env)
    with client(configured, "/echo?id=env-settings") as ws:
        assert "Sec-WebSocket-Extensions" not in response_headers(ws)
        ws.send(b"x" * 1024)
        assert ws.recv(timeout=5) == b"x" * 1024
        ws.send(b"x" * 1025)
        assert wait_closed(ws)[0] == 1009


# -- broken and unusual handshakes ------------------------------------------------------------------------------


def test_missing_key_is_400_without_calling_the_app(server: ServerProcess) -> None:
    with Wire(server.connect()) as w:
        w.send(upgrade_request("/echo?id=no-key", key=None))
        response = w.read_response()
        assert response.status == 400, response
        assert w.closed_by_peer(3), "the connection stays open after the 400"
    time.sleep(0.2)
    assert not server.record("ws-called-no-key").exists()


@pytest.mark.parametrize("version", ["8", None], ids=["version-8", "no-version"])
def test_unsupported_version_is_refused_without_calling_the_app(server: ServerProcess, version: str | None) -> None:
    ident = f"version-{version}"
    with Wire(server.connect()) as w:
        w.send(upgrade_request(f"/echo?id={ident}", key=new_key(), version=version))
        response = w.read_response()
    assert response.status in (400, 426), response
    if response.status == 426:  # RFC 6455 §4.4: say which versions are supported
        assert "13" in (response.header("sec-websocket-version") or ""), response
    time.sleep(0.2)
    assert not server.record(f"ws-called-{ident}").exists()
    assert httpx.get(server.url + "/", timeout=5).text == "http ok"


def test_pipelined_http_request_then_upgrade(server: ServerProcess) -> None:
    key = new_key()
    with Wire(server.connect()) as w:
        w.send(request("GET", "/kind") + upgrade_request("/echo?id=pipelined", key=key))  # one write
        first = w.read_response()
        assert (first.status, first.body) == (200, b"http")
        check_switching(w.read_response(), key)
        w.send(encode_frame(TEXT, b"after keep-alive"))
        assert read_message(w) == (TEXT, b"after keep-alive")
        w.send(close_frame(1000))
        frames, _ = frames_until_eof(w, 3)
    assert [f.opcode for f in frames] == [CLOSE]
    assert disconnect_of(server, "pipelined") == (1000, "")


def test_upgrade_without_connection_upgrade_is_plain_http(server: ServerProcess) -> None:
    with Wire(server.connect()) as w:
        w.send(upgrade_request("/kind?id=no-connection", key=new_key(), connection=None))
        response = w.read_response()
        assert (response.status, response.body) == (200, b"http")
        w.send(request("GET", "/kind"))  # still an ordinary keep-alive connection
        assert w.read_response().body == b"http"
    assert not server.record("ws-called-no-connection").exists()


def test_connection_token_list_and_header_case(server: ServerProcess) -> None:
    # Firefox sends "Connection: keep-alive, Upgrade"; token and header values are case-insensitive.
    key = new_key()
    with Wire(server.connect()) as w:
        w.send(upgrade_request("/kind?id=token-list", key=key, connection="keep-alive, Upgrade", upgrade="WebSocket"))
        check_switching(w.read_response(), key)
        assert read_message(w) == (TEXT, b"websocket")


# -- the message size limit -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small(module_serve: ServerFactory) -> ServerProcess:
    return module_serve("ws_apps:app", "--ws-max-size", "1024")


def test_message_at_the_limit_passes(small: ServerProcess) -> None:
    with client(small, "/echo?id=at-limit", compression=None) as ws:
        ws.send(b"x" * 1024)
        assert ws.recv(timeout=5) == b"x" * 1024
        ws.send(["y" * 512, "y" * 512])  # fragmented, 1024 in total
        assert ws.recv(timeout=5) == "y" * 1024


def test_oversized_message_closes_with_1009(small: ServerProcess) -> None:
    with client(small, "/echo?id=too-big", compression=None) as ws:
        ws.send(b"x" * 2000)
        assert wait_closed(ws)[0] == 1009
    assert disconnect_of(small, "too-big")[0] == 1009
    with client(small, "/echo?id=after-too-big") as ws:  # the server goes on serving
        ws.send("fine")
        assert ws.recv(timeout=5) == "fine"


@pytest.mark.parametrize("proto", ["https", "wss"])
def test_a_trusted_proxy_sets_client_and_scheme(serve: ServerFactory, proto: str) -> None:
    """Behind a TLS-terminating proxy the app sees wss and the real client, as for HTTP."""
    behind = serve("ws_apps:app", "--forwarded-allow-ips", "127.0.0.1")
    extra = [("X-Forwarded-For", "203.0.113.9"), ("X-Forwarded-Proto", proto)]
    with Wire(behind.connect()) as w:
        w.send(upgrade_request("/scope?id=proxied", key=new_key(), extra=extra))
        assert w.read_response().status == 101
        _, payload = read_message(w)
    scope = json.loads(payload)
    assert (scope["scheme"], scope["client"][0]) == ("wss", "203.0.113.9")


def test_an_answer_leaves_at_once_even_while_more_messages_wait(server: ServerProcess) -> None:
    """Answers to queued messages are written together, but never held for an app that stops reading."""
    with Wire(server.connect()) as w:
        handshake(w, "/reply-then-sleep?id=coalesce")
        w.send(b"".join(encode_frame(TEXT, b"m%d" % i) for i in range(5)))  # five messages in one write
        started = time.monotonic()
        assert read_data(w) == (TEXT, b"reply to m0")
        assert time.monotonic() - started < 1.0  # not after the app's 3 s sleep


def test_a_close_between_fragments_is_a_normal_close(server: ServerProcess) -> None:
    """RFC 6455 §5.4 allows a control frame between fragments; a close there ends the connection cleanly and
    drops the unfinished message (Autobahn 7.1.5), where the websockets library alone would answer 1002."""
    with Wire(server.connect()) as w:
        handshake(w, "/echo?id=close-mid-message")
        w.send(encode_frame(TEXT, b"fragment1", fin=False) + close_frame(1000) + encode_frame(CONTINUATION, b"2"))
        frames, _ = frames_until_eof(w, 3)
    assert [f.opcode for f in frames] == [CLOSE]
    assert parse_close(frames[0].payload) == (1000, "")
    assert disconnect_of(server, "close-mid-message") == (1000, "")


def test_fragmented_message_over_the_limit_in_total(small: ServerProcess) -> None:
    with Wire(small.connect()) as w:
        handshake(w, "/echo?id=fragments-too-big")
        w.send(
            encode_frame(BINARY, b"a" * 500, fin=False)
            + encode_frame(CONTINUATION, b"b" * 500, fin=False)
            + encode_frame(CONTINUATION, b"c" * 500)  # every frame is small; the message is 1500 bytes
        )
        frames, _ = frames_until_eof(w, 3)
    assert [(f.opcode, parse_close(f.payload)[0]) for f in frames] == [(CLOSE, 1009)]
    assert disconnect_of(small, "fragments-too-big")[0] == 1009


def test_limit_applies_after_decompression(small: ServerProcess) -> None:
    with client(small, "/echo?id=deflated-too-big") as ws:  # offers permessage-deflate
        assert "permessage-deflate" in response_headers(ws).get("Sec-WebSocket-Extensions", "")
        ws.send(b"\x00" * 100_000)  # a few hundred bytes on the wire
        assert wait_closed(ws)[0] == 1009
    assert disconnect_of(small, "deflated-too-big")[0] == 1009


# -- permessage-deflate -----------------------------------------------------------------------------------------


def test_deflate_negotiated_and_used(server: ServerProcess) -> None:
    text = "monoceros compresses this " * 80_000  # 2 MB, very compressible
    with client(server, "/echo?id=deflate") as ws:
        assert response_headers(ws)["Sec-WebSocket-Extensions"].startswith("permessage-deflate")
        ws.send(text)
        assert ws.recv(timeout=10) == text
        payload = os.urandom(100_000)  # incompressible
        ws.send(payload)
        assert ws.recv(timeout=10) == payload


def test_no_deflate_unless_the_client_offers_it(server: ServerProcess) -> None:
    with client(server, "/echo?id=no-offer", compression=None) as ws:
        assert "Sec-WebSocket-Extensions" not in response_headers(ws)
        ws.send("plain")
        assert ws.recv(timeout=5) == "plain"


def test_no_deflate_when_disabled(serve: ServerFactory) -> None:
    plain = serve("ws_apps:app", "--no-ws-per-message-deflate")
    with client(plain, "/echo?id=disabled") as ws:  # offers it
        assert "Sec-WebSocket-Extensions" not in response_headers(ws)
        text = "still echoed " * 10_000
        ws.send(text)
        assert ws.recv(timeout=5) == text


# -- the access log ---------------------------------------------------------------------------------------------


def test_access_log_shows_the_handshake(server: ServerProcess) -> None:
    with client(server, "/echo?id=logged") as ws:
        ws.send("x")
        assert ws.recv(timeout=5) == "x"
    server.wait_output('"GET /echo?id=logged HTTP/1.1" 101 ')
    denied(server, "/deny?id=logged-denial")
    server.wait_output('"GET /deny?id=logged-denial HTTP/1.1" 403 ')
