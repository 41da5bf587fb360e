"""One lazy timer per connection, for whichever deadline is current.

Setting a deadline only stores a float when the timer already fires earlier: the timer re-arms itself for
the stored deadline when it wakes too soon. A keep-alive connection moves its deadline after every request,
and a timer cancelled and re-made each time would cost more than the request's own work on the loop.

Connections accepted in one loop turn share its clock, so a flood of them has one deadline, and the loop
runs every passed timer before it polls again: 10,000 idle heads timing out at once held everyone else for
a second. At most ``PER_TURN`` deadlines are acted on in one loop turn; the rest wait ``SPREAD`` seconds, so
the loop polls in between.
"""

from __future__ import annotations

import asyncio

from ..protocols.headers import NO_SLOTS

NONE, HEADER, KEEPALIVE, LINGER, BODY = 0, 1, 2, 3, 4  # the kinds of deadline
PER_TURN = 64  # deadlines acted on in one loop turn
SPREAD = 0.002  # how long the others wait
_INF = float("inf")


class _Turn:
    """How many deadlines this loop turn has acted on (reset when the turn's ready callbacks run)."""

    count = 0
    reset_scheduled = False

    @classmethod
    def reset(cls) -> None:
        cls.count = 0
        cls.reset_scheduled = False


class Deadline:
    """Mixed into a connection driver, which declares the fields in its own ``__slots__`` and says what a
    passed deadline means (:meth:`_deadline_passed`)."""

    __slots__ = NO_SLOTS

    loop: asyncio.AbstractEventLoop
    lost: bool
    _timer: asyncio.TimerHandle | None
    _timer_when: float  # when the timer fires (inf: no timer)
    _deadline: float  # when the current deadline passes
    _deadline_kind: int

    def _init_deadline(self) -> None:
        self._timer = None
        self._timer_when = _INF
        self._deadline = _INF
        self._deadline_kind = NONE

    def _set_deadline(self, kind: int, timeout: float) -> None:
        self._deadline_kind = kind
        deadline = self._deadline = self.loop.time() + timeout
        if deadline < self._timer_when:
            if self._timer is not None:
                self._timer.cancel()
            self._timer_when = deadline
            self._timer = self.loop.call_at(deadline, self._on_timer)

    def _stop_deadline(self) -> None:
        self._deadline_kind = NONE
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
            self._timer_when = _INF

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_when = _INF
        kind = self._deadline_kind
        if kind == NONE or self.lost:
            return
        if self.loop.time() < self._deadline:
            self._timer_when = self._deadline
            self._timer = self.loop.call_at(self._deadline, self._on_timer)
            return
        if _Turn.count >= PER_TURN:  # a crowd's deadlines passed together: this one waits its turn
            self._timer_when = when = self.loop.time() + SPREAD
            self._timer = self.loop.call_at(when, self._on_timer)
            return
        _Turn.count += 1
        if not _Turn.reset_scheduled:
            _Turn.reset_scheduled = True
            self.loop.call_soon(_Turn.reset)
        self._deadline_kind = NONE
        self._deadline_passed(kind)

    def _deadline_passed(self, kind: int) -> None:
        raise NotImplementedError
