#!/usr/bin/env python3
"""HTTP/2 benchmark (h2c, prior knowledge, with h2load): python bench/http2.py [--quick] [--servers a,b] ...

Each server runs bench/apps/asgi_app.py or wsgi_app.py with one worker pinned to core 0 (taskset -c 0),
access log off, on a new free port on 127.0.0.1, started fresh for every scenario. h2load, pinned to
core 1 with one thread, loads it over cleartext HTTP/2 with prior knowledge (no Upgrade, no TLS):

  h  hello world, 16 connections x 16 streams:  h2load -t1 -c16 -m16 -D S --warm-up-time 1  /
  i  downloads, 16 streams of 1 MiB at a time on one connection:
                                                 h2load -t1 -c1 -m16 -D S --warm-up-time 1   /stream
  j  100 streams of an app that sleeps 0.5 s, all at once on one connection:
                                                 h2load -t1 -c1 -m100 -n100                  /sleep

monoceros runs once per HTTP/2 engine tier (--http2-engine nghttp2: the compiled glue; nghttp2-abi:
libnghttp2 bound at run time; h2: the pure-Python h2 package), always with --http2-max-requests 0
(its default of 1000 streams per connection ends in GOAWAY, and h2load -D does not reconnect); the
engine its log names must be the one asked for. The peers are hypercorn (with keep_alive_max_requests
raised from 1000 in a config file this script writes: the same GOAWAY), granian (--http auto) and gunicorn
(--http-protocols h2,h1 --http2-cleartext prior-knowledge), from bench/.venv-peers.

Before and after the load one GET over h2c (the h2 package) must answer 200 with the exact body. A
run counts as failed if h2load does not report "Application protocol: h2c", if any request failed,
errored, timed out or had a status outside 2xx, or if none succeeded. Results: bench/results/http2/
http2.{md,json} (bench/results/quick/http2/ with --quick), server logs in its logs/.

Exit status: 0 all good; 1 a server failed to start, answered wrongly, served another engine than
asked, or a run failed; 2 h2load or taskset missing (and not installable), or the peers not set up.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import resource
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

import h2.config
import h2.connection
import h2.events
import h2.exceptions

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))
sys.path.insert(1, str(BENCH / "apps"))

import run  # noqa: E402
from common import HELLO, SLEEP_SECONDS, SLEPT, STREAM_CHUNK, STREAM_CHUNKS  # noqa: E402
from matrix import HOST  # noqa: E402

RESULTS_NAME = "http2"
WARMUP = 1  # seconds of h2load --warm-up-time in the timed scenarios (h, i)
CHECK_TIMEOUT = 15.0  # seconds for one check request
ENGINE_LOG_WAIT = 5.0  # seconds for monoceros' "HTTP/2 served by" line to appear once the port accepts
PEER_DISTS = ["hypercorn", "granian", "gunicorn", "h2", "uvloop"]
WSGI_THREADS = 8  # the WSGI pool for monoceros, granian and gunicorn (hypercorn: asyncio's default executor)
# hypercorn closes an HTTP/2 connection after keep_alive_max_requests streams (1000 by default), like monoceros'
# --http2-max-requests, and has no flag for it: a TOML file written into the output directory, given with -c
HYPERCORN_CONFIG = "hypercorn-http2.toml"
HYPERCORN_TOML = "keep_alive_max_requests = 1000000000\n"

Result = dict[str, Any]


# ---------------------------------------------------------------------------------------
# Scenarios and servers
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    name: str
    path: str
    connections: int
    streams: int  # h2load -m: streams in flight per connection
    requests: int  # h2load -n; 0: timed (-D duration, with a warm-up)
    body: bytes  # what the check request must get
    description: str

    def h2load(self, port: int | str, duration: float, client_core: int) -> list[str]:
        cmd = ["taskset", "-c", str(client_core), "h2load", "-t1", f"-c{self.connections}", f"-m{self.streams}"]
        if self.requests:
            cmd.append(f"-n{self.requests}")
        else:
            period = f"{duration:g}" if duration == int(duration) else f"{round(duration * 1000)}ms"
            cmd += ["-D", period, "--warm-up-time", str(WARMUP)]
        return [*cmd, f"http://{HOST}:{port}{self.path}"]

    def timeout(self, duration: float) -> float:
        """Seconds before h2load is killed: a timed run ends by itself; j served one stream at a time takes 50 s."""
        if self.requests:
            return self.requests * SLEEP_SECONDS + 30
        return WARMUP + duration + 30


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in [
        Scenario("h", "/", 16, 16, 0, HELLO, "hello world: 16 connections x 16 streams in flight"),
        Scenario(
            "i",
            "/stream",
            1,
            16,
            0,
            STREAM_CHUNK * STREAM_CHUNKS,
            "downloads: 16 streams of 1 MiB (64 x 16 KiB, no content-length) in flight on one connection",
        ),
        Scenario(
            "j",
            "/sleep",
            1,
            100,
            100,
            SLEPT,
            f"100 streams at once on one connection, each an app that sleeps {SLEEP_SECONDS} s",
        ),
    ]
}


@dataclass(frozen=True)
class H2Server:
    name: str
    interface: str  # asgi or wsgi
    command: str  # {python}, {peers}, {port} as in bench/matrix.py; run in bench/apps
    peer: bool
    note: str
    engine: str = ""  # monoceros: text its "HTTP/2 served by" log line must hold


def monoceros(interface: str, tier: str, engine: str, expect: str, inline: bool = False) -> H2Server:
    app = "asgi_app:app" if interface == "asgi" else "wsgi_app:app"
    extra = "--interface asgi3" if interface == "asgi" else f"--interface wsgi --threads {WSGI_THREADS}"
    if inline:
        extra = "--interface wsgi --wsgi-mode inline"
    return H2Server(
        f"monoceros-{interface}{'-inline' if inline else ''}-{tier}",
        interface,
        f"{{python}} -m monoceros --workers 1 {extra} --host 127.0.0.1 --port {{port}} --no-access-log"
        f" --http2-max-requests 0 --http2-engine {engine} --app-dir . {app}",
        peer=False,
        note=f"this repo, --http2-engine {engine}"
        + ("" if interface == "asgi" else " --wsgi-mode inline" if inline else f"; WSGI on {WSGI_THREADS} threads"),
        engine=expect,
    )


TIERS = [("glue", "nghttp2", "(glue)"), ("abi", "nghttp2-abi", "(abi)"), ("h2", "h2", "h2 ")]
HYPERCORN_THREADS = min(32, (os.cpu_count() or 1) + 4)  # asyncio's default executor, which runs its WSGI apps

H2_SERVERS: dict[str, H2Server] = {
    s.name: s
    for s in [
        *(monoceros("asgi", *tier) for tier in TIERS),
        *(monoceros("wsgi", *tier) for tier in TIERS),
        monoceros("wsgi", *TIERS[0], inline=True),
        H2Server(
            "hypercorn-asgi",
            "asgi",
            "{peers}/hypercorn -c {hypercorn_config} --workers 1 --worker-class uvloop --log-level warning"
            " --bind 127.0.0.1:{port}"
            " asgi:asgi_app:app",
            peer=True,
            note="hypercorn on uvloop; h2c by the preface on a plain bind; no access log unless given a file;"
            f" {{hypercorn_config}}: `{HYPERCORN_TOML.strip()}`",
        ),
        H2Server(
            "hypercorn-wsgi",
            "wsgi",
            "{peers}/hypercorn -c {hypercorn_config} --workers 1 --worker-class uvloop --log-level warning"
            " --bind 127.0.0.1:{port}"
            " wsgi:wsgi_app:app",
            peer=True,
            note=f"hypercorn on uvloop; WSGI on asyncio's default executor ({HYPERCORN_THREADS} threads here);"
            f" {{hypercorn_config}}: `{HYPERCORN_TOML.strip()}`",
        ),
        H2Server(
            "granian-asgi",
            "asgi",
            "{peers}/granian --interface asgi --workers 1 --runtime-threads 1 --loop uvloop --http auto"
            " --no-access-log --log-level warning --host 127.0.0.1 --port {port} asgi_app:app",
            peer=True,
            note="granian (Rust, hyper), --http auto; one worker, one runtime thread",
        ),
        H2Server(
            "granian-wsgi",
            "wsgi",
            "{peers}/granian --interface wsgi --workers 1 --runtime-threads 1"
            f" --blocking-threads {WSGI_THREADS} --http auto --no-access-log --log-level warning"
            " --host 127.0.0.1 --port {port} wsgi_app:app",
            peer=True,
            note=f"granian --http auto; one worker, one runtime thread, {WSGI_THREADS} blocking threads",
        ),
        H2Server(
            "gunicorn-asgi",
            "asgi",
            "{peers}/gunicorn --workers 1 --worker-class asgi --asgi-loop uvloop --log-level warning"
            " --http-protocols h2,h1 --http2-cleartext prior-knowledge --bind 127.0.0.1:{port} asgi_app:app",
            peer=True,
            note="gunicorn's native ASGI worker on uvloop, HTTP/2 (beta) through the h2 package",
        ),
        H2Server(
            "gunicorn-wsgi",
            "wsgi",
            f"{{peers}}/gunicorn --workers 1 --worker-class gthread --threads {WSGI_THREADS} --log-level warning"
            " --http-protocols h2,h1 --http2-cleartext prior-knowledge --bind 127.0.0.1:{port} wsgi_app:app",
            peer=True,
            note=f"gunicorn gthread, {WSGI_THREADS} threads, HTTP/2 (beta) through the h2 package",
        ),
    ]
}
QUICK_SERVERS = [name for name in H2_SERVERS if name.startswith("monoceros")]

# numerator, denominator: the comparisons the project tracks, from the same run
RATIOS = [
    ("monoceros-asgi-glue", "hypercorn-asgi"),
    ("monoceros-asgi-glue", "granian-asgi"),
    ("monoceros-wsgi-glue", "granian-wsgi"),
    ("monoceros-wsgi-inline-glue", "granian-wsgi"),
    ("monoceros-asgi-abi", "granian-asgi"),
    ("monoceros-asgi-h2", "hypercorn-asgi"),
    ("monoceros-asgi-glue", "monoceros-asgi-abi"),
]


# ---------------------------------------------------------------------------------------
# The check request, h2load and its output
# ---------------------------------------------------------------------------------------


def h2_get(port: int, path: str, timeout: float = CHECK_TIMEOUT) -> tuple[int, bytes]:
    """One GET over h2c with prior knowledge (the h2 package, a monoceros dependency): (status, body)."""
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    conn.initiate_connection()
    stream = conn.get_next_available_stream_id()
    headers = [(":method", "GET"), (":scheme", "http"), (":authority", f"{HOST}:{port}"), (":path", path)]
    conn.send_headers(stream, headers, end_stream=True)
    deadline = time.monotonic() + timeout
    status, body = 0, bytearray()
    with socket.create_connection((HOST, port), timeout=timeout) as sock:
        sock.sendall(conn.data_to_send())
        while True:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            data = sock.recv(65536)
            if not data:
                raise ConnectionError(f"the server closed the connection after {len(body)} body bytes")
            ended = False
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived) and event.stream_id == stream:
                    status = int(dict(event.headers)[":status"])
                elif isinstance(event, h2.events.DataReceived):
                    body += event.data
                    conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                elif isinstance(event, h2.events.StreamEnded) and event.stream_id == stream:
                    ended = True
                elif isinstance(event, (h2.events.StreamReset, h2.events.ConnectionTerminated)):
                    raise ConnectionError(f"the server ended the exchange: {event}")
            if ended:
                conn.close_connection()
            sock.sendall(conn.data_to_send())
            if ended:
                return status, bytes(body)


def check(port: int, scenario: Scenario) -> str | None:
    """None if one GET over h2c gets 200 and the exact body, else what was wrong."""
    try:
        status, body = h2_get(port, scenario.path)
    except (OSError, ValueError, h2.exceptions.H2Error) as exc:
        return f"h2c check request for {scenario.path} failed: {exc!r}"
    if status != 200:
        return f"h2c check request for {scenario.path} got status {status}: {body[:200]!r}"
    if body != scenario.body:
        want = len(scenario.body)
        return f"h2c check request for {scenario.path} got {len(body)} bytes {body[:40]!r}, expected {want}"
    return None


UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0}
NUMBER = r"([\d.]+)(us|ms|s)"


def seconds(value: str, unit: str) -> float:
    return float(value) * UNITS[unit]


def parse_h2load(text: str) -> Result:
    """h2load's summary as numbers (times in seconds); raises ValueError if a line is missing."""
    out: Result = {}
    m = re.search(r"Application protocol: (\S+)", text)
    out["protocol"] = m.group(1) if m else None
    m = re.search(rf"finished in {NUMBER}, ([\d.]+) req/s", text)
    if not m:
        raise ValueError("no 'finished in' line")
    out["finished_s"], out["rps"] = seconds(m.group(1), m.group(2)), float(m.group(3))
    keys = ("total", "started", "done", "succeeded", "failed", "errored", "timeout")
    m = re.search(r"requests: " + ", ".join(rf"(\d+) {key}" for key in keys), text)
    if not m:
        raise ValueError("no 'requests:' line")
    for key, value in zip(keys, m.groups(), strict=True):
        out[f"requests_{key}"] = int(value)
    m = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", text)
    if not m:
        raise ValueError("no 'status codes:' line")
    out["status_2xx"] = int(m.group(1))
    out["status_other"] = sum(int(g) for g in m.groups()[1:])
    m = re.search(rf"time for request:\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}", text)
    if not m:
        raise ValueError("no 'time for request:' line")
    g = m.groups()
    out["latency_min_s"], out["latency_max_s"], out["latency_mean_s"] = (
        seconds(g[0], g[1]),
        seconds(g[2], g[3]),
        seconds(g[4], g[5]),
    )
    return out


def problems(r: Result) -> str | None:
    """Why an h2load run does not count, or None."""
    if r.get("protocol") != "h2c":
        return f"h2load's application protocol was {r.get('protocol')!r}, not h2c"
    bad = r["requests_failed"] + r["requests_errored"] + r["requests_timeout"] + r["status_other"]
    if bad or not r["requests_succeeded"]:
        return (
            f"{r['requests_succeeded']} succeeded, {r['requests_failed']} failed, {r['requests_errored']} errored,"
            f" {r['requests_timeout']} timed out, {r['status_other']} not 2xx (of {r['requests_total']} requests)"
        )
    return None


def run_h2load(scenario: Scenario, port: int, args: argparse.Namespace, server_root: int) -> Result:
    """One h2load run, with the CPU share of the server's processes and of h2load over its wall time."""
    cmd = scenario.h2load(port, args.duration, args.client_core)
    pids = run.tree_pids(server_root)
    server_before = run.cpu_seconds(pids)
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)  # h2load is the only child waited for meanwhile
    started = time.monotonic()
    timeout = scenario.timeout(args.duration)
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"failed": f"h2load did not finish within {timeout:.0f} s"}
    wall = time.monotonic() - started
    server_cpu = run.cpu_seconds(pids) - server_before
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    client_cpu = children.ru_utime - children_before.ru_utime + children.ru_stime - children_before.ru_stime
    try:
        out = parse_h2load(res.stdout)
    except ValueError as exc:
        return {"failed": f"h2load exited {res.returncode}, {exc}: {(res.stdout + res.stderr)[-500:]!r}"}
    out["server_cpu_pct"] = 100 * server_cpu / wall
    out["h2load_cpu_pct"] = 100 * client_cpu / wall
    out["mb_per_s"] = out["rps"] * len(scenario.body) / 1e6  # response bodies only
    problem = problems(out)
    if problem:
        out["failed"] = problem
    return out


# ---------------------------------------------------------------------------------------
# One server, one scenario
# ---------------------------------------------------------------------------------------


def wait_for_engine(server: H2Server, log_path: Path) -> str | None:
    """monoceros: None once its log says the asked-for engine serves HTTP/2, else why not."""
    deadline = time.monotonic() + ENGINE_LOG_WAIT
    line = ""
    while time.monotonic() < deadline:
        lines = [x for x in log_path.read_text(errors="replace").splitlines() if "HTTP/2 served by" in x]
        if lines:
            line = lines[0].split("HTTP/2 served by", 1)[1].strip()
            if server.engine in line + " ":
                return None
            break
        time.sleep(0.05)
    return f"asked for {server.engine.strip()!r}, the log says HTTP/2 is served by {line or 'nothing'!r}"


def run_one(server: H2Server, scenario: Scenario, args: argparse.Namespace, logs_dir: Path) -> Result:
    port = run.free_port()
    command = server.command.format(
        python=shlex.quote(sys.executable),
        peers=shlex.quote(str(args.peers_venv / "bin")),
        port=port,
        hypercorn_config=shlex.quote(str((args.out / HYPERCORN_CONFIG).resolve())),
    )
    result: Result = {
        "server": server.name,
        "scenario": scenario.name,
        "command": f"cd bench/apps && taskset -c {args.server_core} {command}",
        "h2load": shlex.join(scenario.h2load(port, args.duration, args.client_core)),
        "status": "ok",
    }
    log_path = logs_dir / f"http2-{scenario.name}__{server.name}.log"
    proc = run.start_server(command, args.server_core, BENCH / "apps", log_path)
    try:
        problem = run.wait_for_port(proc, port, run.START_TIMEOUT)
        if problem is None and server.engine:
            problem = wait_for_engine(server, log_path)
        if problem is None:
            problem = check(port, scenario)
        if problem is not None:
            result.update(status="failed", reason=problem)
            return result
        if scenario.requests:  # j: one run dropped, so that thread pools and the like have started
            result["warmup"] = run_h2load(scenario, port, args, proc.pid)
        repeats: list[Result] = []
        while len(repeats) < args.repeats and "failed" not in result.get("warmup", {}) and proc.poll() is None:
            repeats.append(run_h2load(scenario, port, args, proc.pid))
            if "failed" in repeats[-1]:
                break
        result["repeats"] = repeats
        failed = [r["failed"] for r in [result.get("warmup", {}), *repeats] if "failed" in r]
        if proc.poll() is not None:
            result.update(status="failed", reason=f"server died during the run, exit status {proc.returncode}")
        elif failed:
            result.update(status="failed", reason=failed[0])
        else:
            problem = check(port, scenario)
            if problem is not None:
                result.update(status="failed", reason="after the run: " + problem)
        for key in ("rps", "mb_per_s", "finished_s", "latency_min_s", "latency_mean_s", "latency_max_s",
                    "server_cpu_pct", "h2load_cpu_pct"):  # fmt: skip
            values = [r[key] for r in repeats if key in r]
            if values:
                result[key] = statistics.median(values)
        return result
    finally:
        result["stopped_by"] = run.stop_server(proc)
        result["log"] = os.path.relpath(log_path, REPO)
        tail = run.log_tail(log_path)
        if tail:
            result["log_tail"] = tail


# ---------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------


def num(v: float | None, fmt: str = ",.0f") -> str:
    return "-" if v is None else format(v, fmt)


def ratio_table(results: list[Result], scenarios: list[str]) -> list[str]:
    by_key = {(r["scenario"], r["server"]): r for r in results if r["status"] == "ok"}
    out = ["| ratio (req/s ÷ req/s) | " + " | ".join(scenarios) + " |", "|---|" + "---:|" * len(scenarios)]
    for a, b in RATIOS:
        cells = [run.ratio(by_key.get((s, a), {}).get("rps"), by_key.get((s, b), {}).get("rps")) for s in scenarios]
        out.append(f"| {a} ÷ {b} | " + " | ".join(cells) + " |")
    return out


def markdown(report: Result) -> str:
    meta, results = report["meta"], report["results"]
    by_key = {(r["scenario"], r["server"]): r for r in results}
    out = ["# HTTP/2 (h2c, prior knowledge): monoceros and its peers", ""]
    out.append(
        f"- when: {meta['started']} ({meta['mode']} mode: {meta['repeats']} x {meta['duration']} s per server and"
        f" timed scenario after {WARMUP} s of h2load warm-up; j: one run dropped, then {meta['repeats']}; medians)"
    )
    out.append(
        f"- machine: {meta['cpus']} CPUs, {meta['platform']}; server (one worker) on core {meta['server_core']}, "
        f"h2load (one thread) on core {meta['client_core']}; shared and noisy, so compare within one run only"
    )
    out.append("- versions: " + ", ".join(f"{k} {v}" for k, v in {**meta["local"], **meta["peers"]}.items()))
    out.append(
        "- server CPU / h2load CPU: CPU time / wall time of each h2load run, warm-up included (100 % = a core); "
        "MB/s: response body bytes (10^6) per second"
    )
    for name in meta["scenarios"]:
        sc = SCENARIOS[name]
        out += [
            "",
            f"## {name}: {sc.description}",
            "",
            f"`{shlex.join(sc.h2load('PORT', meta['duration'], meta['client_core']))}`",
        ]
        out.append("")
        if sc.requests:
            out.append("| server | total s | req/s | latency min s | mean s | max s | server CPU % | h2load CPU % |")
            out.append("|---|" + "---:|" * 7)
        else:
            mbs = " MB/s |" if name == "i" else ""
            out.append(f"| server | req/s |{mbs} latency mean ms | max ms | server CPU % | h2load CPU % | runs req/s |")
            out.append("|---|" + "---:|" * (6 + bool(mbs)))
        for server in meta["servers"]:
            r = by_key.get((name, server))
            if r is None:
                continue
            label = f"**{server}**" if server.startswith("monoceros") else server
            cpu = f"{num(r.get('server_cpu_pct'))} | {num(r.get('h2load_cpu_pct'))}"
            if r["status"] != "ok":
                out.append(f"| {label} | FAILED |" + " |" * (6 if sc.requests else 5 + (name == "i")))
                continue
            if sc.requests:
                out.append(
                    f"| {label} | {num(r.get('finished_s'), '.2f')} | {num(r.get('rps'), ',.1f')} "
                    f"| {num(r.get('latency_min_s'), '.3f')} | {num(r.get('latency_mean_s'), '.3f')} "
                    f"| {num(r.get('latency_max_s'), '.3f')} | {cpu} |"
                )
            else:
                runs = ", ".join(num(x.get("rps")) for x in r.get("repeats", []))
                mb = f" {num(r.get('mb_per_s'))} |" if name == "i" else ""
                lat_mean = r.get("latency_mean_s")
                lat_max = r.get("latency_max_s")
                out.append(
                    f"| {label} | {num(r.get('rps'))} |{mb} {num(lat_mean and 1000 * lat_mean, '.2f')} "
                    f"| {num(lat_max and 1000 * lat_max, '.2f')} | {cpu} | {runs} |"
                )
        if sc.requests:
            out.append("")
            out.append(
                f"A server that runs the 100 streams at once answers in about {SLEEP_SECONDS} s; a WSGI server is "
                f"bounded by its thread pool, at best: {WSGI_THREADS} threads for monoceros, granian and gunicorn "
                f"(ceil(100 / {WSGI_THREADS}) x {SLEEP_SECONDS} s = {-(-100 // WSGI_THREADS) * SLEEP_SECONDS:g} s), "
                f"{HYPERCORN_THREADS} for hypercorn "
                f"({-(-100 // HYPERCORN_THREADS) * SLEEP_SECONDS:g} s)."
            )
    out += ["", "## Ratios", "", "req/s medians of this run, divided (above 1: the first is faster).", ""]
    out += ratio_table(results, meta["scenarios"])
    out += ["", "## Failures", ""]
    out.extend(run.failures(results, "scenario", "None: every server started, served h2c, answered every request."))
    for name, why in meta.get("skipped", {}).items():
        out.append(f"- {name}: not run, {why}")
    out += ["", "## Servers and commands", ""]
    out.append(
        "Each runs as `cd bench/apps && taskset -c 0 COMMAND` (`{peers}` = the peers virtualenv's bin/,"
        f" `{{hypercorn_config}}` = {HYPERCORN_CONFIG} in the output directory)."
    )
    out.append("")
    for server in meta["servers"]:
        s = H2_SERVERS[server]
        out.append(f"- **{server}**: {s.note}: `{s.command}`")
    out += ["", f"Command line of this run: `{meta['argv']}`", ""]
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


def ensure_tools() -> bool:
    """h2load (nghttp2-client) and taskset; apt-get h2load if missing, as bench/run.py does."""
    if not shutil.which("h2load"):
        run.log("installing h2load: apt-get install -y nghttp2-client")
        cmd = ["apt-get", "install", "-y", "nghttp2-client"]
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            if subprocess.run(cmd, env=env, timeout=900).returncode != 0:
                run.log("apt-get install failed; running apt-get update once and retrying")
                subprocess.run(["apt-get", "update"], env=env, timeout=900)
                subprocess.run(cmd, env=env, timeout=900)
    missing = [t for t in ("h2load", "taskset") if not shutil.which(t)]
    if missing:
        run.log(f"error: missing tools: {', '.join(missing)}")
    return not missing


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="CI smoke test: 1 x 2 s, monoceros only")
    p.add_argument("--servers", default="", help="comma-separated, from: " + ", ".join(H2_SERVERS))
    p.add_argument("--scenarios", default="h,i,j", help="comma-separated [%(default)s]")
    p.add_argument("--repeats", type=int, default=None, help="measured h2load runs per server and scenario [3]")
    p.add_argument("--duration", type=float, default=None, help="seconds per timed run (h, i) [5]")
    p.add_argument("--peers-venv", type=Path, default=BENCH / ".venv-peers", help="[%(default)s]")
    p.add_argument("--out", type=Path, default=None, help="output directory [bench/results/http2]")
    p.add_argument("--server-core", type=int, default=0)
    p.add_argument("--client-core", type=int, default=1)
    args = p.parse_args(argv)
    args.repeats = args.repeats if args.repeats is not None else (1 if args.quick else 3)
    args.duration = args.duration if args.duration is not None else (2.0 if args.quick else 5.0)
    args.out = args.out or BENCH / "results" / ("quick" if args.quick else "") / RESULTS_NAME
    args.peers_venv = args.peers_venv.resolve()
    if args.repeats < 1 or not 0 < args.duration <= 600:
        p.error("--repeats >= 1 and 0 < --duration <= 600")
    args.scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    if not args.scenarios or any(s not in SCENARIOS for s in args.scenarios):
        p.error(f"--scenarios: comma-separated, from {', '.join(SCENARIOS)}")
    wanted = [s.strip() for s in args.servers.split(",") if s.strip()]
    if any(s not in H2_SERVERS for s in wanted):
        p.error(f"unknown server in {args.servers!r}; known: {', '.join(H2_SERVERS)}")
    args.servers = [s for s in H2_SERVERS if s in wanted] or (QUICK_SERVERS if args.quick else list(H2_SERVERS))
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if not ensure_tools():
        return 2
    peers = any(H2_SERVERS[s].peer for s in args.servers)
    if peers:
        try:
            run.ensure_peers(args.peers_venv, reinstall=False)
        except (OSError, subprocess.SubprocessError) as exc:
            run.log(f"error: the peers virtualenv {args.peers_venv} could not be set up: {exc}")
            return 2
    cpus = os.cpu_count() or 1
    if cpus < 2:
        run.log("warning: fewer than 2 CPUs; server and h2load share core 0")
        args.server_core = args.client_core = 0
    with contextlib.suppress(OSError):  # keep this process off the server's core
        os.sched_setaffinity(0, {args.client_core})
    logs_dir = args.out / "logs"
    logs_dir.mkdir(parents=True, exist_ok=True)
    (args.out / HYPERCORN_CONFIG).write_text(HYPERCORN_TOML)
    plan = [(SCENARIOS[s], H2_SERVERS[name]) for s in args.scenarios for name in args.servers]
    per_run = WARMUP + args.duration
    run.log(f"{len(plan)} runs, about {len(plan) * (args.repeats * per_run + 3) / 60:.1f} min")
    local = run.local_versions()
    local.pop("wrk", None)
    h2load = subprocess.run(["h2load", "--version"], capture_output=True, text=True, timeout=10).stdout.strip()
    meta = {
        "started": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "mode": "quick" if args.quick else "full",
        "argv": shlex.join(["python", "bench/http2.py", *argv]),
        "repeats": args.repeats,
        "duration": args.duration,
        "warmup": WARMUP,
        "scenarios": args.scenarios,
        "cpus": cpus,
        "platform": f"{platform.system()} {platform.release()} {platform.machine()}",
        "server_core": args.server_core,
        "client_core": args.client_core,
        "servers": args.servers,
        "skipped": {},
        "local": {**local, "h2 (monoceros)": h2.__version__, "h2load": h2load},
        "peers": run.peer_versions(args.peers_venv, PEER_DISTS) if peers else {},
    }
    results = []
    for i, (scenario, server) in enumerate(plan, 1):
        r = run_one(server, scenario, args, logs_dir)
        results.append(r)
        extra = f"  FAILED: {r.get('reason', '')}" if r["status"] != "ok" else ""
        lat = r.get("latency_mean_s")
        run.log(
            f"[{i}/{len(plan)}] {scenario.name} {server.name:20} {num(r.get('rps')):>8} req/s"
            + (f"  {num(r.get('mb_per_s')):>6} MB/s" if scenario.name == "i" else "")
            + f"  mean {num(lat and 1000 * lat, '.1f'):>6} ms"
            f"  server CPU {num(r.get('server_cpu_pct')):>3} %  h2load CPU {num(r.get('h2load_cpu_pct')):>3} %{extra}"
        )
    return write_report({"meta": meta, "results": results}, args.out)


if __name__ == "__main__":
    sys.exit(main())
