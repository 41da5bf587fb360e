"""Run ``python -m monoceros`` as a real subprocess for end-to-end tests.

:class:`ServerProcess` starts the server, waits until it is serving, captures everything it prints
(stdout and stderr, one merged stream), and stops it with a real signal. By default it listens on a
socket the test creates (bound to 127.0.0.1 port 0) and hands over with ``--fd``: the port is known
before the server starts, nothing can steal it, and once the parent closes its copy the server holds
the only one, so "connection refused after SIGTERM" means what it says.

The server runs in a scratch working directory with no ``MONOCEROS_*`` variables in its environment,
so no ``monoceros.toml``, ``pyproject.toml`` or stray setting from the developer's shell changes it.
Test apps write what they observe into ``record_dir`` (``E2E_RECORD_DIR`` in their environment);
see tests/apps/e2e_record.py.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

APPS_DIR = Path(__file__).resolve().parent / "apps"
READY_TEXT = "Serving "  # the worker logs "Serving ASGI3 app ..." once every listener is up
MASTER_READY_TEXT = "Ready: "  # a supervising master logs "Ready: N worker(s) serving" once all are up
READY_TIMEOUT = 10.0


class ServerExited(AssertionError):
    """The server process exited (or never became ready); the message carries its output."""


class ServerProcess:
    """One ``python -m monoceros`` subprocess.

    ``listen`` is ``"fd"`` (default: a fresh 127.0.0.1 socket passed with ``--fd``), ``"uds"`` (a unix
    socket in a short temporary directory), or ``None`` when ``args`` already say where to listen.

    ``ready_text`` is the log line that means "serving": :data:`READY_TEXT` for one process,
    :data:`MASTER_READY_TEXT` to wait until a supervising master has every worker up. With
    ``new_session`` the server leads its own session and process group, and :meth:`kill` kills the whole
    group, so workers (or a re-executed master) never outlive a test whose master died or was killed.
    ``launcher`` is a command prefix that ends by exec'ing the rest (to set up fds or the environment).
    """

    def __init__(
        self,
        app: str | None,
        args: Sequence[str] = (),
        *,
        workdir: Path,
        app_dir: Path | None = APPS_DIR,
        listen: str | None = "fd",
        env: dict[str, str] | None = None,
        scheme: str = "http",
        pass_fds: Sequence[int] = (),
        ready_text: str = READY_TEXT,
        new_session: bool = False,
        launcher: Sequence[str] = (),
    ) -> None:
        self.app = app
        self.pass_fds = tuple(pass_fds)
        self.ready_text = ready_text
        self.new_session = new_session
        self.launcher = list(launcher)
        self.args = list(args)
        self.workdir = workdir
        self.record_dir = workdir / "record"
        self.record_dir.mkdir(parents=True, exist_ok=True)
        self.app_dir = app_dir
        self.listen = listen
        self.extra_env = env or {}
        self.scheme = scheme
        self.host = "127.0.0.1"
        self.port: int | None = None
        self.uds: str | None = None
        self.proc: subprocess.Popen[bytes] = None  # type: ignore[assignment]
        self._chunks: list[bytes] = []
        self._lock = threading.Lock()
        self._reader: threading.Thread | None = None

    # -- starting ----------------------------------------------------------------------------------------

    def command(self) -> list[str]:
        cmd = [*self.launcher, sys.executable, "-m", "monoceros"]
        if self.app_dir is not None:
            cmd += ["--app-dir", str(self.app_dir)]
        cmd += self.args
        if self.app is not None:
            cmd.append(self.app)
        return cmd

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MONOCEROS_")}
        env["PYTHONUNBUFFERED"] = "1"
        env["E2E_RECORD_DIR"] = str(self.record_dir)
        preload = os.environ.get("TEST_SERVER_LD_PRELOAD")
        if preload:  # CI's AddressSanitizer run: the runtime goes into the server only, not into curl & co.
            env["LD_PRELOAD"] = preload
            env.setdefault("ASAN_OPTIONS", "detect_leaks=0:abort_on_error=1")
        env.update(self.extra_env)
        return env

    def start(self, *, wait: bool = True) -> ServerProcess:
        """Start the process; with ``wait``, return once it serves (raise :class:`ServerExited` if not)."""
        listener: socket.socket | None = None
        pass_fds = self.pass_fds
        if self.listen == "fd":
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.bind(("127.0.0.1", 0))
            listener.listen(128)
            self.port = listener.getsockname()[1]
            pass_fds += (listener.fileno(),)
            self.args += ["--fd", str(listener.fileno())]
        elif self.listen == "uds":
            self.uds = short_socket_path(self.workdir)
            self.args += ["--uds", self.uds]
        try:
            self.proc = subprocess.Popen(
                self.command(),
                cwd=self.workdir,
                env=self.environment(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                pass_fds=pass_fds,
                start_new_session=self.new_session,
            )
        finally:
            if listener is not None:
                listener.close()  # the server now holds the only copy
        self._reader = threading.Thread(target=self._read_output, daemon=True)
        self._reader.start()
        if wait:
            self.wait_ready()
        return self

    def _read_output(self) -> None:
        stream = self.proc.stdout
        assert stream is not None
        while True:
            chunk = stream.read1(65536)
            if not chunk:
                break
            with self._lock:
                self._chunks.append(chunk)

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        """Wait for the ready log line; fail with the output if the process exits or hangs first."""
        deadline = time.monotonic() + timeout
        while self.ready_text not in self.output():
            if self.proc.poll() is not None:
                self._join_reader()
                raise ServerExited(f"server exited with {self.proc.returncode} before serving:\n{self.output()}")
            if time.monotonic() > deadline:
                self.kill()
                raise ServerExited(f"server not ready after {timeout} s:\n{self.output()}")
            time.sleep(0.01)

    # -- using ---------------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL of the TCP listener (for a unix socket: a placeholder host, use :attr:`uds`)."""
        if self.port is None:
            return f"{self.scheme}://localhost"
        return f"{self.scheme}://{self.host}:{self.port}"

    @property
    def address(self) -> tuple[str, int]:
        assert self.port is not None
        return self.host, self.port

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        """Everything the server printed so far (error log and access log)."""
        with self._lock:
            return b"".join(self._chunks).decode("utf-8", "replace")

    def wait_output(self, text: str, timeout: float = 5.0) -> str:
        """Wait until ``text`` appears in the output; return the output."""
        deadline = time.monotonic() + timeout
        while True:
            out = self.output()
            if text in out:
                return out
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} not in the server output after {timeout} s:\n{out}")
            time.sleep(0.02)

    def connect(self, timeout: float = 5.0) -> socket.socket:
        """A raw client socket connected to the server (TCP or unix, whichever it listens on)."""
        if self.port is None and self.uds is not None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            sock.connect(self.uds)
            return sock
        sock = socket.create_connection(self.address, timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def rss_kib(self) -> int:
        """The server's resident set size (VmRSS), in KiB."""
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise AssertionError("no VmRSS line in /proc/<pid>/status")

    def record(self, name: str) -> Path:
        """The file a test app writes under ``name`` in the record directory."""
        return self.record_dir / name

    def wait_record(self, name: str, timeout: float = 5.0, *, equals: str | None = None) -> str:
        """Wait for the app to write the record ``name`` (with the text ``equals``, if given); return its text."""
        path = self.record(name)
        deadline = time.monotonic() + timeout
        while True:
            if path.exists():
                text = path.read_text()
                if equals is None or text == equals:
                    return text
            if time.monotonic() > deadline:
                wanted = f"record {name!r}" + (f" = {equals!r}" if equals is not None else "")
                raise AssertionError(f"the app wrote no {wanted} within {timeout} s:\n{self.output()}")
            time.sleep(0.01)

    # -- stopping ------------------------------------------------------------------------------------------

    def send_signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        """Send ``sig`` and wait for the exit code; kill and fail if it does not exit within ``timeout``."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise ServerExited(f"server did not exit within {timeout} s of {sig!r}:\n{self.output()}") from None
        self._join_reader()
        return code

    def wait(self, timeout: float = 10.0) -> int:
        """Wait for the process to exit by itself; return its exit code."""
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise ServerExited(f"server still running after {timeout} s:\n{self.output()}") from None
        self._join_reader()
        return code

    def kill(self) -> None:
        """SIGKILL the process if it still runs and reap it. Safe to call any number of times.
        With ``new_session``, everything left in its process group is killed too."""
        if self.proc is None:
            return
        if self.new_session:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)  # its group id is its pid: it leads the group
            except ProcessLookupError:
                pass  # the group is empty
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._join_reader()

    def _join_reader(self) -> None:
        if self._reader is not None:
            self._reader.join(5)
        if self.proc.stdout is not None and (self._reader is None or not self._reader.is_alive()):
            self.proc.stdout.close()


def short_socket_path(workdir: Path, name: str = "s.sock") -> str:
    """A unix socket path under the 108-byte sun_path limit (pytest's tmp paths can be longer)."""
    path = workdir / name
    if len(str(path)) < 100:
        return str(path)
    import tempfile

    return os.path.join(tempfile.mkdtemp(prefix="mono-"), name)


def free_port(family: int = socket.AF_INET, host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (bind to 0, close). Only for tests that must pass ``-b``."""
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def ipv6_available() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


class ServerFactory:
    """Starts servers in fresh subdirectories of ``base`` and kills them all in :meth:`close`."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.servers: list[ServerProcess] = []

    def __call__(
        self,
        app: str | None = "asgi_apps:app",
        *args: str,
        app_dir: Path | None = APPS_DIR,
        listen: str | None = "fd",
        env: dict[str, str] | None = None,
        scheme: str = "http",
        wait: bool = True,
        sources: dict[str, str] | None = None,
        pass_fds: Sequence[int] = (),
        ready_text: str = READY_TEXT,
        new_session: bool = False,
        launcher: Sequence[str] = (),
    ) -> ServerProcess:
        """Start ``app`` with extra CLI ``args``; ``sources`` are app modules to write first (then the
        app directory is the one they are written to, unless ``app_dir`` says otherwise). The other
        keywords are :class:`ServerProcess`'s."""
        workdir = self.base / f"server{len(self.servers)}"
        workdir.mkdir(parents=True)
        if sources:
            written = workdir / "app"
            written.mkdir()
            for name, text in sources.items():
                (written / name).write_text(text)
            if app_dir is APPS_DIR:
                app_dir = written
        server = ServerProcess(
            app,
            args,
            workdir=workdir,
            app_dir=app_dir,
            listen=listen,
            env=env,
            scheme=scheme,
            pass_fds=pass_fds,
            ready_text=ready_text,
            new_session=new_session,
            launcher=launcher,
        )
        self.servers.append(server)
        return server.start(wait=wait)

    def close(self) -> None:
        for server in self.servers:
            server.kill()


# -- raw HTTP/1.1 on a socket ---------------------------------------------------------------------------------


class RawResponse:
    """One response as it came off the wire."""

    def __init__(self, version: str, status: int, headers: list[tuple[str, str]], body: bytes, raw: bytes) -> None:
        self.version = version
        self.status = status
        self.headers = headers  # names lowercased, values as sent
        self.body = body
        self.raw = raw  # the exact bytes: head and framed body

    def header(self, name: str) -> str | None:
        """The last value of header ``name`` (case-insensitive), or None."""
        found = None
        for key, value in self.headers:
            if key == name.lower():
                found = value
        return found

    def __repr__(self) -> str:
        return f"<RawResponse {self.status} {self.headers!r} {self.body[:80]!r}>"


class Wire:
    """A client socket plus a read buffer, for sending exact bytes and parsing exact responses."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def __enter__(self) -> Wire:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> None:
        data = self.sock.recv(262144)
        if not data:
            raise EOFError(f"connection closed; unparsed bytes: {self.buffer[:200]!r}")
        self.buffer += data

    def read_until(self, marker: bytes) -> bytes:
        """Bytes up to and including ``marker``."""
        start = 0
        while (index := self.buffer.find(marker, start)) < 0:
            start = max(0, len(self.buffer) - len(marker) + 1)
            self._fill()
        index += len(marker)
        data, self.buffer = self.buffer[:index], self.buffer[index:]
        return data

    def read_exact(self, size: int) -> bytes:
        if len(self.buffer) < size:
            parts, have = [self.buffer], len(self.buffer)
            while have < size:  # a list, not +=, so a 64 MiB body is not copied once per recv
                data = self.sock.recv(min(262144, max(size - have, 65536)))
                if not data:
                    raise EOFError(f"connection closed after {have} of {size} bytes")
                parts.append(data)
                have += len(data)
            self.buffer = b"".join(parts)
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def read_to_eof(self) -> bytes:
        """Everything until the server closes (a reset counts as a close)."""
        parts = [self.buffer]
        try:
            while True:
                data = self.sock.recv(262144)
                if not data:
                    break
                parts.append(data)
        except ConnectionResetError:
            pass
        self.buffer = b""
        return b"".join(parts)

    def read_response(self, *, head: bool = False) -> RawResponse:
        """Parse one response; ``head=True`` for the answer to HEAD (a head, never a body)."""
        raw_head = self.read_until(b"\r\n\r\n")
        lines = raw_head[:-4].decode("latin-1").split("\r\n")
        version, status_text = lines[0].split(" ", 2)[:2]
        status = int(status_text)
        headers = []
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers.append((name.lower(), value.strip()))
        response = RawResponse(version, status, headers, b"", raw_head)
        if head or status < 200 or status in (204, 304):
            return response
        length = response.header("content-length")
        if response.header("transfer-encoding") == "chunked":
            response.body, framed = self._read_chunked()
        elif length is not None:
            response.body = framed = self.read_exact(int(length))
        else:
            response.body = framed = self.read_to_eof()
        response.raw += framed
        return response

    def _read_chunked(self) -> tuple[bytes, bytes]:
        body, framed = [], []
        while True:
            line = self.read_until(b"\r\n")
            framed.append(line)
            size = int(line.split(b";")[0], 16)
            if size == 0:
                while True:  # trailer section, up to the empty line
                    line = self.read_until(b"\r\n")
                    framed.append(line)
                    if line == b"\r\n":
                        return b"".join(body), b"".join(framed)
            data = self.read_exact(size + 2)
            framed.append(data)
            body.append(data[:-2])

    def closed_by_peer(self, timeout: float) -> bool:
        """True if the server closes the connection (EOF or reset) within ``timeout`` with no more bytes."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False
        if data:
            self.buffer += data
            return False
        return True


def request(
    method: str = "GET",
    target: str = "/",
    headers: Sequence[tuple[str, str]] = (),
    body: bytes = b"",
    *,
    version: str = "1.1",
    host: str = "testserver",
) -> bytes:
    """The bytes of a well-formed request; Content-Length is added for a body unless a header frames it."""
    lines = [f"{method} {target} HTTP/{version}"]
    if host:
        lines.append(f"Host: {host}")
    names = {name.lower() for name, _ in headers}
    lines += [f"{name}: {value}" for name, value in headers]
    if body and "content-length" not in names and "transfer-encoding" not in names:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def in_background(url: str, timeout: float = 35) -> tuple[threading.Thread, dict[str, Any]]:
    """GET ``url`` in a thread; the result dict gets "response" or "error"."""
    import httpx

    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["response"] = httpx.get(url, timeout=timeout)
        except httpx.HTTPError as exc:
            result["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, result
