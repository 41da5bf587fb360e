"""Run h2spec (the HTTP/2 conformance suite, 146 cases) against monoceros: every engine tier here, ASGI and
WSGI, cleartext (prior knowledge) and TLS (ALPN h2). Exit 0 when every run passes every case.

    python scripts/h2spec.py --h2spec ../shared/tools/h2spec/h2spec --app-dir ../shared/conformance/apps
    python scripts/h2spec.py ... --engines nghttp2 --apps asgi_echo:app      # one combination

The apps must answer a body of at least 5 bytes (h2spec skips 6.9.2 #2 otherwise); the conformance echo apps
answer a JSON document. ``TEST_SERVER_LD_PRELOAD`` goes into the server's LD_PRELOAD, as in the tests
(CI's AddressSanitizer run of the glue). Exit 3: h2spec is not there.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENGINES = ("nghttp2", "nghttp2-abi", "h2")


def glue_built() -> bool:
    import importlib.util

    return importlib.util.find_spec("monoceros.protocols._nghttp2") is not None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_listening(port: int, proc: subprocess.Popen[bytes], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def run_one(h2spec: str, app: str, app_dir: str, engine: str, tls: tuple[str, str] | None, log: Path) -> str:
    """One h2spec run; returns its summary line ("146 tests, 146 passed, ...") or why it could not run."""
    port = free_port()
    cmd = [sys.executable, "-m", "monoceros", "--port", str(port), "--no-access-log", "--app-dir", app_dir,
           "--http2-engine", engine, app]  # fmt: skip
    if tls is not None:
        cmd += ["--certfile", tls[0], "--keyfile", tls[1]]
    env = dict(os.environ)
    preload = os.environ.get("TEST_SERVER_LD_PRELOAD")
    if preload:
        env["LD_PRELOAD"] = preload
        env.setdefault("ASAN_OPTIONS", "detect_leaks=0:abort_on_error=1")
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        try:
            if not wait_listening(port, proc):
                return "server did not start"
            args = [h2spec, "-h", "127.0.0.1", "-p", str(port), "-o", "5"] + (["-t", "-k"] if tls else [])
            result = subprocess.run(args, capture_output=True, text=True, timeout=300)
            out.write(result.stdout.encode())
            if proc.poll() is not None:
                return f"server exited ({proc.returncode}) during the run"
            found = re.search(r"(\d+) tests, (\d+) passed, (\d+) skipped, (\d+) failed", result.stdout)
            return found.group(0) if found else "no summary from h2spec"
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--h2spec", default=str(ROOT.parent / "shared" / "tools" / "h2spec" / "h2spec"))
    parser.add_argument("--app-dir", default=str(ROOT.parent / "shared" / "conformance" / "apps"))
    parser.add_argument("--engines", default=",".join(ENGINES))
    parser.add_argument("--apps", default="asgi_echo:app,wsgi_echo:app")
    parser.add_argument("--no-tls", action="store_true")
    args = parser.parse_args(argv)
    h2spec = shutil.which(args.h2spec) or (args.h2spec if os.access(args.h2spec, os.X_OK) else None)
    if h2spec is None:
        print(f"h2spec not found at {args.h2spec}")
        return 3
    engines = [e for e in args.engines.split(",") if e != "nghttp2" or glue_built()]
    if "nghttp2" in args.engines.split(",") and "nghttp2" not in engines:
        print("the compiled glue is not built here: its tier is not run")
    import trustme

    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1", "localhost")
        cert_path, key_path = Path(tmp) / "cert.pem", Path(tmp) / "key.pem"
        cert.private_key_and_cert_chain_pem.write_to_path(str(cert_path))
        cert.private_key_pem.write_to_path(str(key_path))
        modes: list[tuple[str, tuple[str, str] | None]] = [("h2c", None)]
        if not args.no_tls:
            modes.append(("tls", (str(cert_path), str(key_path))))
        for engine in engines:
            for app in args.apps.split(","):
                for mode, tls in modes:
                    log = Path(tmp) / f"{engine}-{app.replace(':', '_')}-{mode}.log"
                    summary = run_one(h2spec, app, args.app_dir, engine, tls, log)
                    ok = re.fullmatch(r"(\d+) tests, \1 passed, 0 skipped, 0 failed", summary) is not None
                    print(f"{'ok  ' if ok else 'FAIL'} {engine:12} {app:16} {mode:4} {summary}")
                    if not ok:
                        failed += 1
                        failures = [
                            line for line in log.read_text(errors="replace").splitlines() if "\u00d7" in line
                        ]  # h2spec marks a failed case with a multiplication sign
                        print("\n".join(failures[:20]) or log.read_text(errors="replace")[-3000:])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
