"""The heartbeat board: shared memory through which workers report to the master without a syscall.

One anonymous ``MAP_SHARED`` mapping is made before the first fork, so every worker
inherits it. Each worker owns one slot and writes it from its event loop about
once a second: the time of its last heartbeat, its state and how many requests it
has served. The master reads the slots in its loop. A worker whose loop is blocked
stops writing, which is exactly what the master's ``--timeout`` watches for.

The times are ``time.monotonic()``: CLOCK_MONOTONIC is one clock for the whole
machine, so master and workers compare them directly.

With the admin listener on, each slot also holds the worker's metrics (server/metrics.py's vector), which it
publishes with its heartbeat. A sequence number around each copy (odd while the worker writes) lets the master
take a copy that is never half old, half new, without a lock: it retries until the number is even and unchanged.
"""

from __future__ import annotations

import mmap
import struct
import time
from typing import NamedTuple

BOOTING, READY, STOPPING, RETIRING = 0, 1, 2, 3  # RETIRING: it stops by itself at its request limit

_BEAT = struct.Struct("=dII")  # written by the worker: heartbeat time, state, requests taken
_ORDER = struct.Struct("=I")  # written by the master: why it will stop this worker (NONE or RESTART)
_SLOT_SIZE = _BEAT.size + _ORDER.size
_SEQ = struct.Struct("=Q")  # before each slot's metrics: how many writes began (odd while one is under way)
NONE, RESTART = 0, 1
MAX_SLOTS = 4096


class Slot(NamedTuple):
    """What one worker last wrote."""

    heartbeat: float
    state: int
    requests: int


class Board:
    """``MAX_SLOTS`` slots in shared memory; the master hands slot numbers out and takes them back.
    ``tally_size``: how many counters each slot's metrics hold (0: no metrics)."""

    def __init__(self, slots: int = MAX_SLOTS, tally_size: int = 0) -> None:
        self.slots = slots
        self._mem = mmap.mmap(-1, _SLOT_SIZE * slots)
        self._free = list(range(slots - 1, -1, -1))
        # The pages of slots never used are never touched, so they cost no memory.
        self._tally = struct.Struct(f"={tally_size}Q") if tally_size else None
        self._tally_stride = _SEQ.size + (self._tally.size if self._tally is not None else 0)
        self._tallies = mmap.mmap(-1, self._tally_stride * slots) if tally_size else None

    def allocate(self) -> int:
        """A free slot, marked as booting now. Raises RuntimeError when all are taken."""
        if not self._free:
            raise RuntimeError(f"more than {self.slots} workers")
        slot = self._free.pop()
        self.write(slot, BOOTING, 0)
        self.order(slot, NONE)
        return slot

    def release(self, slot: int) -> None:
        if self._tallies is not None:
            offset = slot * self._tally_stride
            self._tallies[offset : offset + self._tally_stride] = bytes(self._tally_stride)
        self._free.append(slot)

    def publish(self, slot: int, values: list[int]) -> None:
        """Called by the worker owning ``slot``, with its heartbeat: its metrics."""
        if self._tallies is None or self._tally is None:
            return
        offset = slot * self._tally_stride
        seq = _SEQ.unpack_from(self._tallies, offset)[0]
        _SEQ.pack_into(self._tallies, offset, seq + 1)  # odd: being written
        self._tally.pack_into(self._tallies, offset + _SEQ.size, *values)
        _SEQ.pack_into(self._tallies, offset, seq + 2)

    def tally(self, slot: int) -> tuple[int, ...] | None:
        """The metrics ``slot``'s worker last published, or None before it published any (or if it was
        always caught mid-write)."""
        if self._tallies is None or self._tally is None:
            return None
        offset = slot * self._tally_stride
        for _ in range(100):
            before = _SEQ.unpack_from(self._tallies, offset)[0]
            if before & 1:
                time.sleep(0)
                continue
            values: tuple[int, ...] = self._tally.unpack_from(self._tallies, offset + _SEQ.size)
            if _SEQ.unpack_from(self._tallies, offset)[0] == before:
                return values if before else None
        return None

    def write(self, slot: int, state: int, requests: int) -> None:
        """Called by the worker owning ``slot``: one heartbeat."""
        _BEAT.pack_into(self._mem, slot * _SLOT_SIZE, time.monotonic(), state, requests & 0xFFFFFFFF)

    def read(self, slot: int) -> Slot:
        return Slot(*_BEAT.unpack_from(self._mem, slot * _SLOT_SIZE))

    def order(self, slot: int, order: int) -> None:
        """Called by the master before it stops a worker: RESTART when a replacement takes its place (a
        reload or a recycle), so the worker tells its WebSocket clients 1012 rather than 1001."""
        _ORDER.pack_into(self._mem, slot * _SLOT_SIZE + _BEAT.size, order)

    def ordered(self, slot: int) -> int:
        return int(_ORDER.unpack_from(self._mem, slot * _SLOT_SIZE + _BEAT.size)[0])
