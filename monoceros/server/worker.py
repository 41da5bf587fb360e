"""One worker: an event loop that owns the listeners, the connections and the app.

Run alone, it is the whole single-process server (supervisor/single.py sets the
process up around it). Under the supervisor, each forked worker runs one, with the
sockets the master bound. Either way a :class:`Link` carries what the process model
wants to know: readiness, heartbeats, the stop, the request limit.

Order of events: load the app, run lifespan startup, start listening, serve until
a stop signal, then stop accepting, close idle connections, let in-flight requests
finish within ``graceful_timeout``, cut what is left, and run lifespan shutdown.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable
from typing import Any, Protocol

from ..access_log import AccessLogger, RequestLog
from ..adapters.asgi_http import ASGIApp, ASGIHTTPHandler, asgi2_to_asgi3
from ..adapters.asgi_websocket import ASGIWebSocketHandler
from ..adapters.lifespan import Lifespan
from ..config import Config
from ..errors import ConfigError
from ..logs import reopen_log_files
from .app_loader import LoadedApp, load_app, warn_unused_settings
from .http3_service import start_http3, stop_http3
from .listeners import describe
from .memory import freeze_startup_objects, retain_heap
from .metrics import Tally
from .negotiate import alpn_protocols, protocol_factory, proxied_factory, serve_http2
from .process_limits import raise_open_files_limit
from .proxied import ProxiedListener
from .proxy import ProxyTrust
from .request_deadline import RequestDeadline
from .state import Handler, ServerState
from .tls import create_ssl_context
from .tls_reload import CertificateReloader

log = logging.getLogger("monoceros.error")
ACCEPT_TURNS = 3  # loop turns a stopping worker waits for connections already accepted to be made

DRAIN_POLL = 0.05  # seconds between checks for in-flight requests during a graceful stop


def new_event_loop(kind: str) -> asyncio.AbstractEventLoop:
    """An event loop of the configured kind: uvloop when asked for or, with 'auto', when installed."""
    if kind in ("uvloop", "auto"):
        try:
            import uvloop
        except ImportError:
            if kind == "uvloop":
                raise ConfigError("setting 'loop' is 'uvloop' but uvloop is not installed") from None
        else:
            loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
            return loop
    return asyncio.new_event_loop()


class Link(Protocol):
    """How a worker talks to its process model: a supervised worker to its master (supervisor/child.py),
    the one process to itself (supervisor/single.py)."""

    tick_interval: float
    supervised: bool  # under a master: INT is the master's to handle, the worker takes TERM and QUIT
    request_limit: int  # requests to take before stopping for a replacement; 0 for none

    def ready(self, worker: Worker) -> None:
        """The worker listens and its app has started: it can take traffic."""

    def tick(self, worker: Worker) -> None:
        """Called from the event loop every ``tick_interval``: the heartbeat."""

    def interrupted(self, worker: Worker, sig: signal.Signals) -> None:
        """The worker got SIGINT or SIGQUIT (gunicorn's worker_int hook runs here)."""

    def retiring(self, worker: Worker) -> None:
        """The worker took its last request and stops by itself; the master should replace it now."""

    def stopping(self, worker: Worker) -> None:
        """The worker has begun to stop."""


class Worker:
    """Serves one app on a set of listening sockets until told to stop."""

    def __init__(
        self,
        config: Config,
        app: Any,
        sockets: list[socket.socket],
        link: Link,
    ) -> None:
        self.config = config
        self.app_arg = app
        self.sockets = sockets
        self.link = link
        self.state: ServerState | None = None
        self.lifespan: Lifespan | None = None
        self._asgi_app: ASGIApp | None = None
        self._servers: list[asyncio.AbstractServer] = []
        self._proxied: list[ProxiedListener] = []
        self._quic: list[Any] = []  # with --http3: this worker's QUIC endpoints
        self._stop: asyncio.Event | None = None
        self._force = False
        self._close_handler: Callable[[], None] | None = None
        self._ticker: asyncio.TimerHandle | None = None
        self._drain_timer: asyncio.TimerHandle | None = None
        self._certificates: CertificateReloader | None = None
        self._retired = False

    def run(self) -> None:
        """Run the worker to completion on a fresh event loop."""
        loop = new_event_loop(self.config.loop)
        try:
            asyncio.set_event_loop(loop)
            loop.run_until_complete(self.serve())
        finally:
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                asyncio.set_event_loop(None)
                loop.close()

    async def serve(self) -> None:
        config = self.config
        loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        retain_heap(config.heap_retain)
        raise_open_files_limit()
        loaded = self.app_arg if isinstance(self.app_arg, LoadedApp) else load_app(config, self.app_arg)
        app, interface = loaded
        warn_unused_settings(config, interface)
        handler = self._make_handler(app, interface, loop)
        proxy = ProxyTrust(config.forwarded_allow_ips) if config.proxy_headers else None
        access: AccessLogger | None = AccessLogger(config)
        if access is not None and not access.enabled:
            access = None
        request_log: RequestLog | None = access
        tally = None
        if config.admin_bind is not None:  # the metrics stand in front of the access log
            request_log = tally = Tally(access)
        state = self.state = ServerState(config, loop, handler, request_log, proxy)
        if config.proxy_protocol:
            state.proxy_trust = proxy or ProxyTrust(config.forwarded_allow_ips)  # one trust table for both
        if tally is not None:
            state.tally, tally.connections = tally, state.connections
        if config.request_timeout:
            state.handler = RequestDeadline(handler, state, interface == "wsgi")
        state.request_limit = self.link.request_limit
        state.limit_reached = self._retire
        self._serve_websocket(state, interface)
        serve_http2(state)
        ssl_context = create_ssl_context(config, alpn_protocols(state))
        if ssl_context is not None:
            self._certificates = CertificateReloader(config, ssl_context, loop)
        sockets = self.sockets
        try:
            if self.lifespan is not None:
                await self.lifespan.startup()
            if config.gc_freeze:
                freeze_startup_objects()
            scheme = "https" if ssl_context is not None else "http"
            for sock in sockets:
                if config.proxy_protocol:
                    proxied = ProxiedListener(state, sock, proxied_factory(state, scheme), ssl_context)
                    proxied.start()
                    self._proxied.append(proxied)
                else:
                    server = await loop.create_server(
                        protocol_factory(state, scheme), sock=sock, ssl=ssl_context, backlog=config.backlog
                    )
                    self._servers.append(server)
                via = " (PROXY protocol)" if config.proxy_protocol else ""
                log.info("Listening at: %s%s (%d)", describe(sock, ssl_context is not None), via, os.getpid())
            if config.http3:
                self._quic = await start_http3(state, sockets)
            log.info("Serving %s app %s", interface.upper(), config.app or "monoceros.demo:app")
            self._install_signals(loop)
            if self._certificates is not None:
                self._certificates.start()
            self._tick()
            try:
                self.link.ready(self)  # runs post_worker_init (and alone, when_ready): they may raise
            except BaseException:
                await self._shutdown()
                raise
            await self._stop.wait()
            await self._shutdown()
        finally:
            if state.request_log is not None:
                state.request_log.flush()  # the lines of the last loop turn
            if self._ticker is not None:
                self._ticker.cancel()
                if state.tally is not None:
                    self.link.tick(self)  # the last counts, so that a worker that stops loses none of them
            if self._certificates is not None:
                self._certificates.stop()
            self._remove_signals(loop)
            if self._close_handler is not None:
                self._close_handler()

    def _make_handler(self, app: Any, interface: str, loop: asyncio.AbstractEventLoop) -> Handler:
        if interface == "wsgi":
            from ..adapters.wsgi import WSGIHandler

            wsgi = WSGIHandler(app, self.config, loop)
            self._close_handler = wsgi.close
            return wsgi
        if interface == "asgi2":
            app = asgi2_to_asgi3(app)
        self._asgi_app = app
        self.lifespan = Lifespan(app, self.config.lifespan)
        return ASGIHTTPHandler(app, self.config, self.lifespan.state)

    def _serve_websocket(self, state: ServerState, interface: str) -> None:
        if interface == "wsgi":
            state.ws_unavailable = "WebSocket needs an ASGI application; this one is WSGI"
        elif self.config.ws == "none":
            state.ws_unavailable = "WebSocket is turned off (--ws none)"
        else:
            assert self.lifespan is not None and self._asgi_app is not None
            state.ws_handler = ASGIWebSocketHandler(self._asgi_app, self.config, self.lifespan.state)

    def restarting(self) -> None:
        """This worker stops because it is being replaced (a reload or a recycle), not because the server is
        going away: open WebSockets are closed with 1012 (service restart), which tells clients to reconnect."""
        if self.state is not None:
            self.state.ws_shutdown_code = 1012

    def _tick(self) -> None:
        """Once a second (more often under a supervisor with a short timeout): refresh the cached Date
        header, and send the master a heartbeat. Being a loop callback, the heartbeat stops when the loop
        is blocked, which is what the master's timeout detects."""
        assert self.state is not None
        self.state.refresh_date()
        loop = self.state.loop
        self.link.tick(self)
        if self.link.supervised:
            self._ticker = loop.call_later(self.link.tick_interval, self._tick)
        else:
            self._ticker = loop.call_at(int(loop.time()) + 1.0, self._tick)

    # -- stopping ----------------------------------------------------------------------------------------

    def stop(self, graceful: bool = True) -> None:
        """Begin stopping. A second request, or ``graceful=False``, cuts in-flight requests at once."""
        if self._stop is None:
            return
        if (self._stop.is_set() and not self._retired) or not graceful:
            self._force = True
        self._retired = False
        self._stop.set()

    def _retire(self) -> None:
        """The request limit is reached (called as the last request starts): take no more requests, finish
        those in flight, and exit so that the master's replacement takes over."""
        state = self.state
        assert state is not None
        state.shutting_down = True  # the last request's answer says Connection: close; keep-alive ends
        log.info("Took %d requests (max %d): stopping for a replacement", state.requests_served, state.request_limit)
        self.link.retiring(self)
        self.restarting()
        self.stop(graceful=True)
        self._retired = True  # a TERM the master sends meanwhile is the same graceful stop, not a second one

    # One behaviour in every process model: TERM and INT stop gracefully, a second TERM or INT stops at once,
    # QUIT stops at once. Under a master, INT is the master's: a Ctrl+C reaches the whole process group, and
    # the master answers it by sending the workers TERM (and QUIT on the second).
    def _signal_table(self) -> dict[signal.Signals, Callable[[signal.Signals], None]]:
        table: dict[signal.Signals, Callable[[signal.Signals], None]] = {
            signal.SIGTERM: self._on_stop_signal,
            signal.SIGQUIT: self._on_fast_stop_signal,
            signal.SIGUSR1: self._on_reopen_signal,
        }
        if not self.link.supervised:
            table[signal.SIGINT] = self._on_stop_signal
            table[signal.SIGHUP] = self._on_reload_signal  # under a master, HUP is the master's
        return table

    def _install_signals(self, loop: asyncio.AbstractEventLoop) -> None:
        if sys.platform == "win32":
            return
        for sig, handler in self._signal_table().items():
            loop.add_signal_handler(sig, handler, sig)

    def _remove_signals(self, loop: asyncio.AbstractEventLoop) -> None:
        if sys.platform == "win32":
            return
        for sig in self._signal_table():
            loop.remove_signal_handler(sig)

    def _on_stop_signal(self, sig: signal.Signals) -> None:
        if self._drain_timer is not None:  # a TERM or INT during --drain-delay: the stop begins now
            self._drain_timer.cancel()
            self._drain_timer = None
        elif sig == signal.SIGTERM and self.config.drain_delay > 0 and not self.link.supervised and self._stop_unset():
            # Alone, the worker drains itself (under a master, TERM arrives once the master's delay is over).
            log.info("Received %s: draining; serving for %.1f s more, then stopping", sig.name, self.config.drain_delay)
            assert self.state is not None
            self._drain_timer = self.state.loop.call_later(self.config.drain_delay, self._drained)
            return
        already = self._stop is not None and self._stop.is_set() and not self._retired
        log.info("Received %s: %s", sig.name, "stopping now" if already else "shutting down gracefully")
        if sig == signal.SIGINT:
            self.link.interrupted(self, sig)
        self.stop(graceful=True)

    def _stop_unset(self) -> bool:
        return self._stop is not None and not self._stop.is_set()

    def _drained(self) -> None:
        self._drain_timer = None
        log.info("Drain delay over: shutting down gracefully")
        self.stop(graceful=True)

    def _on_fast_stop_signal(self, sig: signal.Signals) -> None:
        log.info("Received %s: stopping now", sig.name)
        self.link.interrupted(self, sig)
        self.stop(graceful=False)

    def _on_reload_signal(self, sig: signal.Signals) -> None:
        """One process: HUP loads the TLS certificate again (new workers and new code need --supervisor)."""
        if self._certificates is not None:
            self._certificates.reload(f"{sig.name}")
        else:
            log.warning("Received %s: one process has nothing to reload; run with --supervisor for reloads", sig.name)

    def _on_reopen_signal(self, sig: signal.Signals) -> None:
        log.info("Received %s: reopening log files", sig.name)
        reopen_log_files()

    async def _shutdown(self) -> None:
        state = self.state
        assert state is not None
        state.shutting_down = True
        self.link.stopping(self)
        for server in self._servers:
            server.close()
        for proxied in self._proxied:
            proxied.close()
        for endpoint in self._quic:
            endpoint.stopping = True  # no new QUIC connection: those open are told GOAWAY below
        # A connection accepted in this loop turn is made (and counted) a turn or two later, with uvloop: left
        # out, an idle worker would stop at once and cancel its request (scripts/chaos found it).
        for _ in range(ACCEPT_TURNS):
            await asyncio.sleep(0)
        for conn in list(state.connections):
            conn.shutdown()
        loop = state.loop
        deadline = loop.time() + self.config.graceful_timeout
        in_flight = state.in_flight()
        if in_flight:
            log.info("Waiting for %d in-flight request(s) to finish", in_flight)
        # Every connection closes by itself: busy ones after their response, idle ones after a short grace.
        # An app may still be running after its connection is gone (clean-up after a WebSocket disconnect,
        # background work after the response): it gets the same deadline.
        while (state.connections or _app_tasks(state)) and loop.time() < deadline and not self._force:
            await asyncio.sleep(DRAIN_POLL)
        left = max(state.in_flight(), len(_app_tasks(state)))
        if left and self._force:
            log.warning("Stopping now: cutting %d request(s) in flight", left)
        elif left:
            log.warning("Graceful timeout: cutting %d request(s) still in flight", left)
        for conn in list(state.connections):
            if not conn.lost:
                conn.cut()
        await asyncio.sleep(0)  # let handler tasks observe the disconnect
        if self.lifespan is not None:
            await self.lifespan.shutdown()
        stop_http3(self._quic)
        await _cancel_remaining()
        log.info("Shutdown complete")


def _app_tasks(state: ServerState) -> list[asyncio.Task[Any]]:
    """The tasks running the app for a request or a WebSocket. Found by their coroutine's code rather than
    kept in a set, so that the hot path pays nothing for a question only a shutdown asks."""
    codes = {getattr(type(h).__call__, "__code__", None) for h in (state.handler, state.ws_handler)} - {None}
    return [t for t in asyncio.all_tasks() if not t.done() and getattr(t.get_coro(), "cr_code", None) in codes]


async def _cancel_remaining() -> None:
    """Cancel the handler tasks that outlived the graceful timeout, and wait for them to unwind, so that
    none is destroyed pending when the loop closes."""
    current = asyncio.current_task()
    tasks = [task for task in asyncio.all_tasks() if task is not current]
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.wait(tasks, timeout=1.0)
