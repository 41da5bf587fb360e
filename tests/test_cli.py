"""The command line: flags generated from the registry, precedence over the environment, exit codes."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from monoceros import __version__, exitcodes
from monoceros.cli import build_parser, main
from monoceros.config.registry import registry

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.usefixtures("isolated")  # an empty directory, no MONOCEROS_* (tests/conftest.py)


def resolved(argv: list[str], capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    """The settings main() resolves for ``argv``, read back from its --print-config output."""
    assert main(["--print-config", *argv]) == exitcodes.OK
    return tomllib.loads(capsys.readouterr().out)


def run_module(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m monoceros`` in a fresh interpreter, importing this checkout."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MONOCEROS_")}
    clean["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), clean.get("PYTHONPATH")]))
    clean.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "monoceros", *args],
        cwd=cwd,
        env=clean,
        capture_output=True,
        text=True,
        timeout=30,
    )


# -- flags ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("alias", "canonical", "value", "name", "expected"),
    [
        ("--ssl-certfile", "--certfile", "c.pem", "certfile", "c.pem"),
        ("--ssl-keyfile", "--keyfile", "k.pem", "keyfile", "k.pem"),
        ("--limit-max-requests", "--max-requests", "9", "max_requests", 9),
        ("--timeout-graceful-shutdown", "--graceful-timeout", "4", "graceful_timeout", 4.0),
        ("--limit-request-field_size", "--limit-request-field-size", "99", "limit_request_field_size", 99),
        ("--listen", "--bind", "127.0.0.1:1", "bind", ["127.0.0.1:1"]),
        ("--unix-socket", "--uds", "/tmp/s", "uds", "/tmp/s"),
        ("--url-prefix", "--root-path", "/p", "root_path", "/p"),
        ("--connection-limit", "--limit-concurrency", "7", "limit_concurrency", 7),
        ("--max-request-body-size", "--limit-request-body", "5", "limit_request_body", 5),
        ("--websocket-max-message-size", "--ws-max-size", "5", "ws_max_size", 5),
        ("--ping-interval", "--ws-ping-interval", "5", "ws_ping_interval", 5.0),
        ("--ssl-cert-reqs", "--cert-reqs", "required", "cert_reqs", "required"),
        ("--timeout-keep-alive", "--keep-alive", "3", "keep_alive", 3.0),
        ("--worker-connections", "--limit-concurrency", "7", "limit_concurrency", 7),
        ("--log-file", "--error-logfile", "err.log", "error_logfile", "err.log"),
        ("-w", "--workers", "4", "workers", 4),
    ],
)
def test_aliases_set_the_same_setting(
    alias: str, canonical: str, value: str, name: str, expected: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    tls = ["--certfile", "c.pem"] if name in ("keyfile", "cert_reqs") else []  # they need TLS to mean anything
    assert resolved([*tls, alias, value], capsys)[name] == expected
    assert resolved([*tls, canonical, value], capsys)[name] == expected


def test_bind_is_repeatable_and_not_split(capsys: pytest.CaptureFixture[str]) -> None:
    out = resolved(["-b", "127.0.0.1:1", "--bind", "unix:/tmp/a,b", "-b", "[::1]:2"], capsys)
    assert out["bind"] == ["127.0.0.1:1", "unix:/tmp/a,b", "[::1]:2"]


def test_forwarded_allow_ips_is_repeatable_and_split(capsys: pytest.CaptureFixture[str]) -> None:
    out = resolved(["--forwarded-allow-ips", "10.0.0.1, 10.0.0.2", "--forwarded-allow-ips", "::1"], capsys)
    assert out["forwarded_allow_ips"] == ["10.0.0.1", "10.0.0.2", "::1"]


def test_every_bool_has_a_negation(capsys: pytest.CaptureFixture[str]) -> None:
    needs = {
        "capture_output": ["--error-logfile", "e.log"],
        "initgroups": ["-u", "0"],
        "http3": ["--certfile", "c.pem", "--keyfile", "k.pem"],
    }
    for setting in (s for s in registry() if s.type == "bool"):
        for flag in (f for f in setting.flags if f.startswith("--")):
            assert resolved([*needs.get(setting.name, []), flag], capsys)[setting.name] is True
            assert resolved(["--no-" + flag[2:]], capsys)[setting.name] is False


@pytest.mark.parametrize(("word", "expected"), [("false", False), ("0", False), ("off", False), ("true", True)])
def test_a_switch_takes_uvicorns_boolean_words(word: str, expected: bool, capsys: pytest.CaptureFixture[str]) -> None:
    assert resolved(["--ws-per-message-deflate", word, "main:app"], capsys)["ws_per_message_deflate"] is expected
    assert resolved([f"--ws-per-message-deflate={word}"], capsys)["ws_per_message_deflate"] is expected
    assert resolved(["--no-access-log", word], capsys)["access_log"] is not expected


def test_no_access_log(capsys: pytest.CaptureFixture[str]) -> None:
    assert resolved(["--no-access-log"], capsys)["access_log"] is False
    assert resolved(["--no-access-log", "--access-log"], capsys)["access_log"] is True  # last one wins


def test_every_flag_of_every_setting_parses() -> None:
    parser = build_parser()
    for setting in registry():
        for flag in setting.flags:
            argv = [flag] if setting.type == "bool" else [flag, (setting.choices or ("x",))[-1]]
            assert setting.name in vars(parser.parse_args(argv)), flag


def test_positional_app_and_octal_mode(capsys: pytest.CaptureFixture[str]) -> None:
    out = resolved(["pkg.web:app", "--uds", "/tmp/s", "--uds-perms", "600"], capsys)
    assert out["app"] == "pkg.web:app" and out["uds_perms"] == 0o600


def test_untyped_flags_do_not_hide_env_or_file(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (isolated / "monoceros.toml").write_text("workers = 3\naccess_log = false\n", encoding="utf-8")
    monkeypatch.setenv("MONOCEROS_PORT", "9001")
    out = resolved([], capsys)
    assert (out["port"], out["workers"], out["access_log"]) == (9001, 3, False)
    out = resolved(["--port", "9002"], capsys)
    assert (out["port"], out["workers"]) == (9002, 3)


def test_dash_c_reads_the_given_file(isolated: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (isolated / "prod.py").write_text("import os\nworkers = 5\n", encoding="utf-8")
    assert resolved(["-c", "prod.py"], capsys)["workers"] == 5


def test_abbreviations_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--por", "1"]) == exitcodes.USAGE
    assert "unknown option --por; did you mean --port?" in capsys.readouterr().err


# -- errors and exit codes ------------------------------------------------------------------------------


def test_bad_value_exits_usage_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--print-config", "--port", "abc"]) == exitcodes.USAGE
    err = capsys.readouterr().err
    assert err == "monoceros: configuration error: command line: setting 'port' expects an integer, got 'abc'\n"


def test_bad_choice_exits_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--log-level", "loud"]) == exitcodes.USAGE
    assert "invalid choice: 'loud'" in capsys.readouterr().err


def test_version_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == exitcodes.OK
    assert capsys.readouterr().out.strip() == f"monoceros {__version__}"
    assert main(["--help"]) == exitcodes.OK
    out = capsys.readouterr().out
    for section in {s.section for s in registry()}:
        assert f"\n{section}:\n" in out
    assert "--no-access-log" in out and "MONOCEROS_ACCESS_LOGFORMAT" in out and "%(h)s" in out


def test_check_config_bad_key_exits_2(isolated: Path) -> None:
    (isolated / "monoceros.toml").write_text("bakclog = 5\n", encoding="utf-8")
    result = run_module("--check-config", cwd=isolated)
    assert result.returncode == exitcodes.USAGE
    assert "unknown setting 'bakclog'" in result.stderr and "did you mean 'backlog'?" in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_env_var_exits_2(isolated: Path) -> None:
    result = run_module("--print-config", cwd=isolated, env={"MONOCEROS_WOKERS": "2"})
    assert result.returncode == exitcodes.USAGE
    assert "unknown environment variable MONOCEROS_WOKERS; did you mean MONOCEROS_WORKERS?" in result.stderr


def test_print_config_round_trips_through_dash_c(isolated: Path) -> None:
    argv = ["-b", "0.0.0.0:80", "-b", "unix:/tmp/s", "--no-access-log", "--uds-perms", "640", "--keep-alive", "1.5"]
    argv += ["pkg:app"]
    first = run_module("--print-config", *argv, cwd=isolated)
    assert first.returncode == 0, first.stderr
    (isolated / "printed.toml").write_text(first.stdout, encoding="utf-8")
    second = run_module("--print-config", "-c", "printed.toml", cwd=isolated)
    assert second.returncode == 0, second.stderr
    assert second.stdout == first.stdout


# -- app loading (runs once monoceros.server.app_loader exists) -----------------------------------------


def _needs_app_loader() -> None:
    if importlib.util.find_spec("monoceros.server.app_loader") is None:
        pytest.skip("monoceros.server.app_loader is not written yet")


def test_check_config_loads_the_app(isolated: Path) -> None:
    _needs_app_loader()
    (isolated / "goodapp.py").write_text(
        "def app(environ, start_response):\n    start_response('200 OK', [])\n    return [b'']\n",
        encoding="utf-8",
    )
    result = run_module("--check-config", "--app-dir", str(isolated), "goodapp:app", cwd=isolated)
    assert (result.returncode, result.stdout) == (exitcodes.OK, "config OK\n"), result.stderr


def test_check_config_shows_the_users_traceback(isolated: Path) -> None:
    _needs_app_loader()
    (isolated / "badapp.py").write_text("x = 1\nraise RuntimeError('boom in user code')\n", encoding="utf-8")
    result = run_module("--check-config", "--app-dir", str(isolated), "badapp:app", cwd=isolated)
    assert result.returncode == exitcodes.APP_LOAD_ERROR
    assert "badapp.py" in result.stderr and "RuntimeError: boom in user code" in result.stderr
    assert "importlib" not in result.stderr  # the traceback starts in the user's code
