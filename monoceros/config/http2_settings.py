"""Settings of HTTP/2: whether it is served, on which engine, and what each connection may ask of a worker.

Defaults cite nginx, h2o and Apache httpd. The header list's limits are the HTTP/1.1 ones
(``limit_request_headers_size``, ``limit_request_fields``): one request, one set of limits, whatever carries it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .fields import _non_negative, _positive, setting

H2 = "HTTP/2"


def _frame_size(value: Any) -> Any:
    if not 16384 <= value <= 16777215:  # RFC 9113 §6.5.2
        raise ValueError("must be between 16384 and 16777215")
    return value


def _window(value: Any) -> Any:
    if not 1 <= value <= 2147483647:  # RFC 9113 §6.9.1
        raise ValueError("must be between 1 and 2147483647")
    return value


@dataclass(frozen=True)
class HTTP2Config:
    """How one worker serves HTTP/2."""

    http: str = setting(
        "auto",
        section=H2,
        choices=["auto", "1", "2"],
        # uvicorn's values name its HTTP/1.1 parser: in a file or the environment they mean 'auto' here
        synonyms={"1.1": "1", "http1": "1", "h2": "2", "http2": "2", "httptools": "auto", "h11": "auto"},
        help="HTTP versions served. 'auto': HTTP/2 by ALPN over TLS, by its preface on cleartext (prior "
        "knowledge), and by 'Upgrade: h2c'; HTTP/1.1 otherwise. '1': HTTP/1.1 only. '2': HTTP/2 only.",
    )
    http2_engine: str = setting(
        "auto",
        section=H2,
        choices=["auto", "nghttp2", "nghttp2-abi", "h2"],
        help="HTTP/2 implementation. 'auto': libnghttp2 through the compiled glue, else bound at run time, else "
        "the pure-Python h2 package. 'nghttp2' fails to start without libnghttp2; 'nghttp2-abi' binds it at run "
        "time even where the glue is built (to compare). The log says which serves.",
    )
    h2c_upgrade: bool = setting(
        True,
        section=H2,
        help="Accept 'Upgrade: h2c' on cleartext HTTP/1.1 (RFC 7540 §3.2; deprecated by RFC 9113, still used by "
        "some clients). Prior knowledge and ALPN do not depend on it.",
    )
    # Apache's H2MaxSessionStreams and h2o's http2-max-concurrent-requests-per-connection are 100; nginx 128.
    http2_max_concurrent_streams: int = setting(
        100,
        section=H2,
        validator=_positive,
        metavar="N",
        help="Streams a client may have open on one connection (SETTINGS_MAX_CONCURRENT_STREAMS). Past it, and "
        "while that many app tasks still run, a new stream is refused with REFUSED_STREAM, which clients retry.",
    )
    # RFC 9113's default and Apache's H2WindowSize: 64 KiB per stream, as HTTP/1.1 buffers 64 KiB of body.
    http2_initial_window_size: int = setting(
        65535,
        section=H2,
        validator=_window,
        metavar="BYTES",
        help="Request body bytes a client may send on one stream before the app reads them.",
    )
    # 16 streams' worth of the per-stream window: concurrent uploads are not held back by the connection.
    http2_connection_window_size: int = setting(
        1048576,
        section=H2,
        validator=_window,
        metavar="BYTES",
        help="Request body bytes a client may send on one connection, all streams together, before apps read.",
    )
    # RFC 9113's default and minimum; nginx, h2o and Apache advertise it too.
    http2_max_frame_size: int = setting(
        16384,
        section=H2,
        validator=_frame_size,
        metavar="BYTES",
        help="Largest frame payload the server accepts (SETTINGS_MAX_FRAME_SIZE).",
    )
    # nginx's keepalive_requests (1000 since 1.19.10) applies to HTTP/2 connections too.
    http2_max_requests: int = setting(
        1000,
        section=H2,
        validator=_non_negative,
        metavar="N",
        help="Streams one connection may open; then the server says GOAWAY and closes it once they are "
        "answered, so long-lived connections spread over the workers. 0: no limit (h2load's -D runs need it: "
        "it does not reconnect after GOAWAY).",
    )
