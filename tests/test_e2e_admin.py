"""End to end, the admin listener (--admin-bind): /metrics added up over real workers under real load and
read with prometheus_client's own parser, a worker killed with -9, /healthz and /readyz through a SIGTERM
with --drain-delay, the token and basic auth, a unix-socket admin listener, and the counts of refusals and
WebSocket traffic."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from server_process import ServerFactory, ServerProcess, Wire, free_port, short_socket_path
from supervisor_support import children, supervise, wait_for
from ws_support import client

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(url: str, **options: object) -> Samples:
    """Every sample of a /metrics scrape, parsed by prometheus_client (which fails on a malformed text)."""
    response = httpx.get(url + "/metrics", timeout=5, **options)  # type: ignore[arg-type]
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    want = set(labels.items())
    return sum(value for (n, keys), value in samples.items() if n == name and want <= set(keys))


@pytest.fixture
def admin_port() -> int:
    return free_port()


def start(serve: ServerFactory, admin_port: int, *args: str, app: str = "asgi_apps:app") -> tuple[ServerProcess, str]:
    server = supervise(serve, "--admin-bind", f"127.0.0.1:{admin_port}", *args, app=app)
    return server, f"http://127.0.0.1:{admin_port}"


class Load:
    """Clients on threads, counting the responses they got, by kind."""

    def __init__(self, url: str, threads: int = 4) -> None:
        self.url = url
        self.counts = {"get": 0, "post": 0, "error": 0, "failed": 0}
        self.uploaded = 0
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, args=(i,)) for i in range(threads)]

    def __enter__(self) -> Load:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(30)

    def _run(self, index: int) -> None:
        with httpx.Client(timeout=10) as http:
            n = 0
            deadline = time.monotonic() + 30
            while not self.stop.is_set() and time.monotonic() < deadline:
                n += 1
                try:
                    if n % 7 == 0:
                        body = b"u" * (1000 + index)
                        ok = http.post(self.url + "/echo", content=body).status_code == 200
                        kind = "post"
                    elif n % 11 == 0:
                        ok = http.get(self.url + "/raise-before").status_code == 500
                        kind = "error"
                    else:
                        ok = http.get(self.url + "/hello").status_code == 200
                        kind = "get"
                except httpx.HTTPError:
                    ok, kind = False, "failed"
                with self.lock:
                    self.counts[kind if ok else "failed"] += 1
                    if kind == "post" and ok:
                        self.uploaded += len(body)

    def answered(self) -> int:
        with self.lock:
            return self.counts["get"] + self.counts["post"] + self.counts["error"]


def test_metrics_add_up_over_workers_and_survive_a_kill(serve: ServerFactory, admin_port: int) -> None:
    server, admin = start(serve, admin_port, "-w", "2", "--no-access-log")
    with Load(server.url) as load:
        wait_for(lambda: load.answered() > 300, timeout=20, what="some load")
        # Under load: a scrape counts no more than the responses given by its end, and at least those given
        # half a second before it began (the workers publish every 0.25 s), less the 4 requests in flight.
        history: list[tuple[float, int]] = []
        for _ in range(60):
            history.append((time.monotonic(), load.answered()))
            time.sleep(0.01)
        began = time.monotonic()
        during = total(scrape(admin), "monoceros_http_requests_total")
        after = load.answered()
        floor = max(n for t, n in history if t <= began - 0.5)
        assert floor - 4 <= during <= after, (floor, during, after)
    assert load.counts["failed"] == 0, load.counts

    def settled() -> Samples | None:
        s = scrape(admin)
        return s if total(s, "monoceros_http_requests_total") == load.answered() else None

    samples = wait_for(settled, timeout=5, what="the scrape to count every response")
    assert (
        total(samples, "monoceros_http_requests_total", method="GET", status="2xx", protocol="http/1.1")
        == (load.counts["get"])
    )
    assert total(samples, "monoceros_http_requests_total", method="POST", status="2xx") == load.counts["post"]
    assert total(samples, "monoceros_http_requests_total", method="GET", status="5xx") == load.counts["error"]
    assert samples[("monoceros_http_request_duration_seconds_count", ())] == load.answered()
    assert samples[("monoceros_http_request_duration_seconds_bucket", (("le", "+Inf"),))] == load.answered()
    assert samples[("monoceros_http_request_duration_seconds_sum", ())] > 0
    assert samples[("monoceros_http_request_body_bytes_total", ())] == load.uploaded
    assert samples[("monoceros_http_response_body_bytes_total", ())] >= load.uploaded
    assert samples[("monoceros_http_requests_in_flight", ())] == 0
    assert total(samples, "monoceros_worker_requests_total") == load.answered()
    workers = {dict(keys)["pid"] for (name, keys) in samples if name == "monoceros_worker_resident_memory_bytes"}
    assert workers == {str(pid) for pid in children(server.pid)}
    assert all(v > 1_000_000 for (n, _), v in samples.items() if n == "monoceros_worker_resident_memory_bytes")
    assert total(samples, "monoceros_worker_cpu_seconds_total") > 0
    assert total(samples, "monoceros_workers", state="ready") == 2
    assert samples[("monoceros_worker_starts_total", ())] == 2
    assert total(samples, "monoceros_listen_backlog_limit") == 2048  # the kernel's own view of the listener
    assert total(samples, "monoceros_listen_backlog") >= 0

    victim = min(int(p) for p in workers)
    os.kill(victim, signal.SIGKILL)

    def replaced() -> Samples | None:
        s = scrape(admin)
        ready = total(s, "monoceros_workers", state="ready") == 2
        return s if ready and s[("monoceros_worker_exits_total", (("reason", "crash"),))] == 1 else None

    samples = wait_for(replaced, timeout=10, what="the killed worker counted as a crash and replaced")
    assert samples[("monoceros_worker_starts_total", ())] == 3
    # its counts stay: counters never go backwards when a worker goes
    assert total(samples, "monoceros_http_requests_total") == load.answered()
    page = httpx.get(admin + "/status.json", timeout=5).json()
    assert page["restarts"][0]["pid"] == victim and page["restarts"][0]["reason"] == "crash"
    assert "SIGKILL" in page["restarts"][0]["detail"]


def test_readyz_turns_503_while_the_app_still_serves_during_the_drain_delay(
    serve: ServerFactory, admin_port: int
) -> None:
    server, admin = start(serve, admin_port, "--drain-delay", "3", "--no-access-log")
    assert httpx.get(admin + "/readyz").status_code == 200
    assert httpx.get(admin + "/healthz").text == "ok\n"
    server.send_signal(signal.SIGTERM)
    wait_for(lambda: httpx.get(admin + "/readyz").status_code == 503, timeout=3, what="readyz 503")
    assert httpx.get(admin + "/readyz").text == "not ready: draining\n"
    for _ in range(5):  # the app's port answers 200 all the while
        assert httpx.get(server.url + "/hello").status_code == 200
        assert httpx.get(admin + "/healthz").status_code == 200
        time.sleep(0.2)
    samples = scrape(admin)
    assert samples[("monoceros_ready", ())] == 0
    server.wait_output("Draining: not ready from now on")
    assert server.wait(10) == 0
    assert "Stopping gracefully" in server.output()


def test_a_second_term_ends_the_drain_delay(serve: ServerFactory, admin_port: int) -> None:
    server, admin = start(serve, admin_port, "--drain-delay", "60", "--no-access-log")
    server.send_signal(signal.SIGTERM)
    wait_for(lambda: httpx.get(admin + "/readyz").status_code == 503, timeout=3, what="readyz 503")
    server.send_signal(signal.SIGTERM)
    assert server.wait(10) == 0


def test_one_process_drains_by_itself(serve: ServerFactory) -> None:
    server = serve("asgi_apps:app", "--drain-delay", "1.5", "--no-access-log")
    server.send_signal(signal.SIGTERM)
    server.wait_output("draining; serving for 1.5 s more")
    assert httpx.get(server.url + "/hello").status_code == 200
    started = time.monotonic()
    assert server.wait(10) == 0
    assert time.monotonic() - started > 0.8


def test_token_and_basic_auth_guard_all_but_the_probes(serve: ServerFactory, admin_port: int) -> None:
    server, admin = start(
        serve, admin_port, "--admin-token", "s3cret", "--admin-basic-auth", "ops:pa:ss", "--no-access-log"
    )
    for path in ("/metrics", "/", "/status.json"):
        refused = httpx.get(admin + path)
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"].startswith("Basic ")
        assert httpx.get(admin + path, headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert httpx.get(admin + path, headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert httpx.get(admin + path, auth=("ops", "pa:ss")).status_code == 200
        assert httpx.get(admin + path, auth=("ops", "nope")).status_code == 401
    assert httpx.get(admin + "/healthz").status_code == 200
    assert httpx.get(admin + "/readyz").status_code == 200
    assert httpx.get(admin + "/nothing-here", headers={"Authorization": "Bearer s3cret"}).status_code == 404
    assert httpx.post(admin + "/metrics").status_code == 405
    assert "reachable from other machines" not in server.output()


def test_an_open_admin_listener_is_warned_about(serve: ServerFactory) -> None:
    port = free_port(host="0.0.0.0")
    server = supervise(serve, "--admin-bind", f"0.0.0.0:{port}", app="asgi_apps:app")
    assert "is reachable from other machines and has no --admin-token" in server.output()
    assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200


def test_admin_on_a_unix_socket(serve: ServerFactory, tmp_path: Path) -> None:
    path = short_socket_path(tmp_path, "admin.sock")
    supervise(serve, "--admin-bind", f"unix:{path}", app="asgi_apps:app")
    assert oct(os.stat(path).st_mode & 0o777) == "0o660"
    with httpx.Client(transport=httpx.HTTPTransport(uds=path)) as http:
        assert http.get("http://admin/readyz").status_code == 200
        assert "monoceros_workers" in http.get("http://admin/metrics").text


def test_refusals_and_websocket_traffic_are_counted(serve: ServerFactory, admin_port: int) -> None:
    server, admin = start(serve, admin_port, "--limit-request-field-size", "200", app="ws_apps:app")
    with Wire(server.connect()) as wire:
        wire.send(b"GET / HTTP/1.1\r\nHost: a\r\nBad Header\r\n\r\n")
        assert wire.read_response().status == 400
    with Wire(server.connect()) as wire:
        wire.send(b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + b"b" * 300 + b"\r\n\r\n")
        assert wire.read_response().status == 431
    ws = client(server, "/echo")
    for i in range(3):
        ws.send(f"message {i}")
        assert ws.recv(timeout=5) == f"message {i}"

    def counted() -> Samples | None:
        s = scrape(admin)
        return s if s[("monoceros_websocket_messages_total", (("direction", "out"),))] == 3 else None

    samples = wait_for(counted, timeout=5, what="the messages counted")
    assert samples[("monoceros_websocket_messages_total", (("direction", "in"),))] == 3
    assert samples[("monoceros_websocket_connections_total", ())] == 1
    assert samples[("monoceros_websocket_connections_open", ())] == 1
    assert samples[("monoceros_connections_open", (("protocol", "websocket"),))] == 1
    assert samples[("monoceros_limits_hit_total", (("kind", "400"),))] == 1
    assert samples[("monoceros_limits_hit_total", (("kind", "431"),))] == 1
    ws.close()
    wait_for(lambda: scrape(admin)[("monoceros_websocket_connections_open", ())] == 0, timeout=5, what="ws closed")


def test_the_admin_listener_answers_while_every_worker_is_down(serve: ServerFactory, admin_port: int) -> None:
    server, admin = start(serve, admin_port, "-w", "2", app="supervisor_apps:app")
    for pid in children(server.pid):
        os.kill(pid, signal.SIGSTOP)  # both workers hang: their heartbeats stop
    try:
        assert httpx.get(admin + "/healthz", timeout=2).status_code == 200
        samples = scrape(admin)
        wait_for(
            lambda: min(v for (n, _), v in scrape(admin).items() if n == "monoceros_worker_heartbeat_age_seconds") > 1,
            timeout=5,
            what="the heartbeat ages to grow",
        )
        assert total(samples, "monoceros_workers", state="ready") == 2
    finally:
        for pid in children(server.pid):
            os.kill(pid, signal.SIGCONT)


def test_every_limit_kind_and_http2_are_counted(serve: ServerFactory, admin_port: int) -> None:
    server, admin = start(
        serve, admin_port, "--limit-request-line", "100", "--limit-request-body", "1000", "--header-timeout", "0.5",
        "--limit-concurrency", "1", "--no-access-log",
    )  # fmt: skip
    with Wire(server.connect()) as idle:  # at the limit (1), a newcomer reclaims an idle connection's slot
        idle.send(b"GET /hello HTTP/1.1\r\nHost: a\r\n\r\n")
        assert idle.read_response().status == 200
        with Wire(server.connect()) as newcomer:
            newcomer.send(b"GET /hello HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            assert newcomer.read_response().status == 200
            newcomer.read_to_eof()
        assert idle.closed_by_peer(5)
    time.sleep(0.1)
    refusals = [
        b"GET /" + b"a" * 200 + b" HTTP/1.1\r\nHost: a\r\n\r\n",  # 414
        b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5000\r\n\r\n",  # 413
        b"GET / HTTP/1.1\r\nHost: a\r\n",  # 408: a head that never ends
    ]
    for data, status in zip(refusals, (414, 413, 408), strict=True):
        with Wire(server.connect()) as wire:
            wire.send(data)
            assert wire.read_response().status == status
            wire.read_to_eof()  # the server closes: the connection no longer counts against the limit
        time.sleep(0.1)  # (once its connection_lost has run)
    with Wire(server.connect()) as first, Wire(server.connect()) as second:  # 503: past --limit-concurrency
        first.send(b"GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
        time.sleep(0.2)
        second.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        assert second.read_response().status == 503
        assert first.read_response().status == 200
    with httpx.Client(http1=False, http2=True) as h2:  # prior knowledge over cleartext
        assert h2.get(server.url + "/hello").http_version == "HTTP/2"

    def counted() -> Samples | None:
        s = scrape(admin)
        kinds = {
            kind: s[("monoceros_limits_hit_total", (("kind", kind),))]
            for kind in ("408", "413", "414", "503", "reclaimed")
        }
        h2 = total(s, "monoceros_http_requests_total", protocol="h2", method="GET", status="2xx")
        return s if all(v == 1 for v in kinds.values()) and h2 == 1 else None

    wait_for(counted, timeout=5, what="each refusal counted once, and the HTTP/2 request as h2")


def test_readyz_waits_for_the_lifespan_startup(serve: ServerFactory, admin_port: int) -> None:
    app = """
import asyncio

async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        await receive()
        await asyncio.sleep(2)  # a slow startup: a database, a model to load
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await send({"type": "lifespan.shutdown.complete"})
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})
"""
    server = serve(
        "slow_start:app", "--admin-bind", f"127.0.0.1:{admin_port}", sources={"slow_start.py": app},
        ready_text="Admin listener at", new_session=True,
    )  # fmt: skip
    admin = f"http://127.0.0.1:{admin_port}"
    early = wait_for(lambda: _get(admin + "/readyz"), timeout=5, what="the admin listener")
    assert early.status_code == 503 and early.text == "not ready: workers are booting\n"
    assert _get(admin + "/healthz").status_code == 200  # alive meanwhile
    wait_for(lambda: _get(admin + "/readyz").status_code == 200, timeout=10, what="ready after the startup")
    assert "Ready: 1 worker(s) serving" in server.output()


def _get(url: str) -> httpx.Response:
    return httpx.get(url, timeout=5)


@pytest.mark.parametrize("where", ["tcp", "unix"])
def test_usr2_hands_the_admin_listener_to_the_new_master(serve: ServerFactory, tmp_path: Path, where: str) -> None:
    if where == "unix":
        path = short_socket_path(tmp_path, "admin.sock")
        bind, transport = f"unix:{path}", httpx.HTTPTransport(uds=path)
        url = "http://admin"
    else:
        port = free_port()
        bind, transport, url = f"127.0.0.1:{port}", httpx.HTTPTransport(), f"http://127.0.0.1:{port}"
    server = supervise(serve, "--admin-bind", bind, "--pid", "m.pid", app="asgi_apps:app")
    with httpx.Client(transport=transport, timeout=5) as http:
        assert http.get(url + "/readyz").status_code == 200
        server.send_signal(signal.SIGUSR2)
        wait_for(lambda: server.output().count("Ready: ") == 2, 10, "the new master ready", server)
        new = int((server.workdir / "m.pid").read_text())
        assert "Admin listener at: " in server.output() and "(inherited)" in server.output()
        server.send_signal(signal.SIGTERM)  # the operator retires the old master
        assert server.proc.wait(10) == 0
        try:
            for _ in range(5):  # every connection now reaches the new master, which is ready
                assert http.get(url + "/readyz").status_code == 200
            pids = {
                dict(keys)["pid"]
                for (name, keys) in _samples(http, url)
                if name == "monoceros_worker_cpu_seconds_total"
            }
            assert pids == {str(p) for p in children(new)}
        finally:
            os.kill(new, signal.SIGTERM)


def _samples(http: httpx.Client, url: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(http.get(url + "/metrics").text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def test_recycled_workers_lose_no_counts(serve: ServerFactory, admin_port: int) -> None:
    server, admin = start(serve, admin_port, "--max-requests", "20", "--no-access-log")
    with httpx.Client(timeout=10) as http:
        for _ in range(70):
            assert http.get(server.url + "/hello").status_code == 200
    wait_for(
        lambda: scrape(admin)[("monoceros_worker_exits_total", (("reason", "recycle"),))] >= 3,
        timeout=10,
        what="three recycles",
    )

    def all_counted() -> Samples | None:
        s = scrape(admin)
        return s if total(s, "monoceros_http_requests_total") == 70 else None

    samples = wait_for(all_counted, timeout=5, what="all 70 requests counted")
    assert samples[("monoceros_worker_starts_total", ())] >= 4


def test_exits_by_reason_timeout_and_reload(serve: ServerFactory, admin_port: int) -> None:
    server, admin = start(serve, admin_port, "--timeout", "1", app="supervisor_apps:app")
    with pytest.raises(httpx.HTTPError):
        httpx.get(server.url + "/block?s=30", timeout=10)  # the loop blocks: no heartbeat, SIGABRT, replaced
    wait_for(
        lambda: scrape(admin)[("monoceros_worker_exits_total", (("reason", "timeout"),))] == 1, 10, "a timeout exit"
    )
    wait_for(lambda: httpx.get(admin + "/readyz").status_code == 200, 10, "ready again")
    server.send_signal(signal.SIGHUP)
    wait_for(lambda: scrape(admin)[("monoceros_worker_exits_total", (("reason", "reload"),))] == 1, 10, "a reload exit")
    reasons = [r["reason"] for r in httpx.get(admin + "/status.json").json()["restarts"]]
    assert reasons[:2] == ["reload", "timeout"]
