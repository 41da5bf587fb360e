"""Turning the listening settings into bound, listening sockets.

The master creates every listener before it forks, so workers inherit them and a bad address is reported
once, at startup, as a :class:`~monoceros.errors.BindError` instead of once per worker.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import stat
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Literal

from ..config.registry import Config
from ..errors import BindError, ConfigError

ListenKind = Literal["tcp", "unix", "fd"]

DEFAULT_PORT = 8000
"""Port used when a bind address names only a host, as gunicorn does."""

ALL_INTERFACES = "0.0.0.0"
"""Host used for ':PORT' and a bare 'PORT', as nginx's ``listen 8000`` does."""


@dataclass(frozen=True)
class ListenSpec:
    """One address to listen on, before any socket exists. Hashable, so duplicates can be dropped."""

    kind: ListenKind
    host: str = ""
    port: int = 0
    path: str = ""
    fd: int = -1

    def __str__(self) -> str:
        """The address the way a user writes it in ``--bind``, for log lines and error messages."""
        if self.kind == "unix":
            return f"unix:{self.path}"
        if self.kind == "fd":
            return f"fd://{self.fd}"
        if ":" in self.host:
            return f"[{self.host}]:{self.port}"
        return f"{self.host}:{self.port}"


# -- parsing -------------------------------------------------------------------------------------------------


def parse_bind(value: str) -> ListenSpec:
    """Parse one ``--bind`` value: 'HOST:PORT', '[V6]:PORT', ':PORT', 'PORT', 'HOST', 'unix:PATH', 'fd://N'.

    A bare host listens on port 8000 and a bare port on every IPv4 interface. An IPv6 address must be in
    brackets, because '::1:8000' is itself a valid address and guessing would bind the wrong thing.
    """
    text = value.strip()
    if not text:
        raise _bind_error(value, "an address is needed")
    if text.startswith("unix:"):
        path = text[7:] if text.startswith("unix://") else text[5:]
        if not path:
            raise _bind_error(value, "the unix socket path is empty")
        if "\0" in path:
            raise _bind_error(value, "the unix socket path contains a NUL byte")
        return ListenSpec("unix", path=path)
    if text.startswith("fd://"):
        digits = text[5:]
        if not (digits.isascii() and digits.isdigit()):
            raise _bind_error(value, "fd:// must be followed by a file descriptor number")
        return ListenSpec("fd", fd=int(digits))
    if text.startswith("tcp://"):
        text = text[6:]
    elif "://" in text:
        raise _bind_error(value, "expected HOST:PORT, [V6]:PORT, unix:PATH or fd://N, not a URL")
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep:
            raise _bind_error(value, "missing ']' after the IPv6 address")
        if rest and not rest.startswith(":"):
            raise _bind_error(value, "expected ':PORT' after ']'")
        port = _parse_port(value, rest[1:]) if rest else DEFAULT_PORT
        return ListenSpec("tcp", host=_ipv6_host(value, host), port=port)
    if text.isascii() and text.isdigit():
        return ListenSpec("tcp", host=ALL_INTERFACES, port=_parse_port(value, text))
    if text.count(":") > 1:
        raise _bind_error(value, "put an IPv6 address in brackets, as in '[::1]:8000'")
    host, sep, port_text = text.partition(":")
    port = _parse_port(value, port_text) if sep else DEFAULT_PORT
    return ListenSpec("tcp", host=_tcp_host(value, host) if host else ALL_INTERFACES, port=port)


def specs_from_config(cfg: Config) -> list[ListenSpec]:
    """Every listener the settings ask for, in order, without duplicates.

    ``bind``, ``uds`` and ``fd`` add up; ``host``/``port`` are used only when none of them is given.
    """
    specs = [spec for item in cfg.bind for spec in _expand_wildcard(item)]
    if cfg.uds is not None:
        if not cfg.uds or "\0" in cfg.uds:
            raise ConfigError(f"uds {cfg.uds!r}: not a usable unix socket path")
        specs.append(ListenSpec("unix", path=cfg.uds))
    if cfg.fd is not None:
        if cfg.fd < 0:
            raise ConfigError(f"fd {cfg.fd!r}: a file descriptor is zero or more")
        specs.append(ListenSpec("fd", fd=cfg.fd))
    if not specs:
        host = cfg.host.strip()
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        if not host:
            host = ALL_INTERFACES
        elif ":" in host:
            host = _ipv6_host(cfg.host, host, setting="host")
        else:
            host = _tcp_host(cfg.host, host, setting="host")
        specs.append(ListenSpec("tcp", host=host, port=cfg.port))
    return list(dict.fromkeys(specs))


def _expand_wildcard(value: str) -> list[ListenSpec]:
    """waitress's '*:PORT' means every interface of both families: 0.0.0.0 and, where IPv6 is, [::]."""
    text = value.strip()
    if text != "*" and not text.startswith("*:"):
        return [parse_bind(value)]
    port = _parse_port(value, text[2:]) if text.startswith("*:") else DEFAULT_PORT
    specs = [ListenSpec("tcp", host=ALL_INTERFACES, port=port)]
    if _ipv6_works():
        specs.append(ListenSpec("tcp", host="::", port=port))
    return specs


def _ipv6_works() -> bool:
    """Can this machine listen on IPv6 at all (a container may have it compiled in but turned off)?"""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::", 0))
    except OSError:
        return False
    return True


def _bind_error(value: str, reason: str, setting: str = "bind") -> ConfigError:
    return ConfigError(f"{setting} {value!r}: {reason}")


def _parse_port(value: str, text: str) -> int:
    if not (text.isascii() and text.isdigit()):
        raise _bind_error(value, f"port {text!r} is not a number")
    port = int(text)
    if port > 65535:
        raise _bind_error(value, "port must be 0 to 65535")
    return port


def _ipv6_host(value: str, host: str, setting: str = "bind") -> str:
    try:
        return str(ipaddress.IPv6Address(host))
    except ValueError:
        raise _bind_error(value, f"{host!r} is not an IPv6 address", setting) from None


def _tcp_host(value: str, host: str, setting: str = "bind") -> str:
    """An IPv4 literal in canonical form, or a host name (lowercased) left for getaddrinfo."""
    try:
        return str(ipaddress.IPv4Address(host))
    except ValueError:
        pass
    if any(c.isspace() or c in "/[]@?#" for c in host) or not host.isascii():
        raise _bind_error(value, f"{host!r} is not a host name or an IP address", setting)
    return host.lower()


# -- sockets -------------------------------------------------------------------------------------------------


def create_socket(spec: ListenSpec, cfg: Config, *, reuse_port: bool = False) -> socket.socket:
    """A bound, listening, non-blocking socket for ``spec``; any failure is a :class:`BindError`.

    ``reuse_port`` sets SO_REUSEPORT on a TCP socket, so that each worker can bind its own.
    """
    if spec.kind == "tcp":
        return _tcp_socket(spec, cfg.backlog, reuse_port)
    if spec.kind == "unix":
        return _unix_socket(spec, cfg.backlog, cfg.uds_perms)
    return _fd_socket(spec)


def bind_all(
    cfg: Config,
    *,
    kinds: tuple[ListenKind, ...] = ("tcp", "unix", "fd"),
    reuse_port: bool = False,
    owner: tuple[int | None, int | None] = (None, None),
) -> list[socket.socket]:
    """The listeners of ``kinds`` that the settings ask for, bound; on any failure none is left open.

    Under a master with ``--reuse-port`` the master binds the unix and fd listeners and each worker its own
    TCP ones. A unix socket goes to ``owner`` (the --user and --group the server will run as)."""
    sockets: list[socket.socket] = []
    uid, gid = owner
    try:
        for spec in specs_from_config(cfg):
            if spec.kind not in kinds:
                continue
            sockets.append(create_socket(spec, cfg, reuse_port=reuse_port and spec.kind == "tcp"))
            if spec.kind == "unix" and (uid is not None or gid is not None):
                os.chown(spec.path, -1 if uid is None else uid, -1 if gid is None else gid)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def _tcp_socket(spec: ListenSpec, backlog: int, reuse_port: bool = False) -> socket.socket:
    try:
        infos = socket.getaddrinfo(spec.host, spec.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        raise BindError(f"cannot listen on {spec}: cannot resolve {spec.host!r}: {exc}") from exc
    # A host name may resolve to several addresses; like gunicorn we take the resolver's first choice
    # (bind several addresses by listing them in --bind).
    family, _, proto, _, sockaddr = infos[0]
    try:
        sock = socket.socket(family, socket.SOCK_STREAM, proto)
    except OSError as exc:
        raise BindError(f"cannot listen on {spec}: {_reason(exc)}") from exc
    try:
        # Lets a restarted server bind while old connections sit in TIME_WAIT.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            # Keep v6 sockets v6-only, so '[::]:8000' and '0.0.0.0:8000' can both be bound and peers
            # never show up as '::ffff:a.b.c.d'.
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(sockaddr)
        sock.listen(backlog)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise BindError(f"cannot listen on {spec}: {_reason(exc)}") from exc
    return sock


def _unix_socket(spec: ListenSpec, backlog: int, perms: int) -> socket.socket:
    _remove_stale_socket(spec)
    try:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    except OSError as exc:
        raise BindError(f"cannot listen on {spec}: {_reason(exc)}") from exc
    try:
        sock.bind(spec.path)
        # chmod before listen(): until then connections are refused, so no client ever gets in
        # through the umask's looser bits.
        os.chmod(spec.path, perms)
        sock.listen(backlog)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise BindError(f"cannot listen on {spec}: {_reason(exc)}") from exc
    return sock


def _remove_stale_socket(spec: ListenSpec) -> None:
    """Delete a socket file left by a server that died, but never a live one or a regular file."""
    try:
        mode = os.lstat(spec.path).st_mode
    except FileNotFoundError:
        return
    except OSError as exc:
        raise BindError(f"cannot listen on {spec}: {_reason(exc)}") from exc
    if not stat.S_ISSOCK(mode):
        raise BindError(f"cannot listen on {spec}: the path exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.setblocking(False)
        probe.connect(spec.path)
    except ConnectionRefusedError:
        pass  # nothing listens: stale
    except FileNotFoundError:
        return  # removed meanwhile
    except BlockingIOError:
        raise BindError(f"cannot listen on {spec}: address already in use (backlog full)") from None
    except OSError as exc:
        raise BindError(f"cannot listen on {spec}: cannot tell whether it is in use: {_reason(exc)}") from exc
    else:
        raise BindError(f"cannot listen on {spec}: address already in use (another server is listening)")
    finally:
        probe.close()
    try:
        os.unlink(spec.path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise BindError(f"cannot listen on {spec}: cannot remove the stale socket: {_reason(exc)}") from exc


def _fd_socket(spec: ListenSpec) -> socket.socket:
    try:
        sock = socket.socket(fileno=spec.fd)
    except OSError as exc:
        raise BindError(f"cannot listen on {spec}: {_reason(exc)}") from exc
    try:
        if sock.type != socket.SOCK_STREAM:
            raise BindError(f"cannot listen on {spec}: not a stream socket")
        if not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
            raise BindError(f"cannot listen on {spec}: the socket is not listening")
        sock.setblocking(False)
    except BindError:
        sock.detach()  # the descriptor is not ours to close
        raise
    except OSError as exc:
        sock.detach()
        raise BindError(f"cannot listen on {spec}: {_reason(exc)}") from exc
    return sock


_HINTS = {
    errno.EADDRINUSE: "address already in use (is another server running?)",
    errno.EACCES: "permission denied (ports below 1024 need privileges; check directory permissions)",
    errno.EADDRNOTAVAIL: "address not available (no interface on this machine has it)",
    errno.EBADF: "bad file descriptor (was it passed to this process?)",
    errno.ENOTSOCK: "the file descriptor is not a socket",
}


def _reason(exc: OSError) -> str:
    if exc.errno in _HINTS:
        return _HINTS[exc.errno]
    return exc.strerror or str(exc)


def inherited_sockets(environ: MutableMapping[str, str] | None = None) -> list[socket.socket]:
    """Listening sockets handed over by systemd socket activation or a USR2 re-exec (``LISTEN_FDS``).

    sd_listen_fds(3): the descriptors start at 3, and only count when ``LISTEN_PID`` is this process.
    The variables are removed, so that processes started later do not take the sockets for theirs.
    """
    env = os.environ if environ is None else environ
    if env.get("LISTEN_PID") != str(os.getpid()):
        return []
    try:
        count = int(env.get("LISTEN_FDS", "0"))
    except ValueError:
        raise BindError(f"LISTEN_FDS={env.get('LISTEN_FDS')!r} is not a number") from None
    env.pop("LISTEN_PID", None)
    env.pop("LISTEN_FDS", None)
    names = env.pop("LISTEN_FDNAMES", "").split(":")
    sockets = []
    for index, fd in enumerate(range(SD_LISTEN_FDS_START, SD_LISTEN_FDS_START + count)):
        os.set_inheritable(fd, False)
        sock = _fd_socket(ListenSpec("fd", fd=fd))
        if index < len(names) and names[index] == ADMIN_FD_NAME:
            _NAMED[ADMIN_FD_NAME] = sock  # not an app listener: the admin listener's (inherited_socket)
        else:
            sockets.append(sock)
    return sockets


def inherited_socket(name: str) -> socket.socket | None:
    """The inherited socket LISTEN_FDNAMES gave ``name`` (read by :func:`inherited_sockets`), once."""
    return _NAMED.pop(name, None)


SD_LISTEN_FDS_START = 3
ADMIN_FD_NAME = "monoceros-admin"
_NAMED: dict[str, socket.socket] = {}


# -- describing ----------------------------------------------------------------------------------------------


def describe(sock: socket.socket, tls: bool) -> str:
    """The listener as a URL for the startup log line: 'http://127.0.0.1:8000', 'unix:/tmp/x.sock'."""
    if sock.family == socket.AF_UNIX:
        return f"unix:{_unix_path(sock)}" + (" (TLS)" if tls else "")
    host, port = sock.getsockname()[:2]
    if sock.family == socket.AF_INET6:
        host = f"[{host}]"
    return f"{'https' if tls else 'http'}://{host}:{port}"


def server_address(sock: socket.socket) -> tuple[str, int | None] | None:
    """The ASGI ``server`` scope value for connections on this listener.

    TCP gives ``(host, port)``; a unix socket gives ``(path, None)`` as the ASGI spec asks; an unnamed
    unix socket gives None. A wildcard listener reports the wildcard ('0.0.0.0'); a protocol that wants
    the exact local address should use the connection's own sockname.
    """
    if sock.family == socket.AF_UNIX:
        path = _unix_path(sock)
        return (path, None) if path else None
    host, port = sock.getsockname()[:2]
    return (str(host), int(port))


def _unix_path(sock: socket.socket) -> str:
    name = sock.getsockname()
    if isinstance(name, bytes):  # Linux abstract namespace: leading NUL
        return "@" + name[1:].decode("utf-8", "backslashreplace")
    return str(name)
