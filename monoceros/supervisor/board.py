"""The heartbeat board: shared memory through which workers report to the master without a syscall.

One anonymous ``MAP_SHARED`` mapping is made before the first fork, so every worker
inherits it. Each worker owns one slot and writes it from its event loop about
once a second: the time of its last heartbeat, its state and how many requests it
has served. The master reads the slots in its loop. A worker whose loop is blocked
stops writing, which is exactly what the master's ``--timeout`` watches for.

The times are ``time.monotonic()``: CLOCK_MONOTONIC is one clock for the whole
machine, so master and workers compare them directly.
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
NONE, RESTART = 0, 1
MAX_SLOTS = 4096


class Slot(NamedTuple):
    """What one worker last wrote."""

    heartbeat: float
    state: int
    requests: int


class Board:
    """``MAX_SLOTS`` slots in shared memory; the master hands slot numbers out and takes them back."""

    def __init__(self, slots: int = MAX_SLOTS) -> None:
        self.slots = slots
        self._mem = mmap.mmap(-1, _SLOT_SIZE * slots)
        self._free = list(range(slots - 1, -1, -1))

    def allocate(self) -> int:
        """A free slot, marked as booting now. Raises RuntimeError when all are taken."""
        if not self._free:
            raise RuntimeError(f"more than {self.slots} workers")
        slot = self._free.pop()
        self.write(slot, BOOTING, 0)
        self.order(slot, NONE)
        return slot

    def release(self, slot: int) -> None:
        self._free.append(slot)

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
