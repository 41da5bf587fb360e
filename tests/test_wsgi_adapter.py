"""The WSGI adapter (PEP 3333), tested against the real server over loopback.

The server runs ``python -m monoceros ... test_wsgi_adapter:app``: it imports this very module, whose
``app`` routes to the small apps below. Every request goes through ``wsgiref.validate.validator``,
except the ``/raw/`` routes, which test what the validator hides on purpose: the server may only send a
``wsgi.file_wrapper`` its own way, or frame a list body itself, when the app's return value *is* that
object, and the validator always wraps it. Apps write what tests need to know about the server side
(close() calls, re-raised exceptions) into files under ``WSGI_TEST_RECORDS``.

After every test, the servers' logs must hold no error record that the test did not provoke on purpose
(those carry the word EXPECTED), and no validator warning.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import io
import itertools
import json
import logging
import os
import re
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl
from wsgiref.validate import validator

import httpx
import pytest
from flask import Flask, Response, stream_with_context, url_for
from flask import request as flask_request

from monoceros.adapters.wsgi import WSGIHandler
from monoceros.adapters.wsgi_input import ErrorStream, FileWrapper, WSGIInput, encode_headers, parse_status
from monoceros.config import Config
from monoceros.protocols.events import Request

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
RECORDS = os.environ.get("WSGI_TEST_RECORDS", "")
TEXT = [("Content-Type", "text/plain")]
Environ = dict[str, Any]
StartResponse = Callable[..., Callable[[bytes], None]]

# == the apps (they run inside the server process) ======================================================


def record(name: str, text: str) -> None:
    with open(os.path.join(RECORDS, name), "a") as f:
        f.write(text + "\n")


def wait_for_file(path: str | Path, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def query(environ: Environ) -> dict[str, str]:
    return dict(parse_qsl(environ["QUERY_STRING"]))


def as_json(start_response: StartResponse, value: Any, status: str = "200 OK") -> list[bytes]:
    body = json.dumps(value).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def env_app(environ: Environ, start_response: StartResponse) -> list[bytes]:
    shown = {key: value for key, value in environ.items() if isinstance(value, str)}
    shown["wsgi.version"] = list(environ["wsgi.version"])
    for key in ("wsgi.multithread", "wsgi.multiprocess", "wsgi.run_once", "wsgi.input_terminated"):
        shown[key] = environ[key]
    shown["has_file_wrapper"] = callable(environ.get("wsgi.file_wrapper"))
    shown["thread"] = threading.current_thread().name
    return as_json(start_response, shown)


def input_ops_app(environ: Environ, start_response: StartResponse) -> list[bytes]:
    stream = environ["wsgi.input"]
    steps = [
        stream.read(3),
        stream.readline(),
        stream.readline(3),
        stream.readline(-1),
        *stream.readlines(1),
        stream.read(0),
    ]
    steps += list(stream)  # iteration, line by line, to the end
    steps += [stream.read(-1), stream.read(10), stream.readline()]
    return as_json(start_response, [step.decode("latin-1") for step in steps])


def upload_app(environ: Environ, start_response: StartResponse) -> list[bytes]:
    stream = environ["wsgi.input"]
    digest = hashlib.sha256()
    reads = total = 0
    while True:
        block = stream.read(65536)
        if not block:
            break
        if reads == 0:
            record("upload-started-" + query(environ)["token"], "")
        reads += 1
        total += len(block)
        digest.update(block)
    return as_json(start_response, {"reads": reads, "total": total, "sha256": digest.hexdigest()})


def input_disconnect_app(environ: Environ, start_response: StartResponse) -> list[bytes]:
    try:
        environ["wsgi.input"].read(-1)
    except OSError as exc:
        record("input-disconnect-" + query(environ)["token"], "caught " + type(exc).__name__)
    start_response("200 OK", TEXT)
    return [b"too late"]


def echo_app(environ: Environ, start_response: StartResponse) -> list[bytes]:
    body = environ["wsgi.input"].read(-1)
    start_response("200 OK", [*TEXT, ("Content-Length", str(len(body)))])
    return [body]


def noread_app(environ: Environ, start_response: StartResponse) -> list[bytes]:
    start_response("200 OK", [*TEXT, ("Content-Length", "7")])
    return [b"no read"]


def excinfo_before_app(environ: Environ, start_response: StartResponse) -> list[bytes]:
    start_response("200 OK", [*TEXT, ("X-First", "1")])
    try:
        raise KeyError("EXPECTED but handled")
    except KeyError:
        start_response("503 Service Unavailable", [*TEXT, ("X-Second", "2")], sys.exc_info())
    return [b"recovered"]


def excinfo_after_app(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
    start_response("200 OK", TEXT)
    yield b"partial"
    try:
        raise ValueError("EXPECTED excinfo-after")
    except ValueError as exc:
        try:
            start_response("500 Internal Server Error", TEXT, sys.exc_info())
        except ValueError as again:
            record("excinfo-" + query(environ)["token"], "same" if again is exc else "other")
            raise
        record("excinfo-" + query(environ)["token"], "not re-raised")


def twice_app(environ: Environ, start_response: StartResponse) -> list[bytes]:
    start_response("200 OK", TEXT)
    try:
        start_response("201 Created", TEXT)
    except RuntimeError:
        return [b"RuntimeError"]
    return [b"accepted"]


def bad_args_app(environ: Environ, start_response: StartResponse) -> list[bytes]:
    errors = []
    for status, headers in [
        ("200 OK", [*TEXT, ("X-Euro", "\u20ac")]),  # not latin-1
        ("100 Continue", TEXT),  # informational
        ("200 OK", [*TEXT, ("X-Split", "a\x85b")]),  # accepted: only CR, LF and NUL would split the head
    ]:
        try:
            start_response(status, headers)
        except (TypeError, ValueError) as exc:
            errors.append(type(exc).__name__)
        else:
            errors.append("accepted")  # the last one: it stands
    return [json.dumps(errors).encode()]


def write_app(environ: Environ, start_response: StartResponse) -> list[bytes]:
    write = start_response("200 OK", TEXT)
    write(b"hello ")
    write(b"")
    write(b"world")
    write(b"." * int(query(environ).get("big", "0")))
    return [b"!"]


class Closing:
    """An iterable that records its close() call, and where it ran."""

    def __init__(self, token: str, chunks: Iterable[bytes]) -> None:
        self.token = token
        self.chunks = iter(chunks)

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        return next(self.chunks)

    def close(self) -> None:
        record("closed-" + self.token, threading.current_thread().name)


def close_app(environ: Environ, start_response: StartResponse) -> Closing:
    args = query(environ)
    mode = args["mode"]

    def chunks() -> Iterator[bytes]:
        start_response("200 OK", TEXT)
        yield b"one"
        if mode == "raise":
            raise RuntimeError("EXPECTED close-raise")
        yield b"two"
        while mode == "forever":
            yield b"x" * 65536

    return Closing(args["token"], chunks())


def file_app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    args = query(environ)
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    if args["kind"] == "bytesio":
        return environ["wsgi.file_wrapper"](io.BytesIO(bytes(range(256)) * 40), 1000)
    f = open(args["path"], "rb")  # noqa: SIM115 - the wrapper's close() closes it
    f.seek(10)
    return environ["wsgi.file_wrapper"](f, 4096)


def error_app(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
    where = query(environ)["where"]
    if where == "before":
        raise RuntimeError("EXPECTED error-before")
    start_response("200 OK", TEXT)
    if where == "after-start":
        raise RuntimeError("EXPECTED error-after-start")
    yield b"partial body"
    raise RuntimeError("EXPECTED error-mid-body")


def gen_app(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
    start_response("200 OK", TEXT)  # inside the generator: called on the first next()
    yield b"one"
    yield b""
    yield b"two"


def gen_stream_app(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
    start_response("200 OK", TEXT)
    yield b"first"
    # The test only creates this file after it has read "first": a server holding chunks back would hang.
    yield b"second" if wait_for_file(os.path.join(RECORDS, "go-" + query(environ)["token"])) else b"TIMEOUT"


def head_app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    if query(environ).get("gen"):
        return gen_app(environ, start_response)
    start_response("200 OK", [*TEXT, ("Content-Length", "100")])
    return [b"x" * 100]


def errors_stream_app(environ: Environ, start_response: StartResponse) -> list[bytes]:
    errors = environ["wsgi.errors"]
    errors.write("EXPECTED errors line one\n")
    errors.writelines(["EXPECTED ", "partial"])
    start_response("200 OK", TEXT)
    return [b"logged"]


_lock = threading.Lock()
_active: collections.Counter[str] = collections.Counter()
_peak: collections.Counter[str] = collections.Counter()


def sleep_app(environ: Environ, start_response: StartResponse) -> list[bytes]:
    token = query(environ)["token"]
    with _lock:
        _active[token] += 1
        _peak[token] = max(_peak[token], _active[token])
    time.sleep(0.5)
    with _lock:
        _active[token] -= 1
        peak = _peak[token]
    return as_json(start_response, {"peak": peak, "thread": threading.current_thread().name})


flask_app = Flask(__name__)


@flask_app.get("/flask/hello/<name>")
def flask_hello(name: str) -> str:
    return f"Hello {name}"


@flask_app.post("/flask/form")
def flask_form() -> dict[str, Any]:
    upload = flask_request.files["upload"]
    return {"field": flask_request.form["field"], "filename": upload.filename, "size": len(upload.read())}


@flask_app.post("/flask/json")
def flask_json() -> dict[str, Any]:
    return {"got": flask_request.get_json()}


@flask_app.get("/flask/stream")
def flask_stream() -> Response:
    def parts() -> Iterator[str]:
        for i in range(3):
            yield f"part{i};"

    return Response(stream_with_context(parts()), mimetype="text/plain")


@flask_app.get("/flask/url")
def flask_url() -> dict[str, Any]:
    return {
        "script_root": flask_request.script_root,
        "path": flask_request.path,
        "url": flask_request.url,
        "for": url_for("flask_hello", name="x"),
    }


class ReadAll:
    """wsgiref.validate was written for PEP 333 and insists on ``read(size)``; PEP 3333 also allows
    ``read()``, which werkzeug's ``get_data`` uses. This passes ``read()`` on as ``read(-1)``."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream

    def read(self, size: int = -1) -> bytes:
        data: bytes = self.stream.read(size)
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


def flask_route(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    environ["wsgi.input"] = ReadAll(environ["wsgi.input"])
    return flask_app(environ, start_response)


ROUTES: dict[str, Callable[[Environ, StartResponse], Iterable[bytes]]] = {
    "input-ops": input_ops_app,
    "upload": upload_app,
    "input-disconnect": input_disconnect_app,
    "echo": echo_app,
    "noread": noread_app,
    "excinfo-before": excinfo_before_app,
    "excinfo-after": excinfo_after_app,
    "twice": twice_app,
    "bad-args": bad_args_app,
    "write": write_app,
    "close": close_app,
    "file": file_app,
    "error": error_app,
    "gen": gen_app,
    "gen-stream": gen_stream_app,
    "head": head_app,
    "errors-stream": errors_stream_app,
    "sleep": sleep_app,
    "flask": flask_route,
}


def router(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    first = environ["PATH_INFO"].split("/")[1] if environ["PATH_INFO"].startswith("/") else ""
    return ROUTES.get(first, env_app)(environ, start_response)


validated = validator(router)


def raw_app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """What the validator would hide: a bare list body, and a bare file wrapper over a real file."""
    args = query(environ)
    if environ["PATH_INFO"] == "/raw/list":
        start_response("200 OK", TEXT)
        return [b"hello ", b"", b"list"]
    headers = [("Content-Type", "application/octet-stream")]
    if "limit" in args:
        headers.append(("Content-Length", args["limit"]))
    start_response("200 OK", headers)
    f = open(args["path"], "rb")  # noqa: SIM115 - the wrapper's close() closes it
    f.seek(10)
    return environ["wsgi.file_wrapper"](f)


def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    if environ["PATH_INFO"].startswith("/raw/"):
        return raw_app(environ, start_response)
    return validated(environ, start_response)


# == the server =========================================================================================

_LOG_RECORD = re.compile(r"^\[[^\]]+\] \[\d+\] \[([A-Z]+)\] ", re.M)


class Server:
    """``python -m monoceros`` in a subprocess, listening on a free loopback port and a unix socket."""

    def __init__(self, records: Path, workdir: Path, *args: str) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.uds = str(workdir / "wsgi.sock")
        self.inline = "inline" in args  # --wsgi-mode inline: the app runs on the loop thread
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "server.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("MONOCEROS_")}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        env["WSGI_TEST_RECORDS"] = str(records)
        command = [sys.executable, "-m", "monoceros", "-b", f"127.0.0.1:{self.port}", "-b", f"unix:{self.uds}"]
        command += ["--app-dir", str(TESTS), "--no-access-log", "--graceful-timeout", "1", *args]
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [*command, "test_wsgi_adapter:app"], cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        self.mark = 0
        deadline = time.monotonic() + 20
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"server did not start:\n{self.log()}") from None
                time.sleep(0.05)

    def log(self) -> str:
        return self.log_path.read_text("utf-8", "replace")

    def new_log(self) -> str:
        """The log written since the last call."""
        text = self.log()
        new, self.mark = text[self.mark :], len(text)
        return new

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


_running: list[Server] = []


def start_server(records: Path, factory: pytest.TempPathFactory, *args: str) -> Iterator[Server]:
    server = Server(records, factory.mktemp("server"), *args)
    _running.append(server)
    try:
        yield server
    finally:
        _running.remove(server)
        server.stop()


@pytest.fixture(scope="module")
def records(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("records")


@pytest.fixture(scope="module", params=["threads", "inline"])
def server(records: Path, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Server]:
    """Every server-backed test runs in both WSGI modes: on the pool, and inline on the loop thread."""
    yield from start_server(records, tmp_path_factory, "--threads", "4", "--wsgi-mode", request.param)


@pytest.fixture(scope="module")
def mounted(records: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from start_server(records, tmp_path_factory, "--root-path", "/mount")


@pytest.fixture(scope="module")
def asyncio_server(records: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from start_server(records, tmp_path_factory, "--loop", "asyncio")


@pytest.fixture(autouse=True)
def clean_logs() -> Iterator[None]:
    """Fail a test after which a server logged an error it did not provoke, or the validator complained."""
    for srv in _running:
        srv.new_log()
    yield
    time.sleep(0.05)
    for srv in _running:
        text = srv.new_log()
        starts = [m.start() for m in _LOG_RECORD.finditer(text)] + [len(text)]
        for begin, end in itertools.pairwise(starts):
            entry = text[begin:end]
            if "[ERROR]" in entry.split("\n", 1)[0] or "[CRITICAL]" in entry.split("\n", 1)[0]:
                assert "EXPECTED" in entry, entry
        assert "WSGIWarning" not in text
        assert "without being closed" not in text


@pytest.fixture
def client(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base, timeout=10) as c:
        yield c


def token() -> str:
    return f"{time.monotonic_ns()}"


def raw(port: int, data: bytes, *, uds: str | None = None) -> tuple[int, dict[str, str], bytes]:
    """Send ``data`` (a request that ends the connection after it), read to EOF, parse the response."""
    if uds is not None:
        sock = socket.socket(socket.AF_UNIX)
        sock.settimeout(10)
        sock.connect(uds)
    else:
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    with sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return parse_response(b"".join(chunks))


def parse_response(data: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding") == "chunked":
        out = b""
        while True:
            size_line, _, body = body.partition(b"\r\n")
            size = int(size_line, 16)
            if size == 0:
                break
            out, body = out + body[:size], body[size + 2 :]
        body = out
    return int(lines[0].split()[1]), headers, body


# == environ ============================================================================================


def test_environ_keys_and_values(server: Server) -> None:
    status, _, body = raw(
        server.port,
        b"POST /env/caf%C3%A9%2Fx%20y?q=%C3%A9+1&r= HTTP/1.1\r\nHost: example.test:8080\r\n"
        b"Content-Type: text/plain\r\nContent-Length: 4\r\nX-Multi: a\r\nX-Multi: b\r\n"
        b"Cookie: a=1\r\nCookie: b=2\r\nX_Foo: evil\r\nX-Foo: good\r\nConnection: close\r\n\r\nbody",
    )
    assert status == 200
    env = json.loads(body)
    assert env["REQUEST_METHOD"] == "POST"
    assert env["SCRIPT_NAME"] == ""
    assert env["PATH_INFO"] == "/env/caf\u00c3\u00a9/x y"  # decoded; the UTF-8 bytes as latin-1
    assert env["QUERY_STRING"] == "q=%C3%A9+1&r="
    assert env["RAW_URI"] == env["REQUEST_URI"] == "/env/caf%C3%A9%2Fx%20y?q=%C3%A9+1&r="
    assert env["SERVER_NAME"] == "127.0.0.1"
    assert env["SERVER_PORT"] == str(server.port)
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["REMOTE_ADDR"] == "127.0.0.1"
    assert env["REMOTE_PORT"].isdigit()
    assert env["CONTENT_TYPE"] == "text/plain"
    assert env["CONTENT_LENGTH"] == "4"
    assert "HTTP_CONTENT_TYPE" not in env and "HTTP_CONTENT_LENGTH" not in env
    assert env["HTTP_HOST"] == "example.test:8080"
    assert env["HTTP_X_MULTI"] == "a,b"
    assert env["HTTP_COOKIE"] == "a=1; b=2"
    assert env["HTTP_X_FOO"] == "good"  # X_Foo is dropped: it must not pass for X-Foo
    assert env["wsgi.url_scheme"] == "http"
    assert env["wsgi.version"] == [1, 0]
    assert env["wsgi.multithread"] is True
    assert env["wsgi.multiprocess"] is False
    assert env["wsgi.run_once"] is False
    assert env["wsgi.input_terminated"] is True
    assert env["has_file_wrapper"] is True
    assert env["thread"] == "MainThread" if server.inline else env["thread"].startswith("monoceros-wsgi")


def test_get_has_no_content_headers(client: httpx.Client) -> None:
    env = client.get("/env").json()
    assert "CONTENT_LENGTH" not in env and "CONTENT_TYPE" not in env
    assert env["PATH_INFO"] == "/env" and env["QUERY_STRING"] == ""


def test_http10_without_host(server: Server) -> None:
    status, headers, body = raw(server.port, b"GET /env HTTP/1.0\r\n\r\n")
    assert status == 200
    env = json.loads(body)
    assert env["SERVER_PROTOCOL"] == "HTTP/1.0"
    assert "HTTP_HOST" not in env
    assert (env["SERVER_NAME"], env["SERVER_PORT"]) == ("127.0.0.1", str(server.port))
    assert headers["content-length"] == str(len(body))


def test_unix_socket(server: Server) -> None:
    with httpx.Client(transport=httpx.HTTPTransport(uds=server.uds), base_url="http://sock.test:81") as c:
        env = c.get("/env").json()
    assert (env["SERVER_NAME"], env["SERVER_PORT"]) == ("sock.test", "81")
    assert env["REMOTE_ADDR"] == ""
    _, _, body = raw(0, b"GET /env HTTP/1.0\r\n\r\n", uds=server.uds)
    env = json.loads(body)
    assert (env["SERVER_NAME"], env["SERVER_PORT"]) == ("localhost", "0")


@pytest.mark.parametrize(
    ("target", "path_info"),
    [
        ("/mount/env/x", "/env/x"),
        ("/mount", ""),
        ("/mount%2Fenv", "/env"),  # the decoded path is what is matched
        ("/mountain", "/mountain"),  # not under /mount
        ("/elsewhere", "/elsewhere"),  # a proxy that already stripped the prefix
    ],
)
def test_root_path(mounted: Server, target: str, path_info: str) -> None:
    _, _, body = raw(mounted.port, f"GET {target} HTTP/1.0\r\n\r\n".encode())
    env = json.loads(body)
    assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == ("/mount", path_info)


# == wsgi.input =========================================================================================


def test_input_read_readline_readlines_iteration(client: httpx.Client) -> None:
    def pieces() -> Iterator[bytes]:  # chunked, in small pieces: lines straddle what the server receives
        data = b"abcdef\nline2\nline3 is long\nl4\nl5\nl6"
        for i in range(0, len(data), 4):
            yield data[i : i + 4]

    steps = client.post("/input-ops", content=pieces()).json()
    assert steps == ["abc", "def\n", "lin", "e2\n", "line3 is long\n", "", "l4\n", "l5\n", "l6", "", "", ""]


def test_chunked_upload_is_streamed(client: httpx.Client, server: Server, records: Path) -> None:
    tok = token()
    # Inline, the first MiB is held before the app runs (then it streams on the pool): check later.
    check_at = 32 if server.inline else 4
    block = bytes(range(256)) * 256  # 64 KiB
    size = 8 << 20
    seen_before_end = []

    def body() -> Iterator[bytes]:
        for i in range(size // len(block)):
            if i == check_at:  # the app must have read before the client sends the rest
                seen_before_end.append(wait_for_file(records / f"upload-started-{tok}"))
            yield block

    result = client.post(f"/upload?token={tok}", content=body()).json()
    assert seen_before_end == [True]
    assert result["total"] == size
    assert result["reads"] >= size // 65536
    assert result["sha256"] == hashlib.sha256(block * (size // len(block))).hexdigest()


@pytest.mark.parametrize("length, sent", [(1000, 10), (200_000, 70_000)], ids=["small", "large"])
def test_client_gone_mid_body_raises_oserror_in_app(server: Server, records: Path, length: int, sent: int) -> None:
    tok = token()
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(
            f"POST /input-disconnect?token={tok} HTTP/1.1\r\nHost: t\r\nContent-Length: {length}\r\n\r\n".encode()
            + b"x" * sent
        )
        time.sleep(0.2)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close with a reset
    if server.inline or length <= 65536:
        # A body that fits is read before the app is called (inline: up to 1 MiB; on the pool: up to 64 KiB,
        # what the connection buffers anyway): the app never starts for a client that left.
        time.sleep(0.3)
        assert not (records / f"input-disconnect-{tok}").exists()
        assert httpx.get(server.base + "/echo").status_code == 200
        return
    assert wait_for_file(records / f"input-disconnect-{tok}")
    assert (records / f"input-disconnect-{tok}").read_text() == "caught ClientDisconnected\n"


def test_100_continue_on_first_read(server: Server) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        interim = b""
        while not interim.endswith(b"\r\n\r\n"):
            interim += sock.recv(1)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"hello")
        reply = b""
        while not reply.endswith(b"hello"):
            reply += sock.recv(65536)
    assert reply.startswith(b"HTTP/1.1 200 ") and b"Content-Length: 5\r\n" in reply  # the app's own case


def test_no_100_continue_when_the_body_is_not_read(server: Server) -> None:
    status, _, body = raw(
        server.port, b"POST /noread HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
    )
    assert (status, body) == (200, b"no read")


# == start_response and write ===========================================================================


def test_exc_info_before_headers_replaces_the_response(client: httpx.Client) -> None:
    response = client.get("/excinfo-before")
    assert response.status_code == 503
    assert response.text == "recovered"
    assert response.headers.get("x-second") == "2" and "x-first" not in response.headers


def test_exc_info_after_headers_reraises(client: httpx.Client, server: Server, records: Path) -> None:
    tok = token()
    with pytest.raises(httpx.RemoteProtocolError):
        client.get(f"/excinfo-after?token={tok}")
    assert (records / f"excinfo-{tok}").read_text() == "same\n"
    assert logged_errors(server, f"/excinfo-after?token={tok}") == 1


def test_start_response_twice_without_exc_info_is_an_error(client: httpx.Client) -> None:
    assert client.get("/twice").text == "RuntimeError"


def test_start_response_rejects_what_http_cannot_carry(client: httpx.Client) -> None:
    # (The validator itself rejects malformed names and status codes first; see test_encode_headers.)
    assert client.get("/bad-args").json() == ["ValueError", "ValueError", "accepted"]


def test_write_callable(client: httpx.Client) -> None:
    assert client.get("/write").text == "hello world!"
    big = 4 << 20
    response = client.get(f"/write?big={big}")
    assert response.text == "hello world" + "." * big + "!"


# == the response iterable ==============================================================================


def test_generator_app(client: httpx.Client) -> None:
    response = client.get("/gen")
    assert response.text == "onetwo"
    assert response.headers["transfer-encoding"] == "chunked"


def test_chunks_are_not_held_back(client: httpx.Client, records: Path) -> None:
    tok = token()
    with client.stream("GET", f"/gen-stream?token={tok}") as response:
        chunks = response.iter_raw()
        assert next(chunks) == b"first"
        (records / f"go-{tok}").write_text("")
        assert b"".join(chunks) == b"second"


@pytest.mark.parametrize("mode", ["ok", "raise"])
def test_close_is_called_in_a_pool_thread(client: httpx.Client, server: Server, records: Path, mode: str) -> None:
    tok = token()
    if mode == "ok":
        assert client.get(f"/close?mode=ok&token={tok}").text == "onetwo"
    else:
        with pytest.raises(httpx.RemoteProtocolError):
            client.get(f"/close?mode=raise&token={tok}")
    assert wait_for_file(records / f"closed-{tok}")
    thread = (records / f"closed-{tok}").read_text()
    assert thread.startswith("MainThread" if server.inline else "monoceros-wsgi")  # where the app itself ran


def test_close_is_called_when_the_client_leaves(server: Server, records: Path) -> None:
    tok = token()
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(f"GET /close?mode=forever&token={tok} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
        received = 0
        while received < 1 << 20:
            received += len(sock.recv(65536))
    assert wait_for_file(records / f"closed-{tok}")
    assert (records / f"closed-{tok}").read_text().count("\n") == 1


def logged_errors(server: Server, target: str) -> int:
    return server.log().count(f"Exception in WSGI application (request: GET {target} HTTP/1.1")


def test_exception_before_start_response_is_a_500(client: httpx.Client, server: Server) -> None:
    for where in ("before", "after-start"):
        target = f"/error?where={where}&token={token()}"
        response = client.get(target)
        assert response.status_code == 500
        assert response.text == "Internal Server Error\n"
        assert response.headers["connection"] == "close"
        assert response.headers["content-type"].startswith("text/plain")
        assert logged_errors(server, target) == 1


def test_exception_after_the_headers_cuts_the_connection(client: httpx.Client, server: Server) -> None:
    target = f"/error?where=mid-body&token={token()}"
    with pytest.raises(httpx.RemoteProtocolError):
        client.get(target)
    assert logged_errors(server, target) == 1


def test_head(client: httpx.Client) -> None:
    for url in ("/head", "/head?gen=1"):
        response = client.head(url)
        assert response.status_code == 200 and response.content == b""
        # The connection is still in step: no body bytes were left behind on it.
        assert client.get("/gen").text == "onetwo"
    assert client.head("/head").headers["content-length"] == "100"


def test_wsgi_errors_goes_to_the_error_log(client: httpx.Client, server: Server) -> None:
    assert client.get("/errors-stream").text == "logged"
    log = server.log()
    assert "EXPECTED errors line one" in log
    assert "EXPECTED partial" in log  # flushed when the request ended


def test_pool_bounds_concurrency_and_the_loop_keeps_serving(server: Server) -> None:
    if server.inline:
        pytest.skip("inline, the app runs on the loop thread, not on the pool")
    tok = token()

    def one(_: int) -> dict[str, Any]:
        with httpx.Client(base_url=server.base, timeout=10) as c:
            result: dict[str, Any] = c.get(f"/sleep?token={tok}").json()
            return result

    with ThreadPoolExecutor(8) as pool:
        results = pool.map(one, range(8))
        time.sleep(0.1)
        started = time.monotonic()
        status, _, _ = raw(server.port, b"GET / HTTP/1.1\r\nBad Header: y\r\n\r\n")  # answered by the loop itself
        assert status == 400 and time.monotonic() - started < 0.4
        peaks = [r["peak"] for r in results]
    assert max(peaks) == 4  # --threads 4: the other four waited for a thread


# == wsgi.file_wrapper ==================================================================================


@pytest.fixture(scope="module")
def data_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    content = os.urandom(300_000)
    path = tmp_path_factory.mktemp("files") / "data.bin"
    path.write_bytes(content)
    return path, content


def test_file_wrapper_through_the_validator(client: httpx.Client, data_file: tuple[Path, bytes]) -> None:
    path, content = data_file
    assert client.get("/file", params={"kind": "file", "path": str(path)}).content == content[10:]
    assert client.get("/file?kind=bytesio").content == bytes(range(256)) * 40


def test_file_wrapper_sent_by_the_server(server: Server, data_file: tuple[Path, bytes]) -> None:
    check_file_wrapper(server, data_file)  # uvloop, both WSGI modes


def test_file_wrapper_sent_by_the_server_on_asyncio(asyncio_server: Server, data_file: tuple[Path, bytes]) -> None:
    check_file_wrapper(asyncio_server, data_file)  # asyncio's loop has sendfile(2)


def check_file_wrapper(srv: Server, data_file: tuple[Path, bytes]) -> None:
    path, content = data_file
    with httpx.Client(base_url=srv.base, timeout=10) as c:
        response = c.get("/raw/file", params={"path": str(path)})
        assert response.content == content[10:]
        assert response.headers["content-length"] == str(len(content) - 10)
        response = c.get("/raw/file", params={"path": str(path), "limit": "1000"})
        assert response.content == content[10:1010]
        assert c.head("/raw/file", params={"path": str(path)}).headers["content-length"] == str(len(content) - 10)


def test_list_body_gets_a_content_length(client: httpx.Client) -> None:
    response = client.get("/raw/list")
    assert response.text == "hello list"
    assert response.headers["content-length"] == "10"
    assert "transfer-encoding" not in response.headers


# == Flask ==============================================================================================


def test_flask(client: httpx.Client) -> None:
    assert client.get("/flask/hello/unicorn").text == "Hello unicorn"
    response = client.post("/flask/form", data={"field": "v"}, files={"upload": ("a.bin", b"\0" * 200_000)})
    assert response.json() == {"field": "v", "filename": "a.bin", "size": 200_000}
    assert client.post("/flask/json", json={"a": [1, 2]}).json() == {"got": {"a": [1, 2]}}
    assert client.get("/flask/stream").text == "part0;part1;part2;"
    assert client.get("/flask/missing").status_code == 404


def test_flask_under_a_root_path(mounted: Server) -> None:
    with httpx.Client(base_url=mounted.base, timeout=10) as c:
        info = c.get("/mount/flask/url?x=1").json()
    assert info["script_root"] == "/mount"
    assert info["path"] == "/flask/url"
    assert info["url"] == f"{mounted.base}/mount/flask/url?x=1"
    assert info["for"] == "/mount/flask/hello/x"


# == white-box: the parts no request can show ===========================================================


class RecordingExchange:
    """An Exchange that records what the adapter does on the loop, and from which thread."""

    def __init__(self, method: str = "GET") -> None:
        self.request = Request(1, method, b"/", b"/", b"", "1.1", [(b"host", b"t")], b"t", False, False, None)
        self.scheme = "http"
        self.client = ("127.0.0.1", 5000)
        self.server: tuple[str, int | None] | None = ("127.0.0.1", 8000)
        self.extensions: dict[str, Any] = {}
        self.response_started = False
        self.disconnected = False
        self.calls: list[tuple[Any, ...]] = []
        self.loop_thread = threading.get_ident()

    def start_response(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        assert threading.get_ident() == self.loop_thread
        self.response_started = True
        self.calls.append(("start_response", status, headers))

    async def send(self, data: bytes, more: bool) -> None:
        assert threading.get_ident() == self.loop_thread
        self.calls.append(("send", data, more))

    async def receive(self) -> tuple[bytes, bool]:
        return b"", False

    def log_error(self, message: str, exc: BaseException | None = None) -> None:
        self.calls.append(("log_error", message))


def test_list_body_costs_no_round_trip(monkeypatch: pytest.MonkeyPatch) -> None:
    hops = []
    real = asyncio.run_coroutine_threadsafe

    def counting(coro: Any, loop: asyncio.AbstractEventLoop) -> Any:
        hops.append(coro)
        return real(coro, loop)

    monkeypatch.setattr(asyncio, "run_coroutine_threadsafe", counting)

    def hello(environ: Environ, start_response: StartResponse) -> list[bytes]:
        start_response("200 OK", TEXT)
        return [b"hello"]

    async def main() -> RecordingExchange:
        handler = WSGIHandler(hello, Config(), asyncio.get_running_loop())
        exchange = RecordingExchange()
        try:
            await handler(exchange)  # type: ignore[arg-type]
        finally:
            handler.close()
        return exchange

    exchange = asyncio.run(main())
    assert exchange.calls == [
        ("start_response", 200, [(b"Content-Type", b"text/plain"), (b"content-length", b"5")]),
        ("send", b"hello", False),
    ]
    assert hops == []


def test_parse_status() -> None:
    assert parse_status("200 OK") == 200
    assert parse_status("599 Custom reason") == 599
    for bad in ("200", "200OK", " 200 OK", "20 OK", "\u0662\u0660\u0660 OK", "200 OK\r\nX: y", "199 Early"):
        with pytest.raises(ValueError):
            parse_status(bad)
    with pytest.raises(TypeError):
        parse_status(b"200 OK")


def test_encode_headers() -> None:
    # Names keep the app's case, as gunicorn sends them; the flag says whether the app framed the body.
    assert encode_headers([("Content-Type", "text/plain"), ("X-A", "\u00e9")]) == (
        [(b"Content-Type", b"text/plain"), (b"X-A", b"\xe9")],
        False,
    )
    assert encode_headers([("X-A", "b"), ("CONTENT-length", "3")]) == (
        [(b"X-A", b"b"), (b"CONTENT-length", b"3")],
        True,
    )
    assert encode_headers([("Transfer-Encoding", "chunked")])[1] is True
    for bad in ([("X-A", "a\r\nSet-Cookie: x")], [("X A", "b")], [("X-A", "\u20ac")]):
        with pytest.raises(ValueError):
            encode_headers(bad)
    for wrong in ((("X-A", "b"),), [(b"X-A", b"b")], [["X-A", "b"]], [("X-A", 1)]):
        with pytest.raises(TypeError):
            encode_headers(wrong)


def test_wsgi_input_read_without_size() -> None:
    pieces = iter([(b"ab", True), (b"cd\nef", True), (b"", False)])
    stream = WSGIInput(lambda: next(pieces))
    assert stream.read() == b"abcd\nef"
    assert stream.read() == b"" and stream.readline() == b""
    assert WSGIInput(None).read() == b""
    single = WSGIInput(lambda: (b"whole", False))
    assert single.read(None) == b"whole"
    lines = iter([(b"a\nbb\n", True), (b"ccc\nd", False)])
    assert WSGIInput(lambda: next(lines)).readlines(4) == [b"a\n", b"bb\n"]


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(f"{record.levelname} {record.getMessage()}")


def test_error_stream_and_file_wrapper() -> None:
    errors = ErrorStream()
    logger = logging.getLogger("monoceros.error")
    collect = Collect()
    logger.addHandler(collect)
    try:
        errors.write("one\ntw")
        errors.write("o")
        errors.flush()
        errors.flush()
    finally:
        logger.removeHandler(collect)
    assert collect.messages == ["ERROR one", "ERROR two"]
    with pytest.raises(TypeError):
        errors.write(b"bytes")  # type: ignore[arg-type]
    source = io.BytesIO(b"x" * 10)
    wrapper = FileWrapper(source, 4)
    assert list(wrapper) == [b"xxxx", b"xxxx", b"xx"]
    wrapper.close()
    assert source.closed
