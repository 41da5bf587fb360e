"""systemd integration without a systemd library: sd_notify(3) over the NOTIFY_SOCKET datagram socket.

Socket activation (LISTEN_FDS) lives with the other listeners in server/listeners.py.
"""

from __future__ import annotations

import logging
import os
import socket
import time

log = logging.getLogger("monoceros.error")


class Notifier:
    """Sends sd_notify messages when run under systemd (``Type=notify``); does nothing otherwise."""

    def __init__(self) -> None:
        address = os.environ.pop("NOTIFY_SOCKET", "")  # children must not notify in the master's name
        if address.startswith("@"):
            address = "\0" + address[1:]  # Linux abstract namespace
        self.address = address

    @property
    def enabled(self) -> bool:
        return bool(self.address)

    def send(self, *fields: str) -> None:
        if not self.address:
            return
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.connect(self.address)
                sock.sendall("\n".join(fields).encode())
        except OSError as exc:
            log.warning("sd_notify to %s failed: %s", self.address, exc)

    def ready(self, status: str) -> None:
        self.send("READY=1", f"STATUS={status}", f"MAINPID={os.getpid()}")

    def reloading(self) -> None:
        # Type=notify-reload wants the monotonic time with RELOADING=1, in microseconds.
        self.send("RELOADING=1", f"MONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}")

    def stopping(self) -> None:
        self.send("STOPPING=1")

    def status(self, text: str) -> None:
        self.send(f"STATUS={text}")
