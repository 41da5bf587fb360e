"""The pace of one request body, against ``--body-timeout`` and ``--body-min-rate``.

Two rules, both nginx's and Kestrel's in spirit: some of the body must arrive at least every ``timeout``
seconds (nginx's ``client_body_timeout``), and each window of ``timeout`` seconds must bring
``min_rate * timeout`` bytes (Kestrel's MinRequestBodyDataRate), so a body that trickles in a byte at a time
cannot hold a connection by never quite stopping. Time the app spends not reading is not the client's:
the driver calls :meth:`BodyPace.restart` when reading resumes.

Arrival costs one add and one store; the checks run only when a driver's timer fires at :attr:`next_check`.
"""

from __future__ import annotations


class BodyPace:
    """What has arrived of one body, and when it must have arrived by."""

    __slots__ = ("got", "last", "min_bytes", "min_rate", "timeout", "window_end")

    def __init__(self, now: float, timeout: float, min_rate: int) -> None:
        self.timeout = timeout
        self.min_rate = min_rate
        self.min_bytes = min_rate * timeout
        self.restart(now)

    def restart(self, now: float) -> None:
        """Start afresh from ``now`` (the body began, or the app began reading again)."""
        self.got = 0
        self.last = now
        self.window_end = now + self.timeout

    def moved(self, size: int, now: float) -> None:
        self.got += size
        self.last = now

    def verdict(self, now: float) -> str | None:
        """None while the body keeps its pace (a window that passed starts the next), else why it failed."""
        if now >= self.last + self.timeout:
            return f"the request body did not arrive in time (--body-timeout {self.timeout:g} s)"
        if now >= self.window_end:
            if self.got < self.min_bytes:
                return (
                    f"the request body arrived slower than --body-min-rate ({self.min_rate} bytes/s over "
                    f"{self.timeout:g} s: {self.got} bytes)"
                )
            self.got = 0
            self.window_end = now + self.timeout
        return None

    @property
    def next_check(self) -> float:
        """When :meth:`verdict` must run next."""
        return min(self.last + self.timeout, self.window_end)
