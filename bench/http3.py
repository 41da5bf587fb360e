#!/usr/bin/env python3
"""HTTP/3 benchmark: python bench/http3.py [--quick] [--seconds N] [--connections C] [--streams S]

monoceros (--http3) and hypercorn (--quic-bind), each one worker pinned to core 0, serve bench/apps/asgi_app.py's
hello-world over QUIC with the same throwaway certificate. The load client is this file run as
`http3.py client ...`, pinned to core 1: aioquic's own client (there is no h2load for HTTP/3 here), C
connections each keeping S requests in flight for the run, every response checked. One core of Python is
the client's limit, so it reports its own CPU time / wall time: near 1.0 means the figure is the client's,
and only the ratio between servers, measured in the same run, means much. Results: bench/results/http3.{md,json}
(bench/results/quick/ with --quick). Exit status: 0 good; 1 a server failed to start or answered wrongly;
2 no taskset or no aioquic.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
PEERS = BENCH / ".venv-peers" / "bin"
HELLO = b"Hello, world!"


def free_port() -> int:
    with socket.socket() as tcp:
        tcp.bind(("127.0.0.1", 0))
        port = tcp.getsockname()[1]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(("127.0.0.1", port))  # free on UDP too
    return int(port)


def certificates(directory: Path) -> tuple[str, str, str]:
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    paths = directory / "cert.pem", directory / "key.pem", directory / "ca.pem"
    cert.cert_chain_pems[0].write_to_path(str(paths[0]))
    cert.private_key_pem.write_to_path(str(paths[1]))
    ca.cert_pem.write_to_path(str(paths[2]))
    return str(paths[0]), str(paths[1]), str(paths[2])


def server_command(name: str, port: int, cert: str, key: str) -> list[str]:
    if name == "monoceros":
        return [str(REPO / ".venv" / "bin" / "monoceros"), "--host", "127.0.0.1", "--port", str(port),
                "--certfile", cert, "--keyfile", key, "--http3", "--no-access-log", "--app-dir",
                str(BENCH / "apps"), "asgi_app:app"]  # fmt: skip
    return [str(PEERS / "hypercorn"), "--bind", f"127.0.0.1:{port}", "--quic-bind", f"127.0.0.1:{port}",
            "--certfile", cert, "--keyfile", key, "--workers", "1", "asgi_app:app"]  # fmt: skip


# -- the client ----------------------------------------------------------------------------------------------


async def load(port: int, ca: str, seconds: float, connections: int, streams: int) -> dict[str, Any]:
    from aioquic.asyncio.client import connect
    from aioquic.asyncio.protocol import QuicConnectionProtocol
    from aioquic.h3.connection import H3_ALPN, H3Connection
    from aioquic.h3.events import DataReceived, HeadersReceived
    from aioquic.quic.configuration import QuicConfiguration

    class Client(QuicConnectionProtocol):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.h3 = H3Connection(self._quic)
            self.waiting: dict[int, tuple[asyncio.Future[bytes], list[bytes]]] = {}

        def quic_event_received(self, event: Any) -> None:
            for h3_event in self.h3.handle_event(event):
                entry = self.waiting.get(getattr(h3_event, "stream_id", -1))
                if entry is None:
                    continue
                if isinstance(h3_event, DataReceived):
                    entry[1].append(h3_event.data)
                if isinstance(h3_event, (DataReceived, HeadersReceived)) and h3_event.stream_ended:
                    del self.waiting[h3_event.stream_id]
                    if not entry[0].done():
                        entry[0].set_result(b"".join(entry[1]))

        async def get(self) -> bytes:
            sid = self._quic.get_next_available_stream_id()
            future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
            self.waiting[sid] = (future, [])
            fields = [(b":method", b"GET"), (b":scheme", b"https"), (b":authority", b"localhost"), (b":path", b"/")]
            self.h3.send_headers(sid, fields, end_stream=True)
            self.transmit()
            return await future

    latencies: list[float] = []
    errors = 0
    deadline = 0.0

    async def worker(client: Client) -> None:
        nonlocal errors
        while time.monotonic() < deadline:
            started = time.monotonic()
            try:
                body = await asyncio.wait_for(client.get(), 10)
            except (TimeoutError, ConnectionError):
                errors += 1
                continue
            latencies.append(time.monotonic() - started)
            if body != HELLO:
                errors += 1

    configuration = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN, server_name="localhost")
    configuration.load_verify_locations(ca)
    managers = [connect("127.0.0.1", port, configuration=configuration, create_protocol=Client)
                for _ in range(connections)]  # fmt: skip
    clients = [await manager.__aenter__() for manager in managers]
    for client in clients:  # warm-up, and a check
        assert await client.get() == HELLO  # type: ignore[attr-defined]
    cpu = time.process_time()
    started = time.monotonic()
    deadline = started + seconds
    await asyncio.gather(*(worker(c) for c in clients for _ in range(streams)))  # type: ignore[arg-type]
    wall = time.monotonic() - started
    cpu = time.process_time() - cpu
    for manager in managers:
        await manager.__aexit__(None, None, None)
    latencies.sort()
    return {
        "requests": len(latencies),
        "errors": errors,
        "rps": round(len(latencies) / wall, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 2) if latencies else None,
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 2) if latencies else None,
        "client_cpu": round(cpu / wall, 2),
    }


# -- the run -------------------------------------------------------------------------------------------------


def wait_ready(port: int, proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("the server exited")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                time.sleep(0.5)  # the UDP side binds beside the TCP one
                return
        time.sleep(0.1)
    raise RuntimeError("the server did not listen in time")


def measure(name: str, args: argparse.Namespace, files: tuple[str, str, str]) -> dict[str, Any]:
    port = free_port()
    proc = subprocess.Popen(["taskset", "-c", "0", *server_command(name, port, files[0], files[1])],
                            cwd=BENCH / "apps", stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    try:
        wait_ready(port, proc)
        out = subprocess.run(
            ["taskset", "-c", "1", sys.executable, __file__, "client", str(port), files[2], str(args.seconds),
             str(args.connections), str(args.streams)],
            capture_output=True, text=True, timeout=args.seconds + 60, check=True,
        )  # fmt: skip
        return {"server": name, **json.loads(out.stdout.strip().splitlines()[-1])}
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def main() -> int:
    if sys.argv[1:2] == ["client"]:
        port, ca, seconds, connections, streams = sys.argv[2:7]
        result = asyncio.run(load(int(port), ca, float(seconds), int(connections), int(streams)))
        print(json.dumps(result))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short run, to see that everything works")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--streams", type=int, default=8, help="requests in flight per connection")
    parser.add_argument("--servers", default="monoceros,hypercorn")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if shutil.which("taskset") is None:
        print("taskset is missing (util-linux)")
        return 2
    try:
        import aioquic  # noqa: F401
    except ImportError:
        print("aioquic is missing: pip install 'monoceros[http3]'")
        return 2
    if args.quick:
        args.seconds = 2.0
    out = args.out or BENCH / "results" / ("quick" if args.quick else "")
    out.mkdir(parents=True, exist_ok=True)
    import tempfile

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        files = certificates(Path(tmp))
        for name in args.servers.split(","):
            if name == "hypercorn" and not (PEERS / "hypercorn").exists():
                print("hypercorn: not installed in bench/.venv-peers, skipped")
                continue
            try:
                rows.append(measure(name, args, files))
            except (RuntimeError, subprocess.SubprocessError, AssertionError) as exc:
                print(f"{name}: failed: {exc}")
                return 1
    base = next((r for r in rows if r["server"] == "hypercorn"), None)
    lines = [
        "| server | req/s | p50 ms | p99 ms | errors | client CPU | vs hypercorn |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ratio = f"{r['rps'] / base['rps']:.2f}x" if base and base["rps"] else "-"
        lines.append(f"| {r['server']} | {r['rps']:,} | {r['p50_ms']} | {r['p99_ms']} | {r['errors']} | "
                     f"{r['client_cpu']} | {ratio} |")  # fmt: skip
    command = "python bench/http3.py " + " ".join(sys.argv[1:])
    text = "\n".join([f"HTTP/3 hello-world, {args.connections} connections x {args.streams} streams, "
                      f"{args.seconds:g} s, one server core, one client core", "", *lines, "",
                      f"Command: `{command}`"])  # fmt: skip
    print(text)
    (out / "http3.md").write_text(text + "\n")
    (out / "http3.json").write_text(json.dumps(rows, indent=2) + "\n")
    return 1 if any(r["errors"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
