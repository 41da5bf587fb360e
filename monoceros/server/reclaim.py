"""At the connection limit, reclaim before refusing, as nginx reuses connections.

A worker past ``--limit-concurrency`` used to answer every newcomer 503 while idle keep-alive connections,
and half-sent heads, held the slots. Now a newcomer first takes the slot of the connection that is costing
least to drop: the keep-alive connection idle the longest (closing it between requests is what its keep-alive
timeout would do anyway), else the oldest unfinished head (a slow or stalled client). Only when every
connection is inside a request is the newcomer answered 503. Each reclaim is counted (``monoceros_limits_hit
_total{kind="reclaimed"}``).

Finding the best victim means a scan of every connection, which at a limit of 1,000 costs about 0.3 ms: a
flood of newcomers (10,000 idle heads) spent most of the worker's time in it and overflowed its listen queue.
So one scan keeps the best ``BATCH`` candidates, in order, for the next newcomers; each is checked again as
it is taken (it may have begun a request, or closed, meanwhile). The batch is dropped after ``BATCH_AGE``
seconds, so a better victim that appeared since (a connection gone idle) is not passed over for long.
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Iterable
from operator import itemgetter
from typing import TYPE_CHECKING, Protocol

from ..protocols.headers import NO_SLOTS
from .deadline import HEADER, KEEPALIVE

if TYPE_CHECKING:
    from .state import ServerState

IDLE, PARTIAL_HEAD = 0, 1  # what a reclaimable connection is, the cheaper to drop first
BATCH = 256  # candidates one scan keeps for the next newcomers
BATCH_AGE = 1.0  # seconds a batch is used before the next newcomer scans again
_rank = itemgetter(0)


class Candidate(Protocol):
    def reclaimable(self) -> tuple[int, float] | None:
        """(IDLE or PARTIAL_HEAD, the time its current deadline passes), or None: inside a request."""

    def reclaim(self) -> None:
        """Close now, to make room."""


class Reclaimer:
    """One per worker: the victims one scan found, taken in order by the next newcomers."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._batch: list[tuple[tuple[int, float], Candidate]] = []  # the best last, to pop
        self._forget_scheduled = False

    def reclaim(self, connections: Iterable[object], newcomer: object) -> bool:
        """Close the best victim among ``connections`` (not ``newcomer``); False when there is none."""
        batch = self._batch
        while True:
            if not batch:
                batch[:] = _best(connections, newcomer)
                if not batch:
                    return False
                if not self._forget_scheduled:
                    self._forget_scheduled = True
                    self.loop.call_later(BATCH_AGE, self._forget)
            victim = batch.pop()[1]
            if victim is not newcomer and victim.reclaimable() is not None:  # still idle, still open
                victim.reclaim()
                return True

    def _forget(self) -> None:
        self._forget_scheduled = False
        self._batch.clear()


def _best(connections: Iterable[object], newcomer: object) -> list[tuple[tuple[int, float], Candidate]]:
    """The ``BATCH`` best victims, the best last."""
    ranked = []
    for conn in connections:
        if conn is newcomer:
            continue
        check = getattr(conn, "reclaimable", None)  # connections of every protocol; only some can be
        rank = check() if check is not None else None
        if rank is not None:
            ranked.append((rank, conn))
    best = heapq.nsmallest(BATCH, ranked, key=_rank)
    best.reverse()
    return best  # type: ignore[return-value]


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
        state = self.state
        if state.reclaimer is None:
            state.reclaimer = Reclaimer(state.loop)
        if not state.reclaimer.reclaim(state.connections, self):
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
