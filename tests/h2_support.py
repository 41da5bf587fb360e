"""An HTTP/2 client for the tests: the ``h2`` package's client side over a real socket (cleartext prior
knowledge, TLS with ALPN, or after an ``Upgrade: h2c``), with what a test wants to look at: the server's
SETTINGS, each stream's status, headers, body, trailers and reset code, and the GOAWAY.
"""

from __future__ import annotations

import importlib.util
import socket
import ssl
import time
from dataclasses import dataclass, field

import h2.config
import h2.connection
import h2.events
import h2.settings
import pytest

# Every HTTP/2 test runs on every engine tier. The glue is found, not imported: CI's AddressSanitizer build
# of it loads only in a server that has the ASan runtime preloaded.
GLUE = importlib.util.find_spec("monoceros.protocols._nghttp2") is not None
ENGINES = [
    pytest.param("nghttp2", id="glue", marks=pytest.mark.skipif(not GLUE, reason="the glue is not built")),
    pytest.param("nghttp2-abi", id="abi"),
    pytest.param("h2", id="h2"),
]


@dataclass
class GoAway:
    """A GOAWAY the server sent (kept out of h2's hands: its client closes at once, where a real client goes
    on reading the streams the GOAWAY lets finish)."""

    last_stream_id: int
    error_code: int


@dataclass
class Answer:
    """What came back on one stream."""

    status: int = 0
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes = b""
    trailers: list[tuple[bytes, bytes]] = field(default_factory=list)
    ended: bool = False
    reset: int | None = None  # the RST_STREAM error code, if the server reset the stream

    def header(self, name: bytes) -> bytes | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None


class H2Client:
    """One HTTP/2 connection to the server under test."""

    def __init__(self, sock: socket.socket | ssl.SSLSocket, *, window: int | None = None, upgraded: bool = False):
        self.sock = sock
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
        if window is not None:
            self.conn.local_settings = h2.settings.Settings(
                client=True, initial_values={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window}
            )
        if upgraded:
            self.conn.initiate_upgrade_connection()
        else:
            self.conn.initiate_connection()
        self.answers: dict[int, Answer] = {}
        self.settings: dict[int, int] = {}  # the server's SETTINGS
        self.goaway: GoAway | None = None
        self._buffer = b""
        self.closed = False
        self.auto_ack = True  # acknowledge received data at once (a reader that keeps up)
        self._flush()

    @classmethod
    def connect(cls, host: str, port: int, *, tls: ssl.SSLContext | None = None, window: int | None = None) -> H2Client:
        sock: socket.socket | ssl.SSLSocket = socket.create_connection((host, port), timeout=10)
        if tls is not None:
            sock = tls.wrap_socket(sock, server_hostname="localhost")
        return cls(sock, window=window)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> H2Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def request(
        self,
        method: str,
        path: str,
        headers: list[tuple[str, str]] | None = None,
        body: bytes | None = None,
        *,
        end: bool = True,
        authority: str = "localhost",
        raw_fields: list[tuple[str, str]] | None = None,
    ) -> int:
        """Open a stream; ``end=False`` leaves the body open (send more with :meth:`send`). ``raw_fields``:
        the whole header block as given (an extended CONNECT's, say)."""
        sid = self.conn.get_next_available_stream_id()
        fields = [(":method", method), (":path", path), (":scheme", "http"), (":authority", authority)]
        fields += headers or []
        if raw_fields is not None:
            fields = raw_fields
        self.conn.send_headers(sid, fields, end_stream=end and body is None)
        self.answers[sid] = Answer()
        if body is not None:
            self.send(sid, body, end=end)
        self._flush()
        return sid

    def send(self, sid: int, data: bytes, *, end: bool = False) -> None:
        """Body bytes as the window allows (waiting for WINDOW_UPDATEs as needed)."""
        view = memoryview(data)
        while view:
            room = min(self.conn.local_flow_control_window(sid), self.conn.max_outbound_frame_size, len(view))
            if room <= 0:
                self.read(lambda: self.conn.local_flow_control_window(sid) > 0 or self.answers[sid].reset is not None)
                if self.answers[sid].reset is not None:
                    return
                continue
            self.conn.send_data(sid, bytes(view[:room]))
            view = view[room:]
            self._flush()
        if end:
            self.conn.end_stream(sid)
            self._flush()

    def read(self, until: object, timeout: float = 10.0) -> None:
        """Read and handle frames until ``until()`` is true (or the connection closes, or the time is up)."""
        deadline = time.monotonic() + timeout
        while not until():  # type: ignore[operator]
            if self.closed:
                return
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("the server did not answer in time")
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except (ConnectionResetError, ssl.SSLError):
                data = b""
            if not data:
                self.closed = True
                return
            self.feed(data)

    def feed(self, data: bytes) -> None:
        buffer = self._buffer + data
        frames = []
        while len(buffer) >= 9:
            length = int.from_bytes(buffer[:3], "big")
            if len(buffer) < 9 + length:
                break
            frame, buffer = buffer[: 9 + length], buffer[9 + length :]
            if frame[3] == 0x7:  # GOAWAY
                payload = frame[9:]
                last = int.from_bytes(payload[:4], "big") & 0x7FFFFFFF
                self.goaway = GoAway(last, int.from_bytes(payload[4:8], "big"))
                continue
            frames.append(frame)
        self._buffer = buffer
        for event in self.conn.receive_data(b"".join(frames)):
            self._on(event)
        self._flush()

    def _on(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.ResponseReceived):
            answer = self.answers[event.stream_id]
            fields = list(event.headers or [])
            answer.status = int(dict(fields)[b":status"])
            answer.headers = [(n, v) for n, v in fields if not n.startswith(b":")]
        elif isinstance(event, h2.events.InformationalResponseReceived):
            pass
        elif isinstance(event, h2.events.DataReceived):
            self.answers[event.stream_id].body += event.data
            if self.auto_ack:
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, h2.events.TrailersReceived):
            self.answers[event.stream_id].trailers = list(event.headers or [])
        elif isinstance(event, h2.events.StreamEnded):
            self.answers[event.stream_id].ended = True
        elif isinstance(event, h2.events.StreamReset):
            self.answers.setdefault(event.stream_id, Answer()).reset = event.error_code
        elif isinstance(event, h2.events.RemoteSettingsChanged):
            for code, change in event.changed_settings.items():
                self.settings[int(code)] = change.new_value

    def wait(self, sid: int, timeout: float = 10.0) -> Answer:
        """The stream's whole answer (or its reset)."""
        answer = self.answers[sid]
        self.read(lambda: answer.ended or answer.reset is not None, timeout)
        return answer

    def get(self, path: str, headers: list[tuple[str, str]] | None = None) -> Answer:
        return self.wait(self.request("GET", path, headers))


def tls_client_context(ca_path: str, protocols: list[str]) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=ca_path)
    context.set_alpn_protocols(protocols)
    return context
