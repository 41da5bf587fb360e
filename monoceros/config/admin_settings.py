"""Settings of the operations edge: the admin listener (metrics, health, status page) and the drain on stop.

Kept apart from the app's listeners on purpose: probes and scrapes must reach the server on an address the
app's clients cannot, and must keep answering while workers restart, so the master serves them.
"""

from __future__ import annotations

from dataclasses import dataclass

from .fields import _non_negative, setting

ADMIN = "Admin listener and draining"


def _admin_address(value: str | None) -> str | None:
    if value is None:
        return None
    if value.startswith("unix:"):
        if len(value) == 5:
            raise ValueError("unix: needs a path")
        return value
    _, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError("must be HOST:PORT (a TCP port 0 to 65535) or unix:PATH")
    return value


def _user_password(value: str | None) -> str | None:
    if value is not None and (":" not in value or value.startswith(":")):
        raise ValueError("must be USER:PASSWORD")
    return value


@dataclass(frozen=True)
class AdminSettings:
    """Where the operator's endpoints listen, who may read them, and how a stop drains."""

    admin_bind: str | None = setting(
        None,
        section=ADMIN,
        validator=_admin_address,
        metavar="ADDRESS",
        help="Serve the admin endpoints on HOST:PORT or unix:PATH, never on the app's listeners: /metrics "
        "(Prometheus, all workers added up), /healthz, /readyz and a live status page at /. The supervising "
        "master serves it (setting it starts one), so it answers while workers restart.",
    )
    admin_token: str | None = setting(
        None,
        section=ADMIN,
        metavar="TOKEN",
        help="Ask for 'Authorization: Bearer TOKEN' on the admin listener (the status page and /metrics; "
        "/healthz and /readyz stay open for probes). Better given as MONOCEROS_ADMIN_TOKEN than on the "
        "command line, where other local users can read it.",
    )
    admin_basic_auth: str | None = setting(
        None,
        section=ADMIN,
        validator=_user_password,
        metavar="USER:PASSWORD",
        help="Ask for HTTP basic auth on the admin listener (as --admin-token does; either one is accepted "
        "when both are set).",
    )
    # Kubernetes removes a terminating pod from its Service's endpoints while SIGTERM is already on its way;
    # the proxies learn it a few seconds later. Serving on meanwhile is the preStop-sleep pattern, built in.
    drain_delay: float = setting(
        0.0,
        section=ADMIN,
        validator=_non_negative,
        metavar="SECONDS",
        help="On SIGTERM, first turn /readyz to 503, then keep serving for this long (load balancers stop "
        "sending new connections), then stop gracefully as usual. A second TERM, or an INT, ends the delay "
        "early; QUIT stops at once. Under a master the master waits, and the workers serve on meanwhile.",
    )
