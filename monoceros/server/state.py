"""What every connection of one worker shares: settings turned into ready-to-use values.

Connections read these on the hot path, so everything is computed once here
(limits, pre-encoded default headers, the proxy trust table) rather than looked up
in the config per request.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine, Iterable
from email.utils import formatdate
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from ..config import Config
from ..protocols.http2 import HTTP2Engine, HTTP2Settings
from ..protocols.http11 import Limits

if TYPE_CHECKING:
    from ..access_log import RequestLog
    from ..adapters.exchange import Exchange
    from ..adapters.websocket_channel import WebSocketChannel
    from .metrics import Tally
    from .proxy import ProxyTrust

Handler = Callable[["Exchange"], Coroutine[Any, Any, None]]
WebSocketHandler = Callable[["WebSocketChannel"], Coroutine[Any, Any, None]]


class Connection(Protocol):
    """What the worker needs of any open connection, to count it and to stop it: gracefully, or at once. It
    never touches a connection's transport itself, so a connection that has none of its own (a QUIC stream
    set sharing one UDP socket) can stop in its own way."""

    lost: bool
    kind: int  # what it speaks, as an index of metrics.CONNECTIONS

    @property
    def busy(self) -> bool: ...

    @property
    def requests_in_flight(self) -> int:
        """Requests begun and not yet answered in full, for the metrics."""

    def shutdown(self) -> None:
        """Graceful stop: take no new request, finish what is in flight, then close."""

    def cut(self) -> None:
        """Stop at once: whatever is in flight ends now."""


class HTTP2Service(NamedTuple):
    """HTTP/2 as this worker serves it: the engine to make per connection, and what it advertises."""

    make: Callable[[HTTP2Settings, Callable[[], float]], HTTP2Engine]
    settings: HTTP2Settings
    max_requests: int
    description: str  # which engine and tier, for the log
    # server/http2.py's driver, handed a connection that switches (a Handover, to a handover.Taker; typed
    # loosely here, as handover.py's types come from this module)
    driver: Callable[[Any], Any]


class Reclaims(Protocol):
    """server/reclaim.py's Reclaimer, as the state holds it."""

    def reclaim(self, connections: Iterable[object], newcomer: object) -> bool: ...


class ServerState:
    """Per-worker shared state. One instance, created by the worker before it listens."""

    def __init__(
        self,
        config: Config,
        loop: asyncio.AbstractEventLoop,
        handler: Handler,
        request_log: RequestLog | None,
        proxy: ProxyTrust | None,
    ) -> None:
        self.config = config
        self.loop = loop
        self.handler = handler
        self.request_log = request_log
        self.tally: Tally | None = None  # the metrics, with --admin-bind (then it is request_log too)
        self.proxy = proxy
        self.proxy_trust: ProxyTrust | None = None  # whose PROXY protocol headers are believed (--proxy-protocol)
        self.limits = Limits(
            request_line=config.limit_request_line,
            field_size=config.limit_request_field_size,
            fields=config.limit_request_fields,
            headers_size=config.limit_request_headers_size,
            body=config.limit_request_body,
        )
        self.keep_alive = config.keep_alive
        self.header_timeout = config.header_timeout
        self.body_timeout = config.body_timeout
        self.body_min_rate = config.body_min_rate
        self.send_timeout = config.send_timeout
        self.limit_concurrency = config.limit_concurrency
        self.sendfile = config.sendfile
        self.connections: set[Connection] = set()
        self.reclaimer: Reclaims | None = None  # made at the connection limit's first use (server/reclaim.py)
        # WebSocket: the handler (None when not served), why not, and the close code a graceful stop sends
        # (1001 going away; the worker switches to 1012 service restart when a reload retires it).
        self.ws_handler: WebSocketHandler | None = None
        self.ws_unavailable = "WebSocket is not served here"
        self.ws_refusal_logged = False
        self.ws_shutdown_code = 1001
        self.shutting_down = False
        # HTTP/2, when served (the worker sets it up); HTTP/1.1 is off only with --http 2.
        self.http2: HTTP2Service | None = None
        self.http1 = config.http != "2"
        self.h2c_upgrade = config.h2c_upgrade and config.http == "auto"
        # Requests taken (counted as each starts), and the worker's limit: at it, ``limit_reached`` is called
        # before the request runs, so its answer can say "Connection: close". 0 means no limit.
        self.requests_served = 0
        self.request_limit = 0
        self.limit_reached: Callable[[], None] = _nothing
        # --header lines, then the names an app's own header replaces (Server and Date are always among them).
        custom = [item.partition(":") for item in config.headers]
        self._custom = b"".join(f"{name.strip()}: {value.strip()}\r\n".encode("latin-1") for name, _, value in custom)
        self.default_names = frozenset(name.strip().lower().encode("latin-1") for name, _, _ in custom)
        server = config.server_header and b"server" not in self.default_names
        self._server_header = b"server: monoceros\r\n" if server else b""
        self._date = config.date_header and b"date" not in self.default_names
        self._alt_svc = b""  # with --http3: where HTTP/3 is served (set once the UDP sockets are bound)
        self.default_headers = b""
        self.refresh_date()

    def refresh_date(self) -> None:
        """Re-encode the Date header; the worker calls this once a second (RFC 9110 §6.6.1 precision)."""
        date = b""
        if self._date:
            date = b"date: " + formatdate(time.time(), usegmt=True).encode("ascii") + b"\r\n"
        self.default_headers = self._server_header + date + self._alt_svc + self._custom

    def advertise_http3(self, value: str) -> None:
        """Responses over TCP carry ``Alt-Svc: value`` from now on (an empty value: none)."""
        self._alt_svc = (
            f"alt-svc: {value}\r\n".encode("latin-1") if value and b"alt-svc" not in self.default_names else b""
        )
        self.refresh_date()

    def in_flight(self) -> int:
        """How many connections are in the middle of an exchange."""
        return sum(1 for conn in self.connections if conn.busy)


def _nothing() -> None:
    pass
