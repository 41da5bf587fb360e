"""Settings of the HTTP conversation inside each worker: the event loop, the headers the server adds,
WebSocket, and the limits and deadlines that protect a worker from its clients.

Defaults for limits cite what nginx and gunicorn use, as h11 does.
"""

from __future__ import annotations

from dataclasses import dataclass

from .fields import _header_lines, _non_negative, _positive, setting

HTTP = "HTTP"
WS = "WebSocket"
LIMITS = "Limits and deadlines"


@dataclass(frozen=True)
class HTTPSettings:
    """How one worker speaks HTTP and WebSocket, and what it will take from a client."""

    # HTTP -------------------------------------------------------------------------------------------------
    loop: str = setting(
        "auto",
        section=HTTP,
        flags=["--asgi-loop"],
        choices=["auto", "asyncio", "uvloop"],
        help="Event loop. 'auto' uses uvloop when it is installed.",
    )
    # gunicorn keeps idle connections 2 s, uvicorn 5 s, nginx 75 s. Behind a proxy, keep this longer
    # than the proxy's own idle timeout so the server is never the one that races it.
    keep_alive: float = setting(
        5.0,
        section=HTTP,
        flags=["--timeout-keep-alive"],
        aliases=["keepalive", "timeout_keep_alive", "keep_alive_timeout"],
        validator=_non_negative,
        metavar="SECONDS",
        help="Close a keep-alive connection idle for this long. 0 disables keep-alive.",
    )
    server_header: bool = setting(True, section=HTTP, help="Send 'Server: monoceros' unless the app sets its own.")
    date_header: bool = setting(True, section=HTTP, help="Send a 'Date' header unless the app sets its own.")
    headers: list[str] = setting(
        [],
        section=HTTP,
        flag="--header",
        validator=_header_lines,
        metavar="NAME:VALUE",
        help="A header sent with every response; repeat for several. One the app sets itself replaces it, and "
        "'server: NAME' replaces the default Server header.",
    )
    sendfile: bool = setting(
        True,
        section=HTTP,
        help="Send files (wsgi.file_wrapper, ASGI http.response.pathsend) with sendfile(2) over plain TCP. "
        "--no-sendfile reads them in pieces instead, as over TLS.",
    )

    # WebSocket --------------------------------------------------------------------------------------------
    ws: str = setting(
        "auto",
        section=WS,
        choices=["auto", "none"],
        synonyms={"websockets": "auto", "websockets-sansio": "auto", "wsproto": "auto"},
        help="WebSocket support. 'auto' serves WebSocket to ASGI apps (uvicorn's library names mean the same: "
        "it is always websockets' sans-IO core); 'none' answers upgrade requests with 400 (as WSGI apps always do).",
    )
    # uvicorn's default; the websockets library's own is 1 MiB. Chat and dashboard payloads are far smaller,
    # but file transfer over a WebSocket is common enough that 1 MiB surprises people.
    ws_max_size: int = setting(
        16777216,
        section=WS,
        flags=["--websocket-max-message-size"],
        aliases=["websocket_max_message_size"],
        validator=_positive,
        metavar="BYTES",
        help="Largest incoming message (after decompression). A bigger one closes the connection with 1009.",
    )
    # uvicorn's default. With --ws-max-size, it bounds what one connection can make the server hold.
    ws_max_queue: int = setting(
        32,
        section=WS,
        validator=_positive,
        metavar="N",
        help="Received messages held for an app that is not reading. Past it, the server stops reading the socket.",
    )
    # 20 s is below the 30-60 s idle timeouts of common proxies and NATs, so pings also keep paths open.
    ws_ping_interval: float = setting(
        20.0,
        section=WS,
        flags=["--ping-interval", "--websocket-ping-interval"],
        aliases=["websocket_ping_interval", "ping_interval"],
        validator=_non_negative,
        metavar="SECONDS",
        help="Send a ping this often. 0 disables pings.",
    )
    ws_ping_timeout: float = setting(
        20.0,
        section=WS,
        flags=["--ping-timeout"],
        aliases=["ping_timeout"],
        validator=_positive,
        metavar="SECONDS",
        help="A ping unanswered for this long closes the connection with 1011.",
    )
    ws_message_timeout: float = setting(
        60.0,
        section=WS,
        validator=_non_negative,
        metavar="SECONDS",
        help="A message sent in fragments must end within this time of its first fragment, or the connection "
        "is closed with 1008 (its fragments are held until it ends). 0 disables.",
    )
    # The websockets library's default.
    ws_close_timeout: float = setting(
        10.0,
        section=WS,
        validator=_positive,
        metavar="SECONDS",
        help="After sending a close frame, how long to wait for the client's before dropping the connection.",
    )
    ws_per_message_deflate: bool = setting(
        True,
        section=WS,
        help="Offer permessage-deflate compression (RFC 7692) to clients that ask for it.",
    )

    # Limits and deadlines ---------------------------------------------------------------------------------
    # nginx reads the request line into one 8 KiB large_client_header_buffers buffer; gunicorn allows 4094.
    limit_request_line: int = setting(
        8190,
        section=LIMITS,
        validator=_positive,
        metavar="BYTES",
        help="Longest request line (method, target, version). Longer gets 414.",
    )
    # gunicorn's limit_request_field_size is 8190: one nginx 8 KiB buffer per header line.
    limit_request_field_size: int = setting(
        8190,
        section=LIMITS,
        flags=["--limit-request-field_size"],
        validator=_positive,
        metavar="BYTES",
        help="Longest single header field (name and value). Longer gets 431.",
    )
    # gunicorn's limit_request_fields is 100; Apache's LimitRequestFields is 100 too.
    limit_request_fields: int = setting(
        100,
        section=LIMITS,
        validator=_positive,
        metavar="N",
        help="Most header fields in one request (an HTTP/2 header list too). More gets 431.",
    )
    # nginx: large_client_header_buffers 4 8k, so a request head tops out near 32 KiB; we allow double.
    limit_request_headers_size: int = setting(
        65536,
        section=LIMITS,
        flags=["--max-request-header-size", "--http2-max-header-list-size"],
        aliases=["max_request_header_size", "http2_max_header_list_size"],
        validator=_positive,
        metavar="BYTES",
        help="Largest total size of all header fields in one request (an HTTP/2 header list too, counted as "
        "SETTINGS_MAX_HEADER_LIST_SIZE counts: 32 bytes more per field). More gets 431.",
    )
    # nginx's client_max_body_size is 1 MiB, sized for an edge proxy; an app server receiving uploads needs
    # more. 100 MiB stops a runaway client without tripping ordinary uploads. 0 means no limit.
    limit_request_body: int = setting(
        104857600,
        section=LIMITS,
        flags=["--max-request-body-size"],
        aliases=["max_request_body_size"],
        validator=_non_negative,
        metavar="BYTES",
        help="Largest request body, for ASGI and WSGI alike; more gets 413. 0 means no limit.",
    )
    # nginx's client_header_timeout is 60 s; Apache's mod_reqtimeout allows 20 s for the head. We take
    # Apache's, since a slowloris holds a whole connection slot for as long as this lasts.
    header_timeout: float = setting(
        20.0,
        section=LIMITS,
        validator=_positive,
        metavar="SECONDS",
        help="A client must send a whole request head within this time of starting it, or get 408.",
    )
    # nginx's client_body_timeout: 60 s between two reads of a request body.
    body_timeout: float = setting(
        60.0,
        section=LIMITS,
        validator=_non_negative,
        metavar="SECONDS",
        help="A client sending a request body must send some of it at least this often, or get 408 (the "
        "connection closes; the app sees the client gone). Time the app spends not reading does not count. "
        "0 disables.",
    )
    # Kestrel's MinRequestBodyDataRate is 240 bytes/s (after a 5 s grace); nginx has no rate, only the gap above.
    # Here each --body-timeout window must carry this rate on average: a body that trickles in a byte at a
    # time (slow POST, R.U.D.Y.) cannot hold a connection by never quite stopping.
    body_min_rate: int = setting(
        240,
        section=LIMITS,
        validator=_non_negative,
        metavar="BYTES",
        help="Slowest request body, in bytes per second averaged over each --body-timeout window; slower gets "
        "408, as a body that stops does. Time the app spends not reading does not count. 0 disables.",
    )
    # nginx's send_timeout: 60 s between two successful writes to a client.
    send_timeout: float = setting(
        60.0,
        section=LIMITS,
        validator=_non_negative,
        metavar="SECONDS",
        help="A client that takes none of a response for this long (a zero TCP window, or an HTTP/2 stream "
        "window that never opens) is cut: the connection closes (HTTP/2: the stream is reset) and the memory "
        "held for it is freed; the app's send raises from then on. 0 disables.",
    )
    # uvicorn, hypercorn and granian have no such bound, and gunicorn's --timeout restarts a silent worker
    # rather than ending a request; nginx's proxy_read_timeout (60 s) is a gap between reads, not a total. A
    # total on by default would cut streaming responses (server-sent events, long downloads): off by default.
    request_timeout: float = setting(
        0.0,
        section=LIMITS,
        validator=_non_negative,
        metavar="SECONDS",
        help="Longest an app may take to complete one HTTP response, from the request's arrival. Past it, an "
        "ASGI app's task is cancelled and a WSGI app's response given up (a thread cannot be stopped: what it "
        "returns later is discarded); the client gets 503, or the connection is cut if the response had "
        "started. Logged once per request. 0 disables.",
    )
    # gunicorn's worker_connections is 1000; nginx's worker_connections is 512.
    limit_concurrency: int = setting(
        1000,
        section=LIMITS,
        flags=["--worker-connections", "--connection-limit"],
        aliases=["worker_connections", "connection_limit"],
        validator=_positive,
        metavar="N",
        help="Most open connections per worker. Past it, a new connection takes the slot of the keep-alive "
        "connection idle the longest, else of the oldest unfinished head (as nginx reuses connections); only "
        "when every connection is inside a request does it get 503.",
    )
    # gunicorn's graceful_timeout is 30 s, as is Kubernetes' terminationGracePeriodSeconds.
    graceful_timeout: float = setting(
        30.0,
        section=LIMITS,
        flags=["--timeout-graceful-shutdown"],
        aliases=["timeout_graceful_shutdown"],
        validator=_non_negative,
        metavar="SECONDS",
        help="On SIGTERM or SIGINT, how long in-flight requests get to finish before connections are cut.",
    )
