"""The command line's words, read once before argparse sees them.

argparse alone answers ``monoceros --workrs 2 ops:app`` with "unrecognized arguments: --workrs ops:app": it
took the ``2`` for the app. Reading the words first lets monoceros say what a user of another server needs:

- an unknown option gets the nearest real one ("--workrs: did you mean --workers?"), and its value is not
  mistaken for the app;
- another server's option that monoceros does not need is dropped with a note, one it cannot honour is
  refused with the monoceros way to get the same (config/foreign.py);
- a switch followed by a boolean word (uvicorn's ``--ws-per-message-deflate false``) means ``--no-...``;
- short flags that mean something else in daphne (``-p 8001``, ``-u /tmp/app.sock``, ``-e tcp:8000``) and
  daphne's or hypercorn's ``--access-log FILE`` are caught instead of silently meaning monoceros's option.
"""

from __future__ import annotations

import argparse
import difflib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from .config.foreign import BY_FLAG, NOT_NEEDED, note

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})
_RENAMED = {"--no-server-name": "--no-server-header"}  # daphne's spelling of the same switch
_ENDPOINTS = ("tcp:", "tcp6:", "unix:", "ssl:", "fd:", "systemd:")  # twisted endpoint strings (daphne's -e)


class UsageError(Exception):
    """The command line cannot mean what its user wants; the message says what to type instead."""


@dataclass
class Words:
    """The command line as argparse should see it, and the notes to log once logging is up."""

    argv: list[str]
    notes: list[str] = field(default_factory=list)


def read(argv: list[str], parser: argparse.ArgumentParser) -> Words:
    """Translate ``argv`` for ``parser``; raise :class:`UsageError` for what cannot be translated."""
    actions = parser._option_string_actions
    words = Words([])
    out = words.argv
    apps: list[str] = []
    problems: list[str] = []
    index = 0
    while index < len(argv):
        token = argv[index]
        index += 1
        if token == "--":
            out.extend(argv[index - 1 :])
            apps.extend(argv[index:])
            break
        if not token.startswith("-") or token == "-" or _is_number(token):
            out.append(token)
            apps.append(token)
            continue
        flag, eq, inline = token.partition("=") if token.startswith("--") else (token, "", "")
        if not eq and not token.startswith("--") and len(token) > 2 and token[:2] in actions:
            flag, eq, inline = token[:2], "=", token[2:]  # -w4, as argparse allows
        flag = _RENAMED.get(flag, flag)
        action = actions.get(flag)
        if action is None:
            try:
                index = _foreign(flag, eq, argv, index, words, actions)
            except UsageError as exc:
                problems.append(str(exc))
            continue
        if action.nargs == 0:  # a switch
            value = inline if eq else (argv[index] if index < len(argv) else "")
            if flag == "--access-log" and not eq and _looks_like_a_file(value):
                out += ["--access-logfile", value]  # daphne's and hypercorn's --access-log FILE
                index += 1
                continue
            word = value.strip().lower()
            if word in _TRUE or word in _FALSE:
                out.append(_switch(flag, word in _TRUE))
                index += 0 if eq else 1
                continue
            if eq:
                problems.append(f"{flag} takes no value, or one of true/false (got {inline!r})")
            out.append(flag)
            continue
        if eq:
            value = inline
        elif index < len(argv):
            value = argv[index]
            index += 1
        else:
            problems.append(f"{flag} needs a value")
            break
        try:
            _catch_daphne(flag, value)
        except UsageError as exc:
            problems.append(str(exc))
        if flag == "--http" and value.lower() in _UVICORN_PARSERS:
            words.notes.append(f"command line: --http {value} is not needed: {_UVICORN_PARSERS[value.lower()]}")
            continue
        out += [flag, value]
    if problems:
        # After an unknown option, a word may be its value rather than the app: only the options are reported.
        raise UsageError("; ".join(problems) if len(problems) == 1 else "\n  " + "\n  ".join(problems))
    if len(apps) > 1:
        raise UsageError(f"one APP is served, but {len(apps)} were given: {', '.join(map(repr, apps))}")
    return words


def _foreign(flag: str, eq: str, argv: list[str], index: int, words: Words, actions: Mapping[str, object]) -> int:
    """Another server's option, or a misspelling. Returns where reading goes on."""
    foreign = BY_FLAG.get(flag)
    if foreign is None:
        known = [name for name in [*actions, *BY_FLAG] if name.startswith("--")]
        match = difflib.get_close_matches(flag, known, n=1, cutoff=0.75)
        hint = f"; did you mean {match[0]}?" if match else " (monoceros --help lists them all)"
        raise UsageError(f"unknown option {flag}{hint}")
    if foreign.kind != NOT_NEEDED:
        raise UsageError(note(foreign, flag))
    words.notes.append(f"command line: {note(foreign, flag)}")
    if foreign.takes_value and not eq and index < len(argv):
        index += 1  # its value goes with it
    return index


# uvicorn's --http picks its HTTP/1.1 parser; monoceros's picks the HTTP versions served (auto|1|2).
_UVICORN_PARSERS = dict.fromkeys(("httptools", "h11"), "monoceros always parses HTTP/1.1 with httptools (llhttp)")


def _switch(flag: str, on: bool) -> str:
    """The spelling of a switch that sets it to ``on``: --x or --no-x."""
    positive = flag[5:] if flag.startswith("--no-") else flag[2:]
    negated = flag.startswith("--no-")
    return f"--{positive}" if on != negated else f"--no-{positive}"


def _catch_daphne(flag: str, value: str) -> None:
    """daphne's short flags mean other things; refuse the values that can only be daphne's."""
    if flag == "-p" and value.isdigit():
        raise UsageError(
            f"{flag} {value}: -p is the PID file here (as in gunicorn); to listen on port {value} "
            f"(daphne's -p), use --port {value} or -b HOST:{value}"
        )
    if flag == "-u" and (os.sep in value or value.endswith(".sock")):
        raise UsageError(
            f"{flag} {value}: -u is the user to run as here (as in gunicorn); to listen on a unix socket "
            f"(daphne's -u), use --uds {value} or -b unix:{value}"
        )
    if flag in ("-e", "--env") and ("=" not in value or value.startswith(_ENDPOINTS)):
        raise UsageError(
            f"{flag} {value}: -e sets an environment variable here (NAME=VALUE, as in gunicorn); to listen "
            f"on an address (daphne's --endpoint), use -b HOST:PORT, -b unix:PATH or -b fd://N, with "
            f"--certfile and --keyfile for TLS"
        )


def _looks_like_a_file(word: str) -> bool:
    return word == "-" or os.sep in word or word.endswith(".log")


def _is_number(word: str) -> bool:
    try:
        float(word)
    except ValueError:
        return False
    return True
