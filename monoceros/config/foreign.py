"""Other servers' options that are not monoceros settings, and what to tell their users.

A gunicorn, uvicorn, daphne, waitress or hypercorn user brings their command line and config file. Their names
that mean exactly what a monoceros setting means are that setting's aliases, declared with it in the registry.
What is left is here, so that nothing is silently ignored and nothing silently means something else:

- ``NOT_NEEDED``: an option whose job monoceros does anyway, or that only chose an implementation (gunicorn's
  ``worker_tmp_dir``, uvicorn's ``--http2``). It is accepted, and a note saying so is logged at start.
- ``REFUSED``: an option monoceros cannot honour. Startup fails with a message that names the nearest monoceros
  setting or the way to get the same result.

Each entry names the option once, as a config-file name; its command-line spelling is derived (``--worker-tmp-dir``),
and ``flags`` adds other spellings (short flags, underscores as gunicorn writes some).
"""

from __future__ import annotations

from dataclasses import dataclass

NOT_NEEDED = "not needed"
REFUSED = "refused"


@dataclass(frozen=True)
class Foreign:
    """One option of another server that is not a monoceros setting."""

    name: str
    kind: str  # NOT_NEEDED or REFUSED
    says: str  # why, and what to use instead
    takes_value: bool = True  # on the command line; a switch takes none
    flags: tuple[str, ...] = ()

    @property
    def cli_flags(self) -> tuple[str, ...]:
        return ("--" + self.name.replace("_", "-"), *self.flags)


def _needless(name: str, says: str, *, takes_value: bool = True, flags: tuple[str, ...] = ()) -> Foreign:
    return Foreign(name, NOT_NEEDED, says, takes_value, flags)


def _refused(name: str, says: str, *, takes_value: bool = True, flags: tuple[str, ...] = ()) -> Foreign:
    return Foreign(name, REFUSED, says, takes_value, flags)


_HOOK = "use a WSGI or ASGI middleware instead"
_PARSER = "monoceros's HTTP/1.1 parser (llhttp, strict mode) has no switch to accept such requests"

FOREIGN: tuple[Foreign, ...] = (
    # -- gunicorn ----------------------------------------------------------------------------------------
    _needless(
        "worker_class",
        "monoceros tells WSGI from ASGI by itself and runs both on its event loop (no gevent or eventlet "
        "greenlets: blocking WSGI views run on --threads)",
        flags=("-k",),
    ),
    _needless("worker_tmp_dir", "workers send their heartbeats through shared memory, not a temporary file"),
    _needless("reload_engine", "--reload always uses watchfiles (inotify)"),
    _needless(
        "enable_stdio_inheritance", "workers always inherit standard output and error", takes_value=False, flags=("-R",)
    ),
    _needless("http_parser", "monoceros always parses HTTP/1.1 with httptools (llhttp)"),
    _needless("ssl_version", "TLS 1.2 and 1.3 are negotiated; older versions are never offered"),
    _needless("do_handshake_on_connect", "the TLS handshake always runs as the connection opens", takes_value=False),
    _needless(
        "suppress_ragged_eofs", "a TLS peer that closes without close_notify is treated as gone", takes_value=False
    ),
    _needless("no_control_socket", "monoceros has no control socket", takes_value=False),
    _refused("control_socket", "monoceros has no control socket; signal the master (see docs/deployment.md)"),
    _refused("control_socket_mode", "monoceros has no control socket; signal the master (see docs/deployment.md)"),
    _refused("spew", "monoceros has no line tracer; run under python -X importtime or a debugger", takes_value=False),
    _refused("logger_class", "configure the 'monoceros.error' and 'monoceros.access' loggers with --log-config"),
    _refused("logconfig_dict", "put the dictionary in a JSON, TOML or YAML file and pass it with --log-config"),
    _refused("logconfig_json", "use --log-config FILE.json", flags=("--log-config-json",)),
    _refused(
        "syslog", "use --log-config with a logging.handlers.SysLogHandler", takes_value=False, flags=("--log-syslog",)
    ),
    _refused("syslog_addr", "use --log-config with a logging.handlers.SysLogHandler", flags=("--log-syslog-to",)),
    _refused("syslog_prefix", "use --log-config with a logging.handlers.SysLogHandler", flags=("--log-syslog-prefix",)),
    _refused(
        "syslog_facility", "use --log-config with a logging.handlers.SysLogHandler", flags=("--log-syslog-facility",)
    ),
    _refused("disable_redirect_access_to_syslog", "monoceros does not log to syslog by itself", takes_value=False),
    _refused("statsd_host", "monoceros has no statsd client"),
    _refused("statsd_prefix", "monoceros has no statsd client"),
    _refused("dogstatsd_tags", "monoceros has no statsd client"),
    _refused("enable_backlog_metric", "monoceros has no statsd client", takes_value=False),
    _refused(
        "proxy_protocol",
        "monoceros does not read the PROXY protocol yet; pass the client address with "
        "X-Forwarded-For and --forwarded-allow-ips",
        takes_value=False,
    ),
    _refused(
        "proxy_allow_ips",
        "monoceros does not read the PROXY protocol yet; see --forwarded-allow-ips",
        flags=("--proxy-allow-from",),
    ),
    _refused("protocol", "monoceros speaks HTTP (and WebSocket), not uwsgi"),
    _refused("uwsgi_allow_ips", "monoceros speaks HTTP (and WebSocket), not uwsgi", flags=("--uwsgi-allow-from",)),
    _refused("http_protocols", "use --http: 'auto' serves HTTP/1.1 and HTTP/2, '1' or '2' one of them"),
    _needless("http2_cleartext", "HTTP/2 is served on cleartext ports by default (prior knowledge and h2c)"),
    _refused("paste_global", "pass the values in the PasteDeploy file itself"),
    _refused("permit_obsolete_folding", _PARSER, takes_value=False),
    _refused("strip_header_spaces", _PARSER, takes_value=False),
    _refused("permit_unconventional_http_method", _PARSER, takes_value=False),
    _refused("permit_unconventional_http_version", _PARSER, takes_value=False),
    _refused("casefold_http_method", _PARSER, takes_value=False),
    _refused("tolerate_dangerous_framing", _PARSER, takes_value=False),
    _refused(
        "forwarder_headers",
        "monoceros reads only X-Forwarded-For and X-Forwarded-Proto from trusted "
        "proxies (--forwarded-allow-ips); set SCRIPT_NAME with --root-path",
    ),
    _refused(
        "header_map",
        "monoceros drops request headers whose names hold an underscore, as gunicorn's "
        "default 'drop' does; there is no other mode",
    ),
    _refused("secure_scheme_headers", "monoceros believes X-Forwarded-Proto from --forwarded-allow-ips only"),
    _refused("asgi_disconnect_grace_period", "an ASGI app learns of a disconnect at once (http.disconnect)"),
    _refused("dirty_apps", "monoceros has no dirty worker pool", flags=("--dirty-app",)),
    _refused("dirty_workers", "monoceros has no dirty worker pool"),
    _refused("dirty_timeout", "monoceros has no dirty worker pool"),
    _refused("dirty_threads", "monoceros has no dirty worker pool"),
    _refused("dirty_graceful_timeout", "monoceros has no dirty worker pool"),
    _refused("tmp_upload_dir", "request bodies are streamed to the app, never spooled to disk"),
    _refused("pre_request", _HOOK),
    _refused("post_request", _HOOK),
    _refused("check_config", "pass --check-config on the command line", takes_value=False),
    _refused("print_config", "pass --print-config on the command line", takes_value=False),
    # -- uvicorn -----------------------------------------------------------------------------------------
    _needless("use_colors", "monoceros does not colour its log lines", takes_value=False),
    _needless("no_use_colors", "monoceros does not colour its log lines", takes_value=False),
    _needless("http2", "HTTP/2 is served by default (--http auto)", takes_value=False),
    _refused("h11_max_incomplete_event_size", "the request head is bounded by --limit-request-headers-size"),
    _refused(
        "reset_contextvars", "each request already runs in its own copy of the server's context", takes_value=False
    ),
    # -- daphne ------------------------------------------------------------------------------------------
    _refused(
        "websocket_timeout", "monoceros does not cut WebSocket connections by age", flags=("--websocket-timeout",)
    ),
    _refused(
        "websocket_connect_timeout",
        "the handshake is bounded by --header-timeout",
        flags=("--websocket-connect-timeout",),
    ),
    _refused("endpoint", "use -b/--bind: HOST:PORT, unix:PATH or fd://N (TLS with --certfile)"),
    _refused("verbosity", "use --log-level", flags=("-v",)),
    _refused("http_timeout", "monoceros does not time out a request the app is still handling"),
    _refused("log_fmt", "use --access-logformat, or --log-config for the error log"),
    _refused("websocket_max_frame_size", "use --ws-max-size (it bounds whole messages, so frames too)"),
    _refused("application_close_timeout", "an app still running at shutdown gets --graceful-timeout"),
    _refused("proxy_headers_host", "monoceros takes the client address from X-Forwarded-For only"),
    _refused("proxy_headers_port", "monoceros takes the client address from X-Forwarded-For only"),
    _refused(
        "server_name",
        "daphne's -s NAME is --header 'server: NAME' here; hypercorn's --server-name (the "
        "Host names served) has no equivalent: filter Host in the app",
        flags=("-s",),
    ),
    # -- waitress ----------------------------------------------------------------------------------------
    _needless("recv_bytes", "monoceros reads what the event loop hands it"),
    _needless("send_bytes", "monoceros writes whole responses and lets the kernel segment them"),
    _needless("outbuf_overflow", "responses are not spooled: send waits while the client is behind"),
    _needless("outbuf_high_watermark", "responses are not spooled: send waits while the client is behind"),
    _needless("inbuf_overflow", "request bodies are streamed to the app, never spooled to disk"),
    _needless("cleanup_interval", "each connection has its own timer"),
    _needless("asyncore_loop_timeout", "monoceros runs on an asyncio event loop"),
    _needless("asyncore_use_poll", "monoceros runs on an asyncio event loop", takes_value=False),
    _needless("channel_request_lookahead", "monoceros reads ahead and tells the app of a disconnect anyway"),
    _needless("log_socket_errors", "client disconnects are never logged as errors", takes_value=False),
    _needless("no_log_socket_errors", "client disconnects are never logged as errors", takes_value=False),
    _refused("ipv4", "list the addresses to listen on with -b", takes_value=False),
    _refused("no_ipv4", "list the addresses to listen on with -b", takes_value=False),
    _refused("ipv6", "list the addresses to listen on with -b", takes_value=False),
    _refused("no_ipv6", "list the addresses to listen on with -b", takes_value=False),
    _refused("url_scheme", "the scheme is https with --certfile, or X-Forwarded-Proto from a trusted proxy"),
    _refused("ident", "use --header 'server: NAME' (and see --server-header)"),
    _refused(
        "channel_timeout", "idle connections close after --keep-alive and slow request heads after --header-timeout"
    ),
    _refused("expose_tracebacks", "an app's exception is logged, never sent to the client", takes_value=False),
    _refused("no_expose_tracebacks", "an app's exception is logged, never sent to the client", takes_value=False),
    # -- hypercorn ---------------------------------------------------------------------------------------
    _needless("debug", "use --log-level debug", takes_value=False),
    _refused(
        "insecure_bind",
        "with --certfile every listener speaks TLS; run a second monoceros for plain HTTP",
        flags=("--insecure-bind",),
    ),
    _refused("quic_bind", "monoceros does not serve HTTP/3 yet"),
    _refused("read_timeout", "request heads are bounded by --header-timeout"),
    _refused("verify_mode", "use --cert-reqs none|optional|required"),
    _refused("error_log", "use --error-logfile FILE (or --log-config)"),
)

BY_NAME: dict[str, Foreign] = {entry.name: entry for entry in FOREIGN}
BY_FLAG: dict[str, Foreign] = {flag: entry for entry in FOREIGN for flag in entry.cli_flags}


def note(entry: Foreign, spelled: str) -> str:
    """The message for ``entry`` as the user spelt it."""
    if entry.kind == NOT_NEEDED:
        return f"{spelled} is not needed: {entry.says}; ignored"
    return f"{spelled} is not supported: {entry.says}"
