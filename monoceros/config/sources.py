"""Turn the places settings come from into one validated :class:`Config`.

Sources, weakest first: registry defaults < config file < ``MONOCEROS_*`` environment < command line <
``monoceros.run()`` keywords. Every value is converted and validated as soon as it is read, so an error
names the source it came from; a typo anywhere is an error with a did-you-mean, never silently ignored.
"""

from __future__ import annotations

import ast
import difflib
import os
import sys
import traceback
import types
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .checks import contradictions
from .foreign import BY_NAME, NOT_NEEDED, note
from .registry import SETTINGS, Config
from .values import convert_value

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

ENV_PREFIX = "MONOCEROS_"

# MONOCEROS_* variables that are not settings but are still legitimate (for example, state the server might
# hand to a re-executed copy of itself). Any other MONOCEROS_* variable that names no setting is an error,
# because it is almost always a typo. Add names here, with a comment saying who reads them.
ENV_ALLOWED: frozenset[str] = frozenset()

CLI_SOURCE = "command line"
RUN_SOURCE = "monoceros.run() keyword"

# Other servers' names for settings (gunicorn's loglevel, uvicorn's limit_max_requests): name -> setting name.
ALIASES: dict[str, str] = {alias: s.name for s in SETTINGS.values() for alias in s.aliases}


def load_config(
    *,
    cli: Mapping[str, Any] | None = None,
    config_file: str | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    cwd: str | None = None,
    notes: Sequence[str] = (),
) -> Config:
    """Merge every source into a :class:`Config`; raise :class:`ConfigError` naming the culprit.

    ``env=None`` reads ``os.environ``; ``cwd=None`` uses the current directory, which is where
    ``monoceros.toml`` / ``pyproject.toml`` are looked for and relative ``config_file`` paths start.
    ``notes`` are carried into ``Config.notes`` first (the command line's, see argv.py).
    """
    base = Path.cwd() if cwd is None else Path(cwd)
    environ = os.environ if env is None else env
    values: dict[str, Any] = {}
    notes = list(notes)
    # Heroku's and Docker images' convention; gunicorn reads it as the default for its workers.
    concurrency = environ.get("WEB_CONCURRENCY")
    if concurrency:
        values["workers"] = convert_value(SETTINGS["workers"], concurrency, "environment variable WEB_CONCURRENCY")
    found = _find_file(config_file, base)
    if config_file is None and (base / "gunicorn.conf.py").is_file():
        # gunicorn reads it unasked; a user moving over would otherwise wonder where their settings went.
        notes.append("./gunicorn.conf.py is here but not read: pass -c gunicorn.conf.py to use it")
    if found is not None:
        values.update(convert_layer(found[1], found[0], notes))
    values.update(_env_layer(environ))
    if cli:
        values.update(convert_layer(cli, CLI_SOURCE, notes))
    if overrides:
        values.update(convert_layer(overrides, RUN_SOURCE, notes))
    config = Config(**values, given=frozenset(values), notes=tuple(notes))
    raise_all(contradictions(config))
    return config


def raise_all(problems: list[str]) -> None:
    """One ConfigError for every problem found, so a user fixes them in one go, not one run each."""
    if len(problems) == 1:
        raise ConfigError(problems[0])
    if problems:
        raise ConfigError(f"{len(problems)} problems:\n" + "\n".join(f"  - {text}" for text in problems))


def convert_layer(raw: Mapping[str, Any], source: str, notes: list[str] | None = None) -> dict[str, Any]:
    """Convert and validate one source's ``{name: value}``; dashes in names count as underscores.

    Another server's name for a setting counts as the setting. Another server's option that monoceros does
    not need adds a line to ``notes``; every other name is a problem, and all of them are reported at once.
    """
    out: dict[str, Any] = {}
    spelt: dict[str, str] = {}
    problems: list[str] = []
    for key, value in raw.items():
        name = key.replace("-", "_")
        canonical = name if name in SETTINGS else ALIASES.get(name)
        if canonical is None:
            foreign = BY_NAME.get(name)
            if foreign is None:
                problems.append(f"unknown setting {key!r} in {source}{_did_you_mean(name)}")
            elif foreign.kind == NOT_NEEDED:
                if notes is not None:
                    notes.append(f"{source}: {note(foreign, repr(key))}")
            else:
                problems.append(f"{source}: {note(foreign, f'setting {key!r}')}")
            continue
        if canonical in out:
            also = f" (as {spelt[canonical]!r} and {key!r})" if spelt[canonical] != key else ""
            problems.append(f"setting {canonical!r} is given twice in {source}{also}")
            continue
        spelt[canonical] = key
        try:
            out[canonical] = convert_value(SETTINGS[canonical], value, source)
        except ConfigError as exc:
            problems.append(str(exc))
    raise_all(problems)
    return out


def _env_layer(env: Mapping[str, str]) -> dict[str, Any]:
    by_var = {s.env: s for s in SETTINGS.values()}
    out: dict[str, Any] = {}
    for var, text in env.items():
        if not var.startswith(ENV_PREFIX) or var in ENV_ALLOWED:
            continue
        setting = by_var.get(var)
        if setting is None:
            # Compare what follows the prefix: the shared prefix would make every name look close.
            known = {name[len(ENV_PREFIX) :].lower(): name for name in [*by_var, *ENV_ALLOWED]}
            match = difflib.get_close_matches(var[len(ENV_PREFIX) :].lower(), list(known), n=1)
            hint = f"; did you mean {known[match[0]]}?" if match else ""
            raise ConfigError(
                f"unknown environment variable {var}{hint} "
                f"(every {ENV_PREFIX}* variable must name a setting; unset it or fix the name)"
            )
        out[setting.name] = convert_value(setting, text, f"environment variable {var}")
    return out


def _did_you_mean(name: str) -> str:
    match = difflib.get_close_matches(name, [*SETTINGS, *ALIASES], n=1)
    if not match:
        return ""
    alias_of = ALIASES.get(match[0])
    return f"; did you mean {match[0]!r} ({alias_of})?" if alias_of else f"; did you mean {match[0]!r}?"


# -- files ---------------------------------------------------------------------------------------------------


def _find_file(config_file: str | None, base: Path) -> tuple[str, dict[str, Any]] | None:
    """Return ``(source name, raw settings)`` from -c FILE, or else ./monoceros.toml or ./pyproject.toml."""
    if config_file is not None:
        path = base / config_file
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        if path.suffix == ".py":
            return f"config file {path}", _read_python(path)
        if path.suffix != ".toml":
            raise ConfigError(f"config file {path}: expected a .toml or .py file")
        if path.name == "pyproject.toml":
            table = _tool_table(path)
            if table is None:
                raise ConfigError(f"config file {path} has no [tool.monoceros] table")
            return f"[tool.monoceros] in {path}", table
        return f"config file {path}", _read_toml(path)

    found: list[tuple[str, dict[str, Any]]] = []
    own = base / "monoceros.toml"
    if own.is_file():
        found.append((f"config file {own}", _read_toml(own)))
    pyproject = base / "pyproject.toml"
    table = _tool_table(pyproject) if pyproject.is_file() else None
    if table is not None:
        found.append((f"[tool.monoceros] in {pyproject}", table))
    if len(found) > 1:
        raise ConfigError(
            f"both {own} and [tool.monoceros] in {pyproject} configure monoceros; "
            "keep one of them, or choose one with -c FILE"
        )
    return found[0] if found else None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            data: dict[str, Any] = tomllib.load(f)
    except OSError as exc:
        raise ConfigError(f"config file {path}: cannot read it: {exc.strerror}") from None
    except ValueError as exc:  # TOMLDecodeError (its message ends "(at line N, column M)"), bad UTF-8
        raise ConfigError(f"config file {path}: invalid TOML: {exc}") from None
    return data


def _tool_table(pyproject: Path) -> dict[str, Any] | None:
    tool = _read_toml(pyproject).get("tool")
    table = tool.get("monoceros") if isinstance(tool, dict) else None
    if table is not None and not isinstance(table, dict):
        raise ConfigError(f"config file {pyproject}: tool.monoceros must be a table")
    return table


def _read_python(path: Path) -> dict[str, Any]:
    """Run a Python config file and return its module-level settings.

    Names starting with ``_``, modules, and names bound by ``import`` statements are helpers, not
    settings; every other module-level name must be a setting, so a misspelt one is caught.
    """
    try:
        source = path.read_bytes()
        tree = ast.parse(source, filename=str(path))
        code = compile(tree, str(path), "exec")
    except OSError as exc:
        raise ConfigError(f"config file {path}: cannot read it: {exc.strerror}") from None
    except SyntaxError as exc:
        raise ConfigError(f"config file {path}, line {exc.lineno}: syntax error: {exc.msg}") from None
    namespace: dict[str, Any] = {"__file__": str(path), "__name__": "__monoceros_config__"}
    try:
        exec(code, namespace)
    except (Exception, SystemExit) as exc:
        line = _failing_line(exc, str(path))
        raise ConfigError(f"config file {path}, line {line}: {type(exc).__name__}: {exc}") from exc
    imported = _imported_names(tree)
    return {
        name: value
        for name, value in namespace.items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType) and name not in imported
    }


def _failing_line(exc: BaseException, filename: str) -> int | None:
    """The deepest line of the config file itself in the traceback, not a line in a library it called."""
    line = None
    for frame, lineno in traceback.walk_tb(exc.__traceback__):
        if frame.f_code.co_filename == filename:
            line = lineno
    return line


def _imported_names(tree: ast.Module) -> set[str]:
    """Names that module-level ``import`` statements bind, including inside ``if``/``try`` blocks."""
    names: set[str] = set()
    stack: list[ast.AST] = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Import):
            names.update(alias.asname or alias.name.partition(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.update(alias.asname or alias.name for alias in node.names)
        elif not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            nested = (ast.stmt, ast.excepthandler, ast.match_case)
            stack.extend(child for child in ast.iter_child_nodes(node) if isinstance(child, nested))
    return names
