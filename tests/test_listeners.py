from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import socket
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from monoceros.config import Config
from monoceros.errors import BindError, ConfigError
from monoceros.server.listeners import (
    ListenSpec,
    create_socket,
    describe,
    parse_bind,
    server_address,
    specs_from_config,
)


def has_ipv6() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


needs_ipv6 = pytest.mark.skipif(not has_ipv6(), reason="no IPv6 loopback on this machine")


def config(**overrides: Any) -> Config:
    return dataclasses.replace(Config(), **overrides)


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A directory with a short path: AF_UNIX paths are limited to about 100 bytes."""
    path = tempfile.mkdtemp(prefix="mono-")
    yield Path(path)
    shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def listening(spec: ListenSpec, cfg: Config | None = None) -> Iterator[socket.socket]:
    sock = create_socket(spec, cfg or Config())
    try:
        yield sock
    finally:
        sock.close()


# -- parse_bind -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("127.0.0.1:8080", ListenSpec("tcp", host="127.0.0.1", port=8080)),
        ("  127.0.0.1:8080 ", ListenSpec("tcp", host="127.0.0.1", port=8080)),
        ("tcp://127.0.0.1:81", ListenSpec("tcp", host="127.0.0.1", port=81)),
        ("localhost:9000", ListenSpec("tcp", host="localhost", port=9000)),
        ("Example.COM:1", ListenSpec("tcp", host="example.com", port=1)),
        ("localhost", ListenSpec("tcp", host="localhost", port=8000)),
        ("10.0.0.1", ListenSpec("tcp", host="10.0.0.1", port=8000)),
        (":9000", ListenSpec("tcp", host="0.0.0.0", port=9000)),
        ("9000", ListenSpec("tcp", host="0.0.0.0", port=9000)),
        ("0.0.0.0:0", ListenSpec("tcp", host="0.0.0.0", port=0)),
        ("[::1]:8443", ListenSpec("tcp", host="::1", port=8443)),
        ("[::]:80", ListenSpec("tcp", host="::", port=80)),
        ("[0:0::1]:80", ListenSpec("tcp", host="::1", port=80)),
        ("[::1]", ListenSpec("tcp", host="::1", port=8000)),
        ("[fe80::1%eth0]:80", ListenSpec("tcp", host="fe80::1%eth0", port=80)),
        ("unix:/tmp/x.sock", ListenSpec("unix", path="/tmp/x.sock")),
        ("unix:relative.sock", ListenSpec("unix", path="relative.sock")),
        ("unix:///tmp/x.sock", ListenSpec("unix", path="/tmp/x.sock")),
        ("fd://3", ListenSpec("fd", fd=3)),
        ("fd://0", ListenSpec("fd", fd=0)),
    ],
)
def test_parse_bind(value: str, expected: ListenSpec) -> None:
    assert parse_bind(value) == expected


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", "an address is needed"),
        ("   ", "an address is needed"),
        ("localhost:http", "not a number"),
        ("localhost:", "not a number"),
        ("localhost:-1", "not a number"),
        ("localhost:65536", "0 to 65535"),
        ("99999", "0 to 65535"),
        ("::1:8000", "brackets"),
        ("::1", "brackets"),
        ("[::1", "missing ']'"),
        ("[::1]8000", "expected ':PORT'"),
        ("[127.0.0.1]:80", "not an IPv6 address"),
        ("[nonsense]:80", "not an IPv6 address"),
        ("unix:", "path is empty"),
        ("unix://", "path is empty"),
        ("fd://", "file descriptor number"),
        ("fd://-1", "file descriptor number"),
        ("fd://three", "file descriptor number"),
        ("host name:80", "not a host name"),
        ("http://x:80", "not a URL"),
        ("x@y:80", "not a host name"),
    ],
)
def test_parse_bind_errors(value: str, reason: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_bind(value)
    message = str(info.value)
    assert message.startswith(f"bind {value!r}: ")
    assert reason in message


def test_spec_str() -> None:
    assert str(ListenSpec("tcp", host="127.0.0.1", port=80)) == "127.0.0.1:80"
    assert str(ListenSpec("tcp", host="::1", port=80)) == "[::1]:80"
    assert str(ListenSpec("unix", path="/tmp/s")) == "unix:/tmp/s"
    assert str(ListenSpec("fd", fd=3)) == "fd://3"
    for value in ("127.0.0.1:80", "[::1]:80", "unix:/tmp/s", "fd://3"):
        assert str(parse_bind(value)) == value


# -- specs_from_config ------------------------------------------------------------------------------------


def test_specs_default_host_and_port() -> None:
    assert specs_from_config(Config()) == [ListenSpec("tcp", host="127.0.0.1", port=8000)]
    assert specs_from_config(config(host="::", port=81)) == [ListenSpec("tcp", host="::", port=81)]
    assert specs_from_config(config(host="[::1]")) == [ListenSpec("tcp", host="::1", port=8000)]
    assert specs_from_config(config(host="")) == [ListenSpec("tcp", host="0.0.0.0", port=8000)]
    assert specs_from_config(config(host="LocalHost")) == [ListenSpec("tcp", host="localhost", port=8000)]


def test_specs_bad_host() -> None:
    with pytest.raises(ConfigError, match=r"^host 'a b':"):
        specs_from_config(config(host="a b"))
    with pytest.raises(ConfigError, match=r"^host ':::1':"):
        specs_from_config(config(host=":::1"))


def test_specs_bind_uds_fd_add_up_and_replace_host() -> None:
    cfg = config(bind=["127.0.0.1:1", "[::1]:2"], uds="/tmp/a.sock", fd=5, host="10.0.0.1", port=3)
    assert specs_from_config(cfg) == [
        ListenSpec("tcp", host="127.0.0.1", port=1),
        ListenSpec("tcp", host="::1", port=2),
        ListenSpec("unix", path="/tmp/a.sock"),
        ListenSpec("fd", fd=5),
    ]
    assert specs_from_config(config(uds="/tmp/a.sock")) == [ListenSpec("unix", path="/tmp/a.sock")]
    assert specs_from_config(config(fd=4)) == [ListenSpec("fd", fd=4)]


def test_specs_dedupe_keeps_order() -> None:
    cfg = config(bind=["unix:/tmp/a.sock", "127.0.0.1:1", "[0::1]:2", "[::1]:2", "127.0.0.1:1"], uds="/tmp/a.sock")
    assert specs_from_config(cfg) == [
        ListenSpec("unix", path="/tmp/a.sock"),
        ListenSpec("tcp", host="127.0.0.1", port=1),
        ListenSpec("tcp", host="::1", port=2),
    ]


def test_specs_errors_name_the_setting() -> None:
    with pytest.raises(ConfigError, match=r"^bind 'nope:x'"):
        specs_from_config(config(bind=["127.0.0.1:1", "nope:x"]))
    with pytest.raises(ConfigError, match=r"^uds ''"):
        specs_from_config(config(uds=""))
    with pytest.raises(ConfigError, match=r"^fd -1"):
        specs_from_config(config(fd=-1))


# -- TCP sockets ------------------------------------------------------------------------------------------


def test_tcp_ipv4() -> None:
    with listening(parse_bind("127.0.0.1:0"), config(backlog=16)) as sock:
        assert sock.family == socket.AF_INET
        assert sock.type == socket.SOCK_STREAM
        assert sock.getblocking() is False
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR)
        port = sock.getsockname()[1]
        assert port > 0
        assert describe(sock, tls=False) == f"http://127.0.0.1:{port}"
        assert describe(sock, tls=True) == f"https://127.0.0.1:{port}"
        assert server_address(sock) == ("127.0.0.1", port)
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass


@needs_ipv6
def test_tcp_ipv6() -> None:
    with listening(parse_bind("[::1]:0")) as sock:
        assert sock.family == socket.AF_INET6
        assert sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 1
        port = sock.getsockname()[1]
        assert describe(sock, tls=True) == f"https://[::1]:{port}"
        assert server_address(sock) == ("::1", port)
        with socket.create_connection(("::1", port), timeout=5):
            pass


@needs_ipv6
def test_wildcards_of_both_families_share_a_port() -> None:
    with listening(parse_bind("0.0.0.0:0")) as v4:
        port = v4.getsockname()[1]
        with listening(parse_bind(f"[::]:{port}")) as v6:
            assert v6.getsockname()[1] == port
            assert describe(v6, tls=False) == f"http://[::]:{port}"


def test_tcp_host_name() -> None:
    with listening(ListenSpec("tcp", host="localhost", port=0)) as sock:
        assert sock.family in (socket.AF_INET, socket.AF_INET6)


def test_address_in_use() -> None:
    with listening(parse_bind("127.0.0.1:0")) as first:
        port = first.getsockname()[1]
        with pytest.raises(BindError, match=rf"127\.0\.0\.1:{port}: address already in use"):
            create_socket(parse_bind(f"127.0.0.1:{port}"), Config())


def test_address_not_available() -> None:
    # 192.0.2.0/24 is TEST-NET-1, never assigned to a real interface.
    with pytest.raises(BindError, match=r"192\.0\.2\.1:0: address not available"):
        create_socket(parse_bind("192.0.2.1:0"), Config())


def test_unresolvable_host() -> None:
    with pytest.raises(BindError, match=r"cannot resolve 'no-such-host\.invalid'"):
        create_socket(ListenSpec("tcp", host="no-such-host.invalid", port=0), Config())


# -- unix sockets -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("perms", [0o600, 0o660, 0o666])
def test_unix_socket(short_dir: Path, perms: int) -> None:
    path = short_dir / "s.sock"
    with listening(parse_bind(f"unix:{path}"), config(uds_perms=perms)) as sock:
        mode = os.stat(path).st_mode
        assert stat.S_ISSOCK(mode)
        assert stat.S_IMODE(mode) == perms
        assert sock.getblocking() is False
        assert describe(sock, tls=False) == f"unix:{path}"
        assert describe(sock, tls=True) == f"unix:{path} (TLS)"
        assert server_address(sock) == (str(path), None)
        with socket.socket(socket.AF_UNIX) as client:
            client.connect(str(path))


def test_unix_stale_socket_is_replaced(short_dir: Path) -> None:
    path = short_dir / "s.sock"
    with socket.socket(socket.AF_UNIX) as dead:
        dead.bind(str(path))  # bound, then closed: the file stays behind, nothing listens
    assert path.exists()
    with listening(parse_bind(f"unix:{path}")) as sock, socket.socket(socket.AF_UNIX) as client:
        client.connect(str(path))
        conn, _ = _accept(sock)
        conn.close()


def _accept(sock: socket.socket) -> tuple[socket.socket, object]:
    sock.setblocking(True)
    sock.settimeout(5)
    return sock.accept()


def test_unix_live_socket_is_kept(short_dir: Path) -> None:
    path = short_dir / "s.sock"
    with socket.socket(socket.AF_UNIX) as live:
        live.bind(str(path))
        live.listen(1)
        with pytest.raises(BindError, match=rf"unix:{path}: address already in use"):
            create_socket(parse_bind(f"unix:{path}"), Config())
        assert path.exists()


def test_unix_regular_file_is_kept(short_dir: Path) -> None:
    path = short_dir / "s.sock"
    path.write_text("precious")
    with pytest.raises(BindError, match="exists and is not a socket"):
        create_socket(parse_bind(f"unix:{path}"), Config())
    assert path.read_text() == "precious"


def test_unix_missing_directory(short_dir: Path) -> None:
    with pytest.raises(BindError, match=r"unix:.*/nodir/s\.sock"):
        create_socket(parse_bind(f"unix:{short_dir}/nodir/s.sock"), Config())


def test_unix_path_too_long(short_dir: Path) -> None:
    path = short_dir / ("x" * 200)
    with pytest.raises(BindError, match="cannot listen on unix:"):
        create_socket(parse_bind(f"unix:{path}"), Config())


# -- inherited descriptors --------------------------------------------------------------------------------


def test_fd_of_listening_socket() -> None:
    with socket.socket() as original:
        original.bind(("127.0.0.1", 0))
        original.listen(4)
        port = original.getsockname()[1]
        fd = os.dup(original.fileno())
        with listening(parse_bind(f"fd://{fd}")) as sock:
            assert sock.fileno() == fd
            assert sock.family == socket.AF_INET
            assert sock.getblocking() is False
            assert describe(sock, tls=False) == f"http://127.0.0.1:{port}"


def test_fd_not_listening_is_left_open() -> None:
    with socket.socket() as original:
        original.bind(("127.0.0.1", 0))
        fd = os.dup(original.fileno())
        try:
            with pytest.raises(BindError, match=rf"fd://{fd}: the socket is not listening"):
                create_socket(parse_bind(f"fd://{fd}"), Config())
            os.fstat(fd)  # still open: not ours to close
        finally:
            os.close(fd)


def test_fd_datagram_socket() -> None:
    with socket.socket(type=socket.SOCK_DGRAM) as udp:
        fd = os.dup(udp.fileno())
        try:
            with pytest.raises(BindError, match="not a stream socket"):
                create_socket(parse_bind(f"fd://{fd}"), Config())
        finally:
            os.close(fd)


def test_fd_not_a_socket(tmp_path: Path) -> None:
    r, w = os.pipe()
    try:
        with pytest.raises(BindError, match=rf"fd://{r}: "):
            create_socket(parse_bind(f"fd://{r}"), Config())
    finally:
        os.close(r)
        os.close(w)


def test_fd_closed() -> None:
    r, w = os.pipe()
    os.close(r)
    os.close(w)
    with pytest.raises(BindError, match=rf"fd://{r}: bad file descriptor"):
        create_socket(parse_bind(f"fd://{r}"), Config())
