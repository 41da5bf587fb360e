"""Building the server's TLS context from the settings.

Every way the TLS settings can be wrong is caught here, at startup, as a
:class:`~monoceros.errors.ConfigError` that names the setting and the file, rather than as an OpenSSL error
on the first handshake.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Sequence

from ..config.registry import Config
from ..errors import ConfigError
from ..hooks import run_hook

DEFAULT_ALPN: tuple[str, ...] = ("http/1.1",)
"""Protocols offered in ALPN. HTTP/2 support will pass ``("h2", "http/1.1")``."""

_CERT_REQS = {
    "none": ssl.CERT_NONE,
    "optional": ssl.CERT_OPTIONAL,
    "required": ssl.CERT_REQUIRED,
}


class _NoPassword(Exception):
    """Raised from the password callback so OpenSSL never prompts on the terminal."""


def create_ssl_context(cfg: Config, alpn_protocols: Sequence[str] = DEFAULT_ALPN) -> ssl.SSLContext | None:
    """The server-side context for ``cfg``, or None when TLS is off (no ``certfile``).

    An ``ssl_context`` hook, as in gunicorn, gets the settings and a factory of this default context, and
    returns the context to use (typically the default one, adjusted)."""
    context = _default_context(cfg, alpn_protocols)
    if context is None or cfg.ssl_context is None:
        return context
    chosen = run_hook(cfg, "ssl_context", cfg, lambda: _default_context(cfg, alpn_protocols))
    if not isinstance(chosen, ssl.SSLContext):
        raise ConfigError(f"the ssl_context hook must return an ssl.SSLContext, not {type(chosen).__name__}")
    return chosen


def _default_context(cfg: Config, alpn_protocols: Sequence[str]) -> ssl.SSLContext | None:
    if cfg.certfile is None:
        for name in ("keyfile", "keyfile_password", "ca_certs"):
            if getattr(cfg, name) is not None:
                raise ConfigError(f"{name} is set but certfile is not; set certfile to turn TLS on")
        if cfg.cert_reqs != "none":
            raise ConfigError(f"cert_reqs {cfg.cert_reqs!r} needs TLS; set certfile to turn TLS on")
        return None

    try:
        verify_mode = _CERT_REQS[cfg.cert_reqs]
    except KeyError:
        raise ConfigError(f"cert_reqs {cfg.cert_reqs!r}: expected one of none, optional, required") from None
    if verify_mode != ssl.CERT_NONE and cfg.ca_certs is None:
        raise ConfigError(f"cert_reqs {cfg.cert_reqs!r} needs ca_certs to verify client certificates")

    _check_readable("certfile", cfg.certfile)
    if cfg.keyfile is not None:
        _check_readable("keyfile", cfg.keyfile)
    if cfg.ca_certs is not None:
        _check_readable("ca_certs", cfg.ca_certs)

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    # Client-initiated renegotiation only costs the server CPU; nothing legitimate needs it.
    ctx.options |= getattr(ssl, "OP_NO_RENEGOTIATION", 0)
    load_chain(ctx, cfg)
    if cfg.ca_certs is not None:
        try:
            ctx.load_verify_locations(cafile=cfg.ca_certs)
        except (ssl.SSLError, OSError) as exc:
            raise ConfigError(f"ca_certs {cfg.ca_certs!r}: cannot load CA certificates: {_why(exc)}") from exc
    ctx.verify_mode = verify_mode
    try:
        ctx.set_ciphers(cfg.ciphers)
    except ssl.SSLError:
        raise ConfigError(f"ciphers {cfg.ciphers!r}: OpenSSL selects no cipher from this list") from None
    if alpn_protocols:
        ctx.set_alpn_protocols(list(alpn_protocols))
    return ctx


def _check_readable(name: str, path: str) -> None:
    if not os.path.exists(path):
        raise ConfigError(f"{name} {path!r}: file not found")
    if not os.path.isfile(path):
        raise ConfigError(f"{name} {path!r}: not a regular file")
    if not os.access(path, os.R_OK):
        raise ConfigError(f"{name} {path!r}: permission denied")


def load_chain(ctx: ssl.SSLContext, cfg: Config) -> None:
    """Load certificate and key, checking each file first so an error names the file at fault.

    OpenSSL reports a bad certificate, a bad key and a wrong password alike as "PEM lib".
    """
    assert cfg.certfile is not None
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cafile=cfg.certfile)
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(f"certfile {cfg.certfile!r}: no PEM certificate in it: {_why(exc)}") from exc

    key_setting, key_path = "certfile", cfg.certfile
    if cfg.keyfile is not None:
        key_setting, key_path = "keyfile", cfg.keyfile
    try:
        with open(key_path, "rb") as f:
            key_pem = f.read()
    except OSError as exc:
        raise ConfigError(f"{key_setting} {key_path!r}: cannot read: {_why(exc)}") from exc
    if b"PRIVATE KEY-----" not in key_pem:
        raise ConfigError(f"{key_setting} {key_path!r}: no PEM private key in it")
    encrypted = b"ENCRYPTED" in key_pem

    password = cfg.keyfile_password

    def give_password() -> str:
        if password is None:
            raise _NoPassword
        return password

    try:
        ctx.load_cert_chain(cfg.certfile, cfg.keyfile, password=give_password)
    except _NoPassword:
        raise ConfigError(f"{key_setting} {key_path!r}: the key is encrypted; set keyfile_password") from None
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            msg = f"{key_setting} {key_path!r}: the key does not match the certificate in {cfg.certfile!r}"
        elif encrypted:
            msg = f"{key_setting} {key_path!r}: cannot decrypt the key; is keyfile_password right?"
        else:
            msg = f"{key_setting} {key_path!r}: cannot load the private key: {_why(exc)}"
        raise ConfigError(msg) from exc
    except OSError as exc:
        raise ConfigError(f"certfile {cfg.certfile!r}: cannot read: {_why(exc)}") from exc


def _why(exc: OSError) -> str:
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return f"{exc.reason} ({exc.library or 'ssl'})"
    return exc.strerror or str(exc)
