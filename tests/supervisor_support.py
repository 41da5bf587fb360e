"""Helpers for the supervisor's end-to-end tests: starting a master, finding its workers in /proc, and
client load that counts every failed request.

Worker PIDs come from /proc (children of the master) and from the app, which answers every plain GET
with the PID of the worker that served it (tests/apps/supervisor_apps.py).
"""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
from server_process import MASTER_READY_TEXT, ServerFactory, ServerProcess, Wire, request

APP = "supervisor_apps:app"
READY_LINE = re.compile(r"Worker \d+ \(pid (\d+)\) is ready")

T = TypeVar("T")


def supervise(serve: ServerFactory, *args: str, app: str | None = APP, **options: Any) -> ServerProcess:
    """Start a server that runs a master (the args must ask for one), in its own process group, and wait
    for "Ready: N worker(s) serving"."""
    options.setdefault("ready_text", MASTER_READY_TEXT)
    return serve(app, *args, new_session=True, **options)


# -- processes -------------------------------------------------------------------------------------------------


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of a process, or None if there is no such process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = text[text.rindex(")") + 2 :].split()  # the command name may contain spaces and parentheses
    return fields[0], int(fields[1])


def alive(pid: int) -> bool:
    """True while the process runs; a zombie (dead, not yet reaped: our PID 1 may never reap it) is dead."""
    stat = _stat(pid)
    return stat is not None and stat[0] not in ("Z", "X")


def children(pid: int) -> set[int]:
    """The live child processes of ``pid``."""
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _stat(int(entry))
            if stat is not None and stat[1] == pid and stat[0] not in ("Z", "X"):
                found.add(int(entry))
    return found


def status_field(pid: int, name: str) -> str:
    """A field of /proc/<pid>/status ("Uid", "Umask", ...), as the text after the colon."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key == name:
                return value.strip()
    raise AssertionError(f"no {name} in /proc/{pid}/status")


def wait_for(check: Callable[[], T], timeout: float = 5.0, what: str = "", server: ServerProcess | None = None) -> T:
    """Poll ``check`` until it returns something truthy, and return that; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            output = f"\nserver output:\n{server.output()}" if server is not None else ""
            raise AssertionError(f"not within {timeout} s: {what or check}{output}")
        time.sleep(0.01)


def wait_workers(server: ServerProcess, count: int, timeout: float = 5.0, master: int | None = None) -> set[int]:
    """Wait until the master has exactly ``count`` live worker processes; return their PIDs."""
    pid = server.pid if master is None else master

    def check() -> set[int]:
        found = children(pid)
        return found if len(found) == count else set()

    return wait_for(check, timeout, f"{count} worker(s) under master {pid}", server)


def ready_pids(output: str) -> list[int]:
    """Workers the master announced ready ("Worker N (pid P) is ready"), in order."""
    return [int(pid) for pid in READY_LINE.findall(output)]


def worker_pid(server: ServerProcess, path: str = "/") -> int:
    """The PID of the worker that answers a GET on a fresh connection (a raw socket: cheaper than a new
    httpx client when a test opens many)."""
    with Wire(server.connect()) as wire:
        wire.send(request("GET", path, [("Connection", "close")]))
        response = wire.read_response()
    assert response.status == 200, response
    return int(response.body)


def kill_leftovers(workdir: Path) -> None:
    """SIGKILL every process still working in a test server's scratch directory, wherever it went (a
    daemon leaves the test's process group, so killing the group does not reach it)."""
    target = os.path.realpath(workdir)
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cwd = os.readlink(f"/proc/{entry}/cwd")
        except OSError:
            continue
        if cwd == target and alive(int(entry)):
            try:
                os.kill(int(entry), signal.SIGKILL)
            except ProcessLookupError:
                pass


# -- client load -----------------------------------------------------------------------------------------------


class Load:
    """Client threads, each sending sequential GETs on one keep-alive httpx client, until stopped, for at
    most ``seconds`` and ``limit`` requests per thread. Every answer (time, worker PID) and every failure
    (time, error) is kept."""

    def __init__(
        self, url: str, *, threads: int = 4, seconds: float = 10.0, limit: int = 100_000, pause: float = 0.0
    ) -> None:
        self.url = url
        self.threads = threads
        self.seconds = seconds
        self.limit = limit
        self.pause = pause
        self.answers: list[tuple[float, int]] = []
        self.failures: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self.join()

    def join(self) -> None:
        """Wait for the threads to end by themselves (after ``seconds`` or ``limit``)."""
        for thread in self._threads:
            thread.join(self.seconds + 10)
        assert not any(thread.is_alive() for thread in self._threads), "a load thread hangs"

    @property
    def requests(self) -> int:
        return len(self.answers) + len(self.failures)

    def pids(self, since: float = 0.0, until: float = float("inf")) -> set[int]:
        """The workers that answered between ``since`` and ``until`` (time.monotonic())."""
        return {pid for at, pid in list(self.answers) if since <= at <= until}

    def wait_answers(self, count: int, since: float = 0.0, timeout: float = 5.0) -> None:
        wait_for(lambda: sum(1 for at, _ in list(self.answers) if at >= since) >= count, timeout, f"{count} answers")

    def _run(self) -> None:
        deadline = time.monotonic() + self.seconds
        with httpx.Client(timeout=5) as client:
            for _ in range(self.limit):
                if self._stop.is_set() or time.monotonic() > deadline:
                    return
                try:
                    response = client.get(self.url)
                except httpx.HTTPError as exc:
                    self.failures.append((time.monotonic(), repr(exc)))
                else:
                    if response.status_code == 200 and response.text.isdigit():
                        self.answers.append((time.monotonic(), int(response.text)))
                    else:
                        self.failures.append((time.monotonic(), f"{response.status_code} {response.text[:100]!r}"))
                if self.pause:
                    time.sleep(self.pause)
