"""The libnghttp2 engine: one ``nghttp2_session`` per connection, driven in memory (``mem_recv``/``mem_send``).

libnghttp2 parses every frame, keeps the HPACK tables, the stream states and the windows, and checks the
HTTP messaging rules (pseudo-headers, connection-specific fields, Content-Length against DATA). Its
callbacks land here; what they gather becomes events. What libnghttp2 1.52 leaves to the server (measured in
``../shared/reviews/http2-engines-2026-12.md``) is added here: the header list is bounded while it arrives,
resets are budgeted both ways, control frames are rate-limited, and a HEADERS frame on a stream id the client
skipped ends the connection (nghttp2 issue 1300).

The same code serves both tiers: the callbacks are cffi ``callback`` objects in ABI mode, and ``def_extern``
functions of the compiled glue in API mode, where the glue also gathers header fields in C.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from typing import Any

import _cffi_backend

from .events import Body, EndBody, Event, ProtocolError, Rejected, StreamReset, Trailers
from .http2 import (
    ENHANCE_YOUR_CALM,
    FREE_UPDATE,
    NO_ERROR,
    PROTOCOL_ERROR,
    Budget,
    HeaderBudget,
    HeadThenBody,
    HTTP2Error,
    HTTP2Settings,
    Outbound,
    request_from_fields,
)
from .http2_callbacks import ERR_TEMPORAL_CALLBACK_FAILURE as _ERR_TEMPORAL_CALLBACK_FAILURE
from .http2_callbacks import HCAT_HEADERS as _HCAT_HEADERS
from .http2_callbacks import HCAT_REQUEST as _HCAT_REQUEST
from .http2_callbacks import HEADERS as _HEADERS
from .http2_callbacks import callbacks as _callbacks
from .http2_callbacks import check as _check
from .http2_callbacks import data_reader as _data_reader
from .http2_ffi import Binding

# nghttp2 constants (nghttp2.h)
_DATA, _PRIORITY, _RST_STREAM, _SETTINGS, _PING, _GOAWAY, _WINDOW_UPDATE = 0, 2, 3, 4, 6, 7, 8
_FLAG_END_STREAM, _FLAG_ACK = 0x01, 0x01
_ERR_DEFERRED = -508
_DATA_FLAG_EOF, _DATA_FLAG_NO_END_STREAM = 0x01, 0x02
_SETTINGS_IDS = (0x3, 0x4, 0x5, 0x6, 0x8)  # max streams, initial window, max frame, max header list, CONNECT
_SKIPPED_RANGES = 64  # stream-id ranges the client skipped, remembered for the lower-id check

log = logging.getLogger("monoceros.error")


class NGHTTP2Connection(HeadThenBody):
    """An :class:`~monoceros.protocols.http2.HTTP2Engine` on libnghttp2."""

    def __init__(self, binding: Binding, settings: HTTP2Settings, clock: Callable[[], float]) -> None:
        ffi, lib = binding.ffi, binding.lib
        self._ffi = ffi
        self._lib = lib
        self.name = f"libnghttp2 {binding.version} ({binding.tier})"
        self.events: list[Event] = []
        self._fields: list[tuple[bytes, bytes]] = []
        self._headers = HeaderBudget(settings.max_header_list_size, settings.max_header_count)
        self._resets = Budget(settings.reset_burst, settings.reset_rate, clock)
        self._controls = Budget(settings.reset_burst, settings.reset_rate, clock)
        self._out: dict[int, Outbound] = {}
        self._done: set[int] = set()  # streams whose response has been submitted whole
        self._stop_after: set[int] = set()  # streams to reset with NO_ERROR once their response has gone
        self._last_id = 0  # the highest stream id the client opened
        self._data_sent = 0  # DATA bytes sent since the last WINDOW_UPDATE received
        self._skipped: deque[tuple[int, int]] = deque(maxlen=_SKIPPED_RANGES)
        self._error: str | None = None
        self._handle = ffi.new_handle(self)
        option_ptr = ffi.new("nghttp2_option **")
        _check(lib.nghttp2_option_new(option_ptr), lib, ffi)
        option = option_ptr[0]
        lib.nghttp2_option_set_no_auto_window_update(option, 1)  # the app's reading opens the windows
        # The library's own flood limits stay as backstops, twice the budgets' burst, so that the budgets here
        # decide first and the client is told ENHANCE_YOUR_CALM (the library's limits close without a word,
        # or say INTERNAL_ERROR). The ACK limit bounds what a client that never reads makes the server queue.
        backstop = 2 * settings.reset_burst
        lib.nghttp2_option_set_max_outbound_ack(option, backstop)
        lib.nghttp2_option_set_max_settings(option, 32)
        if binding.reset_rate_limit:
            lib.nghttp2_option_set_stream_reset_rate_limit(option, backstop, int(settings.reset_rate))
        if binding.max_continuations:
            lib.nghttp2_option_set_max_continuations(option, 8)
        try:
            self._session = self._open(binding, settings, option)
        finally:
            lib.nghttp2_option_del(option)
        values = (
            settings.max_concurrent_streams, settings.initial_window_size, settings.max_frame_size,
            settings.max_header_list_size, 1 if settings.connect_protocol else 0,
        )  # fmt: skip
        entries = [(i, v) for i, v in zip(_SETTINGS_IDS, values, strict=True) if i != 0x8 or v]
        iv = ffi.new("nghttp2_settings_entry[]", entries)
        _check(lib.nghttp2_submit_settings(self._session, 0, iv, len(entries)), lib, ffi)
        if settings.connection_window_size > 65535:
            lib.nghttp2_session_set_local_window_size(self._session, 0, 0, settings.connection_window_size)

    def _open(self, binding: Binding, settings: HTTP2Settings, option: Any) -> Any:
        """The ``nghttp2_session``, its callbacks in Python (the glue overrides this with its C ones)."""
        ffi, lib = binding.ffi, binding.lib
        session_ptr = ffi.new("nghttp2_session **")
        _check(lib.nghttp2_session_server_new2(session_ptr, _callbacks(binding), self._handle, option), lib, ffi)
        return session_ptr[0]

    # -- input -------------------------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        rc = self._lib.nghttp2_session_mem_recv(self._session, data, len(data))
        if rc < 0 or self._error is not None:
            raise HTTP2Error(self._error or self._ffi.string(self._lib.nghttp2_strerror(rc)).decode())

    def data_to_send(self) -> bytes:
        ffi, lib, session = self._ffi, self._lib, self._session
        ptr = ffi.new("const uint8_t **")
        pieces = []
        while True:
            n = lib.nghttp2_session_mem_send(session, ptr)
            if n <= 0:
                if n < 0:
                    self._error = ffi.string(lib.nghttp2_strerror(n)).decode()
                break
            pieces.append(ffi.buffer(ptr[0], n)[:])
        if len(pieces) == 1:
            return pieces[0]  # type: ignore[no-any-return]
        return b"".join(pieces)

    # -- output ------------------------------------------------------------------------------------------

    def send_headers(self, stream_id: int, status: int, headers: list[tuple[bytes, bytes]], end_stream: bool) -> None:
        ffi, lib = self._ffi, self._lib
        nva, keep = _nv_array(ffi, headers)
        if status < 200:
            lib.nghttp2_submit_headers(self._session, 0, stream_id, ffi.NULL, nva, len(headers), ffi.NULL)
            return
        if end_stream:
            self._done.add(stream_id)
            rc = lib.nghttp2_submit_response(self._session, stream_id, nva, len(headers), ffi.NULL)
        else:
            self._out[stream_id] = Outbound()
            provider = ffi.new("nghttp2_data_provider *")
            provider.read_callback = _data_reader(lib)
            rc = lib.nghttp2_submit_response(self._session, stream_id, nva, len(headers), provider)
        del keep
        if rc < 0:
            self._out.pop(stream_id, None)
            raise ValueError(ffi.string(lib.nghttp2_strerror(rc)).decode())

    def send_data(self, stream_id: int, data: bytes, end_stream: bool) -> None:
        out = self._out.get(stream_id)
        if out is None or not out.add(data, end_stream):
            return  # the stream is gone (reset), or its body ended already
        if end_stream:
            self._done.add(stream_id)
        if out.deferred and (data or end_stream):
            out.deferred = False
            self._lib.nghttp2_session_resume_data(self._session, stream_id)

    def send_trailers(self, stream_id: int, headers: list[tuple[bytes, bytes]]) -> None:
        out = self._out.get(stream_id)
        if out is None or out.ended:
            return
        out.trailers = headers
        self.send_data(stream_id, b"", True)

    def reset_stream(self, stream_id: int, code: int) -> None:
        self._out.pop(stream_id, None)
        self._done.add(stream_id)
        self._lib.nghttp2_submit_rst_stream(self._session, 0, stream_id, code)

    def stop_after_response(self, stream_id: int) -> None:
        self._stop_after.add(stream_id)

    def consume(self, stream_id: int, size: int) -> None:
        if size:
            self._lib.nghttp2_session_consume(self._session, stream_id, size)

    def pending(self, stream_id: int) -> int:
        out = self._out.get(stream_id)
        return out.size if out is not None else 0

    def shutdown(self) -> None:
        lib = self._lib
        last = lib.nghttp2_session_get_last_proc_stream_id(self._session)
        lib.nghttp2_submit_goaway(self._session, 0, last, NO_ERROR, self._ffi.NULL, 0)

    def terminate(self, code: int) -> None:
        self._lib.nghttp2_session_terminate_session(self._session, code)

    def upgrade(self, settings_payload: bytes, head_request: bool) -> None:
        rc = self._lib.nghttp2_session_upgrade2(
            self._session, settings_payload, len(settings_payload), 1 if head_request else 0, self._ffi.NULL
        )
        if rc < 0:
            raise ProtocolError("invalid HTTP2-Settings header")
        self._last_id = 1

    @property
    def finished(self) -> bool:
        lib = self._lib
        return not lib.nghttp2_session_want_read(self._session) and not lib.nghttp2_session_want_write(self._session)

    def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            self._lib.nghttp2_session_del(session)
        self._handle = None  # the handle kept this object alive for the callbacks

    # -- what the callbacks call ---------------------------------------------------------------------------

    def _begin_frame(self, kind: int, stream_id: int) -> int:
        if kind == _HEADERS and stream_id & 1 and stream_id < self._last_id:
            for low, high in self._skipped:
                if low <= stream_id <= high:
                    # RFC 9113 §5.1.1: the client's ids only grow; one it skipped is closed. libnghttp2 1.52
                    # ignores such a HEADERS frame instead (issue 1300): end the connection as the RFC says.
                    self._lib.nghttp2_session_terminate_session(self._session, PROTOCOL_ERROR)
                    break
        return 0

    def _begin_headers(self, stream_id: int, category: int) -> None:
        self._fields = []
        self._headers.start()
        if category == _HCAT_REQUEST and stream_id > self._last_id:
            if stream_id > self._last_id + 2:
                self._skipped.append((self._last_id + 2, stream_id - 2))
            self._last_id = stream_id

    def _header(self, name: bytes, value: bytes) -> int:
        budget = self._headers  # HeaderBudget.add, inlined: this runs once per field
        size = budget.size = budget.size + len(name) + len(value) + 32
        count = budget.count = budget.count + 1
        if size <= budget.max_size and count <= budget.max_count:
            self._fields.append((name, value))
            return 0
        budget.over = True
        return _ERR_TEMPORAL_CALLBACK_FAILURE if size > 4 * budget.max_size or count > 4 * budget.max_count else 0

    def _frame(self, kind: int, flags: int, stream_id: int, category: int, length: int) -> None:
        if kind == _HEADERS:
            fields, self._fields = self._fields, []
            self._header_block(stream_id, flags, category, fields, self._headers.over)
        elif kind == _DATA:
            if flags & _FLAG_END_STREAM:
                self.events.append(EndBody(stream_id))
            elif not length:
                self._spend(self._controls, "control frames")
        elif kind == _RST_STREAM:
            self._spend(self._resets, "resets")
        elif kind in (_PING, _PRIORITY) or (kind == _SETTINGS and not flags & _FLAG_ACK):
            self._spend(self._controls, "control frames")
        elif kind == _WINDOW_UPDATE:
            if self._data_sent >= FREE_UPDATE:
                self._data_sent = 0
            else:  # a window opened where nothing waits: a flood costs what a PING does
                self._spend(self._controls, "control frames")

    def _header_block(self, stream_id: int, flags: int, category: int, fields: list[tuple[bytes, bytes]],
                      over: int) -> None:  # fmt: skip
        """A request's header block, or its trailers, gathered whole."""
        events = self.events
        end = bool(flags & _FLAG_END_STREAM)
        if category == _HCAT_REQUEST:
            if over:
                events.append(Rejected(stream_id, 431, "request header fields too large", end))
                return
            try:
                events.append(request_from_fields(stream_id, fields, end))
            except ProtocolError:
                self.reset_stream(stream_id, PROTOCOL_ERROR)
                return
        elif category == _HCAT_HEADERS and not over:  # trailers (END_STREAM is required)
            events.append(Trailers(stream_id, fields))
        else:
            return
        if end:
            events.append(EndBody(stream_id))

    def _data(self, stream_id: int, data: bytes) -> None:
        self.events.append(Body(stream_id, data))

    def _sent(self, kind: int, flags: int, stream_id: int, length: int) -> None:
        if kind == _RST_STREAM:  # MadeYouReset (CVE-2025-8671): resets the client provokes count too
            self._spend(self._resets, "resets")
            return
        if kind == _DATA:
            self._data_sent += length
        elif flags & _FLAG_END_STREAM and stream_id in self._stop_after:
            self._stop_after.discard(stream_id)
            self._lib.nghttp2_submit_rst_stream(self._session, 0, stream_id, NO_ERROR)

    def _closed(self, stream_id: int, code: int) -> None:
        self._out.pop(stream_id, None)
        self._stop_after.discard(stream_id)
        if stream_id in self._done:
            self._done.discard(stream_id)
            if code == NO_ERROR:
                return
        self.events.append(StreamReset(stream_id, code))

    def _spend(self, budget: Budget, what: str) -> None:
        if not budget.spend():
            self._error = f"too many {what}: the connection ends with ENHANCE_YOUR_CALM"
            self._lib.nghttp2_session_terminate_session(self._session, ENHANCE_YOUR_CALM)

    def _read(self, stream_id: int, buf: Any, length: int, flags: Any) -> int:
        out = self._out.get(stream_id)
        if out is None:
            return _ERR_TEMPORAL_CALLBACK_FAILURE  # reset meanwhile: the library resets the stream
        ffi = self._ffi
        chunks = out.chunks
        written = 0
        while chunks and written < length:
            chunk = chunks[0]
            room = length - written
            if len(chunk) <= room:
                chunks.popleft()
                ffi.memmove(buf + written, chunk, len(chunk))
                written += len(chunk)
            else:
                ffi.memmove(buf + written, chunk[:room], room)
                chunks[0] = chunk[room:]
                written += room
        out.size -= written
        if not chunks and out.ended:
            flags[0] |= _DATA_FLAG_EOF
            trailers = out.trailers
            if trailers:
                flags[0] |= _DATA_FLAG_NO_END_STREAM
                self._submit_trailers(stream_id, trailers)
            return written
        if written == 0:
            out.deferred = True
            return _ERR_DEFERRED
        return written

    def _submit_trailers(self, stream_id: int, fields: list[tuple[bytes, bytes]]) -> None:
        nva, keep = _nv_array(self._ffi, fields)
        self._lib.nghttp2_submit_trailer(self._session, stream_id, nva, len(fields))
        del keep


def _nv_array(ffi: Any, fields: list[tuple[bytes, bytes]]) -> tuple[Any, tuple[Any, ...]]:
    """An ``nghttp2_nv[]`` of ``fields``, and what it points into (kept alive by the caller until the submit
    returns: libnghttp2 copies them). One buffer holds every name and value, and the array is made in one call
    from a list: cffi's per-field casts were a quarter of a request's cost in ABI mode."""
    block = b"".join([part for field in fields for part in field])
    base = _FROM_BUFFER(_u8_array(ffi), block)
    entries = []
    offset = 0
    for name, value in fields:
        n = len(name)
        entries.append((base + offset, base + offset + n, n, len(value), 0))
        offset += n + len(value)
    nva = _NEWP(_nv_array_type(ffi), entries)
    return nva, (base, block)


_FROM_BUFFER = _cffi_backend.from_buffer
_NEWP = _cffi_backend.newp
_types: dict[int, tuple[Any, Any]] = {}


def _u8_array(ffi: Any) -> Any:
    return _ctypes(ffi)[0]


def _nv_array_type(ffi: Any) -> Any:
    return _ctypes(ffi)[1]


def _ctypes(ffi: Any) -> tuple[Any, Any]:
    made = _types.get(id(ffi))
    if made is None:
        made = _types[id(ffi)] = (ffi.typeof("uint8_t[]"), ffi.typeof("nghttp2_nv[]"))
    return made
