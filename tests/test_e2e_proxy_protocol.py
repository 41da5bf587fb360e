"""End to end, ``--proxy-protocol``: raw sockets speak as HAProxy or an AWS NLB would, v1 and v2, from a
trusted address and an untrusted one, with truncated, malformed and late headers, over TCP and TLS; the app
(ASGI and WSGI) and the access log see the client the header names, and /metrics counts what was refused."""

from __future__ import annotations

import json
import socket
import ssl
import time

import pytest
from server_process import ServerFactory, ServerProcess, Wire, free_port
from supervisor_support import wait_for
from test_proxy_protocol import v2
from tls_certs import TLSFiles

V1 = b"PROXY TCP4 198.51.100.23 10.1.2.3 40123 443\r\n"
V1_IPV6 = b"PROXY TCP6 2001:db8::23 2001:db8::1 40123 443\r\n"
GET = b"GET /probe HTTP/1.1\r\nHost: app.example\r\nConnection: close\r\n\r\n"


def facts(server: ServerProcess, header: bytes, request: bytes = GET) -> dict[str, object]:
    with Wire(server.connect()) as wire:
        wire.send(header + request)
        response = wire.read_response()
    assert response.status == 200, response
    data: dict[str, object] = json.loads(response.body)
    return data


def refused(server: ServerProcess, data: bytes, then_close: bool = False, timeout: float = 5.0) -> bytes:
    """Send ``data``; return what came back before the server closed the connection (nothing, it should be).
    A reset counts as closed: the server closes with the client's bytes unread."""
    sock = server.connect()
    received = b""
    try:
        sock.sendall(data)
        if then_close:
            sock.shutdown(socket.SHUT_WR)
        sock.settimeout(timeout)
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                return received
            received += chunk
    except ConnectionResetError:
        return received
    finally:
        sock.close()


@pytest.mark.parametrize("app", ["probe_apps:asgi", "probe_apps:wsgi"])
def test_the_header_names_the_client_for_asgi_wsgi_and_the_access_log(serve: ServerFactory, app: str) -> None:
    server = serve(app, "--proxy-protocol")
    seen = facts(server, V1)
    if app.endswith("asgi"):
        assert seen["client"] == ["198.51.100.23", 40123]
    else:
        assert (seen["remote_addr"], seen["remote_port"]) == ("198.51.100.23", "40123")
    seen = facts(server, v2())
    key = "client" if app.endswith("asgi") else "remote_addr"
    assert seen[key] in (["203.0.113.7", 51234], "203.0.113.7")
    seen = facts(server, V1_IPV6)
    assert seen[key] in (["2001:db8::23", 40123], "2001:db8::23")
    # LOCAL (a proxy's own health check) and UNKNOWN: the connection's own address stands
    for header in (v2(command=0, family=0, transport=0), b"PROXY UNKNOWN\r\n"):
        seen = facts(server, header)
        assert seen[key] in (["127.0.0.1", seen.get("client", [None, None])[1]], "127.0.0.1")  # type: ignore[index]
    server.wait_output("198.51.100.23 - - [")  # the access log's %(h)s


def test_keep_alive_requests_after_the_header_keep_its_client(serve: ServerFactory) -> None:
    server = serve("probe_apps:asgi", "--proxy-protocol")
    keep = GET.replace(b"Connection: close\r\n", b"")
    with Wire(server.connect()) as wire:
        wire.send(v2() + keep)
        first = json.loads(wire.read_response().body)
        wire.send(keep)
        second = json.loads(wire.read_response().body)
    assert first["client"] == second["client"] == ["203.0.113.7", 51234]


def test_the_header_comes_before_tls(serve: ServerFactory, tls_files: TLSFiles) -> None:
    server = serve(
        "probe_apps:asgi", "--proxy-protocol", "--certfile", str(tls_files.server_cert),
        "--keyfile", str(tls_files.server_key), scheme="https",
    )  # fmt: skip
    raw = server.connect()
    raw.sendall(V1)
    context = tls_files.client_context()
    with context.wrap_socket(raw, server_hostname="localhost") as tls:
        tls.sendall(GET)
        data = b""
        while chunk := tls.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    seen = json.loads(body)
    assert seen["client"] == ["198.51.100.23", 40123]
    assert seen["scheme"] == "https"


def test_untrusted_peers_are_closed_unanswered_and_counted(serve: ServerFactory) -> None:
    admin = free_port()
    server = serve(
        "probe_apps:asgi", "--proxy-protocol", "--forwarded-allow-ips", "10.9.9.9",
        "--admin-bind", f"127.0.0.1:{admin}", ready_text="Ready: ",
    )  # fmt: skip
    assert refused(server, V1 + GET) == b""
    server.wait_output("is not in forwarded_allow_ips")
    assert refused(server, V1 + GET) == b""
    assert server.output().count("is not in forwarded_allow_ips") == 1  # logged once, not per connection
    wait_for(lambda: _limit(admin, "proxy_untrusted") == 2, timeout=5, what="two untrusted closes counted")


def test_malformed_truncated_and_late_headers_close_the_connection(serve: ServerFactory) -> None:
    admin = free_port()
    server = serve(
        "probe_apps:asgi", "--proxy-protocol", "--header-timeout", "1", "--admin-bind", f"127.0.0.1:{admin}",
        ready_text="Ready: ",
    )  # fmt: skip
    assert refused(server, GET) == b""  # no header at all: an HTTP request is not one
    assert refused(server, b"PROXY TCP4 198.51.100.23 10.1.2.3 99999 443\r\n" + GET) == b""
    assert refused(server, v2()[:20], then_close=True) == b""  # truncated, then the proxy went away
    started = time.monotonic()
    assert refused(server, b"PROXY TCP4 198.51.", timeout=10) == b""  # and then nothing: the deadline
    assert 0.8 < time.monotonic() - started < 5
    wait_for(lambda: _limit(admin, "proxy_header") == 4, timeout=5, what="four bad headers counted")
    # the worker keeps serving
    assert facts(server, V1)["client"] == ["198.51.100.23", 40123]


def test_a_header_in_pieces_and_the_body_behind_it(serve: ServerFactory) -> None:
    server = serve("asgi_apps:app", "--proxy-protocol")
    body = b"x" * 100_000
    request = b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\nConnection: close\r\n\r\n" + body
    header = v2(tlvs=b"\x04\x00\x03abc")
    with Wire(server.connect()) as wire:
        for i in range(0, len(header), 5):  # five bytes at a time, as a slow proxy might
            wire.send(header[i : i + 5])
            time.sleep(0.01)
        wire.send(request)
        response = wire.read_response()
    assert response.status == 200 and response.body == body


def _limit(port: int, kind: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    text = data.partition(b"\r\n\r\n")[2].decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "monoceros_limits_hit_total" and sample.labels.get("kind") == kind:
                return sample.value
    return -1.0


_ = ssl  # the TLS test's client context comes from tls_files


@pytest.mark.parametrize("app", ["probe_apps:asgi", "probe_apps:wsgi"])
def test_forwarded_and_x_forwarded_host_reach_the_app(serve: ServerFactory, app: str) -> None:
    server = serve(app, "--forwarded-allow-ips", "127.0.0.1,10.0.0.0/8")
    forwarded = (
        b"GET /probe HTTP/1.1\r\nHost: internal:8000\r\nConnection: close\r\n"
        b'Forwarded: for=198.51.100.9;proto=https;host=shop.example, for="10.0.0.7:5000";proto=http\r\n'
        b"X-Forwarded-For: 203.0.113.66\r\n\r\n"
    )
    seen = facts(server, b"", forwarded)
    if app.endswith("asgi"):
        assert (seen["client"], seen["scheme"], seen["host"]) == (["198.51.100.9", 0], "https", "shop.example")
    else:
        assert (seen["remote_addr"], seen["url_scheme"], seen["host"]) == ("198.51.100.9", "https", "shop.example")
    x_forwarded = (
        b"GET /probe HTTP/1.1\r\nHost: internal:8000\r\nConnection: close\r\nX-Forwarded-For: 203.0.113.66\r\n"
        b"X-Forwarded-Proto: https\r\nX-Forwarded-Host: www.example\r\n\r\n"
    )
    seen = facts(server, b"", x_forwarded)
    key = "client" if app.endswith("asgi") else "remote_addr"
    assert seen[key] in (["203.0.113.66", 0], "203.0.113.66")
    assert seen["host"] == "www.example"
