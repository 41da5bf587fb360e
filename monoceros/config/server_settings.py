"""Settings of the HTTP server inside each worker: the app, listeners, TLS, HTTP, limits, proxies, logs.

Defaults for limits cite what nginx and gunicorn use, as h11 does.
"""

from __future__ import annotations

from dataclasses import dataclass

from .fields import _networks, _non_negative, _octal_mode, _port, _positive, setting

# -- the settings ---------------------------------------------------------------------------------------------

APP = "Application"
LISTEN = "Listening"
TLS = "TLS"
HTTP = "HTTP"
WS = "WebSocket"
LIMITS = "Limits and deadlines"
PROXY = "Proxies"
LOG = "Logging"


@dataclass(frozen=True)
class ServerSettings:
    """The settings of one worker's server."""

    # Application ------------------------------------------------------------------------------------------
    app: str | None = setting(
        None,
        section=APP,
        metavar="APP",
        help="The app to serve: 'module:attr', 'module:factory' with --factory, or 'path/to/file.py:attr'. "
        "Without it the built-in demo app is served.",
    )
    factory: bool = setting(
        False,
        section=APP,
        flags=["--factory"],
        help="Treat APP as a zero-argument callable that returns the app.",
    )
    app_dir: str = setting(
        ".",
        section=APP,
        flags=["--app-dir"],
        metavar="DIR",
        help="Directory put first on sys.path before the app is imported.",
    )
    interface: str = setting(
        "auto",
        section=APP,
        flags=["--interface"],
        choices=["auto", "asgi3", "asgi2", "wsgi"],
        help="The app's calling convention. 'auto' inspects the callable.",
    )
    lifespan: str = setting(
        "auto",
        section=APP,
        flags=["--lifespan"],
        choices=["auto", "on", "off"],
        help="ASGI lifespan events. 'auto' runs them and carries on quietly if the app does not support them; "
        "'on' makes a failure fatal; 'off' never sends them.",
    )
    root_path: str = setting(
        "",
        section=APP,
        flags=["--root-path"],
        metavar="PATH",
        help="The path prefix the app is mounted under behind a proxy (ASGI root_path, WSGI SCRIPT_NAME).",
    )
    threads: int = setting(
        8,
        section=APP,
        flags=["--threads"],
        validator=_positive,
        metavar="N",
        help="Size of the thread pool that runs a WSGI app, per worker. It bounds how many WSGI requests "
        "run at once; the event loop keeps buffering the rest.",
    )
    wsgi_mode: str = setting(
        "threads",
        section=APP,
        flags=["--wsgi-mode"],
        choices=["threads", "inline"],
        help="Where a WSGI app runs. 'threads': on the --threads pool, so a slow view (a database call) "
        "never holds up other connections. 'inline': on the event loop thread once the request body has "
        "arrived, one request at a time per worker, like gunicorn's sync workers but with the loop still "
        "buffering slow clients; fastest for quick views, run with several workers. Bodies over 1 MiB "
        "still stream on the pool.",
    )
    heap_retain: int = setting(
        16,
        section=APP,
        flags=["--heap-retain"],
        validator=_non_negative,
        metavar="MIB",
        help="Freed memory, in MiB, that a worker keeps for reuse instead of giving it back to the kernel at "
        "once (glibc's malloc trim threshold; allocations under half of it come from the heap). glibc's "
        "default, 128 KiB, makes a worker that reads large request bodies fault the same pages in again for "
        "every request: POST 64 KiB ran at 18k req/s with it and 44k with 16 MiB, for 4 MiB more RSS. 0 keeps "
        "glibc's default. No effect on other C libraries, or when MALLOC_TRIM_THRESHOLD_, "
        "MALLOC_MMAP_THRESHOLD_ or MALLOC_TOP_PAD_ is set.",
    )
    gc_freeze: bool = setting(
        True,
        section=APP,
        flags=["--gc-freeze"],
        help="Once the app is loaded and its lifespan startup is done, collect garbage and move every "
        "object that is left out of the cyclic garbage collector's reach (gc.freeze). The app's modules "
        "and startup state then cost nothing in later collections: a full collection in a worker no "
        "longer pauses every request in flight for milliseconds. With --preload the master freezes the app "
        "before forking, so the workers' collections leave its pages shared. A frozen object is never freed by the "
        "collector, so turn this off for an app that drops large cyclic startup structures at run time.",
    )

    # Listening --------------------------------------------------------------------------------------------
    bind: list[str] = setting(
        [],
        section=LISTEN,
        flags=["-b", "--bind"],
        metavar="ADDRESS",
        help="Address to listen on; repeat for several. 'HOST:PORT', '[::1]:PORT', 'unix:/path' or "
        "'fd://N'. When no bind, uds or fd is given, --host and --port are used.",
    )
    host: str = setting(
        "127.0.0.1",
        section=LISTEN,
        flags=["--host"],
        help="Host to listen on when no --bind is given. Use 0.0.0.0 or :: to listen on every interface.",
    )
    port: int = setting(8000, section=LISTEN, flags=["--port"], validator=_port, help="Port for --host.")
    uds: str | None = setting(
        None,
        section=LISTEN,
        flags=["--uds"],
        metavar="PATH",
        help="Also listen on this unix socket.",
    )
    fd: int | None = setting(
        None,
        section=LISTEN,
        flags=["--fd"],
        metavar="N",
        help="Also listen on this inherited, already-bound socket file descriptor.",
    )
    uds_perms: int = setting(
        0o660,
        section=LISTEN,
        flags=["--uds-perms"],
        validator=_octal_mode,
        metavar="MODE",
        help="Permission bits of a unix socket the server creates (octal, e.g. 660).",
    )
    # nginx and Linux (net.core.somaxconn) both default to 511 or more; gunicorn uses 2048.
    backlog: int = setting(
        2048,
        section=LISTEN,
        flags=["--backlog"],
        validator=_positive,
        metavar="N",
        help="Listen backlog: connections the kernel queues before the server accepts them.",
    )

    # TLS --------------------------------------------------------------------------------------------------
    certfile: str | None = setting(
        None,
        section=TLS,
        flags=["--certfile", "--ssl-certfile"],
        metavar="FILE",
        help="PEM certificate chain; setting it turns TLS on for every TCP and unix listener.",
    )
    keyfile: str | None = setting(
        None,
        section=TLS,
        flags=["--keyfile", "--ssl-keyfile"],
        metavar="FILE",
        help="PEM private key (may be inside --certfile).",
    )
    keyfile_password: str | None = setting(
        None,
        section=TLS,
        flags=["--keyfile-password", "--ssl-keyfile-password"],
        metavar="PASSWORD",
        help="Password that decrypts --keyfile.",
    )
    ca_certs: str | None = setting(
        None,
        section=TLS,
        flags=["--ca-certs", "--ssl-ca-certs"],
        metavar="FILE",
        help="PEM bundle of CAs trusted to sign client certificates.",
    )
    cert_reqs: str = setting(
        "none",
        section=TLS,
        flags=["--cert-reqs", "--ssl-cert-reqs"],
        choices=["none", "optional", "required"],
        help="Whether a client certificate is asked for ('optional') or demanded ('required').",
    )
    ciphers: str = setting(
        "TLSv1.2:!aNULL:!eNULL:!MD5:!DSS:!RC4:!3DES",
        section=TLS,
        flags=["--ciphers", "--ssl-ciphers"],
        help="OpenSSL cipher list for TLS 1.2 (TLS 1.3 suites are OpenSSL's own).",
    )

    # HTTP -------------------------------------------------------------------------------------------------
    loop: str = setting(
        "auto",
        section=HTTP,
        flags=["--loop"],
        choices=["auto", "asyncio", "uvloop"],
        help="Event loop. 'auto' uses uvloop when it is installed.",
    )
    # gunicorn keeps idle connections 2 s, uvicorn 5 s, nginx 75 s. Behind a proxy, keep this longer
    # than the proxy's own idle timeout so the server is never the one that races it.
    keep_alive: float = setting(
        5.0,
        section=HTTP,
        flags=["--keep-alive", "--timeout-keep-alive"],
        validator=_non_negative,
        metavar="SECONDS",
        help="Close a keep-alive connection idle for this long. 0 disables keep-alive.",
    )
    server_header: bool = setting(True, section=HTTP, flags=["--server-header"], help="Send 'Server: monoceros'.")
    date_header: bool = setting(True, section=HTTP, flags=["--date-header"], help="Send a 'Date' header.")

    # WebSocket --------------------------------------------------------------------------------------------
    ws: str = setting(
        "auto",
        section=WS,
        flags=["--ws"],
        choices=["auto", "none"],
        help="WebSocket support. 'auto' serves WebSocket to ASGI apps; 'none' answers upgrade requests with 400 "
        "(as WSGI apps always do).",
    )
    # uvicorn's default; the websockets library's own is 1 MiB. Chat and dashboard payloads are far smaller,
    # but file transfer over a WebSocket is common enough that 1 MiB surprises people.
    ws_max_size: int = setting(
        16777216,
        section=WS,
        flags=["--ws-max-size"],
        validator=_positive,
        metavar="BYTES",
        help="Largest incoming message (after decompression). A bigger one closes the connection with 1009.",
    )
    # uvicorn's default. With --ws-max-size, it bounds what one connection can make the server hold.
    ws_max_queue: int = setting(
        32,
        section=WS,
        flags=["--ws-max-queue"],
        validator=_positive,
        metavar="N",
        help="Received messages held for an app that is not reading. Past it, the server stops reading the socket.",
    )
    # 20 s is below the 30-60 s idle timeouts of common proxies and NATs, so pings also keep paths open.
    ws_ping_interval: float = setting(
        20.0,
        section=WS,
        flags=["--ws-ping-interval"],
        validator=_non_negative,
        metavar="SECONDS",
        help="Send a ping this often. 0 disables pings.",
    )
    ws_ping_timeout: float = setting(
        20.0,
        section=WS,
        flags=["--ws-ping-timeout"],
        validator=_positive,
        metavar="SECONDS",
        help="A ping unanswered for this long closes the connection with 1011.",
    )
    # The websockets library's default.
    ws_close_timeout: float = setting(
        10.0,
        section=WS,
        flags=["--ws-close-timeout"],
        validator=_positive,
        metavar="SECONDS",
        help="After sending a close frame, how long to wait for the client's before dropping the connection.",
    )
    ws_per_message_deflate: bool = setting(
        True,
        section=WS,
        flags=["--ws-per-message-deflate"],
        help="Offer permessage-deflate compression (RFC 7692) to clients that ask for it.",
    )

    # Limits and deadlines ---------------------------------------------------------------------------------
    # nginx reads the request line into one 8 KiB large_client_header_buffers buffer; gunicorn allows 4094.
    limit_request_line: int = setting(
        8190,
        section=LIMITS,
        flags=["--limit-request-line"],
        validator=_positive,
        metavar="BYTES",
        help="Longest request line (method, target, version). Longer gets 414.",
    )
    # gunicorn's limit_request_field_size is 8190: one nginx 8 KiB buffer per header line.
    limit_request_field_size: int = setting(
        8190,
        section=LIMITS,
        flags=["--limit-request-field-size"],
        validator=_positive,
        metavar="BYTES",
        help="Longest single header field (name and value). Longer gets 431.",
    )
    # gunicorn's limit_request_fields is 100; Apache's LimitRequestFields is 100 too.
    limit_request_fields: int = setting(
        100,
        section=LIMITS,
        flags=["--limit-request-fields"],
        validator=_positive,
        metavar="N",
        help="Most header fields in one request. More gets 431.",
    )
    # nginx: large_client_header_buffers 4 8k, so a request head tops out near 32 KiB; we allow double.
    limit_request_headers_size: int = setting(
        65536,
        section=LIMITS,
        flags=["--limit-request-headers-size"],
        validator=_positive,
        metavar="BYTES",
        help="Largest total size of all header fields in one request. More gets 431.",
    )
    # nginx's client_max_body_size is 1 MiB, sized for an edge proxy; an app server receiving uploads needs
    # more. 100 MiB stops a runaway client without tripping ordinary uploads. 0 means no limit.
    limit_request_body: int = setting(
        104857600,
        section=LIMITS,
        flags=["--limit-request-body"],
        validator=_non_negative,
        metavar="BYTES",
        help="Largest request body, for ASGI and WSGI alike; more gets 413. 0 means no limit.",
    )
    # nginx's client_header_timeout is 60 s; Apache's mod_reqtimeout allows 20 s for the head. We take
    # Apache's, since a slowloris holds a whole connection slot for as long as this lasts.
    header_timeout: float = setting(
        20.0,
        section=LIMITS,
        flags=["--header-timeout"],
        validator=_positive,
        metavar="SECONDS",
        help="A client must send a whole request head within this time of starting it, or get 408.",
    )
    # gunicorn's worker_connections is 1000; nginx's worker_connections is 512.
    limit_concurrency: int = setting(
        1000,
        section=LIMITS,
        flags=["--limit-concurrency", "--worker-connections"],
        validator=_positive,
        metavar="N",
        help="Most open connections per worker. Past it, new connections get 503 and are closed.",
    )
    # gunicorn's graceful_timeout is 30 s, as is Kubernetes' terminationGracePeriodSeconds.
    graceful_timeout: float = setting(
        30.0,
        section=LIMITS,
        flags=["--graceful-timeout"],
        validator=_non_negative,
        metavar="SECONDS",
        help="On SIGTERM, how long in-flight requests get to finish before connections are cut.",
    )

    # Proxies ----------------------------------------------------------------------------------------------
    proxy_headers: bool = setting(
        True,
        section=PROXY,
        flags=["--proxy-headers"],
        help="Honour X-Forwarded-For and X-Forwarded-Proto from --forwarded-allow-ips.",
    )
    forwarded_allow_ips: list[str] = setting(
        ["127.0.0.1", "::1"],
        section=PROXY,
        flags=["--forwarded-allow-ips"],
        validator=_networks,
        metavar="IPS",
        help="Comma-separated IPs or CIDR networks of proxies whose X-Forwarded-* headers are trusted; "
        "'*' trusts every peer. Unix-socket peers are always trusted.",
    )

    # Logging ----------------------------------------------------------------------------------------------
    log_level: str = setting(
        "info",
        section=LOG,
        flags=["--log-level"],
        choices=["critical", "error", "warning", "info", "debug"],
        help="Error-log level.",
    )
    access_log: bool = setting(True, section=LOG, flags=["--access-log"], help="Write an access log.")
    access_logfile: str = setting(
        "-",
        section=LOG,
        flags=["--access-logfile"],
        metavar="FILE",
        help="Where the access log goes; '-' is standard output.",
    )
    error_logfile: str = setting(
        "-",
        section=LOG,
        flags=["--error-logfile", "--log-file"],
        metavar="FILE",
        help="Where the error log goes; '-' is standard error.",
    )
    access_logformat: str = setting(
        '%(h)s - - %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" %(D)sus',
        section=LOG,
        flags=["--access-logformat"],
        metavar="FORMAT",
        help="gunicorn-style access-log format: %(h)s client, %(r)s request line, %(s)s status, %(b)s body "
        "bytes, %(D)s microseconds, %({name}i)s request header, %({name}o)s response header; see the docs.",
    )
    access_log_json: bool = setting(
        False,
        section=LOG,
        flags=["--access-log-json"],
        help="Write the access log as one JSON object per line instead of --access-logformat.",
    )
    log_config: str | None = setting(
        None,
        section=LOG,
        flags=["--log-config"],
        metavar="FILE",
        help="A logging.config.dictConfig file (JSON or TOML), or a fileConfig .ini file.",
    )
