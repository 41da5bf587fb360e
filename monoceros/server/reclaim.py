"""At the connection limit, reclaim before refusing, as nginx reuses connections.

A worker past ``--limit-concurrency`` used to answer every newcomer 503 while idle keep-alive connections,
and half-sent heads, held the slots. Now a newcomer first takes the slot of the connection that is costing
least to drop: the keep-alive connection idle the longest (closing it between requests is what its keep-alive
timeout would do anyway), else the oldest unfinished head (a slow or stalled client). Only when every
connection is inside a request is the newcomer answered 503. Each reclaim is counted (``monoceros_limits_hit
_total{kind="reclaimed"}``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Protocol

from ..protocols.headers import NO_SLOTS
from .deadline import HEADER, KEEPALIVE

if TYPE_CHECKING:
    from .state import ServerState

IDLE, PARTIAL_HEAD = 0, 1  # what a reclaimable connection is, the cheaper to drop first


class Candidate(Protocol):
    def reclaimable(self) -> tuple[int, float] | None:
        """(IDLE or PARTIAL_HEAD, the time its current deadline passes), or None: inside a request."""

    def reclaim(self) -> None:
        """Close now, to make room."""


def reclaim(connections: Iterable[object], newcomer: object) -> bool:
    """Close the best victim among ``connections`` (not ``newcomer``); False when there is none."""
    best: tuple[int, float] | None = None
    victim: Candidate | None = None
    for conn in connections:
        if conn is newcomer:
            continue
        check = getattr(conn, "reclaimable", None)  # connections of every protocol; only some can be
        rank = check() if check is not None else None
        if rank is not None and (best is None or rank < best):
            best, victim = rank, conn  # type: ignore[assignment]
    if victim is None:
        return False
    victim.reclaim()
    return True


class ReclaimableHTTP11:
    """Mixed into the HTTP/1.1 driver, which holds these fields."""

    __slots__ = NO_SLOTS

    _closing: bool
    _deadline: float
    _deadline_kind: int
    lost: bool
    exchange: object | None
    state: ServerState

    def _close(self) -> None:
        raise NotImplementedError

    def _make_room(self) -> bool:
        """Past the connection limit: reclaim another connection's slot, counted; False when none can go."""
        if not reclaim(self.state.connections, self):
            return False
        if self.state.tally is not None:
            self.state.tally.refused("reclaimed")
        return True

    def reclaimable(self) -> tuple[int, float] | None:
        if self._closing or self.lost or self.exchange is not None:
            return None
        kind = self._deadline_kind
        if kind == KEEPALIVE:
            return IDLE, self._deadline  # the earliest keep-alive deadline: idle the longest
        if kind == HEADER:
            return PARTIAL_HEAD, self._deadline
        return None

    def reclaim(self) -> None:
        self._close()
