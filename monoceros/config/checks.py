"""Settings given where they can have no effect are refused, never silently ignored.

Each rule names a setting that a source set explicitly (``Config.given``) to something other than its default,
and the other settings without which it does nothing: ``--keyfile`` without ``--certfile``,
``--max-requests-jitter`` without ``--max-requests``, ``--port`` beside ``--bind``. Defaults never trip a rule, so
``--print-config``'s output, which states every setting, reads back without complaint.

Settings whose relevance depends on the app (``--threads`` for an ASGI app) cannot be judged until the app is
loaded: the worker warns about those (see server/app_loader.py).
"""

from __future__ import annotations

from .registry import Config

_TLS = ("keyfile", "keyfile_password", "ca_certs", "cert_reqs", "ciphers", "ssl_context", "ssl_reload_interval")
_RELOAD = ("reload_delay", "reload_extra_files", "reload_dirs", "reload_includes", "reload_excludes")
_ACCESS = ("access_logfile", "access_logformat", "access_log_json")
_HANDLERS = ("access_logfile", "error_logfile")
_WS = (
    "ws_max_size", "ws_max_queue", "ws_ping_interval", "ws_ping_timeout", "ws_close_timeout", "ws_per_message_deflate",
    "ws_message_timeout",
)  # fmt: skip
_H2 = (
    "http2_engine", "h2c_upgrade", "http2_max_concurrent_streams", "http2_initial_window_size",
    "http2_connection_window_size", "http2_max_frame_size", "http2_max_requests",
)  # fmt: skip
_H3 = (
    "http3_alt_svc", "quic_idle_timeout", "quic_max_streams", "quic_max_stream_data", "quic_max_data",
    "quic_early_data",
)  # fmt: skip
_JITTERS = (
    ("max_requests_jitter", "max_requests"),
    ("max_worker_lifetime_jitter", "max_worker_lifetime"),
    ("max_worker_memory_jitter", "max_worker_memory"),
)


def contradictions(config: Config) -> list[str]:
    """Every setting given where nothing would read it, each as a sentence naming it and what it needs."""
    given = {name for name in config.given if config.chose(name)}
    problems: list[str] = []

    def refuse(names: tuple[str, ...], why: str) -> None:
        for name in names:
            if name in given:
                problems.append(f"setting {name!r} has no effect {why}")

    if config.certfile is None:
        refuse(_TLS, "without 'certfile' (TLS is off)")
    if not config.reload:
        refuse(_RELOAD, "without 'reload'")
    if not config.access_log:
        refuse(_ACCESS, "with the access log turned off ('access_log' is false)")
    elif config.access_log_json:
        refuse(("access_logformat",), "with 'access_log_json' (JSON lines have a fixed shape)")
    if config.log_config is not None:
        refuse(_HANDLERS, "with 'log_config': the logging config file decides where lines go")
    if config.ws == "none":
        refuse(_WS, "with WebSocket turned off ('ws' is 'none')")
    if config.http == "1":
        refuse(_H2, "with HTTP/2 turned off ('http' is '1')")
    elif config.http == "2":
        refuse(("h2c_upgrade",), "with 'http' '2': h2c upgrades an HTTP/1.1 request, which is not served")
    if not config.http3:
        refuse(_H3, "without 'http3'")
    elif config.certfile is None:
        problems.append("setting 'http3' needs 'certfile' and 'keyfile': QUIC is always encrypted (TLS 1.3)")
    elif not _aioquic_installed():
        problems.append(
            "setting 'http3' needs aioquic, which is not installed: pip install 'monoceros[http3]' (Python 3.11+)"
        )
    for jitter, base in _JITTERS:
        if not getattr(config, base) and getattr(config, jitter):
            refuse((jitter,), f"without {base!r}")
    if config.user is None:
        refuse(("initgroups",), "without 'user'")
    if not config.proxy_headers and not config.proxy_protocol:
        refuse(("forwarded_allow_ips",), "with 'proxy_headers' and 'proxy_protocol' off: no proxy is trusted")
    if config.admin_bind is None:
        refuse(("admin_token", "admin_basic_auth"), "without 'admin_bind' (no admin listener)")
    if config.capture_output and config.error_logfile == "-" and config.log_config is None:
        refuse(("capture_output",), "while 'error_logfile' is standard error: name a file")
    if config.bind or config.uds is not None or config.fd is not None:
        refuse(("host", "port"), "beside 'bind', 'uds' or 'fd': put the address in 'bind' (HOST:PORT)")
    if config.uds is None and not any(item.strip().startswith("unix:") for item in config.bind):
        refuse(("uds_perms",), "without a unix socket to listen on ('uds' or a 'bind' of unix:PATH)")
    if config.paste is not None:
        refuse(("app", "factory"), "with 'paste': the PasteDeploy file names the app")
    return problems


def _aioquic_installed() -> bool:
    try:
        import aioquic  # noqa: F401  # the package alone: its QUIC modules load only when HTTP/3 is served
    except ImportError:
        return False
    return True
