"""Forgetting the app's modules, so that a preloading master can import a fresh copy on reload."""

from __future__ import annotations

import importlib
import sys


class ModuleSnapshot:
    """The modules loaded before the app was; everything imported after it counts as the app's."""

    def __init__(self) -> None:
        self._before = frozenset(sys.modules)

    def forget_new(self) -> list[str]:
        """Drop every module imported since the snapshot; the next import reads the files again."""
        gone = [name for name in list(sys.modules) if name not in self._before]
        for name in gone:
            del sys.modules[name]
        importlib.invalidate_caches()
        return gone
