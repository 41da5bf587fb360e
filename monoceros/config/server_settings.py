"""Settings of the server inside each worker: the app, its listeners, TLS, proxies and logs.

The HTTP conversation's own settings (headers, WebSocket, limits) are in http_settings.py.
"""

from __future__ import annotations

from dataclasses import dataclass

from .fields import _networks, _non_negative, _octal_mode, _port, _positive, setting

# -- the settings ---------------------------------------------------------------------------------------------

APP = "Application"
LISTEN = "Listening"
TLS = "TLS"
PROXY = "Proxies"
LOG = "Logging"


@dataclass(frozen=True)
class ServerSettings:
    """The settings of one worker's server."""

    # Application ------------------------------------------------------------------------------------------
    app: str | None = setting(
        None,
        section=APP,
        flag="",  # the positional APP
        metavar="APP",
        aliases=["wsgi_app"],
        help="The app to serve: 'module:attr', 'path/to/file.py:attr', a factory 'module:create_app' (called "
        "with no arguments; detected, or say so with --factory) or 'module:create_app(\"arg\", debug=True)' "
        "(literal arguments only). Without it (and without --paste) the built-in demo app is served.",
    )
    factory: bool = setting(
        False,
        section=APP,
        flags=["--call"],
        help="Treat APP as a zero-argument callable that returns the app. Without it, a callable that takes no "
        "arguments is detected as a factory and called, with a warning.",
    )
    paste: str | None = setting(
        None,
        section=APP,
        flags=["--paster"],
        metavar="FILE[#NAME]",
        help="Load the WSGI app from a PasteDeploy .ini file (its [app:main] section, or [app:NAME]), as "
        "gunicorn's --paste does; its [loggers] configure logging unless --log-config is given. Needs "
        "PasteDeploy (pip install PasteDeploy).",
    )
    app_dir: str = setting(
        ".",
        section=APP,
        metavar="DIR",
        help="Directory put first on sys.path before the app is imported.",
    )
    pythonpath: list[str] = setting(
        [],
        section=APP,
        metavar="DIRS",
        help="More directories to put on sys.path before the app is imported (comma-separated or repeated), "
        "after --app-dir.",
    )
    interface: str = setting(
        "auto",
        section=APP,
        choices=["auto", "asgi3", "asgi2", "wsgi"],
        help="The app's calling convention. 'auto' inspects the callable.",
    )
    lifespan: str = setting(
        "auto",
        section=APP,
        flags=["--asgi-lifespan"],
        choices=["auto", "on", "off"],
        help="ASGI lifespan events. 'auto' runs them and carries on quietly if the app does not support them; "
        "'on' makes a failure fatal; 'off' never sends them.",
    )
    root_path: str = setting(
        "",
        section=APP,
        flags=["--url-prefix"],
        metavar="PATH",
        help="The path prefix the app is mounted under behind a proxy (ASGI root_path, WSGI SCRIPT_NAME; for "
        "WSGI it is taken off the front of PATH_INFO, as waitress's --url-prefix does).",
    )
    threads: int = setting(
        8,
        section=APP,
        validator=_positive,
        metavar="N",
        help="Size of the thread pool that runs a WSGI app, per worker. It bounds how many WSGI requests "
        "run at once; the event loop keeps buffering the rest.",
    )
    wsgi_mode: str = setting(
        "threads",
        section=APP,
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
        validator=_non_negative,
        metavar="MIB",
        help="Freed memory, in MiB, that a worker keeps for reuse instead of giving it back to the kernel at "
        "once (glibc's malloc trim threshold; allocations under half of it come from the heap). glibc's "
        "default, 128 KiB, makes a worker that reads large request bodies fault the same pages in again for "
        "every request (figures in docs/performance.md, 'Memory'). 0 keeps glibc's default. No effect on other "
        "C libraries, or when MALLOC_TRIM_THRESHOLD_, MALLOC_MMAP_THRESHOLD_ or MALLOC_TOP_PAD_ is set.",
    )
    gc_freeze: bool = setting(
        True,
        section=APP,
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
        flags=["-b", "--listen"],
        metavar="ADDRESS",
        help="Address to listen on; repeat for several. 'HOST:PORT', '[::1]:PORT', '*:PORT' (every IPv4 and "
        "IPv6 interface), 'unix:/path' or 'fd://N'. When no bind, uds or fd is given, --host and --port are used.",
    )
    host: str = setting(
        "127.0.0.1",
        section=LISTEN,
        help="Host to listen on when no --bind is given. Use 0.0.0.0 or :: to listen on every interface.",
    )
    port: int = setting(8000, section=LISTEN, validator=_port, help="Port for --host.")
    uds: str | None = setting(
        None,
        section=LISTEN,
        flags=["--unix-socket"],
        metavar="PATH",
        help="Also listen on this unix socket.",
    )
    fd: int | None = setting(
        None,
        section=LISTEN,
        metavar="N",
        help="Also listen on this inherited, already-bound socket file descriptor.",
    )
    # uvicorn's mode, and what gunicorn's default umask of 0 gives: a proxy such as nginx, running as its own
    # user, can connect. 660 keeps out everyone outside the socket's group (set --group to the proxy's).
    uds_perms: int = setting(
        0o666,
        section=LISTEN,
        flags=["--unix-socket-perms"],
        validator=_octal_mode,
        metavar="MODE",
        help="Permission bits of a unix socket the server creates (octal). 666 lets any local user connect, "
        "nginx included; use 660 with --group set to the proxy's group to keep others out.",
    )
    # nginx and Linux (net.core.somaxconn) both default to 511 or more; gunicorn uses 2048.
    backlog: int = setting(
        2048,
        section=LISTEN,
        validator=_positive,
        metavar="N",
        help="Listen backlog: connections the kernel queues before the server accepts them.",
    )

    # TLS --------------------------------------------------------------------------------------------------
    certfile: str | None = setting(
        None,
        section=TLS,
        flags=["--ssl-certfile"],
        aliases=["ssl_certfile"],
        metavar="FILE",
        help="PEM certificate chain; setting it turns TLS on for every TCP and unix listener.",
    )
    keyfile: str | None = setting(
        None,
        section=TLS,
        flags=["--ssl-keyfile"],
        aliases=["ssl_keyfile"],
        metavar="FILE",
        help="PEM private key (may be inside --certfile).",
    )
    keyfile_password: str | None = setting(
        None,
        section=TLS,
        flags=["--ssl-keyfile-password"],
        aliases=["ssl_keyfile_password"],
        metavar="PASSWORD",
        help="Password that decrypts --keyfile.",
    )
    ca_certs: str | None = setting(
        None,
        section=TLS,
        flags=["--ssl-ca-certs"],
        aliases=["ssl_ca_certs"],
        metavar="FILE",
        help="PEM bundle of CAs trusted to sign client certificates.",
    )
    cert_reqs: str = setting(
        "none",
        section=TLS,
        flags=["--ssl-cert-reqs"],
        aliases=["ssl_cert_reqs"],
        choices=["none", "optional", "required"],
        synonyms={"0": "none", "1": "optional", "2": "required"},
        help="Whether a client certificate is asked for ('optional') or demanded ('required'). The ssl "
        "module's numbers (0, 1, 2) that gunicorn and uvicorn take mean the same.",
    )
    ciphers: str = setting(
        "TLSv1.2:!aNULL:!eNULL:!MD5:!DSS:!RC4:!3DES",
        section=TLS,
        flags=["--ssl-ciphers"],
        aliases=["ssl_ciphers"],
        help="OpenSSL cipher list for TLS 1.2 (TLS 1.3 suites are OpenSSL's own).",
    )
    ssl_reload_interval: float = setting(
        0.0,
        section=TLS,
        validator=_non_negative,
        metavar="SECONDS",
        help="Check --certfile and --keyfile this often and load them again when they change: new connections "
        "get the new certificate, open ones keep theirs, and a broken one is logged and the old one kept. "
        "0 (the default) checks only on SIGHUP.",
    )

    # Proxies ----------------------------------------------------------------------------------------------
    proxy_headers: bool = setting(
        True,
        section=PROXY,
        help="Honour Forwarded (RFC 7239), or else X-Forwarded-For, -Proto and -Host, from --forwarded-allow-ips.",
    )
    forwarded_allow_ips: list[str] = setting(
        ["127.0.0.1", "::1"],
        section=PROXY,
        validator=_networks,
        metavar="IPS",
        help="Comma-separated IPs or CIDR networks of proxies whose Forwarded and X-Forwarded-* headers, and "
        "PROXY protocol headers, are trusted; '*' trusts every peer. Unix-socket peers are always trusted.",
    )
    proxy_protocol: bool = setting(
        False,
        section=PROXY,
        help="Every connection starts with a PROXY protocol header, v1 or v2 (HAProxy send-proxy, AWS NLB, "
        "nginx's proxy_protocol), which gives the client's address. Only peers in --forwarded-allow-ips may "
        "send one; a connection from elsewhere, or with a malformed or late header, is closed unanswered.",
    )

    # Logging ----------------------------------------------------------------------------------------------
    log_level: str = setting(
        "info",
        section=LOG,
        aliases=["loglevel"],
        choices=["critical", "error", "warning", "info", "debug", "trace"],
        help="Error-log level. 'trace' (uvicorn's) lets through everything, below debug too.",
    )
    access_log: bool = setting(True, section=LOG, help="Write an access log.")
    access_logfile: str = setting(
        "-",
        section=LOG,
        aliases=["accesslog"],
        metavar="FILE",
        help="Where the access log goes; '-' is standard output.",
    )
    error_logfile: str = setting(
        "-",
        section=LOG,
        flags=["--log-file"],
        aliases=["errorlog"],
        metavar="FILE",
        help="Where the error log goes; '-' is standard error.",
    )
    access_logformat: str = setting(
        '%(h)s - - %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" %(D)sus',
        section=LOG,
        aliases=["access_log_format"],
        metavar="FORMAT",
        help="gunicorn-style access-log format: %(h)s client, %(r)s request line, %(s)s status, %(b)s body "
        "bytes, %(D)s microseconds, %({name}i)s request header, %({name}o)s response header; see the docs.",
    )
    access_log_json: bool = setting(
        False,
        section=LOG,
        help="Write the access log as one JSON object per line instead of --access-logformat.",
    )
    log_config: str | None = setting(
        None,
        section=LOG,
        aliases=["logconfig"],
        metavar="FILE",
        help="A logging.config.dictConfig file (JSON, TOML, or YAML with PyYAML installed), or a fileConfig "
        ".ini file. It is then in charge of the log handlers.",
    )
    capture_output: bool = setting(
        False,
        section=LOG,
        help="Send what the app prints to standard output and error into --error-logfile (which must be a file).",
    )
