"""What the HTTP/2 and HTTP/3 drivers share: many requests on one connection, each a stream.

An engine's events become :class:`~monoceros.server.stream.Stream` objects and app tasks, request bodies go
through the size limit and the pace (server/http2_intake.py), and the server answers for itself (413, 425,
431, 501) without an app. The drivers differ in what carries the bytes (a TCP transport, or QUIC datagrams),
in when a connection is idle, and in HTTP/2's WebSocket tunnels, which come in through the hooks here.
"""

from __future__ import annotations

from asyncio import Task
from typing import Any, Protocol

from ..protocols.events import Body, EndBody, Event, Rejected, Request, StreamReset
from ..protocols.http2 import response_fields
from .http2_intake import BodyIntake
from .stream import Stream


class Engine(Protocol):
    """What the shared part needs of an engine (HTTP/2's, or HTTP/3's shaped like it)."""

    events: list[Event]

    def send_headers(
        self, stream_id: int, status: int, headers: list[tuple[bytes, bytes]], end_stream: bool
    ) -> None: ...

    def send_data(self, stream_id: int, data: bytes, end_stream: bool) -> None: ...

    def stop_after_response(self, stream_id: int) -> None: ...

    def consume(self, stream_id: int, size: int) -> None: ...


class Multiplexed(BodyIntake):
    """Mixed into a driver that sets these fields (and BodyIntake's)."""

    engine: Engine
    task_name: str
    client: tuple[str, int] | None
    server: tuple[str, int | None] | None
    scheme: str
    extensions: dict[str, Any]
    _running: set[Task[None]]
    _flush_scheduled: bool

    def _task_done(self, task: Task[None]) -> None:
        raise NotImplementedError

    @property
    def requests_in_flight(self) -> int:
        return len(self.streams)

    # -- hooks (HTTP/2's WebSocket tunnels) -----------------------------------------------------------------

    def _tunnel_body(self, sid: int, data: bytes) -> bool:
        return False

    def _tunnel_end(self, sid: int) -> bool:
        return False

    def _tunnel_reset(self, sid: int) -> None:
        pass

    def _stream_started(self) -> None:
        """A request stream was taken (HTTP/2 counts them for --http2-max-requests)."""

    # -- events ------------------------------------------------------------------------------------------

    def _dispatch(self) -> None:
        engine = self.engine
        while engine.events:
            events, engine.events = engine.events, []  # taken whole: a flush meanwhile may bring more
            streams = self.streams
            for event in events:
                kind = type(event)
                if kind is Body:
                    stream = streams.get(event.stream_id)
                    if stream is not None and not stream.response_done:
                        self._feed(stream, event.data)  # type: ignore[union-attr]
                    elif not self._tunnel_body(event.stream_id, event.data):  # type: ignore[union-attr]
                        engine.consume(event.stream_id, len(event.data))  # type: ignore[union-attr]
                elif kind is EndBody:
                    stream = streams.get(event.stream_id)
                    if stream is not None:
                        self._body_ended(event.stream_id)
                        stream.feed_end()
                    else:
                        self._tunnel_end(event.stream_id)
                elif kind is Request:
                    self._open(event)  # type: ignore[arg-type]
                elif kind is StreamReset:
                    stream = streams.pop(event.stream_id, None)
                    if stream is not None:
                        self._body_ended(event.stream_id)
                        stream.fail()
                        self.output.forget(event.stream_id)
                    else:
                        self._tunnel_reset(event.stream_id)
                elif kind is Rejected:
                    self._answer(event.stream_id, event.status, event.detail, not event.ended)  # type: ignore[union-attr]

    def _open(self, request: Request) -> None:
        raise NotImplementedError

    def _start_stream(self, request: Request) -> None:
        """A Stream and its app task for ``request`` (the driver has let it in)."""
        state = self.state
        sid = request.stream_id
        stream = Stream(
            self.output, self.loop, request, self.client, self.server, self.scheme, self.extensions,
            state.request_log, not request.has_body,
        )  # fmt: skip
        proxy = state.proxy
        if proxy is not None:
            stream.client, stream.scheme = proxy.resolve(self.client, self.scheme, request.headers)
        limit = state.limits.body
        if limit and request.has_body:
            length = _content_length(request.headers)
            if length is not None and length > limit:
                self._answer(sid, 413, "request body too large", True)
                return
        self.streams[sid] = stream
        if request.has_body:
            self._watch_body(sid)
        state.requests_served += 1
        if state.requests_served == state.request_limit:
            state.limit_reached()
        self._stream_started()
        task = Task(state.handler(stream), loop=self.loop, name=self.task_name)
        self._running.add(task)
        task.add_done_callback(self._task_done)

    def _answer(self, sid: int, status: int, detail: str, stop: bool) -> None:
        """An answer from the server itself, without an app (413, 425, 431, 501). ``stop``: the request body
        is still coming; the client is asked to stop sending it once the answer has gone (RFC 9113 §8.1)."""
        body = detail.encode() + b"\n"
        headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"%d" % len(body))]
        engine = self.engine
        engine.send_headers(sid, status, response_fields(status, headers, self.state.default_headers), False)
        engine.send_data(sid, body, True)
        if stop:
            engine.stop_after_response(sid)
        if self.state.request_log is not None:
            self.state.request_log.log_refusal(self.client, status, len(body))

    # -- writing -------------------------------------------------------------------------------------------

    def flush_soon(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self._deferred_flush)

    def _deferred_flush(self) -> None:
        self._flush_scheduled = False
        self.flush()


def _content_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    for name, value in headers:
        if name == b"content-length" and value.isdigit():
            return int(value)
    return None
