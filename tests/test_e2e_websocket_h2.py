"""WebSocket over HTTP/2 (RFC 8441) against a real server, on every engine tier: the SETTINGS that offers it,
the extended CONNECT handshake, messages both ways with permessage-deflate, subprotocols, the scope, a
denial, the close handshake, and an ordinary request on the same connection meanwhile.

The client is ``h2`` for the HTTP/2 side and websockets' own client protocol for the frames, put straight
into its open state (the HTTP/1.1 handshake it knows is not the one used here).
"""

from __future__ import annotations

import json
import signal

import pytest
from h2_support import ENGINES, H2Client
from server_process import ServerFactory, ServerProcess
from websockets.client import ClientProtocol
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
from websockets.frames import Frame, Opcode
from websockets.headers import parse_extension
from websockets.protocol import OPEN
from websockets.uri import parse_uri

ENABLE_CONNECT_PROTOCOL = 0x8


@pytest.fixture(scope="module", params=ENGINES)
def server(module_serve: ServerFactory, request: pytest.FixtureRequest) -> ServerProcess:
    return module_serve("ws_apps:app", "--http2-engine", str(request.param))


class WebSocketOnStream:
    """One WebSocket on a stream of ``client``'s connection."""

    def __init__(self, client: H2Client, path: str, *, deflate: bool = True, protocols: str = "") -> None:
        self.client = client
        client.read(lambda: ENABLE_CONNECT_PROTOCOL in client.settings)
        fields = [(":method", "CONNECT"), (":protocol", "websocket"), (":scheme", "http"), (":path", path),
                  (":authority", "localhost"), ("sec-websocket-version", "13")]  # fmt: skip
        if deflate:
            fields.append(("sec-websocket-extensions", "permessage-deflate"))
        if protocols:
            fields.append(("sec-websocket-protocol", protocols))
        self.sid = client.request("CONNECT", path, end=False, raw_fields=fields)
        self.answer = client.answers[self.sid]
        client.read(lambda: self.answer.status != 0 or self.answer.reset is not None)
        self.ws = ClientProtocol(parse_uri("ws://localhost" + path))
        self.ws.state = OPEN
        self.ws.parser = self.ws.parse()
        next(self.ws.parser)
        offered = self.answer.header(b"sec-websocket-extensions")
        if offered:
            name, params = parse_extension(offered.decode())[0]
            assert name == "permessage-deflate"
            self.ws.extensions = [ClientPerMessageDeflateFactory().process_response_params(params, [])]
        self._taken = 0

    def send(self, message: str | bytes) -> None:
        if isinstance(message, str):
            self.ws.send_text(message.encode())
        else:
            self.ws.send_binary(message)
        self._flush()

    def close(self, code: int = 1000) -> None:
        self.ws.send_close(code)
        self._flush()

    def answer_close(self) -> None:
        self._flush()

    def _flush(self) -> None:
        data = b"".join(self.ws.data_to_send())
        if data:
            self.client.send(self.sid, data)

    def frames(self, count: int, timeout: float = 5.0) -> list[Frame]:
        got: list[Frame] = []

        def enough() -> bool:
            body = self.answer.body
            if len(body) > self._taken:
                self.ws.receive_data(body[self._taken :])
                self._taken = len(body)
                got.extend(e for e in self.ws.events_received() if isinstance(e, Frame))
            return len(got) >= count or self.answer.ended or self.answer.reset is not None

        self.client.read(enough, timeout)
        return got


def test_the_server_offers_extended_connect_only_with_websockets_served(serve: ServerFactory) -> None:
    for args, offered in ((["ws_apps:app"], 1), (["ws_apps:app", "--ws", "none"], None), (["h2_apps:wsgi"], None)):
        server = serve(*args)
        with H2Client.connect(server.host, server.port) as client:
            client.read(lambda c=client: 4 in c.settings)  # type: ignore[misc]
            assert client.settings.get(ENABLE_CONNECT_PROTOCOL) == offered, args


def test_echo_with_compression_and_a_request_beside_it(server: ServerProcess) -> None:
    with H2Client.connect(server.host, server.port) as client:
        socket_ = WebSocketOnStream(client, "/echo?id=h2echo")
        assert socket_.answer.status == 200
        assert socket_.answer.header(
            b"sec-websocket-extensions",
        ).startswith(b"permessage-deflate")  # type: ignore[union-attr]
        assert socket_.answer.header(b"sec-websocket-accept") is None and socket_.answer.header(b"upgrade") is None
        socket_.send("hello over h2")
        socket_.send(b"\x00\x01" * 5000)
        texts = socket_.frames(2)
        assert [(f.opcode, f.data) for f in texts] == [
            (Opcode.TEXT, b"hello over h2"),
            (Opcode.BINARY, b"\x00\x01" * 5000),
        ]
        plain = client.get("/kind")  # an ordinary request on the same connection, while the WebSocket is open
        assert plain.status == 200
        socket_.send("again")
        assert socket_.frames(1)[0].data == b"again"
        socket_.close(1000)
        (closing,) = socket_.frames(1)
        assert closing.opcode is Opcode.CLOSE
        client.read(lambda: socket_.answer.ended)
    assert json.loads(server.wait_record("ws-disconnect-h2echo"))["code"] == 1000


def test_scope_and_subprotocol(server: ServerProcess) -> None:
    with H2Client.connect(server.host, server.port) as client:
        socket_ = WebSocketOnStream(client, "/scope?pick=v2", deflate=False, protocols="v1, v2")
        assert socket_.answer.status == 200
        assert socket_.answer.header(b"sec-websocket-protocol") == b"v2"
        (frame,) = socket_.frames(1)
        scope = json.loads(frame.data)
        assert scope["type"] == "websocket" and scope["http_version"] == "2"
        assert scope["scheme"] == "ws" and scope["path"] == "/scope" and scope["subprotocols"] == ["v1", "v2"]
        socket_.close()


def test_a_denial_is_an_http2_response(server: ServerProcess) -> None:
    with H2Client.connect(server.host, server.port) as client:
        denied = WebSocketOnStream(client, "/deny")
        client.read(lambda: denied.answer.ended)
        assert denied.answer.status == 403
        response = WebSocketOnStream(client, "/deny-response")
        client.read(lambda: response.answer.ended)
        assert response.answer.status == 401 and response.answer.body == b"not allowed"
        assert response.answer.header(b"x-denied") == b"yes"
        assert client.get("/kind").status == 200  # the connection goes on


def test_a_bad_handshake_is_refused_without_the_app(server: ServerProcess) -> None:
    with H2Client.connect(server.host, server.port) as client:
        client.read(lambda: ENABLE_CONNECT_PROTOCOL in client.settings)
        fields = [(":method", "CONNECT"), (":protocol", "websocket"), (":scheme", "http"), (":path", "/echo?id=bad"),
                  (":authority", "localhost"), ("sec-websocket-version", "8")]  # fmt: skip
        answer = client.wait(client.request("CONNECT", "/", end=False, raw_fields=fields))
        assert answer.status == 400 and b"Sec-WebSocket-Version" in answer.body
        assert not server.record("ws-called-bad").exists()


def test_the_client_resetting_the_stream_disconnects_the_app(server: ServerProcess) -> None:
    with H2Client.connect(server.host, server.port) as client:
        socket_ = WebSocketOnStream(client, "/echo?id=h2reset", deflate=False)
        socket_.send("x")
        socket_.frames(1)
        client.conn.reset_stream(socket_.sid)
        client.request("GET", "/kind")
        assert json.loads(server.wait_record("ws-disconnect-h2reset"))["code"] == 1006


@pytest.mark.parametrize("engine", ENGINES)
def test_a_graceful_stop_closes_the_websocket_with_1001(serve: ServerFactory, engine: str) -> None:
    """SIGTERM: the WebSocket on the stream gets a close frame with 1001 (going away), the stream ends, the
    connection gets GOAWAY, and the server exits once the client has answered."""
    server = serve("ws_apps:app", "--http2-engine", engine)
    with H2Client.connect(server.host, server.port) as client:
        socket_ = WebSocketOnStream(client, "/echo?id=h2stop", deflate=False)
        socket_.send("before")
        assert socket_.frames(1)[0].data == b"before"
        server.send_signal(signal.SIGTERM)
        (closing,) = socket_.frames(1)
        assert closing.opcode is Opcode.CLOSE and int.from_bytes(closing.data[:2], "big") == 1001
        socket_.answer_close()  # the client protocol queued its close frame in answer: send it
        client.read(lambda: socket_.answer.ended or client.closed)
        client.read(lambda: client.closed, 10)
        assert client.goaway is not None
    assert server.wait(10) == 0
    assert json.loads(server.wait_record("ws-disconnect-h2stop"))["code"] in (1001, 1006)
