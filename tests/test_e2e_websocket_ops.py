"""End to end, WebSocket operations: the server's pings and their timeout, the close timeout, closing
WebSockets on shutdown (1001) and reload (1012), and flow control in both directions (an app sending to
a client that does not read; a client sending to an app that does not receive). The apps are in
tests/apps/ws_apps.py.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import time

import httpx
import pytest
from server_process import ServerFactory, ServerProcess, Wire
from supervisor_support import supervise, wait_for
from ws_support import (
    BINARY,
    CLOSE,
    PING,
    PONG,
    TEXT,
    client,
    close_frame,
    disconnect_of,
    encode_frame,
    frames_until_eof,
    handshake,
    parse_close,
    read_data,
    read_frame,
    read_message,
    wait_closed,
)

MiB = 1 << 20

# -- pings ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pinging(module_serve: ServerFactory) -> ServerProcess:
    return module_serve("ws_apps:app", "--ws-ping-interval", "0.5", "--ws-ping-timeout", "0.5")


def test_unanswered_ping_closes_with_1011_and_drops_the_connection(pinging: ServerProcess) -> None:
    with Wire(pinging.connect()) as w:
        handshake(w, "/echo?id=silent")
        frames, took = frames_until_eof(w, 4)  # never answers a ping, never sends anything
    assert frames, "the connection ended without a frame"
    assert frames[0].opcode == PING, frames
    assert all(f.opcode == PING for f in frames[:-1]), frames
    assert frames[-1].opcode == CLOSE, frames
    assert parse_close(frames[-1].payload)[0] == 1011
    assert took < 3.0, f"{took:.2f} s from the handshake to the end of the connection"
    disconnect_of(pinging, "silent")  # the app is told
    assert httpx.get(pinging.url + "/", timeout=5).text == "http ok"


def test_answered_pings_keep_the_connection_open(pinging: ServerProcess) -> None:
    with Wire(pinging.connect()) as w:
        handshake(w, "/echo?id=answering")
        pings = 0
        deadline = time.monotonic() + 2.0
        while (left := deadline - time.monotonic()) > 0:
            w.sock.settimeout(left)
            try:
                frame = read_frame(w)
            except TimeoutError:
                break
            assert frame.opcode == PING, frame
            pings += 1
            w.send(encode_frame(PONG, frame.payload))
        w.sock.settimeout(5)
        assert pings >= 2, f"{pings} ping(s) in 2 s with --ws-ping-interval 0.5"
        w.send(encode_frame(TEXT, b"still here"))
        assert read_data(w) == (TEXT, b"still here")
        assert not pinging.record("ws-disconnect-answering").exists()


def test_real_client_answers_pings_and_stays_connected(pinging: ServerProcess) -> None:
    with client(pinging, "/echo?id=auto-pong") as ws:  # the websockets client answers pings by itself
        time.sleep(2.0)
        ws.send("after 2 s")
        assert ws.recv(timeout=5) == "after 2 s"
        assert not pinging.record("ws-disconnect-auto-pong").exists()
    assert disconnect_of(pinging, "auto-pong") == (1000, "")


def test_ping_interval_zero_disables_pings(serve: ServerFactory) -> None:
    quiet = serve("ws_apps:app", "--ws-ping-interval", "0", "--ws-ping-timeout", "0.2")
    with Wire(quiet.connect()) as w:
        handshake(w, "/echo?id=no-pings")
        assert not w.closed_by_peer(1.0), "the connection ended with pings disabled"
        assert w.buffer == b"", f"the server sent {w.buffer!r} with pings disabled"
        w.sock.settimeout(5)
        w.send(encode_frame(TEXT, b"quiet"))
        assert read_message(w) == (TEXT, b"quiet")


# -- the close timeout --------------------------------------------------------------------------------------


def test_close_timeout_drops_a_client_that_never_answers_the_close(serve: ServerFactory) -> None:
    server = serve("ws_apps:app", "--ws-close-timeout", "1")
    with Wire(server.connect()) as w:
        handshake(w, "/close?id=unanswered&code=4000")  # the app closes at once; the client never answers
        frames, took = frames_until_eof(w, 4)
    assert [(f.opcode, parse_close(f.payload)[0]) for f in frames] == [(CLOSE, 4000)]
    assert 0.7 < took < 2.5, f"dropped {took:.2f} s after the close frame, with --ws-close-timeout 1"


def test_answered_close_ends_the_connection_at_once(serve: ServerFactory) -> None:
    server = serve("ws_apps:app")  # default close timeout: 10 s, which must not be spent here
    with Wire(server.connect()) as w:
        handshake(w, "/close?id=answered&code=4000")
        assert parse_close(read_frame(w).payload)[0] == 4000
        w.send(close_frame(4000))
        frames, took = frames_until_eof(w, 3)
    assert frames == []
    assert took < 1.0


# -- shutdown and reload -------------------------------------------------------------------------------------


def test_sigterm_closes_websockets_with_1001(serve: ServerFactory) -> None:
    server = serve("ws_apps:app")
    with client(server, "/echo?id=term") as ws:
        ws.send("before")
        assert ws.recv(timeout=5) == "before"
        signalled = time.monotonic()
        server.send_signal(signal.SIGTERM)
        assert wait_closed(ws, 2)[0] == 1001
        closed_after = time.monotonic() - signalled
    assert closed_after < 2.0
    assert server.wait(5) == 0
    assert time.monotonic() - signalled < 3.0  # the app ended on the disconnect: no graceful timeout spent
    assert disconnect_of(server, "term")[0] == 1001
    assert "Traceback" not in server.output()


def test_sigterm_waits_for_the_app_to_finish_after_the_disconnect(serve: ServerFactory) -> None:
    server = serve("ws_apps:app")
    with client(server, "/echo?id=linger&linger=0.7") as ws:  # the app works 0.7 s after its disconnect
        ws.send("before")
        assert ws.recv(timeout=5) == "before"
        signalled = time.monotonic()
        server.send_signal(signal.SIGTERM)
        assert wait_closed(ws, 2)[0] == 1001
    assert server.wait(5) == 0
    assert server.record("ws-finished-linger").exists(), f"the app was cut short:\n{server.output()}"
    assert time.monotonic() - signalled > 0.6


def test_sigterm_waits_for_the_app_up_to_the_graceful_timeout(serve: ServerFactory) -> None:
    server = serve("ws_apps:app", "--graceful-timeout", "1")
    with client(server, "/sink?id=stuck") as ws:  # the app sleeps 60 s and never receives
        server.wait_record("sink-stuck")
        signalled = time.monotonic()
        server.send_signal(signal.SIGTERM)
        assert wait_closed(ws, 2)[0] == 1001
        assert time.monotonic() - signalled < 2.0
    assert server.wait(5) == 0
    took = time.monotonic() - signalled
    assert 0.8 < took < 3.5, f"exited {took:.2f} s after SIGTERM with --graceful-timeout 1"


def test_hup_closes_the_old_workers_websockets_with_1012(serve: ServerFactory) -> None:
    server = supervise(serve, "--supervisor", app="ws_apps:app")
    old_pid = int(httpx.get(server.url + "/pid", timeout=5).text)
    with client(server, "/echo?id=hup") as ws:
        ws.send("before")
        assert ws.recv(timeout=5) == "before"
        server.send_signal(signal.SIGHUP)
        assert wait_closed(ws, 10)[0] == 1012
    server.wait_output("Reloaded in", 10)
    with client(server, "/echo?id=after-hup") as ws:
        ws.send("after")
        assert ws.recv(timeout=5) == "after"
    new_pid = wait_for(lambda: int(httpx.get(server.url + "/pid", timeout=5).text), 5, "a worker", server)
    assert new_pid != old_pid
    assert disconnect_of(server, "hup")[0] == 1012
    assert server.stop() == 0


def test_sigterm_to_the_master_closes_websockets_with_1001(serve: ServerFactory) -> None:
    server = supervise(serve, "-w", "2", app="ws_apps:app")
    with client(server, "/echo?id=master-term") as ws:
        ws.send("before")
        assert ws.recv(timeout=5) == "before"
        server.send_signal(signal.SIGTERM)
        assert wait_closed(ws, 5)[0] == 1001
    assert server.wait(10) == 0
    assert disconnect_of(server, "master-term")[0] == 1001


# -- flow control -------------------------------------------------------------------------------------------


def progress(server: ServerProcess, ident: str) -> int:
    """How many messages /flood?id=<ident> has handed to send() so far."""
    return int(httpx.get(server.url + "/progress", params={"id": ident}, timeout=5).text)


def warm_up(server: ServerProcess) -> None:
    """One WebSocket round trip and one HTTP request, so lazy imports and first allocations are done before
    RSS is measured."""
    with client(server, "/echo?id=warm-up") as ws:
        ws.send(os.urandom(MiB))
        ws.recv(timeout=5)
    progress(server, "warm-up")


def test_send_blocks_while_the_client_does_not_read(serve: ServerFactory) -> None:
    server = serve("ws_apps:app")
    warm_up(server)
    baseline = server.rss_kib()
    size, count = 64 * 1024, 512  # 32 MiB in all
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)  # a small window the server fills fast
    sock.settimeout(5)
    sock.connect(server.address)
    with Wire(sock) as w:
        handshake(w, f"/flood?id=flood&size={size}&count={count}")
        time.sleep(1.0)  # not reading
        sent = progress(server, "flood")
        grown = server.rss_kib() - baseline
        print(f"\nflood: {sent} of {count} messages sent while the client did not read; RSS +{grown} KiB")
        assert 0 < sent < 8 * MiB // size, f"{sent} messages of {size} bytes went into send() unread"
        assert grown < 20 * 1024, f"RSS grew by {grown} KiB"
        for index in range(count):  # now read: every message, intact and in order
            opcode, payload = read_data(w)
            assert opcode == BINARY
            assert payload == index.to_bytes(4, "big") * (size // 4), f"message {index} differs"
        opcode, payload = read_data(w)
        assert (opcode, parse_close(payload)[0]) == (CLOSE, 1000)
        w.send(close_frame(1000))
    assert progress(server, "flood") == count


@pytest.mark.parametrize(
    ("args", "rss_limit"),
    [((), 64 * MiB), (("--ws-max-queue", "2"), 24 * MiB)],
    ids=["default-queue", "queue-2"],
)
def test_server_stops_reading_when_the_app_does_not_receive(
    serve: ServerFactory, args: tuple[str, ...], rss_limit: int
) -> None:
    server = serve("ws_apps:app", *args)
    warm_up(server)
    baseline = server.rss_kib()
    frame = encode_frame(BINARY, os.urandom(MiB), key=b"\x01\x02\x03\x04")  # sent over and over
    limit = 200 * MiB
    with Wire(server.connect()) as w:
        handshake(w, "/sink?id=sink")
        server.wait_record("sink-sink")
        w.sock.setblocking(False)
        view, offset, total = memoryview(frame), 0, 0
        deadline = time.monotonic() + 20
        while total < limit:
            _, writable, _ = select.select([], [w.sock], [], 0.5)
            if not writable:
                break  # nothing accepted for 0.5 s: the server no longer reads
            try:
                sent = w.sock.send(view[offset:])
            except BlockingIOError:
                continue
            total += sent
            offset = (offset + sent) % len(frame)
            assert time.monotonic() < deadline, f"still sending after 20 s ({total >> 20} MiB)"
        grown = server.rss_kib() * 1024 - baseline * 1024
        print(f"\nsink {args}: the client got {total >> 20} MiB into the socket; RSS +{grown >> 10} KiB")
        assert total < limit, "the server kept reading for an app that does not receive"
        assert grown < rss_limit, f"RSS grew by {grown >> 20} MiB"
    assert httpx.get(server.url + "/", timeout=5).text == "http ok"


def test_pings_are_read_for_an_app_that_does_not_receive(serve: ServerFactory) -> None:
    # The app never calls receive, but control frames are the server's business: a ping is answered.
    server = serve("ws_apps:app")
    with Wire(server.connect()) as w:
        handshake(w, "/sink?id=sink-ping")
        server.wait_record("sink-sink-ping")
        w.send(encode_frame(PING, b"are you there"))
        assert read_message(w) == (PONG, b"are you there")
