"""A worker's own counts, for the admin listener's /metrics and status page.

Theory of operation
-------------------
Counting happens on the worker's event loop, in plain Python ints: a finished request costs a few list
increments and one ``bisect`` (no lock, no system call, no shared-memory write). Once a tick (the heartbeat,
about a second) :meth:`Tally.snapshot` flattens them, with the gauges read at that moment, into one vector of
unsigned integers in the order :data:`LAYOUT` names, and the worker's link copies that vector into its slot of
the shared board (supervisor/board.py). The master adds up the slots of every worker it has, plus what the
workers that exited had last published, so that a counter never goes backwards when a worker is replaced.

A worker that stops publishes once more as it exits; one killed (-9) loses what it counted since its last
publish (at most 0.25 s): the price of a hot path without shared writes, which docs/deployment.md states.
"""

from __future__ import annotations

import math
import time
from bisect import bisect_left
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ..access_log import Finished, RequestLog
    from ..protocols.events import Request

METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE", "other")
VERSIONS = ("1.0", "1.1", "2", "3")  # the ASGI spellings of the HTTP versions
CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")
# Request durations, seconds: 1 ms to 60 s, about three buckets a decade (Prometheus's client defaults stop
# at 10 s, and a slow upload or report is longer than that).
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
# The server's own refusals, by kind: statuses, and the PROXY protocol's closes (an untrusted peer; a header
# malformed, truncated or late), connections reclaimed at the limit, clients cut for not reading, requests
# whose app ran past --request-timeout.
LIMITS = (
    "400", "408", "413", "414", "431", "503", "505", "proxy_untrusted", "proxy_header", "reclaimed",
    "send_timeout", "request_timeout",
)  # fmt: skip
CONNECTIONS = ("http/1.1", "h2", "h3", "websocket")  # open connections by what they speak now (WebSocket last)


class _Layout:
    """Where each count sits in the published vector."""

    def __init__(self) -> None:
        at = 0

        def take(n: int) -> int:
            nonlocal at
            start, at = at, at + n
            return start

        self.requests = take(len(METHODS) * len(VERSIONS) * len(CLASSES))
        self.latency = take(len(BUCKETS) + 1)
        self.latency_sum_us = take(1)
        self.body_in = take(1)
        self.body_out = take(1)
        self.ws_opened = take(1)
        self.ws_open = take(1)  # a gauge
        self.ws_in = take(1)
        self.ws_out = take(1)
        self.limits = take(len(LIMITS))
        self.in_flight = take(1)  # a gauge: requests whose app is running or whose response is being sent
        self.connections = take(len(CONNECTIONS))  # gauges
        self.size = at

    def request_index(self, method: int, version: int, klass: int) -> int:
        return self.requests + (method * len(VERSIONS) + version) * len(CLASSES) + klass


LAYOUT = _Layout()
_METHOD_BASE = {m: LAYOUT.request_index(i, 0, 0) - 1 for i, m in enumerate(METHODS)}  # - 1: class 1xx is 0
_OTHER_BASE = _METHOD_BASE["other"]
_VERSION_BASE = {v: i * len(CLASSES) for i, v in enumerate(VERSIONS)}
_LIMIT_INDEX = {kind: LAYOUT.limits + i for i, kind in enumerate(LIMITS)}
_LATENCY = LAYOUT.latency
_FIRST_BOUND = BUCKETS[0]
_BODY_IN = LAYOUT.body_in
_clock = time.perf_counter


class Counted(Protocol):
    """An open connection, as the gauges see it (state.Connection)."""

    kind: int

    @property
    def requests_in_flight(self) -> int: ...


class Tally:
    """This worker's counters. It stands where the access log would (``ServerState.request_log``), counts
    each request, and passes it on to the access log when that is on."""

    __slots__ = ("access", "connections", "counts", "duration_sum", "durations", "sizes")

    def __init__(self, access: RequestLog | None) -> None:
        self.access = access
        self.counts = [0] * LAYOUT.size
        self.duration_sum = 0.0
        # Held until the next snapshot adds them up (in C): appending an existing object allocates nothing,
        # where adding to a large int or a float makes a new object per request.
        self.durations: list[float] = []
        self.sizes: list[int] = []
        self.connections: Collection[Counted] = ()  # for the gauges: the worker's (ServerState.connections)

    # -- the hot path: one call per finished request ------------------------------------------------------
    # Every operation here is paid by every request (bench/icount.py --server, with and without --admin-bind):
    # subscripts rather than dict.get, a compare before bisect (most requests take less than a millisecond).

    def finished(self, stream: Finished) -> None:
        duration = _clock() - stream.start
        counts = self.counts
        request = stream.request
        try:
            counts[_METHOD_BASE[request.method] + _VERSION_BASE[request.http_version] + stream.status // 100] += 1
        except KeyError:
            self._other(request, stream.status)
        if duration <= _FIRST_BOUND:
            counts[_LATENCY] += 1
        else:
            counts[_LATENCY + bisect_left(BUCKETS, duration)] += 1
        self.durations.append(duration)
        self.sizes.append(stream.response_bytes)
        if stream.received:
            counts[_BODY_IN] += stream.received
        if self.access is not None:  # the same duration, rather than a second clock
            self.access.log_request(
                request, stream.client, stream.status, stream.response_bytes, duration, stream.response_headers,
                time.time(),
            )  # fmt: skip

    def _other(self, request: Request, status: int) -> None:
        """A method outside :data:`METHODS`, or a version outside :data:`VERSIONS` (counted as 1.1)."""
        base = _METHOD_BASE.get(request.method, _OTHER_BASE) + _VERSION_BASE.get(request.http_version, 1 * len(CLASSES))
        self.counts[base + min(max(status // 100, 1), 5)] += 1

    # -- the rest ----------------------------------------------------------------------------------------

    def log_request(
        self,
        request: Request,
        client: tuple[str, int] | None,
        status: int,
        response_bytes: int,
        duration_s: float,
        response_headers: Sequence[tuple[bytes, bytes]],
        request_time: float,
    ) -> None:
        self._other(request, status)
        self.counts[_LATENCY + bisect_left(BUCKETS, duration_s)] += 1
        self.durations.append(duration_s)
        self.sizes.append(response_bytes)
        if self.access is not None:
            self.access.log_request(request, client, status, response_bytes, duration_s, response_headers, request_time)

    def log_refusal(self, client: tuple[str, int] | None, status: int, response_bytes: int) -> None:
        self.refused(str(status))
        if self.access is not None:
            self.access.log_refusal(client, status, response_bytes)

    def refused(self, kind: str) -> None:
        """A limit hit or a connection refused, by kind (one of :data:`LIMITS`; others are not counted)."""
        index = _LIMIT_INDEX.get(kind)
        if index is not None:
            self.counts[index] += 1

    def flush(self) -> None:
        if self.access is not None:
            self.access.flush()

    def snapshot(self) -> list[int]:
        """The vector to publish: the counters, and the gauges as they are now."""
        counts = self.counts
        if self.durations:
            self.duration_sum += math.fsum(self.durations)
            self.durations.clear()
        counts[LAYOUT.latency_sum_us] = int(self.duration_sum * 1e6)
        if self.sizes:
            counts[LAYOUT.body_out] += sum(self.sizes)
            self.sizes.clear()
        in_flight = 0
        by_kind = [0] * (len(CONNECTIONS) + 1)  # the last: WebSockets on HTTP/2 streams, not connections
        for conn in self.connections:
            in_flight += conn.requests_in_flight
            by_kind[conn.kind] += 1
        counts[LAYOUT.in_flight] = in_flight
        counts[LAYOUT.connections : LAYOUT.connections + len(CONNECTIONS)] = by_kind[:-1]
        counts[LAYOUT.ws_open] = by_kind[-2] + by_kind[-1]
        return counts
