"""Every setting in the registry has an effect, or is refused, in each process model.

A setting accepted and then ignored is how ``--user nobody`` came to run an app as root: one process without a
master never read it. This walk makes that impossible to ship again. Every setting is proven by a probe: a real
server started with the setting (in one process, and under a supervisor), and a check of what the setting
changes, seen from a client or from inside the app (tests/apps/probe_apps.py). Where a setting can do nothing
(``--keyfile`` without ``--certfile``), the probe proves that the server refuses to start and names it.
``test_every_setting_is_walked`` fails when a setting is added without a probe.

Probes that share a server prove several settings at once; each assertion names the setting it proves.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import re
import select
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from h2_support import H2Client
from server_process import (
    APPS_DIR,
    ServerFactory,
    ServerProcess,
    Wire,
    free_port,
    in_background,
    request,
    short_socket_path,
)
from supervisor_support import children, kill_leftovers, supervise, wait_for
from tls_certs import TLSFiles
from ws_support import BINARY, CLOSE, PING, TEXT, client, encode_frame, handshake, parse_close, read_frame, wait_closed

from monoceros.config.registry import registry
from monoceros.protocols.http2 import PREFACE

MODELS = ("one process", "supervisor")
ROOT = os.geteuid() == 0

PROBES: dict[str, Callable[[Ctx], None]] = {}
PROVEN: dict[str, str] = {}  # setting -> the probe that proves it


def proves(*settings: str) -> Callable[[Callable[[Ctx], None]], Callable[[Ctx], None]]:
    def register(probe: Callable[[Ctx], None]) -> Callable[[Ctx], None]:
        PROBES[probe.__name__] = probe
        for name in settings:
            assert name not in PROVEN, f"{name} is proven twice"
            PROVEN[name] = probe.__name__
        return probe

    return register


@dataclass
class Ctx:
    """One probe's run: the server factory, a scratch directory, the TLS files and the process model."""

    serve: ServerFactory
    tmp: Path
    tls: TLSFiles
    model: str

    @property
    def supervised(self) -> bool:
        return self.model == "supervisor"

    def start(self, app: str | None, *args: str, http_ready: bool = False, **options: Any) -> ServerProcess:
        """A server in this probe's process model. ``http_ready``: wait for an answer instead of the ready log
        line (for probes that silence or redirect the log)."""
        model = ["--supervisor"] if self.supervised else []
        master = options.pop("master", False)
        if http_ready:
            options["ready_text"] = ""
        if self.supervised or master:
            server = supervise(self.serve, *model, *args, app=app, **options)
        else:
            server = self.serve(app, *args, **options)
        if http_ready:
            wait_for(lambda: _answers(server), 10, "an answer", server)
        return server

    def facts(self, server: ServerProcess, target: str = "/facts", **kwargs: Any) -> dict[str, Any]:
        response = httpx.get(server.url + target, timeout=10, **kwargs)
        assert response.status_code == 200, response.text
        return dict(response.json())

    def refused(self, *args: str, says: str, app: str = "probe_apps:asgi") -> None:
        """The server refuses to start with these settings, with an error naming the problem (exit 2)."""
        model = ["--supervisor"] if self.supervised else []
        server = self.serve(app, *model, *args, wait=False, new_session=True)
        assert server.wait(15) == 2, server.output()
        assert says in server.output(), server.output()


def _answers(server: ServerProcess) -> bool:
    try:
        with Wire(server.connect(timeout=1)) as wire:
            wire.send(request("GET", "/", [("Connection", "close")]))
            wire.read_response()
    except (OSError, EOFError, ValueError):
        return False
    return True


def raw(server: ServerProcess, data: bytes, timeout: float = 5.0) -> bytes:
    """Send exact bytes and read until the server closes (or ``timeout``)."""
    with server.connect(timeout) as sock:
        sock.sendall(data)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except (TimeoutError, ConnectionResetError):
            pass
    return b"".join(chunks)


def status_of(reply: bytes) -> int:
    return int(reply.split(b" ", 2)[1]) if reply.startswith(b"HTTP/1.1 ") else 0


def head_of(server: ServerProcess, target: str = "/facts") -> str:
    with Wire(server.connect()) as wire:
        wire.send(request("GET", target, [("Connection", "close")]))
        return wire.read_response().raw.split(b"\r\n\r\n")[0].decode("latin-1")


def workers_of(server: ServerProcess) -> set[int]:
    return children(server.pid)


def one_worker(server: ServerProcess) -> int:
    return wait_for(lambda: next(iter(workers_of(server)), 0), 10, "a worker", server)


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# -- the walk --------------------------------------------------------------------------------------------------


def test_every_setting_is_walked() -> None:
    names = {setting.name for setting in registry()}
    assert names - set(PROVEN) == set(), "settings without a probe: add one to tests/test_settings_effects.py"
    assert set(PROVEN) - names == set(), "probes of settings that do not exist"


# -- the application -------------------------------------------------------------------------------------------


@proves("app", "fd", "root_path", "lifespan", "loop", "gc_freeze", "heap_retain", "server_header", "date_header",
        "headers", "keep_alive", "access_logformat", "forwarded_allow_ips")  # fmt: skip
def probe_asgi_app(ctx: Ctx) -> None:
    server = ctx.start(
        "probe_apps:asgi", "--root-path", "/mount", "--lifespan", "off", "--loop", "asyncio", "--no-gc-freeze",
        "--heap-retain", "0", "--no-server-header", "--no-date-header", "--header", "X-Probe: yes",
        "--keep-alive", "0.3", "--access-logformat", "PROBE %(s)s %(m)s", "--forwarded-allow-ips", "10.0.0.0/8",
    )  # fmt: skip
    facts = ctx.facts(server, headers={"X-Forwarded-For": "203.0.113.9"})
    assert facts["probe"] == "asgi", "app"
    assert server.port is not None  # fd: the harness hands its socket over with --fd; the answer came through it
    assert facts["root_path"] == "/mount", "root_path"
    assert "started" not in facts["state"], "lifespan off: startup never ran"
    assert facts["loop"] == "_UnixSelectorEventLoop", "loop asyncio"
    assert facts["frozen"] == 0, "gc_freeze off"
    assert facts["heap_mmapped"] == 1, "heap_retain 0: glibc's own threshold puts 4 MiB in its own mmap"
    assert facts["client"][0] == "127.0.0.1", "forwarded_allow_ips: 127.0.0.1 is no longer a trusted proxy"
    head = head_of(server).lower()
    assert "\r\nserver:" not in head, "server_header off"
    assert "\r\ndate:" not in head, "date_header off"
    assert "\r\nx-probe: yes" in head, "headers"
    with Wire(server.connect()) as wire:
        wire.send(request("GET", "/facts"))
        wire.read_response()
        assert wire.closed_by_peer(3), "keep_alive 0.3: an idle connection is closed"
    server.wait_output("PROBE 200 GET", 5)  # access_logformat


@proves("proxy_headers", "access_log", "limit_concurrency", "graceful_timeout", "sendfile")
def probe_asgi_app_more(ctx: Ctx) -> None:
    server = ctx.start(
        "probe_apps:asgi", "--no-proxy-headers", "--no-access-log", "--limit-concurrency", "2",
        "--graceful-timeout", "0.5", "--no-sendfile", "--heap-retain", "64",
    )  # fmt: skip
    facts = ctx.facts(server, headers={"X-Forwarded-For": "203.0.113.9"})
    assert facts["client"][0] == "127.0.0.1", "proxy_headers off: X-Forwarded-For from 127.0.0.1 is not read"
    assert facts["heap_mmapped"] == 0, "heap_retain 64: 4 MiB comes from the heap"
    assert len(httpx.get(server.url + "/file?size=3000000", timeout=10).content) == 3000000
    added = set(ctx.facts(server)["threads"]) - set(facts["threads"])
    assert added, "sendfile off: the file was read by the loop's executor threads, not sent by the kernel"
    assert " 200 " not in server.output(), "access_log off"
    held = [Wire(server.connect()), Wire(server.connect())]
    try:
        for wire in held:  # both inside a request: nothing to reclaim
            wire.send(request("GET", "/slow?s=1", [("Connection", "close")]))
        time.sleep(0.3)
        assert status_of(raw(server, request("GET", "/facts"))) == 503, "limit_concurrency 2: the third gets 503"
        for wire in held:
            assert wire.read_response().status == 200
            assert wire.closed_by_peer(5)
    finally:
        for wire in held:
            wire.close()
    thread_started = time.monotonic()
    thread, result = in_background(server.url + "/slow?s=20&id=cut")
    server.wait_record("slow-started-cut")
    code = server.stop(signal.SIGTERM, timeout=10)
    assert time.monotonic() - thread_started < 8, "graceful_timeout 0.5: the 20 s request was cut"
    thread.join(10)
    assert code == 0 and "error" in result, "graceful_timeout"


@proves("interface")
def probe_interface(ctx: Ctx) -> None:
    server = ctx.start("probe_apps:asgi", "--interface", "asgi2", "--lifespan", "off")
    assert httpx.get(server.url + "/facts", timeout=5).status_code == 500, "interface asgi2: called as ASGI 2"
    server.wait_output("Exception in ASGI application", 5)  # the worker's log may trail its answer


@proves("wsgi_mode")
def probe_wsgi_inline(ctx: Ctx) -> None:
    server = ctx.start("probe_apps:wsgi", "--wsgi-mode", "inline", "--root-path", "/app")
    facts = ctx.facts(server, "/app/facts")
    assert facts["main_thread"] is True, "wsgi_mode inline: the view runs on the loop's thread"
    assert (facts["script_name"], facts["path_info"]) == ("/app", "/facts")


@proves("threads")
def probe_wsgi_threads(ctx: Ctx) -> None:
    server = ctx.start("probe_apps:wsgi", "--threads", "1")
    started = time.monotonic()
    with httpx.Client(timeout=10) as one, httpx.Client(timeout=10) as two:
        import concurrent.futures

        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            answers = list(pool.map(lambda c: c.get(server.url + "/slow?s=0.5"), (one, two)))
    assert [a.status_code for a in answers] == [200, 200]
    assert time.monotonic() - started >= 0.95, "threads 1: two 0.5 s views ran one after the other"


@proves("factory")
def probe_factory(ctx: Ctx) -> None:
    server = ctx.start("probe_apps:make_wsgi", "--factory")
    assert ctx.facts(server)["probe"] == "wsgi", "factory: the app is what make_wsgi() returned"
    assert "taken for an app factory" not in server.output()  # said explicitly: no warning
    server.wait_record("factory-called")


PASTE_INI = """\
[app:main]
paste.app_factory = probe_apps:paste_factory
colour = blue

[loggers]
keys = root, probe

[handlers]
keys = file

[formatters]
keys = plain

[logger_root]
level = WARNING
handlers =

[logger_probe]
level = INFO
handlers = file
qualname = probe_apps

[handler_file]
class = FileHandler
args = ({log!r},)
formatter = plain

[formatter_plain]
format = PASTE %(message)s
"""


@proves("paste")
def probe_paste(ctx: Ctx) -> None:
    logged = ctx.tmp / "paste.log"
    ini = write(ctx.tmp / "app.ini", PASTE_INI.format(log=str(logged)))
    server = ctx.start(None, "--paste", str(ini), "--pythonpath", str(APPS_DIR))
    assert ctx.facts(server)["probe"] == "wsgi", "paste"
    assert json.loads(server.wait_record("paste-factory")) == {"colour": "blue"}
    assert "PASTE the factory ran" in logged.read_text(), "paste: the file's [loggers] are applied, as gunicorn does"


@proves("app_dir", "pythonpath")
def probe_import_paths(ctx: Ctx) -> None:
    server = ctx.start(
        "local_probe:app",
        "--pythonpath",
        str(APPS_DIR),
        sources={"local_probe.py": "from probe_apps import asgi as app"},
    )
    facts = ctx.facts(server)
    assert facts["probe"] == "asgi", "app_dir and pythonpath: each module found where they point"
    assert str(APPS_DIR) in facts["sys_path"], "pythonpath"


# -- listening -------------------------------------------------------------------------------------------------


@proves("bind", "uds_perms", "backlog", "reuse_port")
def probe_bind(ctx: Ctx) -> None:
    port = free_port()
    path = short_socket_path(ctx.tmp, "bind.sock")
    server = ctx.start(
        "probe_apps:asgi", "-b", f"127.0.0.1:{port}", "-b", f"unix:{path}", "--uds-perms", "600", "--backlog", "37",
        "--reuse-port", listen=None,
    )  # fmt: skip
    server.port = port
    assert ctx.facts(server)["probe"] == "asgi", "bind: TCP"
    with httpx.Client(transport=httpx.HTTPTransport(uds=path), timeout=5) as over_unix:
        assert over_unix.get("http://x/facts").status_code == 200, "bind: unix"
    assert os.stat(path).st_mode & 0o777 == 0o600, "uds_perms"
    with socket.socket() as other:
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        other.bind(("127.0.0.1", port))  # reuse_port: the server's sockets let another bind the port
    if shutil.which("ss") is None:
        pytest.skip("backlog: a listener's backlog is read with ss, from iproute2 (.ci/run installs it)")
    ss = subprocess.run(["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True, check=True).stdout
    assert {line.split()[2] for line in ss.splitlines()} == {"37"}, f"backlog 37: ss says {ss!r}"


@proves("host", "port")
def probe_host_port(ctx: Ctx) -> None:
    port = free_port()
    server = ctx.start("probe_apps:asgi", "--host", "127.0.0.1", "--port", str(port), listen=None)
    server.port = port
    assert ctx.facts(server)["probe"] == "asgi", "host and port"


@proves("uds")
def probe_uds(ctx: Ctx) -> None:
    server = ctx.start("probe_apps:asgi", listen="uds")
    assert server.uds is not None
    with httpx.Client(transport=httpx.HTTPTransport(uds=server.uds), timeout=5) as over_unix:
        assert over_unix.get("http://x/facts").json()["probe"] == "asgi", "uds"
    assert os.stat(server.uds).st_mode & 0o777 == 0o666  # the default: a proxy under its own user connects


# -- TLS -------------------------------------------------------------------------------------------------------


def _tls_get(server: ServerProcess, context: ssl.SSLContext) -> tuple[dict[str, Any], str]:
    with (
        socket.create_connection(server.address, timeout=5) as sock,
        context.wrap_socket(sock, server_hostname="127.0.0.1") as tls,
    ):
        tls.sendall(request("GET", "/facts", [("Connection", "close")]))
        response = Wire(tls).read_response()
        cipher = tls.cipher()
    assert response.status == 200
    return json.loads(response.body), cipher[0] if cipher else ""


@proves("certfile", "keyfile", "keyfile_password", "ca_certs", "ciphers")
def probe_tls(ctx: Ctx) -> None:
    tls = ctx.tls
    server = ctx.start(
        "probe_apps:asgi", "--certfile", str(tls.server_cert), "--keyfile", str(tls.server_key_encrypted),
        "--keyfile-password", tls.key_password, "--ca-certs", str(tls.ca_cert), "--cert-reqs", "optional",
        "--ciphers", "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256", scheme="https",
    )  # fmt: skip
    context = tls.client_context(with_cert=True)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    facts, cipher = _tls_get(server, context)
    assert facts["scheme"] == "https", "certfile, keyfile and keyfile_password: TLS is served"
    assert "AES128-GCM-SHA256" in cipher, f"ciphers: TLS 1.2 negotiated {cipher}"
    assert facts["tls"]["client_cert_name"], "ca_certs: the client's certificate was verified against it"


SSL_HOOK = """\
import ssl

def ssl_context(config, default_ssl_context_factory):
    context = default_ssl_context_factory()
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    return context
"""


@proves("cert_reqs", "ssl_context")
def probe_tls_required(ctx: Ctx) -> None:
    tls = ctx.tls
    hook = write(ctx.tmp / "tls_conf.py", SSL_HOOK)
    server = ctx.start(
        "probe_apps:asgi", "-c", str(hook), "--certfile", str(tls.server_combined), "--ca-certs", str(tls.ca_cert),
        "--cert-reqs", "required", scheme="https",
    )  # fmt: skip
    facts, _ = _tls_get(server, tls.client_context(with_cert=True))
    assert facts["tls"]["client_cert_name"]
    with pytest.raises((ssl.SSLError, ConnectionError, EOFError)):
        _tls_get(server, tls.client_context())  # cert_reqs required: no certificate, no connection
    old = tls.client_context(with_cert=True)
    old.maximum_version = ssl.TLSVersion.TLSv1_2
    with pytest.raises((ssl.SSLError, ConnectionError)):
        _tls_get(server, old)  # ssl_context: the hook's context asks for TLS 1.3


@proves("ssl_reload_interval")
def probe_ssl_reload_interval(ctx: Ctx) -> None:
    tls = ctx.tls
    live = ctx.tmp / "live.pem"
    shutil.copyfile(tls.server_combined, live)
    server = ctx.start("probe_apps:asgi", "--certfile", str(live), "--ssl-reload-interval", "0.2", scheme="https")
    os.utime(live, ns=(0, 0))  # the same pair, another time: the watch loads it again
    server.wait_output("TLS certificate reloaded", 5)
    facts, _ = _tls_get(server, tls.client_context())
    assert facts["scheme"] == "https", "ssl_reload_interval: served on after the reload"


# -- the operations edge ---------------------------------------------------------------------------------------


@proves("admin_bind", "admin_token", "admin_basic_auth", "drain_delay")
def probe_admin_listener(ctx: Ctx) -> None:
    port = free_port()
    server = ctx.start(
        "probe_apps:asgi", "--admin-bind", f"127.0.0.1:{port}", "--admin-token", "t0k", "--admin-basic-auth",
        "ops:pw", "--drain-delay", "2", master=True,
    )  # fmt: skip
    admin = f"http://127.0.0.1:{port}"
    assert httpx.get(admin + "/metrics").status_code == 401, "admin_token: asked for"
    bearer = httpx.get(admin + "/metrics", headers={"Authorization": "Bearer t0k"})
    assert "monoceros_workers" in bearer.text, "admin_bind and admin_token: the metrics are served"
    assert httpx.get(admin + "/metrics", auth=("ops", "pw")).status_code == 200, "admin_basic_auth"
    server.send_signal(signal.SIGTERM)
    wait_for(lambda: httpx.get(admin + "/readyz").status_code == 503, 3, "drain_delay: not ready", server)
    assert ctx.facts(server)["probe"] == "asgi", "drain_delay: the app serves on meanwhile"
    assert server.wait(10) == 0


@proves("body_timeout")
def probe_body_timeout(ctx: Ctx) -> None:
    server = ctx.start("asgi_apps:app", "--body-timeout", "0.5")
    stalled = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n" + b"x" * 10  # /echo reads it
    assert status_of(raw(server, stalled)) == 408, "body_timeout 0.5: a body that stops gets 408"


@proves("body_min_rate")
def probe_body_min_rate(ctx: Ctx) -> None:
    server = ctx.start("asgi_apps:app", "--body-timeout", "0.5", "--body-min-rate", "1000")
    with server.connect() as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
        sock.settimeout(0.05)
        reply = b""
        for _ in range(100):  # 10 bytes every 50 ms: 200 bytes/s, under the minimum
            with contextlib.suppress(OSError):
                sock.sendall(b"x" * 10)
            with contextlib.suppress(TimeoutError):
                reply += sock.recv(65536)
            if b"\r\n\r\n" in reply:
                break
    assert status_of(reply) == 408 and b"--body-min-rate" in reply, "body_min_rate 1000: a trickle gets 408"


@proves("send_timeout")
def probe_send_timeout(ctx: Ctx) -> None:
    server = ctx.start("deadline_apps:app", "--send-timeout", "0.5")
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(server.address)
        sock.sendall(request("GET", "/endless?tag=probe"))  # and never read
        seen = server.wait_record("endless-probe", timeout=10)
    assert seen.startswith("ClientDisconnected"), "send_timeout 0.5: a client that stops reading is cut"


@proves("request_timeout")
def probe_request_timeout(ctx: Ctx) -> None:
    server = ctx.start("deadline_apps:app", "--request-timeout", "0.5")
    reply = httpx.get(server.url + "/sleep?tag=probe&s=30", timeout=10)
    assert reply.status_code == 503, "request_timeout 0.5: an app that takes too long gets the client a 503"
    assert server.wait_record("sleep-probe") == "cancelled"


@proves("http3", "http3_alt_svc", "quic_max_streams", "quic_max_stream_data", "quic_max_data", "quic_idle_timeout")
def probe_http3(ctx: Ctx) -> None:
    from h3_support import H3

    tls = ctx.tls
    server = ctx.start(
        "probe_apps:asgi", "--certfile", str(tls.server_cert), "--keyfile", str(tls.server_key), "--http3",
        "--http3-alt-svc", 'h3=":{port}"; ma=60', "--quic-max-streams", "7", "--quic-max-stream-data", "20000",
        "--quic-max-data", "300000", "--quic-idle-timeout", "1", scheme="https",
    )  # fmt: skip
    reply = httpx.get(f"https://localhost:{server.port}/facts", verify=tls.client_context())
    assert reply.headers["alt-svc"] == f'h3=":{server.port}"; ma=60', "http3_alt_svc: the TCP side advertises it"
    with H3.connect("127.0.0.1", server.port, str(tls.ca_cert), server_name="localhost") as h3:
        answer = h3.get("/facts")
        assert answer.status == 200, "http3: served over QUIC"
        quic = h3.protocol._quic  # what the server's transport parameters allowed this client
        assert quic._remote_max_streams_bidi == 7, "quic_max_streams"
        assert quic._remote_max_stream_data_bidi_remote == 20000, "quic_max_stream_data"
        assert quic._remote_max_data == 300000, "quic_max_data"
        started = time.monotonic()
        h3.until(lambda: False, 10)  # returns when the connection ends
        assert time.monotonic() - started < 5, "quic_idle_timeout 1: an idle connection is closed"


@proves("quic_early_data")
def probe_quic_early_data(ctx: Ctx) -> None:
    from h3_support import H3

    tls = ctx.tls
    server = ctx.start(
        "probe_apps:asgi", "--certfile", str(tls.server_cert), "--keyfile", str(tls.server_key), "--http3",
        "--quic-early-data", "safe", scheme="https",
    )  # fmt: skip
    tickets: list[object] = []
    with H3.connect(
        "127.0.0.1", server.port, str(tls.ca_cert), server_name="localhost", session_ticket_handler=tickets.append
    ) as h3:
        h3.get("/facts")
        h3.until(lambda: bool(tickets), 5)
    assert tickets, "quic_early_data safe: the server issues session tickets (resumption, 0-RTT)"


@proves("proxy_protocol")
def probe_proxy_protocol(ctx: Ctx) -> None:
    server = ctx.start("probe_apps:asgi", "--proxy-protocol")
    get = request("GET", "/", [("Connection", "close")])
    reply = raw(server, b"PROXY TCP4 198.51.100.4 10.0.0.1 4567 80\r\n" + get)
    facts = json.loads(reply.partition(b"\r\n\r\n")[2])
    assert facts["client"] == ["198.51.100.4", 4567], "proxy_protocol: the header names the client"
    assert raw(server, get) == b"", "proxy_protocol: no header, no answer"


# -- WebSocket -------------------------------------------------------------------------------------------------


@proves("ws_max_size", "ws_ping_interval", "ws_ping_timeout", "ws_close_timeout", "ws_per_message_deflate")
def probe_websocket(ctx: Ctx) -> None:
    server = ctx.start(
        "ws_apps:app", "--ws-max-size", "100", "--ws-ping-interval", "0.3", "--ws-ping-timeout", "0.4",
        "--ws-close-timeout", "0.3", "--no-ws-per-message-deflate",
    )  # fmt: skip
    ws = client(server, "/echo?id=big", compression="deflate")
    assert ws.response is not None and "sec-websocket-extensions" not in ws.response.headers, "ws_per_message_deflate"
    ws.send(b"x" * 200)
    assert wait_closed(ws)[0] == 1009, "ws_max_size 100"
    with Wire(server.connect()) as wire:
        handshake(wire, "/sink?id=pings")
        wire.sock.settimeout(3)
        assert read_frame(wire).opcode == PING, "ws_ping_interval 0.3"
        frame = read_frame(wire)  # never answered
        assert frame.opcode == CLOSE and parse_close(frame.payload)[0] == 1011, "ws_ping_timeout 0.4"
    with Wire(server.connect()) as wire:
        handshake(wire, "/close?id=close")
        wire.sock.settimeout(5)
        assert read_frame(wire).opcode == CLOSE
        started = time.monotonic()
        assert wire.closed_by_peer(5) and time.monotonic() - started < 3, "ws_close_timeout 0.3"


@proves("ws_message_timeout")
def probe_websocket_message_timeout(ctx: Ctx) -> None:
    server = ctx.start("ws_apps:app", "--ws-message-timeout", "0.5", "--ws-ping-interval", "0")
    with Wire(server.connect()) as wire:
        handshake(wire, "/echo?id=fragments")
        wire.send(encode_frame(TEXT, b"the start of a message", fin=False))  # and never its end
        wire.sock.settimeout(5)
        started = time.monotonic()
        frame = read_frame(wire)
        assert frame.opcode == CLOSE and parse_close(frame.payload)[0] == 1008, "ws_message_timeout 0.5"
        assert 0.4 < time.monotonic() - started < 3


@proves("ws_max_queue")
def probe_websocket_queue(ctx: Ctx) -> None:
    server = ctx.start("ws_apps:app", "--ws-max-queue", "1")
    frame = encode_frame(BINARY, os.urandom(1 << 20), key=b"\x01\x02\x03\x04")
    total = 0
    with Wire(server.connect()) as wire:
        handshake(wire, "/sink?id=queue")
        server.wait_record("sink-queue")
        wire.sock.setblocking(False)
        view, offset = memoryview(frame), 0
        deadline = time.monotonic() + 20
        while total < 64 << 20 and time.monotonic() < deadline:
            _, writable, _ = select.select([], [wire.sock], [], 0.5)
            if not writable:
                break
            try:
                sent = wire.sock.send(view[offset:])
            except BlockingIOError:
                continue
            total += sent
            offset = (offset + sent) % len(frame)
    assert total < 24 << 20, f"ws_max_queue 1: the server read {total >> 20} MiB for an app that does not receive"


@proves("ws")
def probe_websocket_off(ctx: Ctx) -> None:
    server = ctx.start("ws_apps:app", "--ws", "none")
    with Wire(server.connect()) as wire:
        wire.send(request("GET", "/echo", [("Upgrade", "websocket"), ("Connection", "Upgrade"),
                                          ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
                                          ("Sec-WebSocket-Version", "13")]))  # fmt: skip
        assert wire.read_response().status == 400, "ws none"


# -- limits ----------------------------------------------------------------------------------------------------


@proves("limit_request_line", "limit_request_field_size", "limit_request_fields", "limit_request_headers_size",
        "limit_request_body", "header_timeout")  # fmt: skip
def probe_limits(ctx: Ctx) -> None:
    server = ctx.start(
        "probe_apps:asgi", "--limit-request-line", "300", "--limit-request-field-size", "400",
        "--limit-request-fields", "20", "--limit-request-headers-size", "2000", "--limit-request-body", "1000",
        "--header-timeout", "0.5",
    )  # fmt: skip
    assert status_of(raw(server, request("GET", "/" + "a" * 400))) == 414, "limit_request_line"
    assert status_of(raw(server, request("GET", "/", [("X-A", "b" * 500)]))) == 431, "limit_request_field_size"
    many = [(f"X-{i}", "v") for i in range(25)]
    assert status_of(raw(server, request("GET", "/", many))) == 431, "limit_request_fields"
    wide = [(f"X-{i}", "w" * 300) for i in range(8)]
    assert status_of(raw(server, request("GET", "/", wide))) == 431, "limit_request_headers_size"
    assert status_of(raw(server, request("POST", "/", body=b"b" * 1500))) == 413, "limit_request_body"
    started = time.monotonic()
    reply = raw(server, b"GET / HTTP/1.1\r\nHost: x\r\n")
    assert status_of(reply) == 408 and time.monotonic() - started < 4, "header_timeout 0.5"


# -- logging ---------------------------------------------------------------------------------------------------


@proves("access_logfile", "error_logfile", "capture_output", "log_level")
def probe_log_files(ctx: Ctx) -> None:
    access, errors = ctx.tmp / "access.log", ctx.tmp / "error.log"
    server = ctx.start(
        "probe_apps:asgi", "--access-logfile", str(access), "--error-logfile", str(errors), "--capture-output",
        "--log-level", "warning", http_ready=True,
    )  # fmt: skip
    assert httpx.get(server.url + "/print?text=printed-by-probe", timeout=5).status_code == 200
    wait_for(lambda: "GET /print" in access.read_text(), 5, "the access line in access_logfile", server)
    wait_for(lambda: "printed-by-probe" in errors.read_text(), 5, "capture_output: the print in error_logfile")
    assert "printed-by-probe" not in server.output()
    assert "Listening at" not in errors.read_text() + server.output(), "log_level warning hides INFO lines"
    server.stop()
    assert "Shutdown complete" not in errors.read_text(), "log_level warning"


@proves("access_log_json")
def probe_log_json(ctx: Ctx) -> None:
    server = ctx.start("probe_apps:asgi", "--access-log-json")
    ctx.facts(server)
    out = server.wait_output('"status":200', 5)
    line = next(line for line in out.splitlines() if '"status":200' in line)
    assert json.loads(line)["path"] == "/facts", "access_log_json"


@proves("log_config")
def probe_log_config(ctx: Ctx) -> None:
    target = ctx.tmp / "configured.log"
    config = {
        "version": 1,
        "formatters": {"plain": {"format": "CONFIGURED %(name)s %(message)s"}},
        "handlers": {"file": {"class": "logging.FileHandler", "filename": str(target), "formatter": "plain"}},
        "root": {"handlers": ["file"], "level": "INFO"},
    }
    path = write(ctx.tmp / "logging.json", json.dumps(config))
    server = ctx.start("probe_apps:asgi", "--log-config", str(path), http_ready=True)
    ctx.facts(server)
    wait_for(lambda: "CONFIGURED monoceros.access" in target.read_text(), 5, "the access line via log_config", server)
    assert "CONFIGURED monoceros.error Listening at" in target.read_text(), "log_config"


# -- processes -------------------------------------------------------------------------------------------------


@proves("workers")
def probe_workers(ctx: Ctx) -> None:
    server = ctx.start("probe_apps:asgi", "-w", "2", master=True)
    wait_for(lambda: len(workers_of(server)) == 2, 10, "two workers", server)  # a master starts even alone


@proves("supervisor")
def probe_supervisor(ctx: Ctx) -> None:
    server = ctx.start("probe_apps:asgi", "--supervisor", master=True)
    assert ctx.facts(server)["ppid"] == server.pid, "supervisor: a master forks the one worker"


@proves("preload")
def probe_preload(ctx: Ctx) -> None:
    if ctx.supervised:
        server = ctx.start("probe_apps:asgi", "--preload")
        assert server.record(f"imported-{server.pid}").exists(), "preload: imported by the master"
        assert not server.record(f"imported-{one_worker(server)}").exists()
        return
    # One process: the app is imported before the listeners are bound (as root, with --user), so a bind
    # that fails comes after the import with --preload and before it without.
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        for flags, imported in ((["--preload"], True), ([], False)):
            server = ctx.serve("probe_apps:asgi", *flags, "-b", f"127.0.0.1:{port}", listen=None, wait=False)
            assert server.wait(10) == 3
            assert any(server.record_dir.glob("imported-*")) is imported, f"preload {flags}"


@proves("timeout")
def probe_timeout(ctx: Ctx) -> None:
    server = ctx.start("supervisor_apps:app", "--timeout", "1", master=True, app_dir=APPS_DIR)
    first = one_worker(server)
    thread, _ = in_background(server.url + "/block?s=30")
    server.wait_output(f"(pid {first}) timed out: no heartbeat", 10)
    server.wait_output(f"(pid {first}) was killed by SIGABRT", 10)
    thread.join(10)


@proves("max_requests")
def probe_max_requests(ctx: Ctx) -> None:
    server = ctx.start("supervisor_apps:app", "--max-requests", "3", master=True)
    with httpx.Client(timeout=5) as session:
        pids = [int(session.get(server.url).text) for _ in range(4)]
    assert pids[:3] == [pids[0]] * 3 and pids[3] != pids[0], f"max_requests 3: {pids}"


def _boot_limit(server: ServerProcess, unit: str) -> float:
    line = server.wait_output("recycled at", 10)
    match = re.search(rf"recycled at (?:.* or )?([\d.]+) {unit}", line)
    assert match, line
    return float(match.group(1))


@proves("max_worker_lifetime")
def probe_lifetime(ctx: Ctx) -> None:
    server = ctx.start("supervisor_apps:app", "--max-worker-lifetime", "1", master=True)
    first = one_worker(server)
    server.wait_output(f"Recycling worker 1 (pid {first}): it ran", 10)


@proves("max_worker_memory")
def probe_memory(ctx: Ctx) -> None:
    server = ctx.start("supervisor_apps:app", "--max-worker-memory", "64", master=True)
    first = one_worker(server)
    assert httpx.get(server.url + "/alloc?mb=96", timeout=10).status_code == 200
    server.wait_output(f"Recycling worker 1 (pid {first}): it uses", 10)


@proves("max_requests_jitter", "max_worker_lifetime_jitter", "max_worker_memory_jitter")
def probe_jitters(ctx: Ctx) -> None:
    args = (
        "--max-requests", "3", "--max-requests-jitter", "1000000", "--max-worker-lifetime", "1000",
        "--max-worker-lifetime-jitter", "1000000", "--max-worker-memory", "4096", "--max-worker-memory-jitter",
        "1000000",
    )  # fmt: skip
    server = ctx.start("supervisor_apps:app", *args, master=True)
    # Each limit drawn for the worker is above its base (a draw of exactly 0 has a chance of one in a million).
    assert _boot_limit(server, "requests") > 3, "max_requests_jitter"
    assert _boot_limit(server, "s") > 1000, "max_worker_lifetime_jitter"
    assert _boot_limit(server, "MiB") > 4096, "max_worker_memory_jitter"


# -- operations ------------------------------------------------------------------------------------------------


@proves("pid", "umask", "chdir", "name", "env", "env_file")
def probe_operations(ctx: Ctx) -> None:
    pidfile, home = ctx.tmp / "app.pid", ctx.tmp / "home"
    home.mkdir()
    env_file = write(ctx.tmp / "probe.env", "PROBE_FILE=from-file\n")
    server = ctx.start(
        "probe_apps:asgi", "--pid", str(pidfile), "--umask", "077", "--chdir", str(home), "--name", "walk",
        "--env", "PROBE_FLAG=from-flag", "--env-file", str(env_file),
    )  # fmt: skip
    facts = ctx.facts(server, "/facts?env=PROBE_FLAG,PROBE_FILE")
    assert pidfile.read_text().strip() == str(server.pid), "pid"
    assert facts["umask"] == 0o077, "umask"
    assert facts["cwd"] == str(home), "chdir"
    assert "[walk]" in facts["title"], "name"
    assert facts["env"] == {"PROBE_FLAG": "from-flag", "PROBE_FILE": "from-file"}, "env and env_file"


@proves("daemon")
def probe_daemon(ctx: Ctx) -> None:
    port, pidfile = free_port(), ctx.tmp / "daemon.pid"
    model = ["--supervisor"] if ctx.supervised else []
    command = [
        sys.executable, "-m", "monoceros", "--app-dir", str(APPS_DIR), *model, "--daemon", "--pid", str(pidfile),
        "-b", f"127.0.0.1:{port}", "--error-logfile", str(ctx.tmp / "daemon.log"), "probe_apps:asgi",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("MONOCEROS_")}
    env["E2E_RECORD_DIR"] = str(ctx.tmp)
    started = subprocess.run(command, cwd=ctx.tmp, env=env, timeout=20, capture_output=True)
    assert started.returncode == 0, started.stderr  # the command returns: the server went to the background
    daemon = wait_for(lambda: pidfile.exists() and int(pidfile.read_text() or 0), 10, "the daemon's pid file")
    try:
        assert os.getsid(daemon) != os.getsid(0), "daemon: the server left this session"
        wait_for(lambda: httpx.get(f"http://127.0.0.1:{port}/facts", timeout=2).status_code == 200, 10, "answers")
    finally:
        os.kill(daemon, signal.SIGTERM)


@proves("user", "group", "initgroups")
def probe_user(ctx: Ctx) -> None:
    if not ROOT:
        ctx.refused("--user", "root", says="only root can")
        return
    member = _user_with_supplementary_groups()
    account = pwd.getpwnam(member)
    server = ctx.start("probe_apps:asgi", "--user", member, "--group", "nogroup")
    facts = ctx.facts(server)
    nogroup = 65534
    assert facts["uid"] == account.pw_uid, "user"
    assert (facts["gid"], facts["groups"]) == (nogroup, [nogroup]), "group, and no other group without initgroups"
    joined = ctx.start("probe_apps:asgi", "--user", member, "--initgroups")
    assert len(ctx.facts(joined)["groups"]) > 1, "initgroups: the user's supplementary groups are joined"


def _user_with_supplementary_groups() -> str:
    """A user who is a member of a group other than its own (.ci/run makes one: monoceros-probe)."""
    try:
        return pwd.getpwnam("monoceros-probe").pw_name
    except KeyError:
        pass
    with open("/etc/group") as f:
        for line in f:
            for member in line.strip().split(":")[3].split(","):
                if member:
                    try:
                        pwd.getpwnam(member)
                    except KeyError:
                        continue
                    return member
    pytest.fail("no user with supplementary groups here; .ci/run creates monoceros-probe")


# -- hooks -----------------------------------------------------------------------------------------------------

HOOKS = """\
import os, signal

def _note(*words):
    with open(os.path.join(os.environ["E2E_RECORD_DIR"], "hooks.log"), "a") as f:
        f.write(" ".join(map(str, words)) + "\\n")

def on_starting(server): _note("on_starting", server.pid)
def when_ready(server): _note("when_ready", server.num_workers)
def pre_fork(server, worker): _note("pre_fork", worker.age)
def post_fork(server, worker): _note("post_fork", worker.pid)
def post_worker_init(worker): _note("post_worker_init", worker.pid)
def worker_int(worker): _note("worker_int", worker.pid)
def worker_abort(worker): _note("worker_abort", worker.pid)
def worker_exit(server, worker): _note("worker_exit", worker.pid)
def on_exit(server): _note("on_exit", server.pid)
"""

MASTER_HOOKS = """\
import os

def _note(*words):
    with open(os.path.join(os.environ["E2E_RECORD_DIR"], "hooks.log"), "a") as f:
        f.write(" ".join(map(str, words)) + "\\n")

def on_reload(server): _note("on_reload")
def child_exit(server, worker): _note("child_exit", worker.pid)
def nworkers_changed(server, new, old): _note("nworkers_changed", old, new)
def pre_exec(server): _note("pre_exec", os.getpid())
"""


def _hooks_ran(server: ServerProcess) -> list[str]:
    path = server.record("hooks.log")
    return [line.split()[0] for line in path.read_text().splitlines()] if path.exists() else []


@proves("on_starting", "when_ready", "pre_fork", "post_fork", "post_worker_init", "worker_int", "worker_abort",
        "worker_exit", "on_exit")  # fmt: skip
def probe_hooks(ctx: Ctx) -> None:
    config = write(ctx.tmp / "hooks.py", HOOKS)
    server = ctx.start("probe_apps:asgi", "-c", str(config))
    wait_for(lambda: "when_ready" in _hooks_ran(server), 5, "when_ready", server)
    if ctx.supervised:
        first = one_worker(server)
        os.kill(first, signal.SIGABRT)  # worker_abort, as the master's --timeout sends it
        wait_for(lambda: "worker_abort" in _hooks_ran(server), 5, "worker_abort", server)
        second = wait_for(lambda: next(iter(workers_of(server) - {first}), 0), 10, "a replacement", server)
        server.wait_output(f"(pid {second}) is ready", 10)
        os.kill(second, signal.SIGQUIT)  # worker_int
        wait_for(lambda: "worker_int" in _hooks_ran(server), 5, "worker_int", server)
        server.stop()
    else:
        server.stop(signal.SIGINT)  # worker_int, in the one process
    ran = _hooks_ran(server)
    for hook in ("on_starting", "when_ready", "pre_fork", "post_fork", "post_worker_init", "worker_int",
                 "worker_exit", "on_exit"):  # fmt: skip
        assert hook in ran, f"{hook} never ran: {ran}"
    if not ctx.supervised:
        abort = ctx.start("probe_apps:asgi", "-c", str(config))
        os.kill(abort.pid, signal.SIGABRT)
        wait_for(lambda: "worker_abort" in _hooks_ran(abort), 5, "worker_abort in one process", abort)


@proves("on_reload", "child_exit", "nworkers_changed", "pre_exec")
def probe_master_hooks(ctx: Ctx) -> None:
    config = write(ctx.tmp / "master_hooks.py", MASTER_HOOKS)
    server = ctx.start("probe_apps:asgi", "-c", str(config), master=True)  # these hooks need a master: it starts
    server.send_signal(signal.SIGTTIN)
    wait_for(lambda: "nworkers_changed" in _hooks_ran(server), 5, "nworkers_changed", server)
    server.send_signal(signal.SIGHUP)
    wait_for(lambda: "on_reload" in _hooks_ran(server), 5, "on_reload", server)
    wait_for(lambda: "child_exit" in _hooks_ran(server), 10, "child_exit", server)
    server.send_signal(signal.SIGUSR2)
    wait_for(lambda: "pre_exec" in _hooks_ran(server), 10, "pre_exec", server)


# -- reload ----------------------------------------------------------------------------------------------------


@proves("reload", "reload_delay", "reload_extra_files", "reload_dirs", "reload_includes", "reload_excludes")
def probe_reload(ctx: Ctx) -> None:
    pytest.importorskip("watchfiles")
    watched, elsewhere = ctx.tmp / "watched", ctx.tmp / "elsewhere"
    (watched / "skipme").mkdir(parents=True)
    elsewhere.mkdir()
    extra = write(elsewhere / "settings.cfg", "a\n")
    server = ctx.start(
        "probe_apps:asgi", "--reload", "--reload-dir", str(watched), "--reload-include", "*.txt",
        "--reload-exclude", "skipme", "--reload-extra-file", str(extra), "--reload-delay", "0.6", master=True,
    )  # fmt: skip

    def reloads() -> int:
        return server.output().count("Detected changes")

    write(watched / "a.txt", "1")  # reload_dirs and reload_includes
    time.sleep(0.3)
    write(watched / "b.txt", "2")  # 0.3 s later: within reload_delay 0.6, the same reload
    wait_for(lambda: reloads() == 1, 10, "one reload for both files", server)
    time.sleep(1.0)
    assert reloads() == 1, "reload_delay 0.6: two saves 0.3 s apart reload once"
    write(watched / "skipme" / "c.txt", "3")  # reload_excludes
    write(watched / "d.py", "4")  # not included: *.txt only
    write(elsewhere / "other.txt", "5")  # beside the extra file, not watched
    time.sleep(1.5)
    assert reloads() == 1, "reload_excludes and reload_includes: nothing reloaded"
    write(extra, "b\n")  # reload_extra_files
    wait_for(lambda: reloads() == 2, 10, "a reload for the extra file", server)


# -- HTTP/2 ----------------------------------------------------------------------------------------------------


@proves("http2_engine", "h2c_upgrade", "http2_max_concurrent_streams", "http2_initial_window_size",
        "http2_connection_window_size", "http2_max_frame_size", "http2_max_requests")  # fmt: skip
def probe_http2(ctx: Ctx) -> None:
    server = ctx.start(
        "probe_apps:asgi", "--http2-engine", "h2", "--no-h2c-upgrade", "--http2-max-concurrent-streams", "7",
        "--http2-initial-window-size", "70000", "--http2-connection-window-size", "2000000",
        "--http2-max-frame-size", "20000", "--http2-max-requests", "2",
    )  # fmt: skip
    assert "HTTP/2 served by h2 " in server.output(), "http2_engine h2"
    with H2Client.connect(server.host, server.port) as h2:
        first = h2.get("/facts")
        assert first.status == 200
        assert h2.settings[0x3] == 7, "http2_max_concurrent_streams"
        assert h2.settings[0x4] == 70000, "http2_initial_window_size"
        assert h2.settings[0x5] == 20000, "http2_max_frame_size"
        assert h2.conn.outbound_flow_control_window >= 2000000 - 70000, "http2_connection_window_size"
        assert h2.get("/facts").status == 200
        h2.read(lambda: h2.goaway is not None, 5)
        assert h2.goaway is not None and h2.goaway.last_stream_id == 3, "http2_max_requests 2: GOAWAY after two"
    upgrade = raw(server, request("GET", "/facts", [("Connection", "Upgrade, HTTP2-Settings"), ("Upgrade", "h2c"),
                  ("HTTP2-Settings", ""), ("Connection", "close")]))  # fmt: skip
    assert status_of(upgrade) == 200, "h2c_upgrade off: the request is answered over HTTP/1.1"


@proves("http")
def probe_http_versions(ctx: Ctx) -> None:
    only1 = ctx.start("probe_apps:asgi", "--http", "1")
    assert "HTTP/2 served" not in only1.output(), "http 1"
    assert status_of(raw(only1, PREFACE)) == 400, "http 1: the preface is no HTTP/1.1 request, refused"
    only2 = ctx.start("probe_apps:asgi", "--http", "2")
    assert status_of(raw(only2, request("GET", "/facts", [("Connection", "close")]))) == 505, "http 2"
    with H2Client.connect(only2.host, only2.port) as h2:
        assert h2.get("/facts").status == 200, "http 2: HTTP/2 is served"


# -- refusals: a setting that cannot act here stops the start ----------------------------------------------


REFUSALS = [
    (("--keyfile", "k.pem"), "setting 'keyfile' has no effect without 'certfile'"),
    (("--max-requests-jitter", "5"), "setting 'max_requests_jitter' has no effect without 'max_requests'"),
    (("--reload-dir", "."), "setting 'reload_dirs' has no effect without 'reload'"),
    (("--no-access-log", "--access-logfile", "a.log"), "setting 'access_logfile' has no effect with the access"),
    (("-b", "127.0.0.1:1", "--port", "9"), "setting 'port' has no effect beside 'bind'"),
    (("--uds-perms", "600"), "setting 'uds_perms' has no effect without a unix socket"),
    (("--initgroups",), "setting 'initgroups' has no effect without 'user'"),
    (("--no-proxy-headers", "--forwarded-allow-ips", "*"), "setting 'forwarded_allow_ips' has no effect with"),
    (("--capture-output",), "setting 'capture_output' has no effect while 'error_logfile' is standard error"),
    (("--ws", "none", "--ws-max-size", "9"), "setting 'ws_max_size' has no effect with WebSocket turned off"),
    (("--log-config", "x.json", "--error-logfile", "e.log"), "setting 'error_logfile' has no effect with"),
    (("--access-log-json", "--access-logformat", "%(s)s"), "setting 'access_logformat' has no effect with"),
    (("--http", "1", "--http2-max-requests", "5"), "setting 'http2_max_requests' has no effect with HTTP/2 turned"),
    (("--http", "2", "--no-h2c-upgrade"), "setting 'h2c_upgrade' has no effect with 'http' '2'"),
    (("--admin-token", "x"), "setting 'admin_token' has no effect without 'admin_bind'"),
    (("--ssl-reload-interval", "5"), "setting 'ssl_reload_interval' has no effect without 'certfile'"),
]


@pytest.mark.parametrize(("args", "says"), REFUSALS, ids=[" ".join(a) for a, _ in REFUSALS])
def test_a_setting_without_effect_is_refused(ctx: Ctx, args: tuple[str, ...], says: str) -> None:
    ctx.refused(*args, says=says)


# -- running the probes (defined last: the decorators above fill PROBES) -------------------------------


@pytest.fixture(params=MODELS)
def ctx(request: pytest.FixtureRequest, serve: ServerFactory, tmp_path: Path, tls_files: TLSFiles) -> Iterator[Ctx]:
    yield Ctx(serve, tmp_path, tls_files, request.param)
    kill_leftovers(tmp_path)


@pytest.mark.parametrize("probe", sorted(PROBES))
def test_setting_has_an_effect(ctx: Ctx, probe: str) -> None:
    PROBES[probe](ctx)
