"""A :class:`~monoceros.admin.snapshot.Snapshot` in Prometheus's text exposition format (version 0.0.4).

Names follow Prometheus's conventions: a ``monoceros_`` prefix, base units (seconds, bytes), ``_total`` on
counters. Request series appear once they have counted something, so an idle server's scrape stays short.
"""

from __future__ import annotations

from ..server.metrics import BUCKETS, CLASSES, CONNECTIONS, LAYOUT, LIMITS, METHODS, VERSIONS
from .snapshot import EXIT_REASONS, Snapshot

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
PROTOCOL_LABELS = {"1.0": "http/1.0", "1.1": "http/1.1", "2": "h2", "3": "h3"}


class _Text:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help: str) -> None:
        self.lines.append(f"# HELP {name} {help}")
        self.lines.append(f"# TYPE {name} {kind}")

    def sample(self, name: str, value: float, **labels: str) -> None:
        if labels:
            inner = ",".join(f'{key}="{_escape(val)}"' for key, val in labels.items())
            self.lines.append(f"{name}{{{inner}}} {_number(value)}")
        else:
            self.lines.append(f"{name} {_number(value)}")


def render(snap: Snapshot) -> str:
    t = _Text()
    totals = snap.totals
    _requests(t, totals)
    _latency(t, totals)
    t.family("monoceros_http_requests_in_flight", "gauge", "Requests begun and not yet answered in full.")
    t.sample("monoceros_http_requests_in_flight", totals[LAYOUT.in_flight])
    t.family("monoceros_connections_open", "gauge", "Open client connections, by what they speak now.")
    for i, protocol in enumerate(CONNECTIONS):
        t.sample("monoceros_connections_open", totals[LAYOUT.connections + i], protocol=protocol)
    t.family("monoceros_http_request_body_bytes_total", "counter", "Request body bytes received.")
    t.sample("monoceros_http_request_body_bytes_total", totals[LAYOUT.body_in])
    t.family("monoceros_http_response_body_bytes_total", "counter", "Response body bytes sent.")
    t.sample("monoceros_http_response_body_bytes_total", totals[LAYOUT.body_out])
    t.family("monoceros_websocket_connections_total", "counter", "WebSocket connections accepted.")
    t.sample("monoceros_websocket_connections_total", totals[LAYOUT.ws_opened])
    t.family("monoceros_websocket_connections_open", "gauge", "WebSocket connections open now.")
    t.sample("monoceros_websocket_connections_open", totals[LAYOUT.ws_open])
    t.family("monoceros_websocket_messages_total", "counter", "WebSocket messages, received (in) and sent (out).")
    t.sample("monoceros_websocket_messages_total", totals[LAYOUT.ws_in], direction="in")
    t.sample("monoceros_websocket_messages_total", totals[LAYOUT.ws_out], direction="out")
    t.family("monoceros_limits_hit_total", "counter", "Requests and connections the server refused, by kind.")
    for i, kind in enumerate(LIMITS):
        t.sample("monoceros_limits_hit_total", totals[LAYOUT.limits + i], kind=kind)
    _workers(t, snap)
    t.family("monoceros_ready", "gauge", "1 while /readyz answers 200.")
    t.sample("monoceros_ready", 1 if snap.ready else 0)
    if snap.backlogs:
        t.family("monoceros_listen_backlog", "gauge", "Connections waiting in a TCP listener's accept queue.")
        for b in snap.backlogs:
            t.sample("monoceros_listen_backlog", b.queued, address=b.address)
        t.family("monoceros_listen_backlog_limit", "gauge", "The most a TCP listener's accept queue holds.")
        for b in snap.backlogs:
            t.sample("monoceros_listen_backlog_limit", b.limit, address=b.address)
    return "\n".join(t.lines) + "\n"


def _requests(t: _Text, totals: list[int]) -> None:
    t.family("monoceros_http_requests_total", "counter", "Requests answered, by method, status class and protocol.")
    for m, method in enumerate(METHODS):
        for v, version in enumerate(VERSIONS):
            for c, klass in enumerate(CLASSES):
                value = totals[LAYOUT.request_index(m, v, c)]
                if value:
                    protocol = PROTOCOL_LABELS[version]
                    t.sample("monoceros_http_requests_total", value, method=method, status=klass, protocol=protocol)


def _latency(t: _Text, totals: list[int]) -> None:
    name = "monoceros_http_request_duration_seconds"
    t.family(name, "histogram", "From the request's head to the response's last byte handed to the socket.")
    running = 0
    for i, bound in enumerate(BUCKETS):
        running += totals[LAYOUT.latency + i]
        t.sample(f"{name}_bucket", running, le=_number(bound))
    running += totals[LAYOUT.latency + len(BUCKETS)]
    t.sample(f"{name}_bucket", running, le="+Inf")
    t.sample(f"{name}_sum", totals[LAYOUT.latency_sum_us] / 1e6)
    t.sample(f"{name}_count", running)


def _workers(t: _Text, snap: Snapshot) -> None:
    t.family("monoceros_workers", "gauge", "Worker processes, by state.")
    states = ("booting", "ready", "retiring", "stopping")
    for state in states:
        t.sample("monoceros_workers", sum(1 for w in snap.workers if w.state == state), state=state)
    t.family("monoceros_worker_starts_total", "counter", "Worker processes started.")
    t.sample("monoceros_worker_starts_total", snap.starts)
    t.family("monoceros_worker_exits_total", "counter", "Worker processes that exited, by why.")
    for reason in EXIT_REASONS:
        t.sample("monoceros_worker_exits_total", snap.exits.get(reason, 0), reason=reason)
    per_worker = (
        (
            "monoceros_worker_heartbeat_age_seconds",
            "gauge",
            "Seconds since the worker's last heartbeat.",
            "heartbeat_age",
        ),
        ("monoceros_worker_resident_memory_bytes", "gauge", "The worker's resident memory.", "rss"),
        ("monoceros_worker_cpu_seconds_total", "counter", "The worker's CPU time, user and system.", "cpu"),
        ("monoceros_worker_requests_total", "counter", "Requests the worker has taken.", "requests"),
    )
    for name, kind, help, attribute in per_worker:
        t.family(name, kind, help)
        for w in snap.workers:
            t.sample(name, getattr(w, attribute), worker=str(w.age), pid=str(w.pid))


def _number(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    if value == int(value) and abs(value) < 1e15:
        return f"{value:.1f}"
    return repr(value)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
