"""The request bodies arriving on one HTTP/2 (or HTTP/3) connection: the size limit (413) and the pace (408).

Every stream with a body has a :class:`~monoceros.server.body_pace.BodyPace`; one timer per connection
fires at the earliest check any of them needs, and only while some body is arriving. A stream whose body
stops, or trickles slower than ``--body-min-rate``, is answered 408 and told to stop sending (RST_STREAM
NO_ERROR after the answer, RFC 9113 §8.1), or reset when its response has begun; its app sees the client gone.
While any stream of the connection holds body its app has not read, the connection's window may be what
holds the client back: the paces restart instead of failing.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from .body_pace import BodyPace
from .http2_output import HTTP2Output
from .state import ServerState
from .stream import Stream


class Consumer(Protocol):
    """What the intake needs of an engine: to reopen a window by what the app (or nobody) took."""

    def consume(self, stream_id: int, size: int) -> None: ...


class BodyIntake:
    """Mixed into the HTTP/2 driver (server/http2.py), which sets these fields."""

    state: ServerState
    loop: asyncio.AbstractEventLoop
    streams: dict[int, Stream]
    engine: Consumer
    output: HTTP2Output
    lost: bool
    _body_sizes: dict[int, int]
    _paces: dict[int, BodyPace]
    _pace_timer: asyncio.TimerHandle | None

    def _answer(self, sid: int, status: int, detail: str, stop: bool) -> None:
        raise NotImplementedError

    def flush(self) -> None:
        raise NotImplementedError

    def _watch_body(self, sid: int) -> None:
        """A stream's body begins: from now on it must keep arriving."""
        state = self.state
        if not state.body_timeout:
            return
        pace = self._paces[sid] = BodyPace(self.loop.time(), state.body_timeout, state.body_min_rate)
        if self._pace_timer is None:
            self._pace_timer = self.loop.call_at(pace.next_check, self._check_paces)

    def _feed(self, stream: Stream, data: bytes) -> None:
        sid = stream.request.stream_id
        pace = self._paces.get(sid)
        if pace is not None:
            pace.moved(len(data), self.loop.time())
        limit = self.state.limits.body
        if limit:
            size = self._body_sizes.get(sid, 0) + len(data)
            self._body_sizes[sid] = size
            if size > limit:
                self.engine.consume(sid, len(data))
                self._paces.pop(sid, None)
                if not stream.response_started:
                    self.streams.pop(sid, None)
                    stream.fail()
                    self.output.forget(sid)
                    self._answer(sid, 413, "request body too large", True)
                else:
                    self.output.reset(stream)
                return
        stream.feed(data)

    def _body_ended(self, sid: int) -> None:
        """The stream's body is whole, or the stream is over: its pace no longer matters."""
        self._paces.pop(sid, None)
        self._body_sizes.pop(sid, None)

    def _stop_paces(self) -> None:
        self._paces.clear()
        if self._pace_timer is not None:
            self._pace_timer.cancel()
            self._pace_timer = None

    def _check_paces(self) -> None:
        self._pace_timer = None
        if self.lost:
            return
        now = self.loop.time()
        waiting = self.output.holding()  # some app is not reading: the connection's window may be shut by it
        late: list[tuple[int, str]] = []
        paces = self._paces
        for sid, pace in paces.items():
            if waiting:
                pace.restart(now)
            else:
                why = pace.verdict(now)
                if why is not None:
                    late.append((sid, why))
        for sid, why in late:
            self._body_late(sid, why)
        if paces:
            self._pace_timer = self.loop.call_at(min(p.next_check for p in paces.values()), self._check_paces)
        self.flush()

    def _body_late(self, sid: int, why: str) -> None:
        self._paces.pop(sid, None)
        stream = self.streams.get(sid)
        if stream is None:
            return
        if not stream.response_started:
            self.streams.pop(sid, None)
            stream.fail()
            self.output.forget(sid)
            self._answer(sid, 408, why, True)
        else:
            stream.fail()
            self.output.reset(stream)
