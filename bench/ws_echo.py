#!/usr/bin/env python3
"""WebSocket echo benchmark: python bench/ws_echo.py [--quick [--peers]] [--servers a,b] ...

Each server runs the WebSocket branch of bench/apps/asgi_app.py (accept, then echo every message
back) with one worker pinned to core 0, like bench/run.py. The load client is this file run as
`ws_echo.py client ...`, pinned to core 1: pure Python on raw non-blocking sockets and epoll. It
does the RFC 6455 handshake itself, offering no extension (so no permessage-deflate), checks one
binary and one text echo per connection, then keeps W masked binary messages in flight on each of
C connections for the run. It parses nothing on the hot path: every echoed frame is the same
bytes, so each read is compared with the expected byte stream and counted, and as many new frames
are sent as have come back. Under pressure it batches by itself (one read takes whatever has
arrived), and it reports its own CPU time / wall time, so whether it kept up can be checked.

Two modes: throughput (W=16 in flight per connection) and latency (W=1: one round trip at a time
per connection, what a chat app looks like; per-message round-trip percentiles). Results:
bench/results/ws_echo.{md,json}, or bench/results/quick/ with --quick.

Exit status: 0 all good; 1 a server failed to start, to handshake, to echo, or died; 2 no taskset.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import json
import os
import platform
import select
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))

import run  # noqa: E402
from matrix import HOST, SERVERS  # noqa: E402

RESULTS_NAME = "ws_echo"
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MASK = b"\x37\xfa\x21\x3d"  # one masking key for every client frame: legal (RFC 6455 §5.3) and free
CONNECT_TIMEOUT = 5.0  # seconds for all C connections to connect, handshake and pass the echo check
CLOSE_TIMEOUT = 2.0  # seconds for all of them to close cleanly once the run is over
MAX_DURATION = 15.0  # connections end before a first keepalive ping (monoceros, uvicorn: every 20 s)
PEER_DISTS = ["uvicorn", "uvloop", "websockets", "wsproto", "granian", "hypercorn"]

Result = dict[str, Any]
# what a server's row reports: the median over its repeats
MEDIANS = (
    "msgs_per_s",
    "server_us_per_msg",
    "client_cpu",
    "server_cpu",
    "others_cpu",
    "others_client_cpu",
    "mean_rtt_ms",
    "p50_ms",
    "p99_ms",
)


class ClientError(Exception):
    """The server did something an echo server must not: the run is void."""


# ---------------------------------------------------------------------------------------
# The servers and modes
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WSServer:
    """A matrix.SERVERS entry's ASGI command with extra flags: one place for every start command."""

    name: str
    base: str
    flags: tuple[str, ...]
    note: str
    needs: str = ""  # text that must be in `{peers}/uvicorn --help` for this variant to exist

    def command(self) -> str:
        app = SERVERS[self.base].commands["asgi"].rsplit(" ", 1)
        return " ".join([app[0], *self.flags, app[1]])

    @property
    def peer(self) -> bool:
        return SERVERS[self.base].peer


WS_SERVERS: dict[str, WSServer] = {
    s.name: s
    for s in [
        WSServer("monoceros", "monoceros", (), "defaults: permessage-deflate offered (the client does not ask)"),
        WSServer(
            "monoceros-no-deflate",
            "monoceros",
            ("--no-ws-per-message-deflate",),
            "permessage-deflate not offered: should match the default, since nobody negotiates it",
        ),
        WSServer(
            "uvicorn",
            "uvicorn",
            ("--ws", "websockets-sansio"),
            "websockets' sans-I/O protocol (as monoceros uses): what `--ws auto` picks in current uvicorn",
            needs="websockets-sansio",
        ),
        WSServer(
            "uvicorn-websockets",
            "uvicorn",
            ("--ws", "websockets"),
            "websockets' legacy asyncio implementation: uvicorn's former default, deprecated",
        ),
        WSServer("uvicorn-wsproto", "uvicorn", ("--ws", "wsproto"), "wsproto", needs="wsproto"),
        WSServer("hypercorn", "hypercorn", (), "h11 + wsproto on uvloop"),
        WSServer("granian", "granian", (), "WebSocket framing in Rust; the app's receive/send still cross into Python"),
    ]
}
BASELINE = "uvicorn"


@dataclass(frozen=True)
class Mode:
    name: str
    window: int
    description: str


def modes(window: int) -> dict[str, Mode]:
    return {
        "throughput": Mode("throughput", window, f"{window} messages in flight per connection"),
        "latency": Mode("latency", 1, "1 message in flight per connection: round trips, as in a chat app"),
    }


# ---------------------------------------------------------------------------------------
# The client: frames, handshake, echo check, the pump
# ---------------------------------------------------------------------------------------


def frame(opcode: int, payload: bytes, masked: bool) -> bytes:
    """One final frame; a client's is masked (RFC 6455 §5.2), a server's is not."""
    n = len(payload)
    first = bytes([0x80 | opcode])
    bit = 0x80 if masked else 0
    if n < 126:
        head = first + bytes([bit | n])
    elif n < 65536:
        head = first + bytes([bit | 126]) + n.to_bytes(2, "big")
    else:
        head = first + bytes([bit | 127]) + n.to_bytes(8, "big")
    if not masked:
        return head + payload
    key = (MASK * (n // 4 + 1))[:n]
    return head + MASK + (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")


def recv_exactly(sock: socket.socket, n: int, deadline: float) -> bytes:
    data = b""
    while len(data) < n:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ClientError(f"server closed the connection after {data[:80]!r}")
        data += chunk
    return data


def handshake(port: int, deadline: float) -> socket.socket:
    """Connect and upgrade, offering no extension; check the 101 and its Sec-WebSocket-Accept."""
    sock = socket.create_connection((HOST, port), timeout=max(0.01, deadline - time.monotonic()))
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        key = base64.b64encode(os.urandom(16))
        sock.sendall(
            b"GET /ws HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % (HOST.encode(), port, key)
        )
        head = b""
        while b"\r\n\r\n" not in head:  # the server sends nothing after the 101 until we do
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            chunk = sock.recv(4096)
            if not chunk or len(head) > 65536:
                raise ClientError(f"no complete handshake answer: {head[:200]!r}")
            head += chunk
        status, _, rest = head.partition(b"\r\n")
        if not status.startswith(b"HTTP/1.1 101"):
            raise ClientError(f"handshake answered {head[:200]!r}")
        headers: dict[bytes, bytes] = {}
        for line in rest.split(b"\r\n"):
            name, sep, value = line.partition(b":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        accept = base64.b64encode(hashlib.sha1(key + WS_GUID).digest())
        if headers.get(b"sec-websocket-accept") != accept:
            raise ClientError(f"wrong Sec-WebSocket-Accept in {head[:300]!r}")
        if b"sec-websocket-extensions" in headers:
            raise ClientError(f"server negotiated an extension nobody offered: {head[:300]!r}")
        if not head.endswith(b"\r\n\r\n"):
            raise ClientError("server sent frames before any message")
        return sock
    except BaseException:
        sock.close()
        raise


def check_echo(sock: socket.socket, payload: bytes, deadline: float) -> None:
    """One binary and one text message must come back unchanged, as one unfragmented frame each."""
    sock.sendall(frame(0x2, payload, True) + frame(0x1, b"check \xe2\x9c\x93", True))
    want = frame(0x2, payload, False) + frame(0x1, b"check \xe2\x9c\x93", False)
    got = recv_exactly(sock, len(want), deadline)
    if got != want:
        raise ClientError(f"echo check: expected {want[:40]!r}..., got {got[:40]!r}...")


def tree_cpu_seconds(root: int) -> float:
    """User + system CPU seconds of a process tree, all threads (utime and stime of /proc/PID/stat)."""
    ticks = 0
    for pid in run.tree_pids(root):
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def core_busy_seconds(cores: set[int]) -> float:
    """Busy CPU seconds of these cores (/proc/stat: all but idle and iowait), whoever used them."""
    ticks = 0
    with open("/proc/stat") as f:
        for line in f:
            name, *values = line.split()
            if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cores:
                ticks += sum(int(v) for v in values[:8]) - int(values[3]) - int(values[4])
    return ticks / os.sysconf("SC_CLK_TCK")


class Conn:
    """One connection's counters in the pump (slots: the hot loop reads them for every read)."""

    __slots__ = ("fd", "owed", "received", "sent", "sent_at", "sock", "writing")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.received = 0  # echoed bytes read
        self.sent = 0  # frame bytes written
        self.owed = 0  # frame bytes due but not yet accepted by the kernel
        self.sent_at = 0.0
        self.writing = False


def pump(socks: list[socket.socket], window: int, size: int, duration: float, server_pid: int) -> Result:
    """Keep `window` frames in flight per socket for `duration` seconds; count the echoes.

    Every echoed frame is the same bytes, so a read is checked by comparing it with the expected
    stream at the right offset (one memcmp), and the number of frames it completes is arithmetic.
    """
    payload = b"\xa5" * size
    out_frame, echo_frame = frame(0x2, payload, True), frame(0x2, payload, False)
    olen, elen = len(out_frame), len(echo_frame)
    out = memoryview(out_frame * (window + 1))  # owed <= window frames, from any offset in one
    expect = echo_frame * (window + 1)  # unread echoes never exceed window frames
    rsize = window * elen
    latency = window == 1
    rtts: list[float] = []
    ep = select.epoll()
    conns: dict[int, Conn] = {}
    for sock in socks:
        sock.setblocking(False)
        c = Conn(sock)
        conns[c.fd] = c
        ep.register(c.fd, select.EPOLLIN)
    cores, mine = os.sched_getaffinity(server_pid), os.sched_getaffinity(0)
    cpu0, srv0, core0, mine0 = (
        os.times(),
        tree_cpu_seconds(server_pid),
        core_busy_seconds(cores),
        core_busy_seconds(mine),
    )
    t0 = time.perf_counter()
    deadline = t0 + duration
    for c in conns.values():  # the first window goes out on the first EPOLLOUT
        c.owed, c.sent_at, c.writing = window * olen, t0, True
        ep.modify(c.fd, select.EPOLLIN | select.EPOLLOUT)
    now = t0
    try:
        while now < deadline:
            for fd, ev in ep.poll(deadline - now):
                c = conns[fd]
                if ev & (select.EPOLLIN | select.EPOLLERR | select.EPOLLHUP):
                    data = c.sock.recv(rsize)
                    if not data:
                        raise ClientError("server closed a connection during the run")
                    off = c.received % elen
                    if data != expect[off : off + len(data)]:
                        raise ClientError(
                            f"unexpected bytes from the server (not the echo; a ping or a close?): {data[:40]!r}"
                        )
                    done = (c.received + len(data)) // elen - c.received // elen
                    c.received += len(data)
                    if done:
                        c.owed += done * olen
                        if latency:
                            t = time.perf_counter()
                            rtts.append(t - c.sent_at)
                            c.sent_at = t
                if c.owed:
                    start = c.sent % olen
                    try:
                        k = c.sock.send(out[start : start + c.owed])
                    except BlockingIOError:
                        k = 0
                    c.sent += k
                    c.owed -= k
                if bool(c.owed) != c.writing:
                    c.writing = not c.writing
                    ep.modify(fd, select.EPOLLIN | (select.EPOLLOUT if c.writing else 0))
            now = time.perf_counter()
    except OSError as exc:
        raise ClientError(f"socket error during the run: {exc!r}") from exc
    finally:
        ep.close()
    cpu1, srv1, core1, mine1 = (
        os.times(),
        tree_cpu_seconds(server_pid),
        core_busy_seconds(cores),
        core_busy_seconds(mine),
    )
    wall = now - t0
    client_cpu = cpu1.user + cpu1.system - cpu0.user - cpu0.system
    messages = sum(c.received // elen for c in conns.values())
    result: Result = {
        "messages": messages,
        "seconds": wall,
        "msgs_per_s": messages / wall,
        "client_cpu": client_cpu / wall,
        "server_cpu": (srv1 - srv0) / wall,
        # the server's and the client's cores busy with anything else (other jobs on a shared machine,
        # interrupts, the harness): what makes a run on this machine disturbed
        "others_cpu": max(0.0, core1 - core0 - (srv1 - srv0)) / wall / len(cores),
        "others_client_cpu": max(0.0, mine1 - mine0 - client_cpu) / wall / len(mine),
        # the server's CPU cost per message: robust to other load on its core, unlike msgs/s
        "server_us_per_msg": 1e6 * (srv1 - srv0) / messages if messages else None,
        # Little's law: every connection always has `window` messages out
        "mean_rtt_ms": 1000 * len(socks) * window * wall / messages if messages else None,
    }
    if rtts:
        rtts.sort()
        result["p50_ms"] = 1000 * rtts[len(rtts) // 2]
        result["p99_ms"] = 1000 * rtts[min(len(rtts) - 1, int(len(rtts) * 0.99))]
    return result


def client(port: int, connections: int, window: int, size: int, duration: float, server_pid: int) -> Result:
    """Open and check every connection within CONNECT_TIMEOUT, pump, then close them all."""
    socks: list[socket.socket] = []
    try:
        deadline = time.monotonic() + CONNECT_TIMEOUT
        payload = os.urandom(size)
        for _ in range(connections):
            socks.append(handshake(port, deadline))
            check_echo(socks[-1], payload, deadline)
        return pump(socks, window, size, duration, server_pid)
    except TimeoutError as exc:
        raise ClientError(f"timed out connecting, handshaking or on the echo check ({CONNECT_TIMEOUT:.0f} s)") from exc
    except OSError as exc:
        raise ClientError(f"connecting or handshaking: {exc!r}") from exc
    finally:
        close_all(socks, time.monotonic() + CLOSE_TIMEOUT)


def close_all(socks: list[socket.socket], deadline: float) -> None:
    """Close each WebSocket cleanly, after the measurement: send a close frame, then read (discarding the
    echoes still in flight) until the server ends TCP. Dropping 16 connections with data in flight would
    exercise the servers' error paths and fill their logs instead."""
    close = frame(0x8, (1000).to_bytes(2, "big"), True)
    for sock in socks:
        with contextlib.suppress(OSError):
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            sock.sendall(close)
    for sock in socks:
        with contextlib.suppress(OSError):
            while time.monotonic() < deadline:
                sock.settimeout(max(0.01, deadline - time.monotonic()))
                if not sock.recv(65536):
                    break
        sock.close()


def client_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="ws_echo.py client", description="the load client; prints WS_JSON {...}")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--connections", type=int, required=True)
    p.add_argument("--window", type=int, required=True)
    p.add_argument("--size", type=int, required=True)
    p.add_argument("--duration", type=float, required=True)
    p.add_argument("--server-pid", type=int, required=True)
    a = p.parse_args(argv)
    try:
        out = client(a.port, a.connections, a.window, a.size, a.duration, a.server_pid)
    except ClientError as exc:
        out = {"failed": str(exc)}
    print("WS_JSON " + json.dumps(out), flush=True)
    return 1 if "failed" in out else 0


# ---------------------------------------------------------------------------------------
# The harness: one server, one mode
# ---------------------------------------------------------------------------------------


def client_command(args: argparse.Namespace, port: int, window: int, seconds: float, pid: int) -> list[str]:
    return [
        "taskset",
        "-c",
        str(args.client_core),
        sys.executable,
        str(Path(__file__).resolve()),
        "client",
        f"--port={port}",
        f"--connections={args.connections}",
        f"--window={window}",
        f"--size={args.size}",
        f"--duration={seconds}",
        f"--server-pid={pid}",
    ]


def run_client(args: argparse.Namespace, port: int, window: int, seconds: float, pid: int) -> Result:
    cmd = client_command(args, port, window, seconds, pid)
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + CONNECT_TIMEOUT + 30)
    except subprocess.TimeoutExpired:
        return {"failed": "the client did not finish in time"}
    for line in res.stdout.splitlines():
        if line.startswith("WS_JSON "):
            out: Result = json.loads(line[len("WS_JSON ") :])
            return out
    return {"failed": f"client exited {res.returncode} without a result: {(res.stdout + res.stderr)[-500:]!r}"}


def run_one(server: WSServer, mode: Mode, args: argparse.Namespace, logs_dir: Path) -> Result:
    port = run.free_port()
    command = server.command().format(
        python=shlex.quote(sys.executable), peers=shlex.quote(str(args.peers_venv / "bin")), port=port
    )
    result: Result = {
        "server": server.name,
        "mode": mode.name,
        "window": mode.window,
        "command": f"cd bench/apps && taskset -c {args.server_core} {command}",
        "status": "ok",
    }
    log_path = logs_dir / f"ws-{mode.name}__{server.name}.log"
    proc = run.start_server(command, args.server_core, BENCH / "apps", log_path)
    result["client"] = shlex.join(client_command(args, port, mode.window, args.duration, proc.pid))
    sampler = None
    try:
        problem = run.wait_for_port(proc, port, run.START_TIMEOUT)
        if problem is not None:
            result.update(status="failed", reason=problem)
            return result
        time.sleep(run.IDLE_SETTLE)
        result["rss_idle_kib"] = run.rss_kib(run.tree_pids(proc.pid))
        sampler = run.RSSSampler(proc.pid)
        sampler.start()
        runs = [run_client(args, port, mode.window, args.warmup, proc.pid)] if args.warmup > 0 else []
        result["warmup"] = runs[0] if runs else {}
        repeats: list[Result] = []
        while len(repeats) < args.repeats and "failed" not in (runs[-1] if runs else {}) and proc.poll() is None:
            repeats.append(run_client(args, port, mode.window, args.duration, proc.pid))
            runs.append(repeats[-1])
        result["repeats"] = repeats
        result["rss_peak_kib"] = sampler.stop()
        sampler = None
        time.sleep(run.IDLE_SETTLE)
        result["rss_after_kib"] = run.rss_kib(run.tree_pids(proc.pid))
        failed = [r["failed"] for r in runs if "failed" in r]
        if proc.poll() is not None:
            result.update(status="failed", reason=f"server died during the run, exit status {proc.returncode}")
        elif failed:
            result.update(status="failed", reason=failed[0])
        else:
            for key in MEDIANS:
                values = [r[key] for r in repeats if r.get(key) is not None]
                if values:
                    result[key] = statistics.median(values)
        return result
    finally:
        if sampler is not None:
            sampler.stop()
        result["stopped_by"] = run.stop_server(proc)
        result["log"] = os.path.relpath(log_path, REPO)
        tail = run.log_tail(log_path)
        if tail:
            result["log_tail"] = tail


# ---------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------


def pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.0f} %"


def ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def markdown(report: Result) -> str:
    meta, results = report["meta"], report["results"]
    by_key = {(r["mode"], r["server"]): r for r in results}
    out = ["# WebSocket echo: monoceros and its peers", ""]
    out.append(
        f"- when: {meta['started']} ({meta['mode']} mode: warm-up {meta['warmup']} s, "
        f"{meta['repeats']} x {meta['duration']} s per server and mode; medians of the repeats)"
    )
    out.append(
        f"- machine: {meta['cpus']} CPUs, {meta['platform']}; server (one worker) on core {meta['server_core']}, "
        f"the client (one Python process, epoll) on core {meta['client_core']}; shared and noisy, "
        "so compare within one run only"
    )
    out.append("- versions: " + ", ".join(f"{k} {v}" for k, v in {**meta["local"], **meta["peers"]}.items()))
    out.append(
        f"- load: {meta['connections']} connections, each keeping W binary messages of {meta['size']} B in flight "
        "(masked, one frame each; no extension offered, so no compression); msgs/s = echoes received per second"
    )
    out.append(
        f"- ÷ {BASELINE}: over `uvicorn --ws websockets-sansio` (its default) in the same mode; server and client CPU: "
        "CPU time / wall time during the measured runs (100 % = a core saturated); others: how busy the "
        "server's / the client's core was with anything else (other jobs on this shared machine, interrupts; "
        "above a few %, that run was disturbed); server µs/msg: the server's CPU time per echoed message, "
        "which other load disturbs much less than msgs/s (lower is better); RSS after: the server's process "
        "tree 0.5 s after its last run (idle and peak RSS are in the JSON)"
    )
    for name, mode_meta in meta["modes"].items():
        out.append("")
        out.append(f"## {name}: W = {mode_meta['window']} ({mode_meta['description']})")
        out.append("")
        rtts = any("p50_ms" in r for r in results if r["mode"] == name)
        out.append(
            f"| server | msgs/s | ÷ {BASELINE} | server µs/msg | ÷ {BASELINE} |"
            + (" RTT p50 ms | RTT p99 ms |" if rtts else "")
            + " mean RTT ms | server CPU | client CPU | others: server / client core | RSS after MiB |"
        )
        out.append("|---|" + "---:|" * (11 if rtts else 9))
        base = by_key.get((name, BASELINE), {})
        for server in meta["servers"]:
            r = by_key.get((name, server))
            if r is None:
                continue
            label = f"**{server}**" if server.startswith("monoceros") else server
            rate = "FAILED" if r["status"] != "ok" else run.fmt_rps(r.get("msgs_per_s"))
            out.append(
                f"| {label} | {rate} | {run.ratio(r.get('msgs_per_s'), base.get('msgs_per_s'))} "
                f"| {ms(r.get('server_us_per_msg'))} "
                f"| {run.ratio(r.get('server_us_per_msg'), base.get('server_us_per_msg'))} "
                + (f"| {ms(r.get('p50_ms'))} | {ms(r.get('p99_ms'))} " if rtts else "")
                + f"| {ms(r.get('mean_rtt_ms'))} | {pct(r.get('server_cpu'))} | {pct(r.get('client_cpu'))} "
                f"| {pct(r.get('others_cpu'))} / {pct(r.get('others_client_cpu'))} "
                f"| {run.mib(r.get('rss_after_kib'))} |"
            )
    out.append("")
    out.append(
        "RTT percentiles are measured per message in the latency mode only; "
        "the mean RTT is C * W / (msgs/s), by Little's law."
    )
    out.append("")
    out.append("## Failures")
    out.append("")
    out.extend(run.failures(results, "mode", "None: every server started, handshook, echoed correctly and stayed up."))
    skipped = meta.get("skipped", {})
    for name, why in skipped.items():
        out.append(f"- {name}: not run, {why}")
    out.append("")
    out.append("## Servers and commands")
    out.append("")
    out.append("Each runs as `cd bench/apps && taskset -c 0 COMMAND` (`{peers}` = the peers virtualenv's bin/).")
    out.append("")
    for server in meta["servers"]:
        s = WS_SERVERS[server]
        out.append(f"- **{server}**: {s.note}: `{s.command()}`")
    out.append("")
    out.append(
        "Client: `taskset -c 1 python bench/ws_echo.py client --port PORT --connections C --window W "
        "--size BYTES --duration SECONDS --server-pid PID` (the PID only to read the server's CPU time)."
    )
    out.append("")
    out.append(f"Command line of this run: `{meta['argv']}`")
    out.append("")
    return "\n".join(out)


def write_report(report: Result, out: Path) -> int:
    (out / f"{RESULTS_NAME}.json").write_text(json.dumps(report, indent=2) + "\n")
    text = markdown(report)
    (out / f"{RESULTS_NAME}.md").write_text(text + "\n")
    print(text)
    run.log(f"wrote {os.path.relpath(out / RESULTS_NAME)}.md and .json")
    return 1 if any(r["status"] != "ok" for r in report["results"]) else 0


# ---------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="CI smoke test: 1 x 1 s, no warm-up, monoceros only")
    p.add_argument("--peers", action="store_true", help="with --quick: run the peers too")
    p.add_argument("--servers", default="", help="comma-separated, from: " + ", ".join(WS_SERVERS))
    p.add_argument("--modes", default="throughput,latency", help="comma-separated [%(default)s]")
    p.add_argument("--connections", type=int, default=16, help="WebSocket connections [%(default)s]")
    p.add_argument("--window", type=int, default=16, help="messages in flight per connection, throughput mode [16]")
    p.add_argument("--size", type=int, default=64, help="message payload bytes [%(default)s]")
    p.add_argument("--repeats", type=int, default=None, help="measured runs per server and mode [3]")
    p.add_argument("--duration", type=float, default=None, help=f"seconds per measured run, <= {MAX_DURATION:.0f} [5]")
    p.add_argument("--warmup", type=float, default=None, help="seconds of warm-up, 0 for none [1]")
    p.add_argument("--peers-venv", type=Path, default=BENCH / ".venv-peers", help="[%(default)s]")
    p.add_argument("--out", type=Path, default=None, help="output directory [bench/results]")
    p.add_argument("--server-core", type=int, default=0)
    p.add_argument("--client-core", type=int, default=1)
    args = p.parse_args(argv)
    args.repeats = args.repeats if args.repeats is not None else (1 if args.quick else 3)
    args.duration = args.duration if args.duration is not None else (1.0 if args.quick else 5.0)
    args.warmup = args.warmup if args.warmup is not None else (0.0 if args.quick else 1.0)
    args.out = args.out or (BENCH / "results" / "quick" if args.quick else BENCH / "results")
    args.peers_venv = args.peers_venv.resolve()
    if args.repeats < 1 or not 0 < args.duration <= MAX_DURATION or not 0 <= args.warmup <= MAX_DURATION:
        p.error(f"--repeats >= 1, 0 < --duration <= {MAX_DURATION:.0f} and 0 <= --warmup <= {MAX_DURATION:.0f}")
    if args.connections < 1 or args.window < 1 or args.size < 1:
        p.error("--connections, --window and --size must be >= 1")
    known = modes(args.window)
    names = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not names or any(m not in known for m in names):
        p.error(f"--modes: comma-separated, from {', '.join(known)}")
    args.modes = [known[m] for m in names]
    wanted = [s.strip() for s in args.servers.split(",") if s.strip()]
    if any(s not in WS_SERVERS for s in wanted):
        p.error(f"unknown server in {args.servers!r}; known: {', '.join(WS_SERVERS)}")
    args.servers = [s for s in WS_SERVERS if s in wanted] or (
        ["monoceros"] if args.quick and not args.peers else list(WS_SERVERS)
    )
    return args


def available(servers: list[str], venv: Path) -> tuple[list[str], dict[str, str]]:
    """Set up the peers (wsproto too) and drop the uvicorn --ws variants this uvicorn lacks."""
    if not any(WS_SERVERS[s].peer for s in servers):
        return servers, {}
    run.ensure_peers(venv, reinstall=False)
    py = str(run.peers_python(venv))
    if subprocess.run([py, "-c", "import wsproto"], capture_output=True, timeout=60).returncode != 0:
        run.log(f"installing wsproto into {venv}")
        subprocess.run([py, "-m", "pip", "install", "-q", "wsproto"], check=True, timeout=600)
    helps = subprocess.run([str(venv / "bin" / "uvicorn"), "--help"], capture_output=True, text=True, timeout=60)
    skipped = {s: f"`uvicorn --ws {WS_SERVERS[s].needs}` is not in this uvicorn" for s in servers}
    skipped = {s: why for s, why in skipped.items() if WS_SERVERS[s].needs and WS_SERVERS[s].needs not in helps.stdout}
    return [s for s in servers if s not in skipped], skipped


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["client"]:
        return client_main(argv[1:])
    args = parse_args(argv)
    if not shutil.which("taskset"):
        run.log("error: taskset (util-linux) is needed to pin the server and the client to their cores")
        return 2
    servers, skipped = available(args.servers, args.peers_venv)
    cpus = os.cpu_count() or 1
    if cpus < 2:
        run.log("warning: fewer than 2 CPUs; server and client share core 0")
        args.server_core = args.client_core = 0
    with contextlib.suppress(OSError):  # keep this process (and its RSS sampling) off the server's core
        os.sched_setaffinity(0, {args.client_core})
    logs_dir = args.out / "logs"
    logs_dir.mkdir(parents=True, exist_ok=True)
    plan = [(m, s) for m in args.modes for s in servers]
    run.log(f"{len(plan)} runs, about {len(plan) * (args.warmup + args.repeats * args.duration + 2) / 60:.1f} min")
    local = run.local_versions()
    local.pop("wrk", None)
    meta = {
        "started": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "mode": "quick" if args.quick else "full",
        "argv": shlex.join(["python", "bench/ws_echo.py", *argv]),
        "repeats": args.repeats,
        "duration": args.duration,
        "warmup": args.warmup,
        "connections": args.connections,
        "size": args.size,
        "modes": {m.name: {"window": m.window, "description": m.description} for m in args.modes},
        "cpus": cpus,
        "platform": f"{platform.system()} {platform.release()} {platform.machine()}",
        "server_core": args.server_core,
        "client_core": args.client_core,
        "servers": servers,
        "skipped": skipped,
        "local": local,
        "peers": run.peer_versions(args.peers_venv, PEER_DISTS) if any(WS_SERVERS[s].peer for s in servers) else {},
    }
    results = []
    for i, (mode, name) in enumerate(plan, 1):
        r = run_one(WS_SERVERS[name], mode, args, logs_dir)
        results.append(r)
        extra = f"  FAILED: {r.get('reason', '')}" if r["status"] != "ok" else ""
        run.log(
            f"[{i}/{len(plan)}] {mode.name:10} {name:20} {run.fmt_rps(r.get('msgs_per_s')):>9} msgs/s  "
            f"server CPU {pct(r.get('server_cpu')):>5}  client CPU {pct(r.get('client_cpu')):>5}  "
            f"others {pct(r.get('others_cpu')):>4} / {pct(r.get('others_client_cpu')):>4}  "
            f"RSS after {run.mib(r.get('rss_after_kib')):>6} MiB{extra}"
        )
    return write_report({"meta": meta, "results": results}, args.out)


if __name__ == "__main__":
    sys.exit(main())
