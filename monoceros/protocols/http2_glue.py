"""The libnghttp2 engine on the compiled glue (``_nghttp2``, built from ``http2_glue.c``): the fastest tier.

The glue's C callbacks gather a header block, keep the budgets and the lower-stream-id check, and call Python
once per event: a whole header block, a DATA chunk, the end of a body, a stream's close, a read for the
response body. A response head or trailer block goes to C as one buffer (name NUL value NUL ...: names are
tokens and values were checked for NUL by ``check_header``), where it becomes the ``nghttp2_nv`` array.
Everything else (windows, GOAWAY, the body queues) is the ABI engine's code, shared by inheritance.
"""

from __future__ import annotations

from typing import Any

from .events import EndBody
from .http2 import FREE_UPDATE, HTTP2Error, HTTP2Settings, Outbound
from .http2_callbacks import check as _check
from .http2_callbacks import failure as _failure
from .http2_ffi import Binding
from .http2_nghttp2 import NGHTTP2Connection

from ._nghttp2 import ffi, lib  # type: ignore[import-not-found,unused-ignore]  # isort: skip

_KIND_NO_BODY, _KIND_BODY, _KIND_INTERIM, _KIND_TRAILERS = 0, 1, 2, 3
_WHY = {1: "too many resets", 2: "too many control frames"}
_owner = ffi.from_handle


class GlueConnection(NGHTTP2Connection):
    """An :class:`~monoceros.protocols.http2.HTTP2Engine` on libnghttp2 through the compiled glue."""

    def _open(self, binding: Binding, settings: HTTP2Settings, option: Any) -> Any:
        conn = self._conn = ffi.new("mc_conn *")
        rc = lib.mc_conn_new(conn, self._handle, option, settings.max_header_list_size, settings.max_header_count,
                             float(settings.reset_burst), float(settings.reset_rate), FREE_UPDATE)  # fmt: skip
        _check(rc, lib, ffi)
        return conn.session

    def receive_data(self, data: bytes) -> None:
        rc = lib.nghttp2_session_mem_recv(self._session, data, len(data))
        if rc < 0 or self._error is not None or self._conn.error:
            why = _WHY.get(self._conn.error)
            if why is not None:
                why += ": the connection ends with ENHANCE_YOUR_CALM"
            raise HTTP2Error(self._error or why or ffi.string(lib.nghttp2_strerror(rc)).decode())

    def send_headers(self, stream_id: int, status: int, headers: list[tuple[bytes, bytes]], end_stream: bool) -> None:
        block = b"\0".join([part for field in headers for part in field])
        if status < 200:
            kind = _KIND_INTERIM
        elif end_stream:
            kind = _KIND_NO_BODY
            self._done.add(stream_id)
        else:
            kind = _KIND_BODY
            self._out[stream_id] = Outbound()
        rc = lib.mc_submit(self._session, stream_id, kind, block, len(block), len(headers))
        if rc < 0:
            self._out.pop(stream_id, None)
            raise ValueError(ffi.string(lib.nghttp2_strerror(rc)).decode())

    def send_response(self, stream_id: int, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        block = b"\0".join([part for field in headers for part in field])
        rc = lib.mc_respond(self._conn, stream_id, block, len(block), len(headers), body, len(body))
        if rc < 0:
            raise ValueError(ffi.string(lib.nghttp2_strerror(rc)).decode())
        if not body:
            self._done.add(stream_id)  # no body: the close comes to Python, which expects it

    def _submit_trailers(self, stream_id: int, fields: list[tuple[bytes, bytes]]) -> None:
        block = b"\0".join([part for field in fields for part in field])
        lib.mc_submit(self._session, stream_id, _KIND_TRAILERS, block, len(block), len(fields))

    def stop_after_response(self, stream_id: int) -> None:
        lib.mc_stop_after(self._conn, stream_id)  # the C frame-sent callback resets once the response went

    def upgrade(self, settings_payload: bytes, head_request: bool) -> None:
        super().upgrade(settings_payload, head_request)
        lib.mc_upgraded(self._conn)

    def close(self) -> None:
        if self._session is not None:
            self._session = None
            lib.mc_conn_free(self._conn)
        self._handle = None


# -- what the C callbacks call (cffi extern "Python"), once per event -----------------------------------------


def mc_py_headers(handle: Any, stream_id: int, flags: int, cat: int, over: int, block: Any, length: int) -> int:
    parts = ffi.buffer(block, length)[:].split(b"\0") if length else []
    _owner(handle)._header_block(stream_id, flags, cat, list(zip(parts[:-1:2], parts[1::2], strict=True)), over)
    return 0


def mc_py_data(handle: Any, stream_id: int, data: Any, length: int) -> int:
    _owner(handle)._data(stream_id, ffi.buffer(data, length)[:])
    return 0


def mc_py_end(handle: Any, stream_id: int) -> int:
    _owner(handle).events.append(EndBody(stream_id))
    return 0


def mc_py_close(handle: Any, stream_id: int, code: int) -> int:
    _owner(handle)._closed(stream_id, code)
    return 0


def mc_py_read(handle: Any, stream_id: int, buf: Any, length: int, flags: Any) -> int:
    return _owner(handle)._read(stream_id, buf, length, flags)  # type: ignore[no-any-return]


for _extern in (mc_py_headers, mc_py_data, mc_py_end, mc_py_close, mc_py_read):
    ffi.def_extern(onerror=_failure)(_extern)
