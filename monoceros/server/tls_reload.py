"""Certificates that change under a running server: loaded again into the live TLS context.

An ``SSLContext`` gives every new connection the certificate it holds at that moment, and a connection keeps
the one it started with; so loading the new files into the context the listeners already use is all a
reload needs, and nothing is restarted or cut. The new pair is first proven in a context of its own: a
broken certificate or a key that does not match is logged, and the old pair stays. The files are read once
into a private directory, so that what was proven is what is loaded, even if they change again meanwhile
(certbot, cert-manager and the like replace them in several steps).

A worker reloads on SIGHUP when it is the whole server (under a master, HUP starts new workers, which load
the files afresh; one that cannot is not made ready, and the old workers keep serving), and every
``--ssl-reload-interval`` seconds when the files' size, time or inode changed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import shutil
import ssl
import tempfile

from ..config.registry import Config
from ..errors import ConfigError
from .tls import load_chain

log = logging.getLogger("monoceros.error")

Signature = tuple[tuple[int, int, int] | None, ...]


class CertificateReloader:
    """Watches ``--certfile`` and ``--keyfile`` and loads them into ``context`` when they change."""

    def __init__(self, config: Config, context: ssl.SSLContext, loop: asyncio.AbstractEventLoop) -> None:
        assert config.certfile is not None
        self.config = config
        self.context = context
        self.loop = loop
        self.paths = [p for p in (config.certfile, config.keyfile) if p is not None]
        self.signature = self._signature()
        self._timer: asyncio.TimerHandle | None = None

    def start(self) -> None:
        if self.config.ssl_reload_interval > 0:
            self._timer = self.loop.call_later(self.config.ssl_reload_interval, self._check)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _signature(self) -> Signature:
        marks: list[tuple[int, int, int] | None] = []
        for path in self.paths:
            try:
                st = os.stat(path)
                marks.append((st.st_ino, st.st_size, st.st_mtime_ns))
            except OSError:
                marks.append(None)
        return tuple(marks)

    def _check(self) -> None:
        self._timer = self.loop.call_later(self.config.ssl_reload_interval, self._check)
        signature = self._signature()
        if signature != self.signature:
            self.signature = signature
            self.reload("the files changed")

    def reload(self, why: str) -> bool:
        """Prove the files in a fresh context, then load them into the live one. False (logged) when they
        do not load: the old certificate stays."""
        cfg = self.config
        assert cfg.certfile is not None
        private = tempfile.mkdtemp(prefix="monoceros-tls-")  # mode 700: the key is not exposed meanwhile
        try:
            copies = {}
            for name, path in (("certfile", cfg.certfile), ("keyfile", cfg.keyfile)):
                if path is None:
                    continue
                copy = os.path.join(private, name)
                try:
                    shutil.copyfile(path, copy)
                except OSError as exc:
                    log.error("TLS certificate not reloaded (%s): %s %r: %s; keeping the old one", why, name, path, exc)
                    return False
                copies[name] = copy
            proven = dataclasses.replace(cfg, certfile=copies["certfile"], keyfile=copies.get("keyfile"))
            try:
                load_chain(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER), proven)
                load_chain(self.context, proven)
            except ConfigError as exc:
                message = str(exc)
                for name, copy in copies.items():
                    message = message.replace(repr(copy), repr(getattr(cfg, name)))
                log.error("TLS certificate not reloaded (%s): %s; keeping the old one", why, message)
                return False
        finally:
            shutil.rmtree(private, ignore_errors=True)
        self.signature = self._signature()
        log.info("TLS certificate reloaded from %s (%s)", cfg.certfile, why)
        return True
