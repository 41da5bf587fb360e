"""The ``monoceros`` command. Its parser is generated from the settings registry, so a flag cannot drift
from the setting it sets; its job beyond that is turning failures into exit codes and one readable message.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any

from . import exitcodes
from ._version import __version__
from .argv import UsageError, read
from .config.registry import Config, Setting, registry
from .config.render import render_toml
from .config.sources import load_config
from .config.values import is_octal
from .errors import MonocerosError
from .failures import report_error

# List settings whose command-line values may themselves be comma-separated, as uvicorn's
# --forwarded-allow-ips is. --bind is not: it is repeated instead, like gunicorn's -b.
_COMMA_SEPARATED = frozenset({"forwarded_allow_ips", "pythonpath"})

_DESCRIPTION = "Serve a WSGI or ASGI application over HTTP/1.1."
_EPILOG = """\
Every setting can also come from a config file (-c FILE, ./monoceros.toml, or [tool.monoceros] in
./pyproject.toml) or a MONOCEROS_<NAME> environment variable. The command line wins over the
environment, which wins over the file. The full reference is docs/settings.md.

exit codes: 0 ok, 2 bad flag/setting/config file, 3 could not start (bind, lifespan), 4 app not loadable
"""


class _Toggle(argparse.Action):
    """``--x`` sets True and ``--no-x`` sets False, for every long alias of a bool setting."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        negated = [f"--no-{flag[2:]}" for flag in option_strings if flag.startswith("--")]
        super().__init__([*option_strings, *negated], dest, nargs=0, **kwargs)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        setattr(namespace, self.dest, not (option_string or "").startswith("--no-"))

    def format_usage(self) -> str:
        return " | ".join(self.option_strings)


class _Append(argparse.Action):
    """Repeatable list flag; with ``split`` each value may also be a comma-separated list."""

    def __init__(self, option_strings: Sequence[str], dest: str, *, split: bool, **kwargs: Any) -> None:
        self.split = split
        super().__init__(option_strings, dest, **kwargs)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        items = list(getattr(namespace, self.dest, None) or [])
        text = str(values)
        if self.split:
            items.extend(part.strip() for part in text.split(",") if part.strip())
        else:
            items.append(text)
        setattr(namespace, self.dest, items)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, one group per registry section. Unset flags are absent from the namespace."""
    parser = argparse.ArgumentParser(
        prog="monoceros",
        usage="%(prog)s [OPTIONS] [APP]",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        argument_default=argparse.SUPPRESS,  # only typed flags reach load_config, or precedence breaks
        allow_abbrev=False,  # an abbreviation would silently change meaning when a flag is added
    )
    groups: dict[str, argparse._ArgumentGroup] = {}
    for setting in registry():
        if setting.section not in groups:
            groups[setting.section] = parser.add_argument_group(setting.section)
        _add_setting(groups[setting.section], setting)

    meta = parser.add_argument_group("Configuration")
    meta.add_argument(
        "-c",
        "--config",
        dest="_config",
        metavar="FILE",
        help="Read settings from this .toml or .py file instead of ./monoceros.toml or "
        "[tool.monoceros] in ./pyproject.toml.",
    )
    meta.add_argument(
        "--print-config",
        dest="_print_config",
        action="store_true",
        help="Print the resolved settings as TOML (usable with -c) and exit.",
    )
    meta.add_argument(
        "--check-config",
        dest="_check_config",
        action="store_true",
        help="Resolve the settings and import the app, report any problem, and exit.",
    )
    meta.add_argument("--version", action="version", version=f"monoceros {__version__}")
    return parser


def _add_setting(group: argparse._ArgumentGroup, setting: Setting) -> None:
    help_text = _help(setting)
    if setting.name == "app":
        group.add_argument("app", nargs="?", default=None, metavar=setting.metavar or "APP", help=help_text)
        return
    flags = setting.flags or ("--" + setting.name.replace("_", "-"),)
    if setting.type == "bool":
        group.add_argument(*flags, dest=setting.name, action=_Toggle, help=help_text)
    elif setting.type == "list":
        group.add_argument(
            *flags,
            dest=setting.name,
            action=_Append,
            split=setting.name in _COMMA_SEPARATED,
            metavar=setting.metavar,
            help=help_text,
        )
    else:
        group.add_argument(
            *flags,
            dest=setting.name,
            metavar=None if setting.choices else setting.metavar,
            # Synonyms (uvicorn's --ssl-cert-reqs 2) pass argparse; convert_value maps them to the choice. Case
            # does not matter, as in gunicorn (--log-level DEBUG).
            choices=[*setting.choices, *dict(setting.synonyms)] if setting.choices else None,
            type=str.lower if setting.choices else str,
            help=help_text,
        )


def _help(setting: Setting) -> str:
    """Registry help plus default and environment variable, with ``%`` escaped for argparse."""
    default = setting.default
    if default is None:
        shown = "unset"
    elif isinstance(default, bool):
        shown = "on" if default else "off"
    elif isinstance(default, list):
        shown = ",".join(default) or "none"
    elif isinstance(default, int) and is_octal(setting):
        shown = f"{default:o}"
    else:
        shown = repr(default) if default == "" else str(default)
    text = f"{setting.help} [default: {shown}; env {setting.env}]"
    return text.replace("%", "%%")


def main(argv: list[str] | None = None) -> int:
    """Run the command and return its exit code; the console script passes it to ``sys.exit``."""
    parser = build_parser()
    try:
        words = read(sys.argv[1:] if argv is None else list(argv), parser)
        namespace = parser.parse_args(words.argv)
    except UsageError as exc:
        parser.print_usage(sys.stderr)
        print(f"monoceros: error: {exc}", file=sys.stderr)
        return exitcodes.USAGE
    except SystemExit as exc:  # --help, --version, or a flag argparse rejected (it printed why)
        return exc.code if isinstance(exc.code, int) else exitcodes.USAGE
    options = vars(namespace)
    cli = {name: value for name, value in options.items() if not name.startswith("_") and value is not None}

    def reload_config() -> Config:
        return load_config(cli=cli, config_file=options.get("_config"), notes=words.notes)

    try:
        config = reload_config()
        if options.get("_print_config"):
            sys.stdout.write(render_toml(config))
        elif options.get("_check_config"):
            return _check(config)
        else:
            return _serve(config, reload_config)
    except KeyboardInterrupt:
        return exitcodes.OK
    except MonocerosError as exc:
        return report_error(exc)
    return exitcodes.OK


# The server modules are imported only when needed, so --help, --print-config and config errors stay fast
# and do not depend on them.


def _serve(config: Config, reload_config: Callable[[], Config]) -> int:
    from .runner import serve

    return serve(config, app=None, reload_config=reload_config)


def _check(config: Config) -> int:
    from .preflight import check

    return check(config)
