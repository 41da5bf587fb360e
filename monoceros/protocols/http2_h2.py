"""The pure-Python engine: the ``h2`` package, for where libnghttp2 cannot be loaded (macOS without Homebrew,
Windows, a slim container).

h2 parses frames, keeps HPACK and the stream states, and validates headers; it leaves the windows of outbound
data to its user, so body bytes wait here per stream and go as ``WindowUpdated`` events open room. It has no
"shutdown notice": a graceful GOAWAY is written here as a frame (hyperframe's), new streams are then refused,
and h2's own closing GOAWAY follows once the streams in flight are answered. The same budgets as on
libnghttp2 apply (protocols/http2.py).
"""

from __future__ import annotations

import base64
from collections.abc import Callable

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
from hyperframe.frame import GoAwayFrame

from .events import Body, EndBody, Event, ProtocolError, Rejected, StreamReset, Trailers
from .http2 import (
    ENHANCE_YOUR_CALM,
    FREE_UPDATE,
    NO_ERROR,
    PROTOCOL_ERROR,
    REFUSED_STREAM,
    Budget,
    HeaderBudget,
    HeadThenBody,
    HTTP2Error,
    HTTP2Settings,
    Outbound,
    request_from_fields,
)


class H2Connection(HeadThenBody):
    """An :class:`~monoceros.protocols.http2.HTTP2Engine` on the ``h2`` package."""

    def __init__(self, settings: HTTP2Settings, clock: Callable[[], float]) -> None:
        # Outbound fields are made valid before they reach h2 (check_header on the app's, response_fields
        # lowercases and drops connection-specific ones), so h2's own outbound pass would only repeat it.
        config = h2.config.H2Configuration(
            client_side=False, header_encoding=None, validate_inbound_headers=True,
            validate_outbound_headers=False, normalize_outbound_headers=False,
        )  # fmt: skip
        conn = self._conn = h2.connection.H2Connection(config)
        self.name = f"h2 {h2.__version__}"
        self.events: list[Event] = []
        self._headers = HeaderBudget(settings.max_header_list_size, settings.max_header_count)
        self._resets = Budget(settings.reset_burst, settings.reset_rate, clock)
        self._controls = Budget(settings.reset_burst, settings.reset_rate, clock)
        self._out: dict[int, Outbound] = {}
        self._done: set[int] = set()
        self._stop_after: set[int] = set()
        self._draining = False
        self._data_sent = 0  # DATA bytes sent since the last WINDOW_UPDATE received
        self._closed = False
        self._error: str | None = None
        local = {
            h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: settings.max_concurrent_streams,
            h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: settings.initial_window_size,
            h2.settings.SettingCodes.MAX_FRAME_SIZE: settings.max_frame_size,
            # hpack stops decoding a block four times past the advertised limit (a connection error); under
            # that, the 431 is decided here from the decoded list, as on libnghttp2.
            h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: settings.max_header_list_size,
            h2.settings.SettingCodes.ENABLE_PUSH: 0,
        }
        if settings.connect_protocol:
            local[h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL] = 1
        conn.local_settings = h2.settings.Settings(client=False, initial_values=local)
        conn.initiate_connection()
        conn.decoder.max_header_list_size = 4 * settings.max_header_list_size
        extra = settings.connection_window_size - 65535
        if extra > 0:
            conn.increment_flow_control_window(extra)

    # -- input -------------------------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        if self._closed:
            return
        try:
            happened = self._conn.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            self._closed = True
            code = getattr(exc, "error_code", PROTOCOL_ERROR)
            try:
                self._conn.close_connection(int(code))
            except h2.exceptions.ProtocolError:
                pass
            raise HTTP2Error(f"{type(exc).__name__}: {exc}") from None
        for event in happened:
            self._on(event)
        if self._error is not None:
            raise HTTP2Error(self._error)

    def _on(self, event: h2.events.Event) -> None:
        events = self.events
        kind = type(event)
        if kind is h2.events.DataReceived:
            sid = event.stream_id  # type: ignore[attr-defined]
            data = event.data  # type: ignore[attr-defined]
            padding = event.flow_controlled_length - len(data)  # type: ignore[attr-defined]
            if padding:
                self._ack(padding, sid)  # padding is flow-controlled but no app reads it
            if data:
                events.append(Body(sid, data))
            else:
                self._spend(self._controls, "control frames")  # empty DATA without END_STREAM: cheap to send
        elif kind is h2.events.RequestReceived:
            self._request(event)  # type: ignore[arg-type]
        elif kind is h2.events.StreamEnded:
            events.append(EndBody(event.stream_id))  # type: ignore[attr-defined]
        elif kind is h2.events.TrailersReceived:
            events.append(Trailers(event.stream_id, list(event.headers)))  # type: ignore[attr-defined]
        elif kind is h2.events.StreamReset:
            sid = event.stream_id  # type: ignore[attr-defined]
            self._out.pop(sid, None)
            self._spend(self._resets, "resets")
            if sid not in self._done:
                events.append(StreamReset(sid, event.error_code))  # type: ignore[attr-defined]
            self._done.discard(sid)
        elif kind is h2.events.WindowUpdated:
            sid = event.stream_id  # type: ignore[attr-defined]
            if self._data_sent >= FREE_UPDATE:
                self._data_sent = 0
            else:  # a window opened where nothing waits: a flood costs what a PING does
                self._spend(self._controls, "control frames")
            for stream_id in list(self._out) if sid == 0 else [sid]:
                self._push(stream_id)
        elif kind is h2.events.RemoteSettingsChanged:
            self._spend(self._controls, "control frames")
            for stream_id in list(self._out):
                self._push(stream_id)
        elif kind in (h2.events.PingReceived, h2.events.PriorityUpdated):
            self._spend(self._controls, "control frames")
        elif kind is h2.events.ConnectionTerminated:
            self._closed = True

    def _request(self, event: h2.events.RequestReceived) -> None:
        sid = event.stream_id
        fields = event.headers or []
        budget = self._headers
        budget.start()
        for name, value in fields:
            budget.add(len(name), len(value))
        ended = event.stream_ended is not None
        if budget.over:
            self.events.append(Rejected(sid, 431, "request header fields too large", ended))
            return
        if self._draining:
            self._reset(sid, REFUSED_STREAM)  # after our GOAWAY: the client retries it elsewhere
            return
        try:
            self.events.append(request_from_fields(sid, list(fields), ended))
        except ProtocolError:
            self._reset(sid, PROTOCOL_ERROR)

    def data_to_send(self) -> bytes:
        return self._conn.data_to_send()

    # -- output ------------------------------------------------------------------------------------------

    def send_headers(self, stream_id: int, status: int, headers: list[tuple[bytes, bytes]], end_stream: bool) -> None:
        try:
            self._conn.send_headers(stream_id, headers, end_stream=end_stream)
        except h2.exceptions.StreamClosedError:
            return
        except h2.exceptions.ProtocolError as exc:
            raise ValueError(str(exc)) from None
        if status >= 200:
            if end_stream:
                self._done.add(stream_id)
            else:
                self._out[stream_id] = Outbound()

    def send_data(self, stream_id: int, data: bytes, end_stream: bool) -> None:
        out = self._out.get(stream_id)
        if out is None or not out.add(data, end_stream):
            return  # the stream is gone (reset), or its body ended already
        if end_stream:
            self._done.add(stream_id)
        self._push(stream_id)

    def send_trailers(self, stream_id: int, headers: list[tuple[bytes, bytes]]) -> None:
        out = self._out.get(stream_id)
        if out is None or out.ended:
            return
        out.trailers = headers
        self.send_data(stream_id, b"", True)

    def _push(self, stream_id: int) -> None:
        """Send what the windows allow of the stream's queued body, and its end when all has gone."""
        out = self._out.get(stream_id)
        if out is None:
            return
        conn = self._conn
        try:
            while out.chunks:
                room = min(conn.local_flow_control_window(stream_id), conn.max_outbound_frame_size)
                if room <= 0:
                    return
                chunk = out.chunks[0]
                if len(chunk) > room:
                    out.chunks[0] = chunk[room:]
                    chunk = chunk[:room]
                else:
                    out.chunks.popleft()
                out.size -= len(chunk)
                self._data_sent += len(chunk)
                last = out.ended and not out.chunks and not out.trailers
                conn.send_data(stream_id, chunk, end_stream=last)
                if last:
                    self._ended(stream_id)
                    return
            if out.ended:
                if out.trailers:
                    conn.send_headers(stream_id, out.trailers, end_stream=True)
                else:
                    conn.end_stream(stream_id)
                self._ended(stream_id)
        except h2.exceptions.StreamClosedError:
            self._out.pop(stream_id, None)

    def _ended(self, stream_id: int) -> None:
        del self._out[stream_id]
        if stream_id in self._stop_after:
            self._stop_after.discard(stream_id)
            self._reset(stream_id, NO_ERROR)

    def reset_stream(self, stream_id: int, code: int) -> None:
        self._out.pop(stream_id, None)
        self._done.add(stream_id)
        self._reset(stream_id, code)

    def _reset(self, stream_id: int, code: int) -> None:
        self._spend(self._resets, "resets")  # MadeYouReset: the resets a client provokes count too
        try:
            self._conn.reset_stream(stream_id, code)
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            pass

    def stop_after_response(self, stream_id: int) -> None:
        if stream_id in self._out:
            self._stop_after.add(stream_id)  # _push resets it after the last frame
        else:
            self._reset(stream_id, NO_ERROR)  # the response has gone whole already (h2 sends in call order)

    def consume(self, stream_id: int, size: int) -> None:
        if size:
            self._ack(size, stream_id)

    def _ack(self, size: int, stream_id: int) -> None:
        try:
            self._conn.acknowledge_received_data(size, stream_id)
        except h2.exceptions.StreamClosedError:
            self._conn.acknowledge_received_data(size, 0)  # the stream is gone; the connection's window is not
        except h2.exceptions.ProtocolError:
            pass

    def pending(self, stream_id: int) -> int:
        out = self._out.get(stream_id)
        return out.size if out is not None else 0

    def shutdown(self) -> None:
        if self._draining or self._closed:
            return
        self._draining = True
        conn = self._conn
        if not any(s for s in conn.streams.values() if not s.closed):
            self._closed = True
            conn.close_connection(NO_ERROR)
            return
        frame = GoAwayFrame(0, last_stream_id=conn.highest_inbound_stream_id, error_code=NO_ERROR)
        conn._data_to_send += frame.serialize()  # h2 would stop every stream after its own GOAWAY

    def terminate(self, code: int) -> None:
        if not self._closed:
            self._closed = True
            try:
                self._conn.close_connection(code)
            except h2.exceptions.ProtocolError:
                pass

    def upgrade(self, settings_payload: bytes, head_request: bool) -> None:
        header = base64.urlsafe_b64encode(settings_payload).rstrip(b"=")
        try:
            self._conn.initiate_upgrade_connection(header)
        except Exception as exc:
            raise ProtocolError(f"invalid HTTP2-Settings header: {exc}") from None

    @property
    def finished(self) -> bool:
        conn = self._conn
        if self._closed:
            return True
        if self._draining and not any(s for s in conn.streams.values() if not s.closed):
            self._closed = True
            conn.close_connection(NO_ERROR)  # the last stream is answered: the closing GOAWAY (the driver
            return True  # writes what is queued before it closes)
        return False

    def close(self) -> None:
        self._out.clear()

    def _spend(self, budget: Budget, what: str) -> None:
        if not budget.spend() and self._error is None:
            self._error = f"too many {what}: the connection ends with ENHANCE_YOUR_CALM"
            self.terminate(ENHANCE_YOUR_CALM)
