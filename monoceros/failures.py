"""Startup failures as one readable paragraph on stderr and an exit code.

The command line and a forked worker both end this way, so a worker that cannot load the app says so in the
same words as a server that cannot; library code only raises (see errors.py).
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
import types

from . import exitcodes
from .errors import AppLoadError, BindError, ConfigError, HookError, LifespanError, ModuleRaised


def report_error(exc: BaseException) -> int:
    """Explain a startup failure on stderr and return its exit code."""
    if isinstance(exc, ConfigError):
        return _fail("configuration error", exc, exitcodes.USAGE)
    if isinstance(exc, AppLoadError):
        return _fail("cannot load the app", exc, exitcodes.APP_LOAD_ERROR, user_traceback=isinstance(exc, ModuleRaised))
    if isinstance(exc, LifespanError):
        return _fail("lifespan failed", exc, exitcodes.BOOT_ERROR, user_traceback=True)
    if isinstance(exc, BindError):
        return _fail("cannot listen", exc, exitcodes.BOOT_ERROR)
    if isinstance(exc, HookError):
        return _fail("a server hook failed", exc, exitcodes.BOOT_ERROR, user_traceback=True)
    return _fail("cannot start", exc, exitcodes.BOOT_ERROR)


def _fail(what: str, exc: BaseException, code: int, *, user_traceback: bool = False) -> int:
    """Print one paragraph to stderr; for errors raised by the user's code, their traceback first."""
    cause = exc.__cause__
    if user_traceback and cause is not None:
        if isinstance(cause, SyntaxError):
            # The file, the line and a caret say it all; the frames would only be importlib's.
            sys.stderr.write("".join(traceback.format_exception_only(type(cause), cause)))
        else:
            traceback.print_exception(type(cause), cause, _user_frames(cause.__traceback__), file=sys.stderr)
    print(f"monoceros: {what}: {exc}", file=sys.stderr)
    return code


def _user_frames(tb: types.TracebackType | None) -> types.TracebackType | None:
    """Skip the leading frames of monoceros and importlib, so the traceback starts in the user's code."""
    ours = (os.path.dirname(__file__) + os.sep, os.path.dirname(importlib.__file__) + os.sep, "<frozen ")
    start = tb
    while start is not None and start.tb_frame.f_code.co_filename.startswith(ours):
        start = start.tb_next
    return start or tb
