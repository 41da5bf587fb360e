"""Run the Autobahn|Testsuite WebSocket fuzzing client against a server, locally or in CI.

    python scripts/autobahn.py                          # monoceros + the shared echo app, the "ci" cases
    python scripts/autobahn.py --cases full             # sections 1-7, 10, 12, 13 in full (well over an hour)
    python scripts/autobahn.py --cases '1.*,2.*'        # explicit case globs
    python scripts/autobahn.py --server-cmd 'uvicorn --port {port} --app-dir {app_dir} asgi_echo:app'
    python scripts/autobahn.py --url ws://127.0.0.1:9001   # a server that is already running
    python scripts/autobahn.py --list-cases             # print the selected case ids and stop

wstest (the `autobahntestsuite` package) is Python 2 code, so the script finds a Python 2.7 interpreter and
keeps a cached virtualenv for it, built from scripts/autobahn-requirements-py27.txt. Stdlib only, so that it
runs before anything is installed. Exit codes: 0 every case ran and none failed; 1 a case failed, cases are
missing, the server did not start or died, or wstest timed out; 2 the harness itself could not run (bad
arguments, no echo app, the virtualenv could not be built); 3 no Python 2.7 interpreter (CI: "skipped").
See docs/websocket-conformance.md.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import fcntl
import fnmatch
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
PINS = ROOT / "scripts" / "autobahn-requirements-py27.txt"
SHARED_APPS = ROOT.parent / "shared" / "conformance" / "apps"
DEFAULT_VENV = Path.home() / ".cache" / "monoceros" / "autobahn-venv"
DEFAULT_SERVER_CMD = "{python} -m monoceros --host 127.0.0.1 --port {port} --no-access-log asgi_echo:app"
PYENV_VERSION = "2.7.18"
HOST = "127.0.0.1"

EXIT_OK, EXIT_FAILED, EXIT_SETUP, EXIT_NO_PYTHON2 = 0, 1, 2, 3

# Sections 1-7 and 10 (framing, pings, reserved bits, opcodes, fragmentation, UTF-8, close handling), and a
# sample of permessage-deflate (12 and 13 deflate in pure Python: all of them take well over an hour).
# Section 9 (large messages, throughput) is in neither set: name it explicitly with --cases 9.*.
_CORE = [f"{n}.*" for n in (1, 2, 3, 4, 5, 6, 7, 10)]
CASE_SETS: dict[str, list[str]] = {
    "ci": _CORE + [f"12.1.{i}" for i in range(1, 10)] + [f"13.{s}.{i}" for s in range(1, 8) for i in range(1, 6)],
    "full": [*_CORE, "12.*", "13.*"],
}

# What makes a case count as failing. Autobahn's own report also paints behaviorClose "UNCLEAN" red (the
# connection had to be failed cleanly and was not), so it fails here too; "WRONG CODE" is shown as
# non-strict there and is only counted.
FAILING_BEHAVIOR = frozenset({"FAILED", "UNIMPLEMENTED"})
FAILING_CLOSE = frozenset({"FAILED", "UNIMPLEMENTED", "UNCLEAN"})
BEHAVIORS = ("OK", "NON-STRICT", "INFORMATIONAL", "FAILED", "UNIMPLEMENTED")
MAX_LISTED = 30  # failing cases printed; summary.json and --json have them all

# Run by the Python 2 interpreters: a version check, and the list of case ids wstest knows.
_PY2_PROBE = (
    "import sys, platform; sys.stdout.write('%d.%d %s' % (sys.version_info[:2] + (platform.python_implementation(),)))"
)
_PY2_LIST_CASES = (
    "import json, sys\n"
    "from autobahntestsuite.case import Cases, CaseBasename\n"
    "sys.stdout.write(json.dumps(['.'.join(c.__name__[len(CaseBasename):].split('_')) for c in Cases]))\n"
)


class HarnessError(Exception):
    """The harness could not run: printed as one clear message, with an exit code."""

    def __init__(self, message: str, code: int = EXIT_SETUP) -> None:
        super().__init__(message)
        self.code = code


def log(msg: str) -> None:
    """Progress on stderr (stdout is the summary or the case list), flushed so CI logs keep the order."""
    print(f"autobahn: {msg}", file=sys.stderr, flush=True)


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for Python 2 tools: the caller's PYTHONPATH or PYTHONHOME would break them."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")}
    env.update({"PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1", "PYTHONUNBUFFERED": "1"})
    env.update(extra or {})
    return env


# --------------------------------------------------------------------------------------------------------------
# Finding (or installing) Python 2.7
# --------------------------------------------------------------------------------------------------------------


def probe_python2(path: str) -> str | None:
    """'2.7 CPython' if `path` runs as a Python 2.7 interpreter, else None (pyenv shims may exist yet fail)."""
    try:
        out = subprocess.run(
            [path, "-c", _PY2_PROBE], capture_output=True, text=True, timeout=30, env=clean_env(), check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 and out.stdout.startswith("2.7 ") else None


def pyenv_candidates() -> list[str]:
    """pyenv's 2.7.18, found via `pyenv root` or, when pyenv is not on PATH, $PYENV_ROOT and ~/.pyenv."""
    roots: list[str] = []
    pyenv = shutil.which("pyenv")
    if pyenv:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run([pyenv, "root"], capture_output=True, text=True, timeout=15, check=False)
            if out.returncode == 0 and out.stdout.strip():
                roots.append(out.stdout.strip())
    roots += [os.environ.get("PYENV_ROOT", ""), str(Path.home() / ".pyenv")]
    return [str(Path(r) / "versions" / PYENV_VERSION / "bin" / "python") for r in dict.fromkeys(roots) if r]


def find_python2(explicit: str | None) -> tuple[str, str] | None:
    """The first working Python 2.7 among --python2, $AUTOBAHN_PYTHON2, pyenv 2.7.18, python2.7, python2, pypy."""
    if explicit:
        version = probe_python2(explicit)
        if version is None:
            raise HarnessError(f"--python2 {explicit} is not a working Python 2.7 interpreter")
        return explicit, version
    candidates: list[str] = []
    env_choice = os.environ.get("AUTOBAHN_PYTHON2")
    if env_choice:
        candidates.append(env_choice)
    candidates += pyenv_candidates()
    candidates += [p for p in (shutil.which(n) for n in ("python2.7", "python2", "pypy")) if p]
    for cand in candidates:
        if not (os.path.isfile(cand) and os.access(cand, os.X_OK)):
            continue
        version = probe_python2(cand)
        if version is not None:
            return cand, version
        if cand == env_choice:
            log(f"AUTOBAHN_PYTHON2={env_choice} is not a working Python 2.7 interpreter; looking further")
    return None


def apt_install_python2() -> bool:
    """apt-get install python2.7 or, failing that, pypy (PyPy for 2.7), where the distribution still has one.

    Debian 12 (bookworm) and later package neither, so there this does nothing and says so; Debian 11 and
    Ubuntu up to 22.04 have python2.7.
    """
    if not shutil.which("apt-get"):
        log("--install-python2: no apt-get here")
        return False
    if os.geteuid() != 0:
        log("--install-python2: apt-get needs root")
        return False
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    try:
        log("--install-python2: apt-get update")
        subprocess.run(["apt-get", "update", "-q"], env=env, stdout=subprocess.DEVNULL, timeout=600, check=False)
        for pkg in ("python2.7", "pypy"):
            policy = subprocess.run(
                ["apt-cache", "policy", pkg], capture_output=True, text=True, env=env, timeout=60, check=False
            ).stdout
            if "Candidate:" not in policy or "Candidate: (none)" in policy:
                continue
            log(f"--install-python2: apt-get install {pkg}")
            done = subprocess.run(["apt-get", "install", "-y", "-q", pkg], env=env, timeout=900, check=False)
            if done.returncode == 0:
                return True
    except subprocess.TimeoutExpired as exc:
        log(f"--install-python2: {shlex.join(str(a) for a in exc.cmd)} took over {exc.timeout:.0f} s")
        return False
    log("--install-python2: this distribution packages neither python2.7 nor pypy (Python 2.7)")
    return False


# --------------------------------------------------------------------------------------------------------------
# The cached wstest virtualenv
# --------------------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Serialise concurrent runs that share one cached virtualenv."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def run_logged(cmd: Sequence[str], logfile: IO[str], env: dict[str, str], timeout: float) -> None:
    """Run one setup step with its output in the install log; a failure shows the log's tail."""
    logfile.write(f"\n$ {shlex.join(cmd)}\n")
    logfile.flush()
    try:
        rc = subprocess.run(cmd, stdout=logfile, stderr=subprocess.STDOUT, env=env, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise HarnessError(f"{shlex.join(cmd)} took over {timeout:.0f} s; see {logfile.name}") from exc
    if rc.returncode != 0:
        logfile.flush()
        tail = Path(logfile.name).read_text(errors="replace").splitlines()[-25:]
        raise HarnessError(f"{shlex.join(cmd)} exited {rc.returncode}:\n  " + "\n  ".join(tail))


def ensure_venv(python2: str, venv: Path) -> Path:
    """Build the wstest virtualenv once; rebuild it when the pins or the interpreter change. Returns wstest.

    It follows the recipe in shared/conformance/README.md: virtualenv<20.22 (the last that makes Python 2.7
    environments) installed with pip --target, then the pins. An interpreter without pip (Debian's python2.7,
    pypy) gets its virtualenv made by this Python 3 instead, which virtualenv<20.22 also supports.
    """
    wstest = venv / "bin" / "wstest"
    stamp_path = venv / ".monoceros-autobahn.json"
    want = {"pins_sha256": hashlib.sha256(PINS.read_bytes()).hexdigest(), "python2": os.path.realpath(python2)}
    with file_lock(venv.parent / f".{venv.name}.lock"):
        with contextlib.suppress(OSError, ValueError):
            if json.loads(stamp_path.read_text()) == want and wstest.exists():
                return wstest
        if venv.exists():
            if not (venv / "pyvenv.cfg").exists() and any(venv.iterdir()):
                raise HarnessError(f"{venv} exists and is not a virtualenv; not replacing it (choose --venv)")
            log(f"the pins or the interpreter changed: rebuilding {venv}")
            shutil.rmtree(venv)
        install_log = venv.parent / f"{venv.name}.install.log"
        log(f"creating the wstest virtualenv in {venv} (once; ~15 s; log: {install_log})")
        env = clean_env()
        with open(install_log, "w") as logfile, tempfile.TemporaryDirectory(prefix="autobahn-virtualenv-") as tools:
            has_pip = subprocess.run(
                [python2, "-m", "pip", "--version"], capture_output=True, env=env, timeout=60, check=False
            )
            maker = python2 if has_pip.returncode == 0 else sys.executable
            run_logged([maker, "-m", "pip", "install", "-q", "--target", tools, "virtualenv<20.22"], logfile, env, 600)
            target = [str(venv)] if maker == python2 else ["-p", python2, str(venv)]
            run_logged([maker, "-m", "virtualenv", "-q", *target], logfile, clean_env({"PYTHONPATH": tools}), 300)
            run_logged([str(venv / "bin" / "pip"), "install", "-q", "-r", str(PINS)], logfile, env, 1200)
            run_logged([str(wstest), "--autobahnversion"], logfile, env, 120)
        stamp_path.write_text(json.dumps(want))
    return wstest


# --------------------------------------------------------------------------------------------------------------
# Case selection
# --------------------------------------------------------------------------------------------------------------


def case_key(case_id: str) -> tuple[int, ...]:
    """Numeric order, as wstest runs them: 1.1.2 before 1.1.10."""
    return tuple(int(p) for p in case_id.split("."))


def known_cases(venv: Path) -> list[str]:
    """Every case id this wstest has, asked from the package itself."""
    out = subprocess.run(
        [str(venv / "bin" / "python"), "-c", _PY2_LIST_CASES],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=120,
        check=False,
    )
    try:
        ids: list[str] = json.loads(out.stdout) if out.returncode == 0 else []
    except ValueError:
        ids = []
    if not ids:
        raise HarnessError(f"could not list wstest's cases (delete {venv} to rebuild it):\n{out.stderr.strip()}")
    return ids


def expand(patterns: Sequence[str], known: Sequence[str]) -> list[str]:
    """Case globs to explicit ids, matched whole (fnmatch), so `1.*` is section 1 and not also 10 or 12.

    wstest's own matching turns `*` into `.*` and anchors only at the start, and passes a literal id through
    unchecked (an unknown one crashes it), so the script hands it explicit, known ids only.
    """
    chosen: set[str] = set()
    for pat in patterns:
        hits = [c for c in known if fnmatch.fnmatchcase(c, pat)]
        if not hits:
            raise HarnessError(f"case pattern {pat!r} matches no wstest case")
        chosen.update(hits)
    return sorted(chosen, key=case_key)


def split_patterns(text: str) -> list[str]:
    """'ci', 'full' or a comma list of globs."""
    if text in CASE_SETS:
        return CASE_SETS[text]
    return [p.strip() for p in text.split(",") if p.strip()]


# --------------------------------------------------------------------------------------------------------------
# Processes: the server under test and wstest, each in its own session so its whole group can be ended
# --------------------------------------------------------------------------------------------------------------


def free_port() -> int:
    """A port the kernel just handed out on loopback (a small race, acceptable for a test harness)."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def stop_group(proc: subprocess.Popen[Any] | None, grace: float = 10.0) -> None:
    """SIGTERM the process group led by `proc`, then SIGKILL whatever is left; every wait bounded."""
    if proc is None:
        return
    pgid = proc.pid
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(grace)
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline:  # the leader may be gone while workers of the group linger
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            break
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5)


def tail(path: Path, lines: int = 15) -> str:
    """The last lines of a log, indented, for error messages."""
    try:
        text = path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return "  (no log)"
    return "\n".join("  | " + line for line in text) or "  (log is empty)"


def launch_server(cmd: str, app_dir: Path, log_path: Path) -> subprocess.Popen[bytes]:
    """Start the server under test from the app dir, with the app dir on PYTHONPATH, in its own session."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(app_dir), env.get("PYTHONPATH")]))
    with open(log_path, "ab") as logfile:
        logfile.write(f"=== {cmd}\n".encode())
        logfile.flush()
        proc = subprocess.Popen(
            ["/bin/sh", "-c", "exec " + cmd],
            cwd=app_dir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=logfile,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return proc


def wait_for_port(proc: subprocess.Popen[bytes], port: int, log_path: Path, timeout: float) -> None:
    """Wait (bounded) until the server accepts connections; the caller ends it whatever happens."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise HarnessError(f"the server exited with {proc.returncode} during startup:\n{tail(log_path)}", 1)
        try:
            socket.create_connection((HOST, port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise HarnessError(
        f"the server did not accept connections on port {port} within {timeout:.0f} s:\n{tail(log_path)}", 1
    )


@dataclass
class WstestRun:
    """What came of one wstest run, besides its report."""

    seconds: float = 0.0
    timed_out: bool = False
    returncode: int | None = None
    started: list[str] = field(default_factory=list)


def run_wstest(wstest: Path, spec: Path, out: Path, timeout: float, verbose: bool) -> WstestRun:
    """Run the fuzzing client with a wall-clock limit, logging its output and printing a line per section."""
    result = WstestRun()
    started_re = re.compile(r"Running test case ID (\S+)")
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [str(wstest), "-m", "fuzzingclient", "-s", str(spec)],
        cwd=out,
        env=clean_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        start_new_session=True,
    )

    def pump() -> None:
        assert proc.stdout is not None
        section = ""
        with open(out / "wstest.log", "w") as logfile:
            for line in proc.stdout:
                logfile.write(line)
                if verbose:
                    print("  " + line.rstrip(), flush=True)
                m = started_re.search(line)
                if m:
                    case_id = m.group(1)
                    result.started.append(case_id)
                    parts = case_id.split(".")
                    key = ".".join(parts[:2]) if parts[0] in ("12", "13") else parts[0]
                    if key != section and not verbose:
                        section = key
                        log(
                            f"  {time.monotonic() - t0:6.1f} s  section {key} ({case_id} is case {len(result.started)})"
                        )

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        result.returncode = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        result.timed_out = True
    finally:
        stop_group(proc, grace=3.0)
        reader.join(10)
        result.seconds = time.monotonic() - t0
    return result


# --------------------------------------------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------------------------------------------


def case_details(out: Path, reportfile: str | None) -> dict[str, str]:
    """From the case's own JSON report: its one-line description and why it failed (HTML tags removed)."""
    try:
        data = json.loads((out / str(reportfile)).read_text(errors="replace")) if reportfile else {}
    except (OSError, ValueError):
        data = {}
    keys = ("description", "result", "resultClose", "wasNotCleanReason")
    return {k: " ".join(re.sub(r"<[^>]+>", " ", str(data.get(k) or "")).split()) for k in keys}


def summarize(out: Path, agent: str, expected: list[str], run: WstestRun) -> dict[str, Any]:
    """Counts per behavior and behaviorClose, the failing cases, and what did not run, from index.json."""
    results: dict[str, dict[str, Any]] = {}
    index = out / "index.json"
    if index.exists() and not run.timed_out:
        with contextlib.suppress(ValueError):
            results = json.loads(index.read_text()).get(agent, {})
    behavior = collections.Counter({b: 0 for b in BEHAVIORS})
    close = collections.Counter({b: 0 for b in BEHAVIORS})
    failing: list[dict[str, Any]] = []
    for case_id in sorted(results, key=case_key):
        r = results[case_id]
        behavior[r.get("behavior", "?")] += 1
        close[r.get("behaviorClose", "?")] += 1
        if r.get("behavior") in FAILING_BEHAVIOR or r.get("behaviorClose") in FAILING_CLOSE:
            failing.append(
                {
                    "id": case_id,
                    "behavior": r.get("behavior"),
                    "behaviorClose": r.get("behaviorClose"),
                    "remoteCloseCode": r.get("remoteCloseCode"),
                    **case_details(out, r.get("reportfile")),
                    "reportfile": r.get("reportfile"),
                }
            )
    missing = [c for c in expected if c not in results]
    # When the opening handshake fails, every case fails the same way: say so once, with the server's answer.
    no_handshake = [f for f in failing if f["resultClose"].startswith("The WebSocket opening handshake was never")]
    notes: list[str] = []
    if no_handshake:
        first = no_handshake[0]
        why = first["wasNotCleanReason"] or first["resultClose"]
        notes.append(f"{len(no_handshake)} cases never completed the opening handshake (e.g. {first['id']}: {why})")
    return {
        "agent": agent,
        "selected": len(expected),
        "ran": len(results),
        "behavior": dict(behavior),
        "behaviorClose": dict(close),
        "failing": failing,
        "missing": missing,
        "notes": notes,
        "wstest_seconds": round(run.seconds, 1),
        "timed_out": run.timed_out,
        "wstest_exit": run.returncode,
        "last_case_started": run.started[-1] if run.started else None,
        "report_dir": str(out),
        "html_report": str(out / "index.html") if (out / "index.html").exists() else None,
    }


def print_summary(s: dict[str, Any]) -> None:
    """A readable block for people and CI logs."""

    def counts(c: dict[str, int]) -> str:
        return "  ".join(f"{k} {v}" for k, v in c.items())

    print()
    excluded = f", excluding {len(s['excluded'])}" if s["excluded"] else ""
    print(f"Autobahn|Testsuite fuzzingclient against {s['agent']} ({s['url']}), case set {s['case_set']!r}{excluded}")
    print(f"  cases: {s['ran']} ran of {s['selected']} selected")
    print(f"  time:  wstest {s['wstest_seconds']} s, wall {s['wall_seconds']} s (setup and server start included)")
    print(f"  behavior:      {counts(s['behavior'])}")
    print(f"  behaviorClose: {counts(s['behaviorClose'])}")
    if s["failing"]:
        print(f"  failing cases ({len(s['failing'])}):")
        for f in s["failing"][:MAX_LISTED]:
            desc = f["description"] if len(f["description"]) <= 90 else f["description"][:87] + "..."
            print(f"    {f['id']:<8} {f['behavior']:<13} close {f['behaviorClose']:<13} {desc}")
        if len(s["failing"]) > MAX_LISTED:
            print(
                f"    ... and {len(s['failing']) - MAX_LISTED} more: all of them are in {s['report_dir']}/summary.json"
            )
    if s["timed_out"]:
        print(f"  TIMED OUT after {s['wstest_seconds']} s; last case started: {s['last_case_started']} (no report)")
    elif s["missing"]:
        shown = ", ".join(s["missing"][:10]) + (", ..." if len(s["missing"]) > 10 else "")
        print(f"  {len(s['missing'])} selected cases did not run: {shown}")
    for note in s["notes"]:
        print(f"  note: {note}")
    if s["html_report"]:
        print(f"  HTML report: {s['html_report']}")
    print(f"  logs: {s['report_dir']}/wstest.log" + (f", {s['report_dir']}/server.log" if s["server_log"] else ""))
    print(f"  RESULT: {'PASS' if s['exit_code'] == EXIT_OK else 'FAIL'}")


# --------------------------------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line; --help lists every option."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", default="ci", help="'ci' (default), 'full', or comma-separated case globs: '1.*,12.1.*'")
    p.add_argument("--exclude", default="", help="comma-separated case globs to leave out")
    p.add_argument(
        "--server-cmd",
        default=DEFAULT_SERVER_CMD,
        help="server command template: {port}, {python} (this interpreter), {app_dir}; run from the "
        "app dir with it on PYTHONPATH [default: %(default)s]",
    )
    p.add_argument("--url", help="test an already running server at this ws:// URL instead of starting one")
    p.add_argument("--app-dir", type=Path, help=f"directory with asgi_echo.py [default: {SHARED_APPS}]")
    p.add_argument("--agent", help="name in the report [default: from the command]")
    p.add_argument("--python2", help="the Python 2.7 interpreter for wstest [default: search; see the docs]")
    p.add_argument(
        "--install-python2",
        action="store_true",
        help="if none is found, apt-get install python2.7 or pypy where the distribution has one",
    )
    p.add_argument("--venv", type=Path, default=DEFAULT_VENV, help="cached wstest virtualenv [default: %(default)s]")
    p.add_argument("--out", type=Path, help="report directory [default: a new temporary directory]")
    p.add_argument("--json", type=Path, help="also write the summary to this JSON file")
    p.add_argument("--timeout", type=float, default=900.0, help="wall-clock limit for wstest, s [default: 900]")
    p.add_argument("--startup-timeout", type=float, default=15.0, help="server startup limit, s [default: 15]")
    p.add_argument("--list-cases", action="store_true", help="print the selected case ids and exit")
    p.add_argument("-v", "--verbose", action="store_true", help="echo wstest's output")
    return p.parse_args(argv)


def default_agent(args: argparse.Namespace) -> str:
    """A file-name-safe agent name: 'monoceros', or the server program's name, or 'server' for --url."""
    if args.agent:
        name = str(args.agent)
    elif args.url:
        name = "server"
    elif args.server_cmd == DEFAULT_SERVER_CMD:
        name = "monoceros"
    else:
        words = [w for w in shlex.split(args.server_cmd) if "=" not in w]
        name = os.path.basename(words[0]) if words else "server"
    return re.sub(r"[^A-Za-z0-9._-]", "_", name) or "server"


def check_target(args: argparse.Namespace) -> Path | None:
    """Fail fast, before any setup, on a bad --url or a missing app dir; returns the app dir to serve from."""
    if args.url:
        parts = urlsplit(str(args.url))
        if parts.scheme != "ws" or not parts.hostname:
            raise HarnessError(f"--url must be a ws:// URL, not {args.url!r}")
        return None
    try:
        args.server_cmd.format(port=1, python="python", app_dir=".")
    except (KeyError, IndexError, ValueError) as exc:
        raise HarnessError(
            f"bad --server-cmd template ({exc!r}): it may use {{port}}, {{python}}, {{app_dir}}"
        ) from exc
    app_dir: Path = (args.app_dir or SHARED_APPS).absolute()
    if not app_dir.is_dir() or (args.server_cmd == DEFAULT_SERVER_CMD and not (app_dir / "asgi_echo.py").exists()):
        raise HarnessError(
            f"no echo app: {app_dir}/asgi_echo.py does not exist. Give --app-dir: a directory with asgi_echo.py "
            "(shared/conformance/apps beside the repo has one), or with your own app for --server-cmd."
        )
    return app_dir


def get_python2(args: argparse.Namespace) -> tuple[str, str]:
    """The interpreter for wstest, installed with apt-get if asked to and possible; else exit 3."""
    found = find_python2(args.python2)
    if found is None and args.install_python2 and apt_install_python2():
        found = find_python2(None)
    if found is None:
        raise HarnessError(
            "no Python 2.7 interpreter found, and wstest needs one. Give one with --python2 PATH or "
            f"AUTOBAHN_PYTHON2, or install it: `pyenv install {PYENV_VERSION}` (Debian 12 packages neither "
            "python2.7 nor pypy; --install-python2 tries apt-get where they exist).",
            EXIT_NO_PYTHON2,
        )
    return found


def main(argv: Sequence[str] | None = None) -> int:
    """Set up, run, summarise; the server and wstest are always ended, also on Ctrl-C or SIGTERM."""
    t0 = time.monotonic()
    args = parse_args(argv)

    def on_sigterm(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_sigterm)
    server: subprocess.Popen[bytes] | None = None
    try:
        app_dir = None if args.list_cases else check_target(args)
        python2, py2_version = get_python2(args)
        log(f"Python 2 for wstest: {python2} ({py2_version})")
        venv = args.venv.expanduser().absolute()
        wstest = ensure_venv(python2, venv)

        known = known_cases(venv)
        excluded = set(expand(split_patterns(args.exclude), known)) if args.exclude else set()
        expected = [c for c in expand(split_patterns(args.cases), known) if c not in excluded]
        if args.list_cases:
            print("\n".join(expected))
            return EXIT_OK
        if not expected:
            raise HarnessError("the case selection is empty")

        out = (args.out or Path(tempfile.mkdtemp(prefix="autobahn-"))).absolute()
        out.mkdir(parents=True, exist_ok=True)
        (out / "index.json").unlink(missing_ok=True)  # a stale report must not pass for this run's
        agent = default_agent(args)
        notes: list[str] = []
        server_log: Path | None = None
        if app_dir is None:
            url = str(args.url)
            parts = urlsplit(url)
            try:
                socket.create_connection((parts.hostname, parts.port or 80), timeout=5).close()
            except OSError as exc:
                raise HarnessError(f"nothing accepts connections at {url}: {exc}", EXIT_FAILED) from exc
        else:
            port = free_port()
            url = f"ws://{HOST}:{port}"
            cmd = args.server_cmd.format(
                port=port, python=shlex.quote(sys.executable), app_dir=shlex.quote(str(app_dir))
            )
            server_log = out / "server.log"
            log(f"starting the server: {cmd}")
            server = launch_server(cmd, app_dir, server_log)
            wait_for_port(server, port, server_log, args.startup_timeout)

        spec = {
            "outdir": str(out),
            "servers": [{"agent": agent, "url": url}],
            "cases": expected,
            "exclude-cases": [],
            "options": {"failByDrop": False},
        }
        spec_path = out / "fuzzingclient.json"
        spec_path.write_text(json.dumps(spec, indent=2) + "\n")
        log(f"running {len(expected)} cases ({args.cases}) against {url}; limit {args.timeout:.0f} s; report in {out}")
        run = run_wstest(wstest, spec_path, out, args.timeout, args.verbose)
        server_died = server is not None and server.poll() is not None
        if server is not None and server_died:
            notes.append(f"the server exited with {server.returncode} during the run:\n{tail(out / 'server.log')}")

        s = summarize(out, agent, expected, run)
        if s["ran"] == 0 and not run.timed_out:
            notes.append(f"wstest exited with {run.returncode} and reported no case:\n{tail(out / 'wstest.log', 8)}")
        failed = bool(s["failing"]) or s["ran"] == 0 or bool(s["missing"]) or run.timed_out or server_died
        s.update(
            url=url,
            case_set=args.cases,
            excluded=sorted(excluded, key=case_key),
            python2=python2,
            python2_version=py2_version,
            wall_seconds=round(time.monotonic() - t0, 1),
            notes=notes + s["notes"],
            server_log=str(server_log) if server_log else None,
            exit_code=EXIT_FAILED if failed else EXIT_OK,
        )
        (out / "summary.json").write_text(json.dumps(s, indent=2) + "\n")
        if args.json:
            args.json.write_text(json.dumps(s, indent=2) + "\n")
        print_summary(s)
        code: int = s["exit_code"]
        return code
    except HarnessError as exc:
        print(f"autobahn: {exc}", file=sys.stderr, flush=True)
        return exc.code
    except KeyboardInterrupt:
        print("autobahn: interrupted", file=sys.stderr, flush=True)
        return 130
    finally:
        stop_group(server)


if __name__ == "__main__":
    sys.exit(main())
