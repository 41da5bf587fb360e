#!/usr/bin/env python3
"""Benchmark monoceros against its peers: python bench/run.py [--quick] [--no-peers] ...

Every server in bench/matrix.py runs each of its scenarios in turn, alone, with one worker
pinned to one core (taskset -c 0) while wrk, pinned to the other core (taskset -c 1),
loads it over 127.0.0.1. For each (server, scenario): start, wait for the port, check one
request's answer, note the idle RSS, warm up, measure N repeats while sampling the RSS
of the server's process tree, stop (SIGTERM, then SIGKILL). Results go to
bench/results/results.{md,json,png}. See bench/README.md.

Exit status: 0 all good; 1 a server failed to start, failed its check request, died, or
answered errors (wrk socket errors or non-2xx); 2 the tools could not be set up.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import importlib.util
import json
import os
import platform
import resource
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))

from matrix import BASELINES, HOST, QUICK_SERVERS, SCENARIOS, SERVERS, Scenario, Server, check_matrix, command_for  # noqa: E402

PEER_PACKAGES = ["uvicorn[standard]", "gunicorn", "granian", "hypercorn", "matplotlib", "fastapi", "flask"]
PEER_IMPORTS = "import uvicorn, uvloop, httptools, gunicorn, granian, hypercorn, matplotlib, fastapi, flask"
FRAMEWORK_DISTS = ["fastapi", "starlette", "pydantic", "flask", "werkzeug"]  # what (g) runs on
PEER_DISTS = ["uvicorn", "uvloop", "httptools", "gunicorn", "granian", "hypercorn", "matplotlib", *FRAMEWORK_DISTS]
WRK_LUA = BENCH / "wrk" / "bench.lua"
START_TIMEOUT = 30.0  # seconds for a server to accept on its port
STOP_TIMEOUT = 10.0  # seconds between SIGTERM and SIGKILL
RSS_INTERVAL = 0.1  # seconds between RSS samples
IDLE_SETTLE = 0.5  # seconds after the check request before the idle RSS is read


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------
# Setup: wrk/h2load from Debian, peers into their own virtualenv
# ---------------------------------------------------------------------------------------


def ensure_tools() -> None:
    if shutil.which("wrk") and shutil.which("h2load") and shutil.which("taskset"):
        return
    log("installing wrk and h2load: apt-get install -y wrk nghttp2-client")
    cmd = ["apt-get", "install", "-y", "wrk", "nghttp2-client"]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    if subprocess.run(cmd, env=env, timeout=900).returncode != 0:
        log("apt-get install failed; running apt-get update once and retrying")
        subprocess.run(["apt-get", "update"], env=env, timeout=900)
        subprocess.run(cmd, env=env, timeout=900)
    missing = [t for t in ("wrk", "h2load", "taskset") if not shutil.which(t)]
    if missing:
        log(f"error: missing tools after install: {', '.join(missing)}")
        sys.exit(2)


def peers_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def ensure_peers(venv: Path, reinstall: bool) -> None:
    py = peers_python(venv)
    if not py.exists():
        log(f"creating the peers virtualenv {venv}")
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    ok = subprocess.run([str(py), "-c", PEER_IMPORTS], capture_output=True, timeout=120).returncode == 0
    if ok and not reinstall:
        return
    log(f"installing into {venv}: {' '.join(PEER_PACKAGES)}")
    cmd = [str(py), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    cmd += ["--upgrade"] if reinstall else []
    subprocess.run(cmd + PEER_PACKAGES, check=True, timeout=1800)
    subprocess.run([str(py), "-c", PEER_IMPORTS], check=True, timeout=120)


def peer_versions(venv: Path, dists: list[str] = PEER_DISTS) -> dict[str, str]:
    code = (
        "import importlib.metadata as m, json, sys\n"
        "out = {}\n"
        f"for d in {dists!r}:\n"
        "    try: out[d] = m.version(d)\n"
        "    except m.PackageNotFoundError: pass\n"
        "print(json.dumps(out))"
    )
    res = subprocess.run([str(peers_python(venv)), "-c", code], capture_output=True, text=True, timeout=60)
    return json.loads(res.stdout) if res.returncode == 0 else {}


def local_versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for dist in ("monoceros", "uvloop", "httptools"):
        with contextlib.suppress(md.PackageNotFoundError):
            out[dist] = md.version(dist)
    for dist in FRAMEWORK_DISTS:  # monoceros runs (g) on these; the peers on their venv's, listed as theirs
        with contextlib.suppress(md.PackageNotFoundError):
            out[f"{dist} (monoceros)"] = md.version(dist)
    try:
        rev = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--", "monoceros"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        out["monoceros_git"] = rev + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        pass
    if shutil.which("wrk"):  # bench/ws_echo.py does not need it
        wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True, timeout=10)
        out["wrk"] = (wrk.stdout + wrk.stderr).split("\n")[0].strip()
    return out


# ---------------------------------------------------------------------------------------
# Process tree RSS
# ---------------------------------------------------------------------------------------


def proc_stat(pid: int | str) -> list[bytes] | None:
    """The fields of /proc/PID/stat after the command name (so field 3, the state, is [0]); None once the
    process is gone. The name is cut at the last ')': it may hold spaces and parentheses itself."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    return stat[stat.rindex(b")") + 2 :].split()


def tree_pids(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        fields = proc_stat(entry.name)
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))  # ppid
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, ()))
    return out


def rss_kib(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status", "rb") as f:
                for line in f:
                    if line.startswith(b"VmRSS:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            pass
    return total


_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: list[int]) -> float:
    """User plus system CPU time used so far by these processes (all their threads)."""
    total = 0
    for pid in pids:
        fields = proc_stat(pid)
        if fields is not None:
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / _TICK


class RSSSampler(threading.Thread):
    """Samples the summed VmRSS of a process tree until stopped; keeps the peak."""

    def __init__(self, root: int) -> None:
        super().__init__(daemon=True)
        self.root = root
        self.peak = 0
        self.samples = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        pids, refreshed = tree_pids(self.root), time.monotonic()
        while not self._stop_event.is_set():
            if time.monotonic() - refreshed > 1.0:
                pids, refreshed = tree_pids(self.root), time.monotonic()
            self.peak = max(self.peak, rss_kib(pids))
            self.samples += 1
            self._stop_event.wait(RSS_INTERVAL)

    def stop(self) -> int:
        self._stop_event.set()
        self.join(5)
        return self.peak


# ---------------------------------------------------------------------------------------
# One server, one scenario
# ---------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def wait_for_port(proc: subprocess.Popen[bytes], port: int, timeout: float) -> str | None:
    """None once the port accepts, else why not."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return f"exited with status {proc.returncode} before accepting"
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return None
        except OSError:
            time.sleep(0.05)
    return f"did not accept on port {port} within {timeout:.0f}s"


def verify(port: int, scenario: Scenario) -> str | None:
    """Send one request like wrk's and check the answer: None if right, else what was wrong."""
    body = b"x" * scenario.post_bytes if scenario.post_bytes else None
    headers = dict(h.split(": ", 1) for h in scenario.headers)
    if body is not None:
        headers["Content-Type"] = "application/octet-stream"
    conn = http.client.HTTPConnection(HOST, port, timeout=15)
    try:
        conn.request("POST" if body is not None else "GET", scenario.path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
    except (OSError, http.client.HTTPException) as exc:
        return f"check request failed: {exc!r}"
    finally:
        conn.close()
    if resp.status != 200:
        return f"check request got status {resp.status}: {data[:200]!r}"
    if scenario.expect == "hello" and data != b"Hello, world!":
        return f"check request got body {data[:200]!r}, expected b'Hello, world!'"
    if scenario.expect == "echo" and data != str(scenario.post_bytes).encode():
        return f"check request got body {data[:200]!r}, expected {scenario.post_bytes}"
    if scenario.expect == "json":
        try:
            doc = json.loads(data)
            assert len(doc["items"]) == 8 and 900 <= len(data) <= 1100
        except (ValueError, KeyError, TypeError, AssertionError):
            return f"check request got a wrong JSON document ({len(data)} bytes): {data[:200]!r}"
    if scenario.expect == "items":
        try:
            doc = json.loads(data)
        except ValueError:
            doc = None
        if doc != {"item_id": 5, "q": "x"}:
            return f"check request got {data[:200]!r}, expected the JSON of item 5 with q 'x'"
    if scenario.expect == "stream" and data != b"x" * (1024 * 1024):
        return f"check request got {len(data)} bytes, expected 1048576 b'x'"
    return None


def wrk_command(scenario: Scenario, port: int, seconds: int, client_core: int) -> list[str]:
    cmd = [
        "taskset",
        "-c",
        str(client_core),
        "wrk",
        "-t1",
        f"-c{scenario.connections}",
        f"-d{seconds}s",
        "--timeout",
        "2s",
        "--latency",
        "-s",
        str(WRK_LUA),
    ]
    for header in scenario.headers:
        cmd += ["-H", header]
    return [*cmd, f"http://{HOST}:{port}{scenario.path}"]


def run_wrk(scenario: Scenario, port: int, seconds: int, client_core: int, server_root: int) -> dict[str, Any]:
    """One wrk run. Besides wrk's figures, the CPU share the server's processes and wrk itself used: a
    client near 100 % of its core is the limit of the scenario, whatever the server does."""
    cmd = wrk_command(scenario, port, seconds, client_core)
    env = dict(os.environ, BENCH_POST_BYTES=str(scenario.post_bytes))
    server_pids = tree_pids(server_root)
    server_before = cpu_seconds(server_pids)
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)  # wrk is the only child waited for meanwhile
    started = time.monotonic()
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=seconds + 30)
    except subprocess.TimeoutExpired:
        return {"failed": f"wrk did not finish within {seconds + 30}s"}
    wall = time.monotonic() - started
    server_cpu = cpu_seconds(server_pids) - server_before
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    wrk_cpu = (children.ru_utime - children_before.ru_utime) + (children.ru_stime - children_before.ru_stime)
    for line in res.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            out: dict[str, Any] = json.loads(line[len("BENCH_JSON ") :])
            out["server_cpu_pct"] = 100 * server_cpu / wall
            out["wrk_cpu_pct"] = 100 * wrk_cpu / wall
            out["non2xx"] = out.pop("status")  # wrk: answers with a status outside 2xx/3xx
            out["socket_errors"] = out["connect"] + out["read"] + out["write"] + out["timeout"]
            out["errors"] = out["socket_errors"] + out["non2xx"]
            out["rps"] = out["requests"] / (out["duration_us"] / 1e6) if out["duration_us"] else 0.0
            return out
    return {"failed": f"wrk exited {res.returncode} without a result: {(res.stdout + res.stderr)[-500:]!r}"}


def stop_server(proc: subprocess.Popen[bytes]) -> str:
    """SIGTERM the server, SIGKILL its whole process group if it lingers; say how it ended."""
    how = "SIGTERM"
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            how = f"SIGKILL (still running {STOP_TIMEOUT:.0f}s after SIGTERM)"
    # the group is the server's own session: this ends leftover workers too
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(5)
    return how


def log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def start_server(command: str, core: int, cwd: Path, log_path: Path) -> subprocess.Popen[bytes]:
    """Start a server ``command`` pinned to ``core``, in its own session (so stop_server reaches its whole
    tree), its output to ``log_path``; the bench apps are importable."""
    env = dict(os.environ, PYTHONPATH=str(BENCH / "apps"), PYTHONUNBUFFERED="1")
    with open(log_path, "wb") as logf:
        return subprocess.Popen(
            ["taskset", "-c", str(core), *shlex.split(command)],
            cwd=cwd,
            env=env,
            stdout=logf,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def run_one(server: Server, scenario: Scenario, args: argparse.Namespace, logs_dir: Path) -> dict[str, Any]:
    port = free_port()
    command = command_for(server, scenario).format(
        python=shlex.quote(sys.executable), peers=shlex.quote(str(args.peers_venv / "bin")), port=port
    )
    cwd = BENCH / server.cwd
    result: dict[str, Any] = {
        "server": server.name,
        "scenario": scenario.name,
        "command": f"cd {os.path.relpath(cwd, REPO)} && taskset -c {args.server_core} {command}",
        "wrk": shlex.join(wrk_command(scenario, port, args.duration, args.client_core)),
        "status": "ok",
    }
    log_path = logs_dir / f"{scenario.name}__{server.name}.log"
    proc = start_server(command, args.server_core, cwd, log_path)
    sampler = None
    try:
        problem = wait_for_port(proc, port, START_TIMEOUT)
        if problem is None:
            problem = verify(port, scenario)
        if problem is not None:
            result.update(status="failed", reason=problem)
            return result
        time.sleep(IDLE_SETTLE)
        result["rss_idle_kib"] = rss_kib(tree_pids(proc.pid))
        sampler = RSSSampler(proc.pid)
        sampler.start()
        if args.warmup > 0:
            warm = run_wrk(scenario, port, args.warmup, args.client_core, proc.pid)
            result["warmup"] = warm
        repeats = []
        for _ in range(args.repeats):
            if proc.poll() is not None:
                break
            rep = run_wrk(scenario, port, args.duration, args.client_core, proc.pid)
            repeats.append(rep)
            if "failed" in rep:
                break
        result["repeats"] = repeats
        result["rss_peak_kib"] = sampler.stop()
        result["rss_samples"] = sampler.samples
        sampler = None
        summarise(result)
        if proc.poll() is not None:
            result.update(status="failed", reason=f"server died during the run, exit status {proc.returncode}")
        elif any("failed" in r for r in [*repeats, result.get("warmup", {})]):
            result.update(
                status="failed", reason=next(r["failed"] for r in [*repeats, result.get("warmup", {})] if "failed" in r)
            )
        elif result["errors"] or result.get("warmup", {}).get("errors"):
            result.update(status="errors", reason=describe_errors(result))
        else:
            problem = verify(port, scenario)
            if problem is not None:
                result.update(status="failed", reason="check request after the run: " + problem)
        return result
    finally:
        if sampler is not None:
            sampler.stop()
        result["stopped_by"] = stop_server(proc)
        if scenario.access_log:
            check_access_log(result, log_path)
        result["log"] = os.path.relpath(log_path, REPO)
        tail = log_tail(log_path)
        if tail:
            result["log_tail"] = tail


def check_access_log(result: dict[str, Any], log_path: Path) -> None:
    """An (f) scenario: the server must have logged every request wrk counted, warm-up included. Then the
    log is cut to its tail: at tens of thousands of lines a second it runs to tens of MiB."""
    with open(log_path, "rb") as f:
        lines = sum(1 for line in f if b'"GET / ' in line)  # hypercorn writes "GET / 1.1"
    result["access_log_lines"] = lines
    answered = result.get("requests", 0) + result.get("warmup", {}).get("requests", 0)
    if result["status"] == "ok" and lines < answered:
        result.update(status="errors", reason=f"the access log has {lines} lines for {answered} requests")
    tail = log_tail(log_path).encode()
    log_path.write_bytes(tail + b"\n" if tail else b"")


def summarise(result: dict[str, Any]) -> None:
    reps = [r for r in result.get("repeats", []) if "failed" not in r]
    if not reps:
        result["errors"] = 0
        return
    result["rps"] = statistics.median(r["rps"] for r in reps)
    result["p50_ms"] = statistics.median(r["p50_us"] for r in reps) / 1000
    result["p99_ms"] = statistics.median(r["p99_us"] for r in reps) / 1000
    result["server_cpu_pct"] = statistics.median(r["server_cpu_pct"] for r in reps)
    result["wrk_cpu_pct"] = statistics.median(r["wrk_cpu_pct"] for r in reps)
    result["requests"] = sum(r["requests"] for r in reps)
    for key in ("socket_errors", "non2xx", "connect", "read", "write", "timeout", "errors"):
        result[key] = sum(r[key] for r in reps)


def describe_errors(result: dict[str, Any]) -> str:
    parts = []
    for label, src in (("measured", result), ("warm-up", result.get("warmup", {}))):
        if src.get("errors"):
            parts.append(
                f"{label}: connect {src['connect']}, read {src['read']}, write {src['write']}, "
                f"timeout {src['timeout']}, non-2xx {src['non2xx']} (of {src.get('requests', '?')} requests)"
            )
    return "; ".join(parts)


# ---------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------


def ratio(a: float | None, b: float | None) -> str:
    if not a or not b:
        return "-"
    return f"{a / b:.2f}"


def pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def mib(kib: int | None) -> str:
    return "-" if not kib else f"{kib / 1024:.1f}"


def markdown(report: dict[str, Any]) -> str:
    meta, results = report["meta"], report["results"]
    by_key = {(r["scenario"], r["server"]): r for r in results}
    scenarios = [s for s in SCENARIOS if s.name in meta["scenarios"]]
    servers = meta["servers"]
    out = ["# monoceros bench results", ""]
    out.append(
        f"- when: {meta['started']} ({meta['mode']} mode: warm-up {meta['warmup']} s, "
        f"{meta['repeats']} x {meta['duration']} s per server and scenario; medians of the repeats)"
    )
    out.append(
        f"- machine: {meta['cpus']} CPUs, {meta['platform']}; server on core {meta['server_core']}, "
        f"wrk (1 thread) on core {meta['client_core']}; shared and noisy, so compare within one run only"
    )
    out.append("- versions: " + ", ".join(f"{k} {v}" for k, v in {**meta["local"], **meta["peers"]}.items()))
    out.append(
        "- ratios: server ÷ baseline in the same scenario of this run (req/s: higher is better; "
        "p99 and RSS: lower is better); errors = wrk socket errors + non-2xx answers"
    )
    out.append("")
    # summary
    out.append("## monoceros at a glance")
    out.append("")
    out.append(
        "| scenario | req/s | req/s ÷ uvicorn | req/s ÷ granian | p99 ÷ uvicorn | p99 ÷ granian "
        "| peak RSS ÷ uvicorn | peak RSS ÷ granian | errors | server CPU % | wrk CPU % |"
    )
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for sc in scenarios:
        m = by_key.get((sc.name, "monoceros"))
        if m is None:
            continue
        uv, gr = by_key.get((sc.name, "uvicorn"), {}), by_key.get((sc.name, "granian"), {})
        out.append(
            f"| {sc.name} | {fmt_rps(m.get('rps'))} | {ratio(m.get('rps'), uv.get('rps'))} "
            f"| {ratio(m.get('rps'), gr.get('rps'))} | {ratio(m.get('p99_ms'), uv.get('p99_ms'))} "
            f"| {ratio(m.get('p99_ms'), gr.get('p99_ms'))} "
            f"| {ratio(m.get('rss_peak_kib'), uv.get('rss_peak_kib'))} "
            f"| {ratio(m.get('rss_peak_kib'), gr.get('rss_peak_kib'))} | {status_cell(m)} "
            f"| {pct(m.get('server_cpu_pct'))} | {pct(m.get('wrk_cpu_pct'))} |"
        )
    out.append("")
    out.append(
        "CPU %: the share of one core that the server's processes, and wrk, used during the measured runs. "
        "Where wrk is near 100 %, the client is the limit: every server that keeps up gets about the same "
        "req/s, and the differences between them are in how much kernel work their behaviour leaves to wrk."
    )
    out.append("")
    # matrix
    out.append("## Server x scenario matrix")
    out.append("")
    out.append(
        "✓ ran, ✗ failed or answered errors, - not applicable (no such interface or scenario), "
        "· applicable but not selected in this run"
    )
    out.append("")
    out.append("| server | " + " | ".join(s.name for s in SCENARIOS) + " |")
    out.append("|---|" + "---|" * len(SCENARIOS))
    for name in SERVERS:
        cells = []
        for sc in SCENARIOS:
            r = by_key.get((sc.name, name))
            if name not in sc.servers:
                cells.append("-")
            elif r is None:
                cells.append("·")
            else:
                cells.append("✓" if r["status"] == "ok" else "✗")
        out.append(f"| {name} | " + " | ".join(cells) + " |")
    out.append("")
    # per scenario
    out.append("## Results")
    for sc in scenarios:
        out.append("")
        hdr = f" (`-H '{sc.headers[0]}'`)" if sc.headers else ""
        body = f", POST {sc.post_bytes} B" if sc.post_bytes else ""
        out.append(f"### {sc.name}: {sc.description}")
        out.append("")
        out.append(f"{sc.iface.upper()} app, `{sc.path}`{body}{hdr}, {sc.connections} connections")
        out.append("")
        out.append(
            "| server | req/s | ÷ uvicorn | ÷ granian | p50 ms | p99 ms | p99 ÷ uvicorn | p99 ÷ granian "
            "| errors | RSS idle MiB | RSS peak MiB | peak ÷ uvicorn | peak ÷ granian | server CPU % | wrk CPU % |"
        )
        out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        base = {b: by_key.get((sc.name, b), {}) for b in BASELINES}
        for name in servers:
            r = by_key.get((sc.name, name))
            if r is None:
                continue
            uv, gr = base["uvicorn"], base["granian"]
            p50 = f"{r['p50_ms']:.2f}" if "p50_ms" in r else "-"
            p99 = f"{r['p99_ms']:.2f}" if "p99_ms" in r else "-"
            label = f"**{name}**" if name == "monoceros" else name
            out.append(
                f"| {label} | {fmt_rps(r.get('rps'))} | {ratio(r.get('rps'), uv.get('rps'))} "
                f"| {ratio(r.get('rps'), gr.get('rps'))} | {p50} | {p99} "
                f"| {ratio(r.get('p99_ms'), uv.get('p99_ms'))} | {ratio(r.get('p99_ms'), gr.get('p99_ms'))} "
                f"| {status_cell(r)} | {mib(r.get('rss_idle_kib'))} | {mib(r.get('rss_peak_kib'))} "
                f"| {ratio(r.get('rss_peak_kib'), uv.get('rss_peak_kib'))} "
                f"| {ratio(r.get('rss_peak_kib'), gr.get('rss_peak_kib'))} "
                f"| {pct(r.get('server_cpu_pct'))} | {pct(r.get('wrk_cpu_pct'))} |"
            )
    out.append("")
    out.append("## Failures and errors")
    out.append("")
    out.extend(
        failures(results, "scenario", "None: every server started, answered its check request, and ran without errors.")
    )
    out.append("")
    out.append("## Servers and commands")
    out.append("")
    out.append(
        "Each runs as `cd bench/apps && taskset -c 0 COMMAND` (the ceiling from `bench/`), "
        "`{python}` = this interpreter, `{peers}` = the peers virtualenv's bin/."
    )
    out.append("")
    for name in servers:
        s = SERVERS[name]
        out.append(f"- **{name}**: {s.note}")
        for iface, cmd in s.commands.items():
            out.append(f"  - {iface}: `{cmd}`")
    out.append("")
    out.append(
        "Load: `taskset -c 1 wrk -t1 -cCONNS -dSECONDS --timeout 2s --latency -s bench/wrk/bench.lua "
        "[-H 'Connection: close'] URL` (`BENCH_POST_BYTES=65536` in the environment for the POST scenario)."
    )
    out.append("")
    out.append(f"Command line of this run: `{meta['argv']}`")
    out.append("")
    if meta.get("chart"):
        out.append(f"![requests per second]({meta['chart']})")
        out.append("")
    return "\n".join(out)


def failures(results: list[dict[str, Any]], case: str, none: str) -> list[str]:
    """A report's failures: each failed server and `case` (its scenario or mode), why, and its log's tail."""
    problems = [r for r in results if r["status"] != "ok"]
    out = [] if problems else [none]
    for r in problems:
        out.append(f"- **{r['server']} / {r[case]}**: {r['status']}: {r.get('reason', '')} (log: `{r.get('log', '')}`)")
        if r.get("log_tail"):
            out.append("")
            out.append("  ```")
            out.extend("  " + line for line in r["log_tail"].splitlines()[-15:])
            out.append("  ```")
    return out


def fmt_rps(v: float | None) -> str:
    return "-" if v is None else f"{v:,.0f}"


def status_cell(r: dict[str, Any]) -> str:
    if r["status"] == "failed":
        return "FAILED"
    errs = r.get("errors", 0) + r.get("warmup", {}).get("errors", 0)
    return str(errs)


def make_chart(json_path: Path, png_path: Path, venv: Path) -> bool:
    candidates = [peers_python(venv)] if peers_python(venv).exists() else []
    candidates.append(Path(sys.executable))
    for py in candidates:
        res = subprocess.run(
            [str(py), str(BENCH / "chart.py"), str(json_path), str(png_path)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if res.returncode == 0:
            return True
        last_err = res.stderr.strip().splitlines()[-1:] or ["?"]
    log(f"note: no chart made (matplotlib missing? {last_err[0]})")
    return False


# ---------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--quick",
        action="store_true",
        help="CI check: 1 repeat of 1 s, no warm-up, servers "
        + ", ".join(QUICK_SERVERS)
        + "; output in bench/results/quick/",
    )
    p.add_argument(
        "--no-peers", action="store_true", help="do not install or run the peers: monoceros and the ceiling only"
    )
    p.add_argument(
        "--peers-venv",
        type=Path,
        default=BENCH / ".venv-peers",
        help="virtualenv for the peer servers (created and filled if needed) [%(default)s]",
    )
    p.add_argument("--reinstall-peers", action="store_true", help="pip install --upgrade the peers first")
    p.add_argument("--setup-only", action="store_true", help="install wrk/h2load and the peers, then exit")
    p.add_argument(
        "--render",
        type=Path,
        metavar="RESULTS_JSON",
        help="measure nothing: rewrite results.md and results.png beside this results.json",
    )
    p.add_argument("--repeats", type=int, default=None, help="measured runs per server and scenario [3]")
    p.add_argument("--duration", type=int, default=None, help="seconds per measured run (whole seconds) [5]")
    p.add_argument("--warmup", type=int, default=None, help="seconds of warm-up, 0 for none [2]")
    p.add_argument("--servers", default="", help="comma-separated server names to run (default: all)")
    p.add_argument(
        "--scenarios",
        default="",
        help="comma-separated scenario names or prefixes, e.g. a,e-stream-wsgi (default: all)",
    )
    p.add_argument("--out", type=Path, default=None, help="output directory [bench/results]")
    p.add_argument("--server-core", type=int, default=0)
    p.add_argument("--client-core", type=int, default=1)
    args = p.parse_args(argv)
    quick = args.quick
    args.repeats = args.repeats if args.repeats is not None else (1 if quick else 3)
    args.duration = args.duration if args.duration is not None else (1 if quick else 5)
    args.warmup = args.warmup if args.warmup is not None else (0 if quick else 2)
    args.out = args.out or (BENCH / "results" / "quick" if quick else BENCH / "results")
    args.peers_venv = args.peers_venv.resolve()
    if args.repeats < 1 or args.duration < 1 or args.warmup < 0:
        p.error("--repeats and --duration must be >= 1, --warmup >= 0")
    return args


def select(args: argparse.Namespace) -> tuple[list[str], list[Scenario]]:
    servers = list(SERVERS)
    if args.servers:
        wanted = [s.strip() for s in args.servers.split(",") if s.strip()]
        unknown = [s for s in wanted if s not in SERVERS]
        if unknown:
            raise SystemExit(f"unknown server(s): {', '.join(unknown)}; known: {', '.join(SERVERS)}")
        servers = [s for s in servers if s in wanted]
    elif args.quick:
        servers = [s for s in servers if s in QUICK_SERVERS]
    if args.no_peers:
        servers = [s for s in servers if not SERVERS[s].peer]
    scenarios = [s for s in SCENARIOS if not missing(s)]
    if args.scenarios:
        prefixes = [s.strip() for s in args.scenarios.split(",") if s.strip()]
        scenarios = [s for s in scenarios if any(s.name.startswith(p) for p in prefixes)]
        if not scenarios:
            raise SystemExit(f"no scenario matches {args.scenarios!r}; known: {', '.join(s.name for s in SCENARIOS)}")
    return servers, scenarios


def missing(scenario: Scenario) -> list[str]:
    """What this interpreter (the one that runs monoceros) lacks for ``scenario``; said once, then skipped."""
    lacking = [name for name in scenario.requires if importlib.util.find_spec(name) is None]
    if lacking:
        log(f"skipping {scenario.name}: {', '.join(lacking)} not installed here (pip install -e '.[test]')")
    return lacking


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    check_matrix()
    if args.render:
        report = json.loads(args.render.read_text())
        return write_report(report, args.render.parent, args.peers_venv)
    ensure_tools()
    servers, scenarios = select(args)
    if (any(SERVERS[s].peer for s in servers) or args.setup_only) and not args.no_peers:
        ensure_peers(args.peers_venv, args.reinstall_peers)
    if args.setup_only:
        return 0
    cpus = os.cpu_count() or 1
    if cpus < 2:
        log("warning: fewer than 2 CPUs; server and wrk share core 0")
        args.server_core = args.client_core = 0
    with contextlib.suppress(OSError):  # keep this process (and its RSS sampling) off the server's core
        os.sched_setaffinity(0, {args.client_core})

    args.out.mkdir(parents=True, exist_ok=True)
    logs_dir = args.out / "logs"
    logs_dir.mkdir(exist_ok=True)
    plan = [(sc, name) for sc in scenarios for name in servers if name in sc.servers]
    per_run = args.warmup + args.repeats * args.duration + 2
    log(
        f"{len(plan)} runs, about {len(plan) * per_run / 60:.1f} min "
        f"(warm-up {args.warmup} s, {args.repeats} x {args.duration} s)"
    )
    meta = {
        "started": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "mode": "quick" if args.quick else "full",
        "argv": shlex.join(["python", "bench/run.py", *(sys.argv[1:] if argv is None else argv)]),
        "repeats": args.repeats,
        "duration": args.duration,
        "warmup": args.warmup,
        "cpus": cpus,
        "platform": f"{platform.system()} {platform.release()} {platform.machine()}",
        "server_core": args.server_core,
        "client_core": args.client_core,
        "servers": servers,
        "scenarios": [s.name for s in scenarios],
        "local": local_versions(),
        "peers": peer_versions(args.peers_venv) if any(SERVERS[s].peer for s in servers) else {},
    }
    results = []
    for i, (sc, name) in enumerate(plan, 1):
        r = run_one(SERVERS[name], sc, args, logs_dir)
        results.append(r)
        extra = f"  {r['status'].upper()}: {r.get('reason', '')}" if r["status"] != "ok" else ""
        log(
            f"[{i}/{len(plan)}] {sc.name:15} {name:17} {fmt_rps(r.get('rps')):>9} req/s  "
            f"p99 {r.get('p99_ms', 0):7.2f} ms  peak {mib(r.get('rss_peak_kib')):>6} MiB{extra}"
        )

    return write_report({"meta": meta, "results": results}, args.out, args.peers_venv)


def write_report(report: dict[str, Any], out: Path, venv: Path) -> int:
    """Write results.{json,md,png} into out, print the Markdown; 1 if any server failed or had errors."""
    meta, results = report["meta"], report["results"]
    json_path, md_path, png_path = out / "results.json", out / "results.md", out / "results.png"
    meta.pop("chart", None)
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    if make_chart(json_path, png_path, venv):
        meta["chart"] = png_path.name
        json_path.write_text(json.dumps(report, indent=2) + "\n")
    text = markdown(report)
    md_path.write_text(text + "\n")
    print(text)
    log(
        f"wrote {os.path.relpath(md_path)}, {os.path.relpath(json_path)}"
        + (f", {os.path.relpath(png_path)}" if meta.get("chart") else "")
    )
    bad = [r for r in results if r["status"] != "ok"]
    for r in bad:
        log(f"{r['status'].upper()}: {r['server']} / {r['scenario']}: {r.get('reason', '')}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
