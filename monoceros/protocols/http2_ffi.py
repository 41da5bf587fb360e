"""libnghttp2 through cffi: the declarations monoceros binds, and how the library is loaded.

Two tiers share these declarations. The compiled glue (``monoceros.protocols._nghttp2``, cffi's API mode,
built at install by ``setup.py`` where a compiler and ``nghttp2.h`` are there) adds a few C functions that
gather a header block in C, so that Python runs once per event instead of once per field. Where nothing could
be compiled, ABI mode (``ffi.dlopen``) binds the same functions from the installed ``libnghttp2.so.14``, and
the gathering happens in Python callbacks. Only what is declared here is used; each declaration is the
nghttp2 function or type of the same name. The structure layouts are libnghttp2's own (stable since 1.0:
ABI version 14).
"""

from __future__ import annotations

import ctypes.util
from typing import Any, NamedTuple

CDEF = """
typedef struct nghttp2_session nghttp2_session;                       /* the session */
typedef struct nghttp2_session_callbacks nghttp2_session_callbacks;   /* its callbacks */
typedef struct nghttp2_option nghttp2_option;                         /* its options */

typedef struct { int age; int version_num; const char *version_str; const char *proto_str; } nghttp2_info;

typedef struct { uint8_t *name; uint8_t *value; size_t namelen; size_t valuelen; uint8_t flags; } nghttp2_nv;
typedef struct { size_t length; int32_t stream_id; uint8_t type; uint8_t flags; uint8_t reserved; }
    nghttp2_frame_hd;
typedef struct { int32_t stream_id; int32_t weight; uint8_t exclusive; } nghttp2_priority_spec;
typedef struct { nghttp2_frame_hd hd; size_t padlen; } nghttp2_data;
typedef struct { nghttp2_frame_hd hd; size_t padlen; nghttp2_priority_spec pri_spec; nghttp2_nv *nva;
                 size_t nvlen; int cat; } nghttp2_headers;
typedef struct { nghttp2_frame_hd hd; nghttp2_priority_spec pri_spec; } nghttp2_priority;
typedef struct { nghttp2_frame_hd hd; uint32_t error_code; } nghttp2_rst_stream;
typedef struct { int32_t settings_id; uint32_t value; } nghttp2_settings_entry;
typedef struct { nghttp2_frame_hd hd; size_t niv; nghttp2_settings_entry *iv; } nghttp2_settings;
typedef struct { nghttp2_frame_hd hd; uint8_t opaque_data[8]; } nghttp2_ping;
typedef struct { nghttp2_frame_hd hd; int32_t last_stream_id; uint32_t error_code; uint8_t *opaque_data;
                 size_t opaque_data_len; uint8_t reserved; } nghttp2_goaway;
typedef struct { nghttp2_frame_hd hd; int32_t window_size_increment; uint8_t reserved; } nghttp2_window_update;
typedef union { nghttp2_frame_hd hd; nghttp2_data data; nghttp2_headers headers; nghttp2_priority priority;
                nghttp2_rst_stream rst_stream; nghttp2_settings settings; nghttp2_ping ping;
                nghttp2_goaway goaway; nghttp2_window_update window_update; } nghttp2_frame;

typedef union { int fd; void *ptr; } nghttp2_data_source;
typedef ssize_t (*nghttp2_data_source_read_callback)(nghttp2_session *, int32_t, uint8_t *, size_t,
                                                     uint32_t *, nghttp2_data_source *, void *);
typedef struct { nghttp2_data_source source; nghttp2_data_source_read_callback read_callback; }
    nghttp2_data_provider;

typedef int (*nghttp2_on_begin_frame_callback)(nghttp2_session *, const nghttp2_frame_hd *, void *);
typedef int (*nghttp2_on_begin_headers_callback)(nghttp2_session *, const nghttp2_frame *, void *);
typedef int (*nghttp2_on_header_callback)(nghttp2_session *, const nghttp2_frame *, const uint8_t *, size_t,
                                          const uint8_t *, size_t, uint8_t, void *);
typedef int (*nghttp2_on_frame_recv_callback)(nghttp2_session *, const nghttp2_frame *, void *);
typedef int (*nghttp2_on_frame_send_callback)(nghttp2_session *, const nghttp2_frame *, void *);
typedef int (*nghttp2_on_data_chunk_recv_callback)(nghttp2_session *, uint8_t, int32_t, const uint8_t *, size_t,
                                                   void *);
typedef int (*nghttp2_on_stream_close_callback)(nghttp2_session *, int32_t, uint32_t, void *);

/* nghttp2_version: the loaded library's version, checked at load */
nghttp2_info *nghttp2_version(int least_version);
/* nghttp2_strerror: an error code's text, for the log and exceptions */
const char *nghttp2_strerror(int lib_error_code);

/* nghttp2_session_callbacks_new, _del: the callback table a session is made with (ABI mode) */
int nghttp2_session_callbacks_new(nghttp2_session_callbacks **callbacks_ptr);
void nghttp2_session_callbacks_del(nghttp2_session_callbacks *callbacks);
/* nghttp2_session_callbacks_set_on_begin_frame_callback: the lower-stream-id check (nghttp2 issue 1300) */
void nghttp2_session_callbacks_set_on_begin_frame_callback(nghttp2_session_callbacks *,
                                                           nghttp2_on_begin_frame_callback);
/* nghttp2_session_callbacks_set_on_begin_headers_callback: a header block starts (its budget resets) */
void nghttp2_session_callbacks_set_on_begin_headers_callback(nghttp2_session_callbacks *,
                                                             nghttp2_on_begin_headers_callback);
/* nghttp2_session_callbacks_set_on_header_callback: one decoded field, bounded as it arrives */
void nghttp2_session_callbacks_set_on_header_callback(nghttp2_session_callbacks *, nghttp2_on_header_callback);
/* nghttp2_session_callbacks_set_on_frame_recv_callback: requests, trailers, ends of bodies, budgets */
void nghttp2_session_callbacks_set_on_frame_recv_callback(nghttp2_session_callbacks *,
                                                          nghttp2_on_frame_recv_callback);
/* nghttp2_session_callbacks_set_on_frame_send_callback: resets sent (MadeYouReset), RST after a response */
void nghttp2_session_callbacks_set_on_frame_send_callback(nghttp2_session_callbacks *,
                                                          nghttp2_on_frame_send_callback);
/* nghttp2_session_callbacks_set_on_data_chunk_recv_callback: request body bytes */
void nghttp2_session_callbacks_set_on_data_chunk_recv_callback(nghttp2_session_callbacks *,
                                                               nghttp2_on_data_chunk_recv_callback);
/* nghttp2_session_callbacks_set_on_stream_close_callback: a stream's end, reset or not */
void nghttp2_session_callbacks_set_on_stream_close_callback(nghttp2_session_callbacks *,
                                                            nghttp2_on_stream_close_callback);

/* nghttp2_option_new, _del: the options a session is made with */
int nghttp2_option_new(nghttp2_option **option_ptr);
void nghttp2_option_del(nghttp2_option *option);
/* nghttp2_option_set_no_auto_window_update: the app's reading opens the windows (session_consume) */
void nghttp2_option_set_no_auto_window_update(nghttp2_option *option, int val);
/* nghttp2_option_set_max_outbound_ack: PING and SETTINGS ACKs a client that never reads can make queue */
void nghttp2_option_set_max_outbound_ack(nghttp2_option *option, size_t val);
/* nghttp2_option_set_max_settings: entries in one SETTINGS frame */
void nghttp2_option_set_max_settings(nghttp2_option *option, size_t val);

/* nghttp2_session_server_new2, _del: one server session per connection */
int nghttp2_session_server_new2(nghttp2_session **session_ptr, const nghttp2_session_callbacks *callbacks,
                                void *user_data, const nghttp2_option *option);
void nghttp2_session_del(nghttp2_session *session);
/* nghttp2_submit_settings: the server's SETTINGS (streams, windows, frame and header list sizes, CONNECT) */
int nghttp2_submit_settings(nghttp2_session *session, uint8_t flags, const nghttp2_settings_entry *iv,
                            size_t niv);
/* nghttp2_session_mem_recv: bytes from the client in */
ssize_t nghttp2_session_mem_recv(nghttp2_session *session, const uint8_t *in, size_t inlen);
/* nghttp2_session_mem_send: frames to write out */
ssize_t nghttp2_session_mem_send(nghttp2_session *session, const uint8_t **data_ptr);
/* nghttp2_submit_response: a final response head, with a data provider when a body follows */
int nghttp2_submit_response(nghttp2_session *session, int32_t stream_id, const nghttp2_nv *nva, size_t nvlen,
                            const nghttp2_data_provider *data_prd);
/* nghttp2_submit_headers: an interim (1xx) response head */
int32_t nghttp2_submit_headers(nghttp2_session *session, uint8_t flags, int32_t stream_id,
                               const nghttp2_priority_spec *pri_spec, const nghttp2_nv *nva, size_t nvlen,
                               void *stream_user_data);
/* nghttp2_submit_trailer: response trailers after the body */
int nghttp2_submit_trailer(nghttp2_session *session, int32_t stream_id, const nghttp2_nv *nva, size_t nvlen);
/* nghttp2_session_resume_data: body bytes arrived for a stream whose provider had deferred */
int nghttp2_session_resume_data(nghttp2_session *session, int32_t stream_id);
/* nghttp2_submit_rst_stream: a stream the server cannot complete, or asks to stop sending (NO_ERROR) */
int nghttp2_submit_rst_stream(nghttp2_session *session, uint8_t flags, int32_t stream_id, uint32_t error_code);
/* nghttp2_session_consume: the app took body bytes: the windows reopen by as much */
int nghttp2_session_consume(nghttp2_session *session, int32_t stream_id, size_t size);
/* nghttp2_submit_shutdown_notice: the first GOAWAY of a graceful stop */
int nghttp2_submit_shutdown_notice(nghttp2_session *session);
/* nghttp2_submit_goaway: GOAWAY with the last stream taken */
int nghttp2_submit_goaway(nghttp2_session *session, uint8_t flags, int32_t last_stream_id, uint32_t error_code,
                          const uint8_t *opaque_data, size_t opaque_data_len);
/* nghttp2_session_get_last_proc_stream_id: that last stream */
int32_t nghttp2_session_get_last_proc_stream_id(nghttp2_session *session);
/* nghttp2_session_terminate_session: GOAWAY with an error, and nothing more read */
int nghttp2_session_terminate_session(nghttp2_session *session, uint32_t error_code);
/* nghttp2_session_want_read, _want_write: both 0 once the connection is over */
int nghttp2_session_want_read(nghttp2_session *session);
int nghttp2_session_want_write(nghttp2_session *session);
/* nghttp2_session_set_local_window_size: the connection window (larger than 65,535) */
int nghttp2_session_set_local_window_size(nghttp2_session *session, uint8_t flags, int32_t stream_id,
                                          int32_t window_size);
/* nghttp2_session_upgrade2: stream 1 after Upgrade: h2c */
int nghttp2_session_upgrade2(nghttp2_session *session, const uint8_t *settings_payload,
                             size_t settings_payloadlen, int head_request, void *stream_user_data);
"""

# Debian's backports on 1.52 (upstream 1.57 and 1.61): present or not, probed at load.
CDEF_OPTIONAL = """
void nghttp2_option_set_stream_reset_rate_limit(nghttp2_option *option, uint64_t burst, uint64_t rate);
void nghttp2_option_set_max_continuations(nghttp2_option *option, size_t val);
"""
# (nghttp2_option_set_stream_reset_rate_limit: the library's rapid-reset limit, a backstop to the budget;
# nghttp2_option_set_max_continuations: CONTINUATION frames one header block may take, CVE-2024-28182.)

MIN_VERSION = 0x013400  # 1.52.0: what Debian 12 ships, and what the checks here were measured on
SONAME = "libnghttp2.so.14"


class Binding(NamedTuple):
    """A loaded libnghttp2: cffi's ``ffi`` and ``lib``, the tier (``glue`` or ``abi``), the library's version, and
    whether the backported flood options are there."""

    ffi: Any
    lib: Any
    tier: str
    version: str
    reset_rate_limit: bool
    max_continuations: bool


class Unavailable(Exception):
    """libnghttp2 cannot be used here; the message says why."""


def load_abi() -> Binding:
    """Bind the installed libnghttp2 in ABI mode. Raises :class:`Unavailable`."""
    try:
        import cffi
    except ImportError as exc:  # pragma: no cover - cffi is a dependency
        raise Unavailable(f"cffi is not installed ({exc})") from None
    ffi = cffi.FFI()
    ffi.cdef(CDEF)
    ffi.cdef(CDEF_OPTIONAL)
    names = [SONAME, ctypes.util.find_library("nghttp2")]
    errors = []
    for name in names:
        if not name:
            continue
        try:
            lib = ffi.dlopen(name)
        except OSError as exc:
            errors.append(str(exc))
            continue
        return _checked(ffi, lib, "abi")
    raise Unavailable("libnghttp2 is not installed: " + ("; ".join(errors) or "no library found"))


def load_glue() -> Binding:
    """The compiled glue (API mode). Raises :class:`Unavailable` when it was not built."""
    try:
        from ._nghttp2 import ffi, lib  # type: ignore[import-not-found]
    except ImportError as exc:
        raise Unavailable(f"the compiled glue was not built ({exc})") from None
    return _checked(ffi, lib, "glue")


def _checked(ffi: Any, lib: Any, tier: str) -> Binding:
    info = lib.nghttp2_version(0)
    if info == ffi.NULL or info.version_num < MIN_VERSION:
        found = ffi.string(info.version_str).decode() if info != ffi.NULL else "unknown"
        raise Unavailable(f"libnghttp2 {found} is older than 1.52.0")
    version = ffi.string(info.version_str).decode()
    return Binding(ffi, lib, tier, version, _has(lib, "nghttp2_option_set_stream_reset_rate_limit"),
                   _has(lib, "nghttp2_option_set_max_continuations"))  # fmt: skip


def _has(lib: Any, name: str) -> bool:
    """cffi raises AttributeError at the first access of a function the library does not export."""
    try:
        getattr(lib, name)
    except AttributeError:
        return False
    return True
