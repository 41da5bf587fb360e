"""End to end, the admin listener's status page in a real headless Chromium (Debian's ``chromium``, which
.ci/run installs), under real load: the page's own script polls the master, and the test waits for the
numbers to move and reads the DOM. With SCREENSHOT_TO set (scripts/status_screenshot.sh), it also saves a
screenshot of the page for the docs."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest
from cdp_support import CHROMIUM, Browser
from server_process import ServerFactory, free_port
from supervisor_support import children, supervise, wait_for

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (.ci/run installs it)")


def load(url: str, stop: threading.Event) -> None:
    with httpx.Client(timeout=10) as http:
        deadline = time.monotonic() + 60
        n = 0
        while not stop.is_set() and time.monotonic() < deadline:
            n += 1
            target = "/slow?s=0.02" if n % 5 == 0 else "/hello"
            try:
                http.get(url + target)
            except httpx.HTTPError:
                pass


def test_the_status_page_moves_under_load(serve: ServerFactory, tmp_path: Path) -> None:
    admin = free_port()
    server = supervise(serve, "-w", "2", "--admin-bind", f"127.0.0.1:{admin}", "--no-access-log", app="asgi_apps:app")
    stop = threading.Event()
    threads = [threading.Thread(target=load, args=(server.url, stop)) for _ in range(3)]
    for t in threads:
        t.start()
    browser = Browser(tmp_path / "chromium")
    try:
        browser.navigate(f"http://127.0.0.1:{admin}/")
        browser.wait("document.getElementById('state').textContent === 'serving, ready'")
        browser.wait("parseInt(document.getElementById('rps').textContent.replace(/,/g, '')) > 10")
        pids = "[...document.querySelectorAll('#workers tr')].map(r => parseInt(r.dataset.pid))"
        rows = browser.wait(f"document.querySelectorAll('#workers tr').length === 2 && {pids}")
        assert set(rows) == children(server.pid)
        first = browser.evaluate("parseInt(document.getElementById('requests').textContent.replace(/,/g, ''))")
        browser.wait(f"parseInt(document.getElementById('requests').textContent.replace(/,/g, '')) > {first}")
        bars = browser.wait("[...document.querySelectorAll('#latency .bar')].map(b => parseInt(b.dataset.count))")
        assert len(bars) == 16 and sum(bars) > 0
        assert browser.evaluate("[...document.querySelectorAll('#latency .bar')].some(b => b.style.height !== '0%')")

        victim = min(children(server.pid))
        os.kill(victim, signal.SIGKILL)
        browser.wait(f"document.getElementById('restarts').textContent.includes('{victim}')")
        assert "crash" in browser.evaluate("document.getElementById('restarts').textContent")
        browser.wait("document.querySelectorAll('#workers tr').length === 2")
        wait_for(lambda: len(children(server.pid)) == 2, timeout=10, what="the replacement")
        shot = os.environ.get("SCREENSHOT_TO")
        if shot:
            time.sleep(2)  # a few seconds of the latency chart
            browser.screenshot(Path(shot))
        assert not browser.evaluate("document.getElementById('error').textContent")
    finally:
        browser.close()
        stop.set()
        for t in threads:
            t.join(30)
