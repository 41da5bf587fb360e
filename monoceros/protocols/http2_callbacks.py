"""libnghttp2's session callbacks in ABI mode: cffi ``callback`` objects, made once per loaded library.

Each forwards to the :class:`~monoceros.protocols.http2_nghttp2.NGHTTP2Connection` whose handle is the
session's user data. (The compiled glue has its callbacks in C: http2_glue.c.)
"""

from __future__ import annotations

import logging
from typing import Any

import _cffi_backend

from .http2_ffi import Binding

# nghttp2 constants (nghttp2.h) the callbacks and the engine share
HEADERS = 1
HCAT_REQUEST, HCAT_HEADERS = 0, 3
ERR_TEMPORAL_CALLBACK_FAILURE, ERR_CALLBACK_FAILURE = -521, -902

log = logging.getLogger("monoceros.error")


def check(rc: int, lib: Any, ffi: Any) -> None:
    if rc != 0:
        raise MemoryError(ffi.string(lib.nghttp2_strerror(rc)).decode())


_callbacks_of: dict[int, tuple[Any, Any, list[Any]]] = {}


def callbacks(binding: Binding) -> Any:
    """The ``nghttp2_session_callbacks`` for ``binding`` (ABI mode: cffi callbacks made once)."""
    made = _callbacks_of.get(id(binding.lib))
    if made is not None:
        return made[0]
    ffi, lib = binding.ffi, binding.lib
    owner = _cffi_backend.from_handle  # the backend's own: ffi.from_handle wraps it in a Python call

    def on_begin_frame(session: Any, hd: Any, user_data: Any) -> int:
        return owner(user_data)._begin_frame(hd.type, hd.stream_id)  # type: ignore[no-any-return]

    def on_begin_headers(session: Any, frame: Any, user_data: Any) -> int:
        owner(user_data)._begin_headers(frame.hd.stream_id, frame.headers.cat)
        return 0

    def on_header(session: Any, frame: Any, name: Any, namelen: int, value: Any, valuelen: int, flags: int,
                  user_data: Any) -> int:  # fmt: skip
        return owner(user_data)._header(ffi.buffer(name, namelen)[:], ffi.buffer(value, valuelen)[:])  # type: ignore[no-any-return]

    def on_frame_recv(session: Any, frame: Any, user_data: Any) -> int:
        hd = frame.hd
        kind = hd.type
        owner(user_data)._frame(kind, hd.flags, hd.stream_id, frame.headers.cat if kind == HEADERS else 0, hd.length)
        return 0

    def on_data_chunk_recv(session: Any, flags: int, stream_id: int, data: Any, length: int, user_data: Any) -> int:
        owner(user_data)._data(stream_id, ffi.buffer(data, length)[:])
        return 0

    def on_frame_send(session: Any, frame: Any, user_data: Any) -> int:
        hd = frame.hd
        owner(user_data)._sent(hd.type, hd.flags, hd.stream_id, hd.length)
        return 0

    def on_stream_close(session: Any, stream_id: int, error_code: int, user_data: Any) -> int:
        owner(user_data)._closed(stream_id, error_code)
        return 0

    def read(session: Any, stream_id: int, buf: Any, length: int, flags: Any, source: Any, user_data: Any) -> int:
        return owner(user_data)._read(stream_id, buf, length, flags)  # type: ignore[no-any-return]

    err = ERR_CALLBACK_FAILURE
    keep = [
        ffi.callback("nghttp2_on_begin_frame_callback", on_begin_frame, onerror=failure),
        ffi.callback("nghttp2_on_begin_headers_callback", on_begin_headers, onerror=failure),
        ffi.callback("nghttp2_on_header_callback", on_header, onerror=failure),
        ffi.callback("nghttp2_on_frame_recv_callback", on_frame_recv, onerror=failure),
        ffi.callback("nghttp2_on_data_chunk_recv_callback", on_data_chunk_recv, onerror=failure),
        ffi.callback("nghttp2_on_frame_send_callback", on_frame_send, onerror=failure),
        ffi.callback("nghttp2_on_stream_close_callback", on_stream_close, onerror=failure),
    ]
    reader = ffi.callback("nghttp2_data_source_read_callback", read, error=err, onerror=failure)
    ptr = ffi.new("nghttp2_session_callbacks **")
    check(lib.nghttp2_session_callbacks_new(ptr), lib, ffi)
    callbacks = ptr[0]
    setters = (
        lib.nghttp2_session_callbacks_set_on_begin_frame_callback,
        lib.nghttp2_session_callbacks_set_on_begin_headers_callback,
        lib.nghttp2_session_callbacks_set_on_header_callback,
        lib.nghttp2_session_callbacks_set_on_frame_recv_callback,
        lib.nghttp2_session_callbacks_set_on_data_chunk_recv_callback,
        lib.nghttp2_session_callbacks_set_on_frame_send_callback,
        lib.nghttp2_session_callbacks_set_on_stream_close_callback,
    )
    for setter, callback in zip(setters, keep, strict=True):
        setter(callbacks, callback)
    _callbacks_of[id(lib)] = (callbacks, reader, [*keep, reader])
    return callbacks


def failure(exc_type: Any, exc: Any, tb: Any) -> int:
    """A Python error inside a callback: report it, and fail the session (never a silent half state)."""
    log.error("Error in an HTTP/2 callback", exc_info=(exc_type, exc, tb))
    return ERR_CALLBACK_FAILURE


def data_reader(lib: Any) -> Any:
    """The data provider's read callback for ``lib`` (made with the others by :func:`callbacks`)."""
    return _callbacks_of[id(lib)][1]
