"""The master's signals: handlers that only queue, and a pipe that wakes its loop.

A signal handler runs between two bytecodes of whatever the master was doing, so it does nothing but append
the signal to a queue; ``signal.set_wakeup_fd`` writes a byte to a pipe the loop waits on, so the loop wakes
at once instead of at its next tick. Another thread (the reloader) wakes it the same way with :meth:`wake`.
"""

from __future__ import annotations

import os
import select
import signal
from collections import deque
from typing import Any, Protocol

SIGNALS = (
    signal.SIGHUP, signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGTTIN, signal.SIGTTOU,
    signal.SIGUSR1, signal.SIGUSR2, signal.SIGWINCH, signal.SIGCHLD,
)  # fmt: skip
FILES_CHANGED = -1  # queued by the file watcher, not a real signal


class Waiter(Protocol):
    """Other descriptors the master's wait includes (the admin listener's)."""

    def interest(self) -> tuple[list[int], list[int]]:
        """Descriptors to wait on for reading, and for writing."""

    def ready(self, fd: int) -> None:
        """``fd`` is ready for what it was waited on for."""


class SignalQueue:
    """The signals received and not yet handled, in order, and the pipe that wakes the master's loop."""

    def __init__(self) -> None:
        self.pending: deque[int] = deque()
        self.read_fd = self.write_fd = -1

    def install(self) -> None:
        """Queue the master's signals from now on."""
        self.read_fd, self.write_fd = os.pipe()
        for fd in (self.read_fd, self.write_fd):
            os.set_blocking(fd, False)
        signal.set_wakeup_fd(self.write_fd)
        for sig in SIGNALS:
            signal.signal(sig, self._queue)

    def uninstall(self) -> None:
        signal.set_wakeup_fd(-1)

    @property
    def fds(self) -> tuple[int, ...]:
        """The pipe's descriptors: a forked worker closes them (they are the master's alone)."""
        return (self.read_fd, self.write_fd)

    def _queue(self, signum: int, frame: Any) -> None:
        self.pending.append(signum)

    def wait(self, timeout: float, also: Waiter | None = None) -> None:
        """Sleep until a signal or :meth:`wake`, at most ``timeout`` seconds; then empty the pipe. With
        ``also``, wake for its descriptors too, and tell it which are ready."""
        poller = select.poll()
        poller.register(self.read_fd, select.POLLIN)
        if also is not None:
            readers, writers = also.interest()
            for fd in readers:
                poller.register(fd, select.POLLIN)
            for fd in writers:
                poller.register(fd, select.POLLOUT)
        try:
            events = poller.poll(timeout * 1000)
        except InterruptedError:
            events = []
        if also is not None:
            for fd, _ in events:
                if fd != self.read_fd:
                    also.ready(fd)
        try:
            while os.read(self.read_fd, 4096):
                pass
        except BlockingIOError:
            pass

    def wake(self, reason: int = FILES_CHANGED) -> None:
        """From another thread: queue ``reason`` and wake the loop."""
        self.pending.append(reason)
        try:
            os.write(self.write_fd, b"\0")
        except BlockingIOError:
            pass
