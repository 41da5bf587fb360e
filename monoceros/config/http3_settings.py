"""Settings of HTTP/3: whether it is served over QUIC, how it is advertised, and what each QUIC connection may
ask of a worker.

Defaults cite nginx's ngx_http_v3_module and the QUIC RFC. The header list's limit is the HTTP/1.1 one
(``limit_request_headers_size``), as it is for HTTP/2: one request, one set of limits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .fields import _positive, setting

H3 = "HTTP/3"


def _window(value: Any) -> Any:
    if not 1024 <= value <= (1 << 62) - 1:  # RFC 9000 §16: a variable-length integer
        raise ValueError("must be between 1024 and 2^62 - 1")
    return value


def _alt_svc(value: Any) -> Any:
    if any(ch in str(value) for ch in "\r\n\0"):
        raise ValueError("must be one header line's value (no CR, LF or NUL)")
    return value


@dataclass(frozen=True)
class HTTP3Config:
    """How one worker serves HTTP/3."""

    http3: bool = setting(
        False,
        section=H3,
        help="Serve HTTP/3 over QUIC on UDP at the host and port of each TLS bind (needs --certfile and "
        "--keyfile, and the 'monoceros[http3]' extra: aioquic). Each worker has its own UDP socket on the port "
        "(SO_REUSEPORT).",
    )
    # RFC 7838: clients cache the advertisement for ma seconds; 86400 is what Cloudflare and Google send.
    http3_alt_svc: str = setting(
        'h3=":{port}"; ma=86400',
        section=H3,
        validator=_alt_svc,
        metavar="VALUE",
        help="The Alt-Svc header that HTTP/1.1 and HTTP/2 responses over TLS carry with --http3, so browsers "
        "move to HTTP/3; '{port}' is the UDP port. An empty value sends none.",
    )
    # nginx's quic idle timeout follows keepalive_timeout (75 s); RFC 9000 leaves it to the server. Shorter
    # than TCP's keep-alive would make a mobile client pay a new handshake often; 30 s is Chrome's own.
    quic_idle_timeout: float = setting(
        30.0,
        section=H3,
        validator=_positive,
        metavar="SECONDS",
        help="Close a QUIC connection with no packets for this long (max_idle_timeout).",
    )
    # nginx's http3_max_concurrent_streams is 128; ours matches --http2-max-concurrent-streams.
    quic_max_streams: int = setting(
        100,
        section=H3,
        validator=_positive,
        metavar="N",
        help="Request streams a client may have open on one connection (initial_max_streams_bidi).",
    )
    # nginx: http3_stream_buffer_size 64k per stream; ours is HTTP/2's window and HTTP/1.1's read-ahead.
    quic_max_stream_data: int = setting(
        65536,
        section=H3,
        validator=_window,
        metavar="BYTES",
        help="Request body bytes a client may send on one stream before the app reads them (flow control).",
    )
    quic_max_data: int = setting(
        1048576,
        section=H3,
        validator=_window,
        metavar="BYTES",
        help="Request body bytes a client may send on one connection, all streams together, before apps read.",
    )
    # RFC 8470: a request in 0-RTT data can be replayed by an attacker; only a safe method may be served from it.
    quic_early_data: str = setting(
        "off",
        section=H3,
        choices=["off", "safe"],
        help="0-RTT (TLS early data) on resumed connections. 'off': none is accepted. 'safe': it is, and a "
        "request that arrives in it is served only for GET, HEAD and OPTIONS; others get 425 Too Early, which "
        "clients retry after the handshake.",
    )
