"""File downloads, side by side: a 200 MB file and a 16 KB file from each server, ASGI and WSGI.

    python bench/files.py                 # every server, 5 downloads of 200 MB and 3 x 5 s of wrk on 16 KB
    python bench/files.py --quick         # 2 downloads, 1 x 1 s
    python bench/files.py --servers monoceros,granian
    python bench/files.py --quick --servers monoceros,monoceros-asyncio   # CI's smoke test: no peers needed

The big file is fetched with curl (to /dev/null) on core 1 while the server runs on core 0: reported are the
median wall time of a download and the server's CPU seconds for it (from /proc), the figure that shows
whether the bytes went through Python or stayed in the kernel. The small file is wrk's req/s at 16
connections. The apps are bench/apps/files_app.py (Starlette FileResponse, Flask send_file); the files
are made fresh, random, in a temporary directory, and warmed into the page cache before anything is timed.

Writes bench/results/files.md and files.json (bench/results/quick/ with --quick). Uses the peers' virtualenv
and the tools of bench/run.py (set up the same way).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from run import (
    BENCH,
    HOST,
    cpu_seconds,
    ensure_peers,
    ensure_tools,
    free_port,
    log,
    peer_versions,
    peers_python,
    stop_server,
    tree_pids,
    wait_for_port,
)

BIG, SMALL = 200 * 1024 * 1024, 16 * 1024

# name -> interface -> command ({python}, {peers}, {port} as in bench/matrix.py)
SERVERS: dict[str, dict[str, str]] = {
    "monoceros": {
        "asgi": "{python} -m monoceros --no-access-log --log-level warning --host 127.0.0.1 --port {port}"
        " files_app:asgi",
        "wsgi": "{python} -m monoceros --no-access-log --log-level warning --host 127.0.0.1 --port {port}"
        " files_app:wsgi",
    },
    "monoceros-asyncio": {
        "asgi": "{python} -m monoceros --loop asyncio --no-access-log --log-level warning --host 127.0.0.1"
        " --port {port} files_app:asgi",
    },
    "uvicorn": {
        "asgi": "{peers}/uvicorn --loop uvloop --http httptools --no-access-log --log-level warning"
        " --host 127.0.0.1 --port {port} files_app:asgi",
    },
    "granian": {
        "asgi": "{peers}/granian --interface asgi --workers 1 --runtime-threads 1 --loop uvloop --http 1"
        " --no-access-log --log-level warning --host 127.0.0.1 --port {port} files_app:asgi",
        "wsgi": "{peers}/granian --interface wsgi --workers 1 --runtime-threads 1 --blocking-threads 8 --http 1"
        " --no-access-log --log-level warning --host 127.0.0.1 --port {port} files_app:wsgi",
    },
    "gunicorn-gthread": {
        "wsgi": "{peers}/gunicorn --workers 1 --worker-class gthread --threads 8 --log-level warning"
        " --bind 127.0.0.1:{port} files_app:wsgi",
    },
}


def start(command: str, port: int, files: Path, venv: Path, logs: Path, name: str) -> subprocess.Popen[bytes]:
    text = command.format(python=sys.executable, peers=venv / "bin", port=port)
    env = dict(os.environ, BENCH_FILES=str(files), PYTHONPATH=str(BENCH / "apps"))
    out = open(logs / f"{name}.log", "wb")  # noqa: SIM115 - the server writes to it until stopped
    proc = subprocess.Popen(
        ["taskset", "-c", "0", *shlex.split(text)], cwd=BENCH / "apps", env=env, stdout=out, stderr=out,
        start_new_session=True,
    )  # fmt: skip
    error = wait_for_port(proc, port, 30)
    if error:
        stop_server(proc)
        raise RuntimeError(f"{name}: {error}")
    return proc


def download(port: int, name: str) -> tuple[float, int]:
    """One download with curl on core 1: (seconds, bytes)."""
    res = subprocess.run(
        ["taskset", "-c", "1", "curl", "-s", "-o", "/dev/null", "-w", "%{time_total} %{size_download} %{http_code}",
         f"http://{HOST}:{port}/{name}"],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    seconds, size, code = res.stdout.split()
    if code != "200":
        raise RuntimeError(f"HTTP {code} for {name}")
    return float(seconds), int(size)


def wrk_small(port: int, seconds: int) -> float:
    res = subprocess.run(
        ["taskset", "-c", "1", "wrk", "-t1", "-c16", f"-d{seconds}s", f"http://{HOST}:{port}/small.bin"],
        capture_output=True, text=True, timeout=seconds + 30, check=True,
    )  # fmt: skip
    errors = [line for line in res.stdout.splitlines() if "Non-2xx" in line or "Socket errors" in line]
    if errors:
        raise RuntimeError(f"wrk: {errors}")
    return float(next(line.split()[1] for line in res.stdout.splitlines() if line.startswith("Requests/sec")))


def measure(
    name: str, interface: str, command: str, args: argparse.Namespace, files: Path, logs: Path
) -> dict[str, Any]:
    port = free_port()
    proc = start(command, port, files, args.peers_venv, logs, f"{name}-{interface}")
    try:
        download(port, "small.bin")
        download(port, "big.bin")  # warm: the file in the page cache, the server's paths taken once
        pids = tree_pids(proc.pid)
        times, cpu = [], []
        for _ in range(args.downloads):
            before = cpu_seconds(pids)
            seconds, size = download(port, "big.bin")
            if size != BIG:
                raise RuntimeError(f"{size} bytes instead of {BIG}")
            cpu.append(cpu_seconds(pids) - before)
            times.append(seconds)
        wrk_small(port, 1)  # warm-up
        rps = [wrk_small(port, args.duration) for _ in range(args.repeats)]
    finally:
        stop_server(proc)
    return {
        "server": name, "interface": interface, "command": command,
        "big_seconds": statistics.median(times), "big_all": times,
        "big_server_cpu": statistics.median(cpu), "big_cpu_all": cpu,
        "small_rps": statistics.median(rps), "small_all": rps,
    }  # fmt: skip


def markdown(results: list[dict[str, Any]], versions: dict[str, str], args: argparse.Namespace) -> str:
    lines = [
        "# File downloads: 200 MB and 16 KB",
        "",
        f"`python bench/files.py{' --quick' if args.quick else ''}`, {time.strftime('%Y-%m-%d %H:%M')}:"
        f" server on core 0, client on core 1; {args.downloads} downloads of 200 MB with curl (median),"
        f" {args.repeats} x {args.duration} s of `wrk -t1 -c16` on 16 KB (median). Peers: "
        + ", ".join(f"{k} {v}" for k, v in sorted(versions.items())),
        "",
    ]
    for interface in ("asgi", "wsgi"):
        rows = [r for r in results if r["interface"] == interface]
        if not rows:
            continue
        app = "Starlette FileResponse" if interface == "asgi" else "Flask send_file"
        base = next((r for r in rows if r["server"] == "granian"), None)
        lines += [
            f"## {interface.upper()} ({app})",
            "",
            "| server | 200 MB: s | MB/s | server CPU s | 16 KB: req/s | vs granian: 200 MB speed | 16 KB req/s |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for r in rows:
            speed = BIG / 1e6 / r["big_seconds"]
            vs_big = f"{base['big_seconds'] / r['big_seconds']:.2f}x" if base else "-"
            vs_small = f"{r['small_rps'] / base['small_rps']:.2f}x" if base else "-"
            lines.append(
                f"| {r['server']} | {r['big_seconds']:.3f} | {speed:.0f} | {r['big_server_cpu']:.3f} | "
                f"{r['small_rps']:,.0f} | {vs_big} | {vs_small} |"
            )
        lines.append("")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--servers", default=",".join(SERVERS))
    parser.add_argument("--downloads", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--peers-venv", type=Path, default=BENCH / ".venv-peers")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.quick:
        args.downloads, args.repeats, args.duration = 2, 1, 1
    out = args.out or (BENCH / "results" / ("quick" if args.quick else ""))
    out.mkdir(parents=True, exist_ok=True)
    ensure_tools()
    peers = [name for name in args.servers.split(",") if not name.startswith("monoceros")]
    if peers:
        ensure_peers(args.peers_venv, reinstall=False)
        subprocess.run([str(peers_python(args.peers_venv)), "-c", "import starlette, flask"], check=True)
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-files-") as folder:
        files = Path(folder)
        (files / "big.bin").write_bytes(os.urandom(BIG))
        (files / "small.bin").write_bytes(os.urandom(SMALL))
        logs = out / "logs"
        logs.mkdir(exist_ok=True)
        for name in args.servers.split(","):
            for interface, command in SERVERS[name].items():
                log(f"{name} {interface}")
                try:
                    results.append(measure(name, interface, command, args, files, logs))
                except (RuntimeError, subprocess.SubprocessError) as exc:
                    log(f"  failed: {exc}")
                    return 1
                r = results[-1]
                log(
                    f"  200 MB {r['big_seconds']:.3f} s, CPU {r['big_server_cpu']:.3f} s; 16 KB {r['small_rps']:,.0f}/s"
                )
    versions = peer_versions(args.peers_venv, ["uvicorn", "granian", "gunicorn", "starlette", "flask"]) if peers else {}
    (out / "files.json").write_text(json.dumps({"results": results, "versions": versions}, indent=1))
    text = markdown(results, versions, args)
    (out / "files.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
