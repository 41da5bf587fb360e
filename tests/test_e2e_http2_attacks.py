"""The known HTTP/2 attacks against a real server over a socket, on every engine tier: rapid reset,
MadeYouReset, an HPACK bomb, a CONTINUATION flood, PING and SETTINGS floods, and a client that never reads.
Each checks how the attacker's connection ends, that the server's memory stays bounded, and that another
client is answered meanwhile. The frames are written raw (hyperframe, hpack): a well-behaved client
library refuses to send most of them.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterable

import pytest
from h2_support import ENGINES, H2Client
from hpack import Encoder
from hyperframe.frame import (
    ContinuationFrame,
    Frame,
    HeadersFrame,
    PingFrame,
    RstStreamFrame,
    SettingsFrame,
    WindowUpdateFrame,
)
from server_process import ServerFactory, ServerProcess

from monoceros.protocols.http2 import ENHANCE_YOUR_CALM, PREFACE

MIB = 1024


@pytest.fixture(scope="module", params=ENGINES)
def server(module_serve: ServerFactory, request: pytest.FixtureRequest) -> ServerProcess:
    return module_serve("asgi_apps:app", "--http2-engine", str(request.param))


class Attacker:
    """A raw HTTP/2 connection: frames out as bytes, and whatever the server sends back until it closes."""

    def __init__(self, server: ServerProcess) -> None:
        self.sock = socket.create_connection((server.host, server.port), timeout=10)
        self.encoder = Encoder()
        self.received = b""
        self.send([SettingsFrame(0)], PREFACE)

    def send(self, frames: Iterable[Frame], prefix: bytes = b"") -> bool:
        """False once the server has closed (the rest of the flood is refused)."""
        try:
            self.sock.sendall(prefix + b"".join(frame.serialize() for frame in frames))
        except (BrokenPipeError, ConnectionResetError):
            return False
        return True

    def headers(self, sid: int, path: str = "/plain", end: bool = True) -> HeadersFrame:
        block = self.encoder.encode(
            [(":method", "GET" if end else "POST"), (":scheme", "http"), (":authority", "t"), (":path", path)]
        )
        return HeadersFrame(sid, block, flags=["END_HEADERS", *(["END_STREAM"] if end else [])])

    def flood(self, batches: Iterable[list[Frame]]) -> None:
        """Send batch after batch until the server closes (or the batches run out)."""
        for frames in batches:
            if not self.send(frames):
                return

    def read_to_close(self, timeout: float = 10.0) -> None:
        try:
            self._read_to_close(timeout)
        finally:
            self.close()

    def _read_to_close(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = self.sock.recv(1 << 16)
            except ConnectionResetError:
                return
            except TimeoutError:
                raise AssertionError("the server did not close the connection") from None
            if not data:
                return
            self.received += data
        raise AssertionError("the server did not close the connection")

    def goaway_code(self) -> int | None:
        data, code = self.received, None
        while len(data) >= 9:
            length = int.from_bytes(data[:3], "big")
            if data[3] == 0x7 and len(data) >= 9 + length:
                code = int.from_bytes(data[13:17], "big")
            data = data[9 + length :]
        return code

    def close(self) -> None:
        self.sock.close()


def others_are_served(server: ServerProcess) -> None:
    started = time.monotonic()
    with H2Client.connect(server.host, server.port) as client:
        answer = client.get("/plain")
    assert answer.status == 200 and answer.body == b"ok /plain"
    assert time.monotonic() - started < 2.0


def ended_calmly(attacker: Attacker, server: ServerProcess) -> None:
    """The attacker's connection ends with GOAWAY(ENHANCE_YOUR_CALM), and the server serves others."""
    attacker.read_to_close()
    assert attacker.goaway_code() == ENHANCE_YOUR_CALM
    others_are_served(server)


def test_rapid_reset_is_cut_and_costs_little(server: ServerProcess) -> None:
    rss = server.rss_kib()
    attacker = Attacker(server)
    # 3,000 streams opened and cancelled at once, against a budget of 1,000
    attacker.flood(
        [frame for sid in range(1 + 200 * b, 201 + 200 * b, 2)
         for frame in (attacker.headers(sid, "/slow?s=5"), RstStreamFrame(sid, error_code=8))]
        for b in range(30)
    )  # fmt: skip
    ended_calmly(attacker, server)
    assert server.rss_kib() - rss < 32 * MIB


def test_made_you_reset_is_cut(server: ServerProcess) -> None:
    """Frames that oblige the server to reset the stream (a window overflow) spend the same budget."""
    attacker = Attacker(server)
    attacker.flood(
        [frame for sid in range(1 + 200 * b, 201 + 200 * b, 2)
         for frame in (attacker.headers(sid, "/slow?s=5", end=False), WindowUpdateFrame(sid, 2**31 - 1))]
        for b in range(20)
    )  # fmt: skip
    ended_calmly(attacker, server)


def test_an_hpack_bomb_never_reaches_the_app_nor_the_memory(server: ServerProcess) -> None:
    rss = server.rss_kib()
    attacker = Attacker(server)
    for round_ in range(5):  # 5 x (a 4,000-byte entry referenced 4,000 times): 80 MB decoded, 40 KB sent
        fields = [(":method", "GET"), (":scheme", "http"), (":authority", "t"), (":path", "/plain")]
        fields += [("x-bomb", "b" * 4000)] * 4000
        block = attacker.encoder.encode(fields)
        frames: list[Frame] = [HeadersFrame(1 + 2 * round_, block[:16384], flags=["END_STREAM"])]
        rest = block[16384:]
        while rest:
            piece, rest = rest[:16384], rest[16384:]
            frames.append(ContinuationFrame(1 + 2 * round_, piece, flags=[] if rest else ["END_HEADERS"]))
        if not attacker.send(frames):
            break
    time.sleep(0.5)
    assert server.rss_kib() - rss < 16 * MIB
    others_are_served(server)
    attacker.close()


def test_a_continuation_flood_closes_the_connection(server: ServerProcess) -> None:
    rss = server.rss_kib()
    attacker = Attacker(server)
    block = attacker.encoder.encode([(":method", "GET"), (":scheme", "http"), (":authority", "t"), (":path", "/")])
    attacker.send([HeadersFrame(1, block, flags=["END_STREAM"])])
    # 100 x 160 KiB of CONTINUATION frames that never end the block
    attacker.flood([ContinuationFrame(1, b"\x00" * 16000) for _ in range(10)] for _ in range(100))
    attacker.read_to_close()
    assert server.rss_kib() - rss < 16 * MIB
    others_are_served(server)


@pytest.mark.parametrize("flood", ["ping", "settings"])
def test_control_floods_are_cut(server: ServerProcess, flood: str) -> None:
    attacker = Attacker(server)
    attacker.flood(  # 4,000 frames against a budget of 1,000
        [PingFrame(0, (i * 100 + j).to_bytes(8, "big")) if flood == "ping" else SettingsFrame(0) for j in range(100)]
        for i in range(40)
    )
    ended_calmly(attacker, server)


def test_a_client_that_never_reads_holds_bounded_memory(server: ServerProcess) -> None:
    """Eight 64 MiB downloads on one connection whose client reads nothing: the server holds what the
    windows and the socket buffers take, not the responses."""
    rss = server.rss_kib()
    attacker = Attacker(server)
    attacker.send([WindowUpdateFrame(0, 2**30)])  # a huge connection window: only the stream windows and TCP hold
    attacker.send([attacker.headers(1 + 2 * i, f"/big-stream?mb=64&id=nr{i}") for i in range(8)])
    time.sleep(2.0)
    grown = server.rss_kib() - rss
    with H2Client.connect(server.host, server.port) as client:
        progress = [int(client.get(f"/progress?id=nr{i}").body) for i in range(8)]
    assert grown < 24 * MIB, f"RSS grew by {grown} KiB"
    assert all(0 < sent < 4 << 20 for sent in progress), progress  # each app waits on its window
    attacker.close()
    others_are_served(server)


@pytest.mark.parametrize("engine", ENGINES)
def test_a_cancelled_stream_keeps_its_slot_until_its_app_ends(serve: ServerFactory, engine: str) -> None:
    """Four streams allowed: four cancelled ones whose apps still run hold the four slots, so the next is
    REFUSED_STREAM (a stream error the client may retry); once the apps end, streams are served again."""
    server = serve("asgi_apps:app", "--http2-engine", engine, "--http2-max-concurrent-streams", "4")
    with H2Client.connect(server.host, server.port) as client:
        client.read(lambda: 3 in client.settings)
        for _ in range(4):
            sid = client.request("GET", "/slow?s=1.5")
            client.conn.reset_stream(sid)
        refused = client.wait(client.request("GET", "/plain"))
        assert refused.reset == 7  # REFUSED_STREAM
        time.sleep(2.0)
        assert client.get("/plain").status == 200
        assert client.goaway is None
