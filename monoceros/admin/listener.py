"""The admin listener's sockets, driven by the master's own loop (no thread, no event loop).

The master is a plain ``poll`` loop that forks, and a thread in a process that forks can leave a lock held in
the child; so the admin connections are non-blocking sockets that the master's wait includes
(supervisor/signals.py), each request parsed by httptools and answered by endpoints.py, then closed. The
limits keep a misbehaving client from costing the master anything: a few connections, a small head, a few
seconds each.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable

import httptools

from .endpoints import Answer, Request

log = logging.getLogger("monoceros.error")

MAX_CONNECTIONS = 32
MAX_HEAD = 16384
IDLE_TIMEOUT = 10.0  # seconds a connection may take to send its request and read the answer


class _Connection:
    def __init__(self, sock: socket.socket, now: float) -> None:
        self.sock = sock
        self.since = now
        self.received = 0
        self.out = b""
        self.done = False  # the request is parsed (the answer may still be going out)
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.parser = httptools.HttpRequestParser(self)

    # httptools callbacks
    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))

    def on_message_complete(self) -> None:
        self.done = True


class AdminListener:
    """Accepts and answers admin requests; ``answer`` maps a request to its response."""

    def __init__(self, sock: socket.socket, answer: Callable[[Request], Answer]) -> None:
        sock.setblocking(False)
        self.sock = sock
        self.answer = answer
        self.connections: dict[int, _Connection] = {}

    def interest(self) -> tuple[list[int], list[int]]:
        """The descriptors to wait on: for reading (the listener, requests coming) and for writing."""
        readers = [self.sock.fileno()] if len(self.connections) < MAX_CONNECTIONS else []
        writers: list[int] = []
        for fd, conn in self.connections.items():
            (writers if conn.out else readers).append(fd)
        return readers, writers

    def ready(self, fd: int) -> None:
        """``fd`` can be read or written."""
        if fd == self.sock.fileno():
            self._accept()
            return
        conn = self.connections.get(fd)
        if conn is None:
            return
        if conn.out:
            self._write(conn)
        else:
            self._read(conn)

    def sweep(self, now: float) -> None:
        """Close connections that have taken too long."""
        for conn in [c for c in self.connections.values() if now - c.since > IDLE_TIMEOUT]:
            self._close(conn)

    def close(self) -> None:
        for conn in list(self.connections.values()):
            self._close(conn)
        self.sock.close()

    def _accept(self) -> None:
        now = time.monotonic()
        while len(self.connections) < MAX_CONNECTIONS:
            try:
                sock, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # out of descriptors, say: the next turn tries again
                log.warning("Admin listener: accept failed: %s", exc)
                return
            sock.setblocking(False)
            self.connections[sock.fileno()] = _Connection(sock, now)

    def _read(self, conn: _Connection) -> None:
        try:
            data = conn.sock.recv(4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(conn)
            return
        if not data:
            self._close(conn)
            return
        conn.received += len(data)
        try:
            if conn.received > MAX_HEAD:
                raise httptools.HttpParserError("request too large")
            conn.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            conn.done = True
        except httptools.HttpParserError:
            self._respond(conn, Answer(400, "text/plain; charset=utf-8", b"bad request\n"))
            return
        if conn.done:
            method = conn.parser.get_method().decode("latin-1")
            try:
                answer = self.answer(Request(method, conn.url.decode("latin-1"), conn.headers))
            except Exception:
                log.exception("Admin listener: answering %s %r failed", method, conn.url)
                answer = Answer(500, "text/plain; charset=utf-8", b"internal error\n")
            self._respond(conn, answer, head_only=method == "HEAD")

    def _respond(self, conn: _Connection, answer: Answer, head_only: bool = False) -> None:
        conn.done = True
        head = [f"HTTP/1.1 {answer.status} {answer.reason}", f"Content-Type: {answer.content_type}"]
        head.append(f"Content-Length: {len(answer.body)}")
        head += [f"{name}: {value}" for name, value in answer.headers]
        head += ["Cache-Control: no-store", "Connection: close", "", ""]
        conn.out = "\r\n".join(head).encode("latin-1") + (b"" if head_only else answer.body)
        self._write(conn)

    def _write(self, conn: _Connection) -> None:
        try:
            sent = conn.sock.send(conn.out)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(conn)
            return
        conn.out = conn.out[sent:]
        if not conn.out:
            self._close(conn)

    def _close(self, conn: _Connection) -> None:
        self.connections.pop(conn.sock.fileno(), None)
        try:
            conn.sock.close()
        except OSError:
            pass
