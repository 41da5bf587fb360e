"""HTTP/3 end to end: a real server with --http3, aioquic's own client over loopback UDP (tests/h3_support.py).

GET, a 4 MiB download and upload under flow control, 100 concurrent streams on one connection, trailers, a
client that resets its stream (the app sees http.disconnect), a malformed request, WSGI with a streamed
``wsgi.input``, a Starlette app, the Alt-Svc header on the TCP side, the access log's protocol, and a HUP while
a client holds a connection.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from h3_support import H3, Answer
from server_process import ServerFactory, ServerProcess
from supervisor_support import supervise
from tls_certs import TLSFiles

MiB = 1 << 20
H3_MESSAGE_ERROR = 0x10E


def tls_args(tls: TLSFiles) -> tuple[str, ...]:
    return ("--certfile", str(tls.server_cert), "--keyfile", str(tls.server_key), "--http3")


@pytest.fixture(scope="module")
def asgi(module_serve: ServerFactory, tls_files: TLSFiles) -> ServerProcess:
    return module_serve("asgi_apps:app", *tls_args(tls_files), scheme="https")


def client(server: ServerProcess, tls: TLSFiles) -> H3:
    return H3.connect("127.0.0.1", server.port, str(tls.ca_cert), server_name="localhost")


def test_a_get_over_http3_reaches_the_app_as_http_version_3(asgi: ServerProcess, tls_files: TLSFiles) -> None:
    with client(asgi, tls_files) as h3:
        answer = h3.get("/scope?x=1")
    assert answer.status == 200, answer
    scope = json.loads(answer.body)
    assert scope["http_version"] == "3" and scope["scheme"] == "https" and scope["query_string"] == "x=1"
    assert scope["method"] == "GET" and scope["path"] == "/scope"
    asgi.wait_output('"GET /scope?x=1 HTTP/3" 200')


def test_the_tcp_side_advertises_http3(asgi: ServerProcess, tls_files: TLSFiles) -> None:
    reply = httpx.get(f"https://localhost:{asgi.port}/", verify=tls_files.client_context())
    assert reply.headers["alt-svc"] == f'h3=":{asgi.port}"; ma=86400'


def test_a_4_mib_download_and_upload_under_flow_control(asgi: ServerProcess, tls_files: TLSFiles) -> None:
    with client(asgi, tls_files) as h3:
        down = h3.wait(h3.request("GET", "/big-stream?mb=4&id=h3"), timeout=30)
        assert down.status == 200 and len(down.body) == 4 * MiB and down.ended
        body = bytes(range(256)) * (4 * MiB // 256)
        up = h3.wait(h3.request("POST", "/echo", body=body), timeout=30)
        assert up.status == 200 and up.body == body


def test_a_hundred_concurrent_streams_on_one_connection(asgi: ServerProcess, tls_files: TLSFiles) -> None:
    with client(asgi, tls_files) as h3:
        sids = [h3.request("GET", f"/slow?s=0.3&n={i}") for i in range(100)]
        started = time.monotonic()
        answers = [h3.wait(sid, timeout=30) for sid in sids]
        took = time.monotonic() - started
    assert all(a.status == 200 for a in answers), [a.status for a in answers if a.status != 200]
    assert took < 10, f"100 requests of 0.3 s each took {took:.1f} s: they did not run concurrently"


def test_trailers_follow_the_body(asgi: ServerProcess, tls_files: TLSFiles) -> None:
    with client(asgi, tls_files) as h3:
        answer = h3.get("/trailers")
    assert answer.body == b"helloworld"
    assert dict(answer.trailers) == {b"x-checksum": b"abc", b"x-count": b"2"}


def test_a_reset_stream_reaches_the_app_as_a_disconnect(asgi: ServerProcess, tls_files: TLSFiles) -> None:
    with client(asgi, tls_files) as h3:
        sid = h3.request("POST", "/disconnect?id=h3reset", body=b"part", end=False)
        asgi.wait_record("waiting-h3reset")
        h3.reset(sid)
        assert asgi.wait_record("disconnect-h3reset") == "http.disconnect"
        assert h3.get("/").status == 200, "the connection serves on"


def test_a_malformed_request_resets_its_stream_only(asgi: ServerProcess, tls_files: TLSFiles) -> None:
    with client(asgi, tls_files) as h3:
        protocol = h3.protocol
        sid = protocol._quic.get_next_available_stream_id()
        protocol.answers[sid] = Answer()
        protocol.h3.send_headers(sid, [(b":method", b"GET"), (b":scheme", b"https")], end_stream=True)  # no :path
        protocol.transmit()
        answer = h3.wait(sid)
        assert answer.reset == H3_MESSAGE_ERROR, answer
        assert h3.get("/").status == 200


def test_wsgi_reads_a_streamed_body(serve: ServerFactory, tls_files: TLSFiles) -> None:
    server = serve("h2_apps:wsgi", *tls_args(tls_files), scheme="https")
    with client(server, tls_files) as h3:
        sid = h3.request("POST", "/echo", body=b"a" * 100_000, end=False)
        h3.sleep(0.2)
        h3.send(sid, b"b" * 100_000, end=True)
        answer = h3.wait(sid, timeout=20)
        assert answer.status == 200 and answer.body == b"a" * 100_000 + b"b" * 100_000
        facts = json.loads(h3.get("/facts?q=1").body)
        assert facts["protocol"] == "HTTP/3" and facts["query"] == "q=1"


def test_a_starlette_app_over_http3(serve: ServerFactory, tls_files: TLSFiles) -> None:
    server = serve("starlette_app:app", *tls_args(tls_files), scheme="https")
    with client(server, tls_files) as h3:
        home = h3.get("/")
        assert home.status == 200 and home.body
        numbers = h3.get("/numbers")
        assert numbers.status == 200 and numbers.ended


def test_a_hup_while_a_client_holds_a_connection(serve: ServerFactory, tls_files: TLSFiles) -> None:
    """The old worker says GOAWAY and finishes what is in flight; a new connection reaches the new worker."""
    server = supervise(
        serve, "--supervisor", "--workers", "1", *tls_args(tls_files), app="supervisor_apps:app", scheme="https"
    )
    with client(server, tls_files) as h3:
        old_pid = int(h3.get("/").body)
        slow = h3.request("GET", "/slow?s=1")
        server.send_signal(signal.SIGHUP)
        answer = h3.wait(slow, timeout=20)
        assert answer.status == 200, "the request in flight finished on the old worker"
    deadline = time.monotonic() + 20
    while True:
        with client(server, tls_files) as h3:
            pid = int(h3.get("/").body)
        if pid != old_pid or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert pid != old_pid, "a new connection after the reload reaches a new worker"


def test_without_aioquic_asking_for_http3_is_a_clear_startup_error(tmp_path: Path, tls_files: TLSFiles) -> None:
    hider = tmp_path / "hide"
    hider.mkdir()
    (hider / "sitecustomize.py").write_text("import sys\nsys.modules['aioquic'] = None  # as if not installed\n")
    env = dict(os.environ, PYTHONPATH=str(hider))
    done = subprocess.run(
        [sys.executable, "-m", "monoceros", *tls_args(tls_files), "--port", "0", "monoceros.demo:app"],
        capture_output=True, text=True, timeout=30, env=env,
    )  # fmt: skip
    assert done.returncode != 0
    assert "needs aioquic, which is not installed: pip install 'monoceros[http3]'" in done.stderr, done.stderr


def test_http3_without_tls_is_refused(serve: ServerFactory) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "monoceros", "--http3", "--port", "0", "monoceros.demo:app"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert done.returncode != 0 and "'http3' needs 'certfile' and 'keyfile'" in done.stderr, done.stderr


def test_a_client_that_moves_to_a_new_port_keeps_its_connection_on_one_worker(
    asgi: ServerProcess, tls_files: TLSFiles
) -> None:
    """One worker owns every connection ID, so a NAT rebinding is followed (RFC 9000 §9). With several workers
    the kernel may hash the new address to another one: scripts/quic_migration measures that."""
    with client(asgi, tls_files) as h3:
        assert h3.get("/").status == 200
        for _ in range(3):
            h3.rebind()
            assert h3.get("/").status == 200


def test_0rtt_serves_only_safe_methods(serve: ServerFactory, tls_files: TLSFiles) -> None:
    """--quic-early-data safe: a resumed client's GET in 0-RTT data is served; its POST gets 425 Too Early."""
    server = serve("asgi_apps:app", *tls_args(tls_files), "--quic-early-data", "safe", scheme="https")
    tickets: list[object] = []
    with H3.connect(
        "127.0.0.1", server.port, str(tls_files.ca_cert), server_name="localhost", session_ticket_handler=tickets.append
    ) as h3:
        assert h3.get("/").status == 200
        h3.until(lambda: bool(tickets), 5)
    with H3.connect(
        "127.0.0.1", server.port, str(tls_files.ca_cert), server_name="localhost", session_ticket=tickets[-1],
        wait_connected=False,
    ) as early:  # fmt: skip
        get = early.request("GET", "/")
        post = early.request("POST", "/echo", body=b"replayable")
        assert early.wait(get).status == 200
        assert early.wait(post).status == 425  # so both came in 0-RTT data, before the handshake completed


def test_a_connection_closed_mid_request_reaches_the_app_as_a_disconnect(
    asgi: ServerProcess, tls_files: TLSFiles
) -> None:
    h3 = client(asgi, tls_files)
    h3.request("POST", "/disconnect?id=h3close", body=b"part", end=False)
    asgi.wait_record("waiting-h3close")
    h3.close()  # CONNECTION_CLOSE with the request still open
    assert asgi.wait_record("disconnect-h3close") == "http.disconnect"


def test_the_metrics_count_http3(serve: ServerFactory, tls_files: TLSFiles) -> None:
    from server_process import free_port
    from test_e2e_admin import scrape, total

    admin = free_port()
    server = supervise(
        serve, "--admin-bind", f"127.0.0.1:{admin}", *tls_args(tls_files), app="asgi_apps:app", scheme="https"
    )
    with client(server, tls_files) as h3:
        for _ in range(3):
            assert h3.get("/").status == 200
        deadline = time.monotonic() + 10
        while True:  # the worker publishes its counts every 0.25 s
            samples = scrape(f"http://127.0.0.1:{admin}")
            served = total(samples, "monoceros_http_requests_total", protocol="h3")
            if served >= 3 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert served >= 3, "requests over HTTP/3 are counted as protocol h3"
        assert samples[("monoceros_connections_open", (("protocol", "h3"),))] == 1


def test_a_header_list_over_the_limits_gets_431(serve: ServerFactory, tls_files: TLSFiles) -> None:
    server = serve(
        "asgi_apps:app", *tls_args(tls_files), "--limit-request-fields", "10", "--max-request-header-size", "2000",
        scheme="https",
    )  # fmt: skip
    with client(server, tls_files) as h3:
        many = h3.get("/", [(f"x-{i}", "v") for i in range(20)])
        assert many.status == 431, many
        large = h3.get("/", [("x-big", "v" * 3000)])
        assert large.status == 431, large
        assert h3.get("/", [("x-ok", "v")]).status == 200, "the connection serves on"
