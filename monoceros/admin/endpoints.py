"""What the admin listener answers: /healthz, /readyz, /metrics, the status page and its data.

Health and readiness stay open (an orchestrator's probe should not need a secret, and they tell nothing
an attacker could use); the rest asks for the token or the basic-auth pair when one is set.
"""

from __future__ import annotations

import base64
import hmac
import json
from dataclasses import asdict, dataclass, field
from http import HTTPStatus
from importlib import resources
from typing import Protocol

from ..server.metrics import BUCKETS, LAYOUT
from .exposition import CONTENT_TYPE, render
from .snapshot import Snapshot

TEXT = "text/plain; charset=utf-8"


@dataclass
class Request:
    method: str
    target: str
    headers: list[tuple[bytes, bytes]]


@dataclass
class Answer:
    status: int
    content_type: str
    body: bytes
    headers: list[tuple[str, str]] = field(default_factory=list)

    @property
    def reason(self) -> str:
        return HTTPStatus(self.status).phrase


class Source(Protocol):
    """The master, as the endpoints see it."""

    def snapshot(self) -> Snapshot: ...

    def readiness(self) -> tuple[bool, str]:
        """Whether to take traffic, and why not."""


class Endpoints:
    def __init__(self, source: Source, token: str | None, basic: str | None) -> None:
        self.source = source
        self._token = f"Bearer {token}".encode() if token else None
        self._basic = b"Basic " + base64.b64encode(basic.encode()) if basic else None
        self._page: bytes | None = None

    def __call__(self, request: Request) -> Answer:
        if request.method not in ("GET", "HEAD"):
            return Answer(405, TEXT, b"only GET and HEAD\n", [("Allow", "GET, HEAD")])
        path = request.target.partition("?")[0]
        if path == "/healthz":
            return Answer(200, TEXT, b"ok\n")  # answered from the master's loop: it turns
        if path == "/readyz":
            ready, why = self.source.readiness()
            return Answer(200, TEXT, b"ready\n") if ready else Answer(503, TEXT, f"not ready: {why}\n".encode())
        if path not in ("/", "/metrics", "/status.json"):
            return Answer(404, TEXT, b"not found: try /, /metrics, /healthz or /readyz\n")
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        if path == "/metrics":
            return Answer(200, CONTENT_TYPE, render(self.source.snapshot()).encode())
        if path == "/status.json":
            return Answer(200, "application/json", json.dumps(status_document(self.source.snapshot())).encode())
        return Answer(200, "text/html; charset=utf-8", self.page())

    def page(self) -> bytes:
        if self._page is None:
            self._page = resources.files(__package__).joinpath("status.html").read_bytes()
        return self._page

    def _refusal(self, request: Request) -> Answer | None:
        if self._token is None and self._basic is None:
            return None
        given = next((value for name, value in request.headers if name == b"authorization"), b"")
        for expected in (self._token, self._basic):
            if expected is not None and hmac.compare_digest(given, expected):
                return None
        challenge = 'Basic realm="monoceros admin"' if self._basic is not None else 'Bearer realm="monoceros admin"'
        return Answer(401, TEXT, b"unauthorized\n", [("WWW-Authenticate", challenge)])


def status_document(snap: Snapshot) -> dict[str, object]:
    """The status page's data: it computes rates from two documents a second apart."""
    totals = snap.totals
    latency = [totals[LAYOUT.latency + i] for i in range(len(BUCKETS) + 1)]
    requests = sum(latency)
    return {
        "taken": snap.taken,
        "state": snap.state,
        "ready": snap.ready,
        "uptime": snap.uptime,
        "requests": requests,
        "in_flight": totals[LAYOUT.in_flight],
        "websockets": totals[LAYOUT.ws_open],
        "buckets": [*BUCKETS, None],
        "latency": latency,
        "workers": [asdict(w) for w in snap.workers],
        "starts": snap.starts,
        "exits": snap.exits,
        "restarts": [asdict(r) for r in snap.restarts],
    }
