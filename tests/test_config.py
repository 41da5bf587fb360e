"""load_config: the five sources, their precedence, conversion, and the errors that name their source."""

from __future__ import annotations

import importlib.util
import os
import re
import sys
from pathlib import Path
from typing import Any

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

import monoceros
from monoceros.config import sources
from monoceros.config.registry import SETTINGS, Config, registry
from monoceros.config.render import config_as_dict, render_toml
from monoceros.config.sources import load_config
from monoceros.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def load(tmp_path: Path, **kwargs: Any) -> Config:
    """load_config isolated from the real environment and working directory."""
    kwargs.setdefault("env", {})
    return load_config(cwd=str(tmp_path), **kwargs)


def write(path: Path, text: str) -> str:
    path.write_text(text, encoding="utf-8")
    return str(path)


# -- precedence -----------------------------------------------------------------------------------------


def test_defaults_when_no_source(tmp_path: Path) -> None:
    assert load(tmp_path) == Config()


def test_precedence_across_all_five_layers(tmp_path: Path) -> None:
    write(tmp_path / "monoceros.toml", "port = 1\nbacklog = 1\nworkers = 1\nthreads = 1\n")
    env = {"MONOCEROS_PORT": "2", "MONOCEROS_BACKLOG": "2", "MONOCEROS_WORKERS": "2"}
    cli = {"port": "3", "backlog": "3"}
    cfg = load(tmp_path, env=env, cli=cli, overrides={"port": 4})
    assert (cfg.port, cfg.backlog, cfg.workers, cfg.threads) == (4, 3, 2, 1)
    assert cfg.limit_concurrency == SETTINGS["limit_concurrency"].default


def test_env_none_reads_os_environ(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONOCEROS_PORT", "9123")
    assert load_config(cwd=str(tmp_path)).port == 9123


def test_unrelated_environment_variables_are_ignored(tmp_path: Path) -> None:
    assert load(tmp_path, env={"PORT": "x", "MONOCEROS": "x", "monoceros_port": "x"}) == Config()


# -- conversion -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("var", "text", "name", "expected"),
    [
        *[("MONOCEROS_ACCESS_LOG", word, "access_log", True) for word in ["1", "true", "YES", "On", " yes "]],
        *[("MONOCEROS_ACCESS_LOG", word, "access_log", False) for word in ["0", "false", "No", "OFF"]],
        ("MONOCEROS_PORT", "8080", "port", 8080),
        ("MONOCEROS_KEEP_ALIVE", "2.5", "keep_alive", 2.5),
        ("MONOCEROS_KEEP_ALIVE", "3", "keep_alive", 3.0),
        ("MONOCEROS_BIND", "0.0.0.0:80, unix:/tmp/s ,", "bind", ["0.0.0.0:80", "unix:/tmp/s"]),
        ("MONOCEROS_BIND", "", "bind", []),
        ("MONOCEROS_FORWARDED_ALLOW_IPS", "10.0.0.0/8,*", "forwarded_allow_ips", ["10.0.0.0/8", "*"]),
        ("MONOCEROS_CERTFILE", "cert.pem", "certfile", "cert.pem"),
        ("MONOCEROS_CERTFILE", "", "certfile", None),
        ("MONOCEROS_FD", "3", "fd", 3),
        ("MONOCEROS_FD", "", "fd", None),
        ("MONOCEROS_HEAP_RETAIN", "7", "heap_retain", 7),
        ("MONOCEROS_UMASK", "027", "umask", 0o027),
        ("MONOCEROS_UMASK", "0o077", "umask", 0o077),
        ("MONOCEROS_LOG_LEVEL", "debug", "log_level", "debug"),
        ("MONOCEROS_ROOT_PATH", "", "root_path", ""),
    ],
)
def test_env_strings_are_converted(tmp_path: Path, var: str, text: str, name: str, expected: Any) -> None:
    assert getattr(load(tmp_path, env={var: text}), name) == expected


def test_file_values_keep_their_types(tmp_path: Path) -> None:
    path = write(
        tmp_path / "c.toml",
        'bind = ["a:1", "unix:/b"]\nforwarded_allow_ips = "1.2.3.4, 10.0.0.0/8"\nuds_perms = 0o640\n'
        "keep_alive = 7\naccess_log = false\nfd = 4\n",
    )
    cfg = load(tmp_path, config_file=path)
    assert cfg.bind == ["a:1", "unix:/b"]
    assert cfg.forwarded_allow_ips == ["1.2.3.4", "10.0.0.0/8"]
    assert cfg.uds_perms == 0o640
    assert cfg.keep_alive == 7.0 and isinstance(cfg.keep_alive, float)
    assert cfg.access_log is False and cfg.fd == 4


def test_octal_string_in_toml(tmp_path: Path) -> None:
    assert load(tmp_path, config_file=write(tmp_path / "c.toml", 'umask = "027"\n')).umask == 0o027


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"port": "abc"}, "setting 'port' expects an integer, got 'abc'"),
        ({"port": True}, "setting 'port' expects an integer, got True"),
        ({"port": 80.5}, "setting 'port' expects an integer, got 80.5"),
        ({"keep_alive": "soon"}, "setting 'keep_alive' expects a number, got 'soon'"),
        ({"keep_alive": "nan"}, "setting 'keep_alive' expects a finite number, got 'nan'"),
        ({"access_log": "maybe"}, "setting 'access_log' expects true or false"),
        ({"access_log": 1}, "setting 'access_log' expects true or false"),
        ({"bind": [1, 2]}, "setting 'bind' expects a list of strings"),
        ({"host": ["a"]}, "setting 'host' expects a string, got ['a']"),
        ({"uds_perms": "9"}, "setting 'uds_perms' expects an octal mode such as 660 or 0o660, got '9'"),
        ({"uds_perms": 660}, "setting 'uds_perms': must be a permission mode such as 0o660; got 660"),
        ({"log_level": "loud"}, "setting 'log_level' must be one of 'critical', 'error',"),
        ({"port": 70000}, "setting 'port': must be a TCP port, 0 to 65535; got 70000"),
        ({"workers": 0}, "setting 'workers': must be more than zero; got 0"),
        ({"forwarded_allow_ips": ["nope"]}, "'nope' is not an IP address"),
    ],
)
def test_bad_values_name_source_and_setting(tmp_path: Path, overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, overrides=overrides)
    assert str(info.value).startswith("monoceros.run() keyword: ")
    assert message in str(info.value)


def test_bad_value_from_file_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path / "x.toml", 'port = "abc"\n')
    with pytest.raises(ConfigError, match=r"^config file .*x\.toml: setting 'port' expects an integer, got 'abc'$"):
        load(tmp_path, config_file=path)


def test_bad_value_from_env_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^environment variable MONOCEROS_WORKERS: setting 'workers'"):
        load(tmp_path, env={"MONOCEROS_WORKERS": "-1"})


# -- unknown names --------------------------------------------------------------------------------------


def test_unknown_key_in_toml_file(tmp_path: Path) -> None:
    path = write(tmp_path / "monoceros.toml", "bakclog = 5\n")
    expected = f"unknown setting 'bakclog' in config file {path}; did you mean 'backlog'?"
    for kwargs in ({}, {"config_file": "monoceros.toml"}):
        with pytest.raises(ConfigError) as info:
            load(tmp_path, **kwargs)
        assert str(info.value) == expected


def test_unknown_key_in_pyproject(tmp_path: Path) -> None:
    path = write(tmp_path / "pyproject.toml", "[tool.monoceros]\nwokers = 2\n")
    with pytest.raises(ConfigError) as info:
        load(tmp_path)
    assert str(info.value) == f"unknown setting 'wokers' in [tool.monoceros] in {path}; did you mean 'workers'?"


def test_unknown_name_in_python_file(tmp_path: Path) -> None:
    path = write(tmp_path / "conf.py", "keep_alve = 3\n")
    with pytest.raises(ConfigError) as info:
        load(tmp_path, config_file=path)
    assert str(info.value) == f"unknown setting 'keep_alve' in config file {path}; did you mean 'keep_alive'?"


def test_unknown_environment_variable(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError,
        match=r"^unknown environment variable MONOCEROS_BAKCLOG; did you mean MONOCEROS_BACKLOG\?",
    ):
        load(tmp_path, env={"MONOCEROS_BAKCLOG": "5"})


def test_unknown_environment_variable_without_a_near_name(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, env={"MONOCEROS_ZZZZZZZZ": "5"})
    assert "did you mean" not in str(info.value)


def test_allowed_environment_variables_are_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sources, "ENV_ALLOWED", frozenset({"MONOCEROS_SOMETHING_ELSE"}))
    assert load(tmp_path, env={"MONOCEROS_SOMETHING_ELSE": "x"}) == Config()


def test_unknown_key_on_command_line_and_run(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^unknown setting 'prot' in command line; did you mean 'port'\?$"):
        load(tmp_path, cli={"prot": "1"})
    with pytest.raises(ConfigError, match=r"^unknown setting 'prot' in monoceros.run\(\) keyword; did you mean"):
        load(tmp_path, overrides={"prot": 1})


def test_run_raises_config_error_before_serving(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"monoceros\.run\(\) keyword; did you mean 'workers'"):
        monoceros.run("pkg:app", wrokers=2)


# -- files ----------------------------------------------------------------------------------------------


def test_dashes_and_underscores_in_files(tmp_path: Path) -> None:
    cfg = load(tmp_path, config_file=write(tmp_path / "c.toml", "keep-alive = 9\nlimit_request_line = 100\n"))
    assert (cfg.keep_alive, cfg.limit_request_line) == (9.0, 100)


def test_same_setting_twice_in_one_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'keep_alive' is given twice"):
        load(tmp_path, config_file=write(tmp_path / "c.toml", "keep-alive = 9\nkeep_alive = 8\n"))


def test_pyproject_table_is_read_and_other_tables_ignored(tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml", '[project]\nname = "x"\n\n[tool.monoceros]\nworkers = 3\n')
    assert load(tmp_path).workers == 3


def test_pyproject_without_table_is_ignored(tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml", '[project]\nname = "x"\n[tool.other]\nport = "nonsense"\n')
    assert load(tmp_path) == Config()


def test_pyproject_given_with_dash_c(tmp_path: Path) -> None:
    sub = tmp_path / "sub"
    sub.mkdir()
    path = write(sub / "pyproject.toml", "[tool.monoceros]\nport = 81\n")
    assert load(tmp_path, config_file=path).port == 81
    write(sub / "pyproject.toml", "[tool.other]\n")
    with pytest.raises(ConfigError, match=r"has no \[tool\.monoceros\] table"):
        load(tmp_path, config_file=path)


def test_monoceros_toml_and_pyproject_table_together_is_an_error(tmp_path: Path) -> None:
    write(tmp_path / "monoceros.toml", "port = 1\n")
    write(tmp_path / "pyproject.toml", "[tool.monoceros]\nport = 2\n")
    with pytest.raises(ConfigError, match="keep one of them, or choose one with -c FILE"):
        load(tmp_path)
    assert load(tmp_path, config_file="monoceros.toml").port == 1  # -c settles it


def test_config_file_relative_to_cwd_and_missing(tmp_path: Path) -> None:
    write(tmp_path / "c.toml", "port = 5\n")
    assert load(tmp_path, config_file="c.toml").port == 5
    with pytest.raises(ConfigError, match="does not exist"):
        load(tmp_path, config_file="nope.toml")
    with pytest.raises(ConfigError, match=r"expected a \.toml or \.py file"):
        load(tmp_path, config_file=write(tmp_path / "c.ini", "[x]\n"))


def test_toml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path / "monoceros.toml", "port = 1\nworkers = \n")
    with pytest.raises(ConfigError, match=rf"^config file {re.escape(path)}: invalid TOML: .*line 2"):
        load(tmp_path)


def test_python_file_helpers_are_ignored(tmp_path: Path) -> None:
    path = write(
        tmp_path / "conf.py",
        "import os\nimport os.path as osp\nfrom os.path import join\n"
        "try:\n    from math import floor\nexcept ImportError:\n    pass\n"
        "_base = 8000\nbacklog = _base + 1\nbind = [join('unix:', 'tmp', 's')]\nworkers = floor(2.5)\n",
    )
    cfg = load(tmp_path, config_file=path)
    assert (cfg.backlog, cfg.bind, cfg.workers) == (8001, ["unix:/tmp/s"], 2)


def test_python_file_hooks_are_functions_and_typos_are_caught(tmp_path: Path) -> None:
    path = write(tmp_path / "conf.py", "def on_starting(server):\n    return 'started'\n")
    config = load(tmp_path, config_file=path)
    assert config.on_starting is not None and config.on_starting(None) == "started"
    path = write(tmp_path / "conf2.py", "def on_startng(server):\n    pass\n")
    with pytest.raises(ConfigError, match=r"unknown setting 'on_startng' in config file .*did you mean 'on_starting'"):
        load(tmp_path, config_file=path)
    path = write(tmp_path / "conf3.py", "when_ready = 42\n")
    with pytest.raises(ConfigError, match="setting 'when_ready'"):
        load(tmp_path, config_file=path)


def test_hooks_from_strings_and_web_concurrency(tmp_path: Path) -> None:
    config = load(tmp_path, env={"MONOCEROS_ON_EXIT": "os.path:join", "WEB_CONCURRENCY": "3"})
    assert config.on_exit is os.path.join
    assert config.workers == 3
    assert load(tmp_path, env={"WEB_CONCURRENCY": "3"}, cli={"workers": "5"}).workers == 5
    with pytest.raises(ConfigError, match=r"MONOCEROS_ON_EXIT.*'on_exit'.*importable"):
        load(tmp_path, env={"MONOCEROS_ON_EXIT": "no_such_module_x:f"})


def test_python_file_syntax_error_names_line(tmp_path: Path) -> None:
    path = write(tmp_path / "conf.py", "port = 1\nworkers = (\n\nthreads = 2\n")
    with pytest.raises(ConfigError, match=rf"^config file {re.escape(path)}, line \d+: syntax error"):
        load(tmp_path, config_file=path)
    path = write(tmp_path / "conf2.py", "port = 1\nworkers = = 2\n")
    with pytest.raises(ConfigError, match=rf"^config file {re.escape(path)}, line 2: syntax error"):
        load(tmp_path, config_file=path)


def test_python_file_that_raises_names_line(tmp_path: Path) -> None:
    path = write(tmp_path / "conf.py", "port = 1\n\ndef f():\n    return 1 / 0\n\nworkers = f()\n")
    with pytest.raises(
        ConfigError, match=rf"^config file {re.escape(path)}, line 4: ZeroDivisionError: division by zero$"
    ):
        load(tmp_path, config_file=path)
    path = write(tmp_path / "exits.py", "import sys\nsys.exit(3)\n")
    with pytest.raises(ConfigError, match=r", line 2: SystemExit: 3$"):
        load(tmp_path, config_file=path)


# -- output ---------------------------------------------------------------------------------------------


def test_render_toml_round_trips(tmp_path: Path) -> None:
    cfg = Config(
        app="pkg.mod:app",
        bind=["0.0.0.0:80", "unix:/tmp/a b.sock"],
        uds_perms=0o600,
        keep_alive=0.25,
        access_log=True,
        certfile="cert.pem",
        fd=5,
        root_path='/we"ird\\path\n\t\x01\x7f',
        access_logformat="%(h)s ünïcødé",
        forwarded_allow_ips=["*"],
    )
    text = render_toml(cfg)
    tomllib.loads(text)
    assert "# Listening" in text and "# keyfile = (unset)" in text and "uds_perms = 0o600" in text
    path = write(tmp_path / "printed.toml", text)
    assert load(tmp_path, config_file=path) == cfg


def test_render_toml_round_trips_defaults(tmp_path: Path) -> None:
    assert load(tmp_path, config_file=write(tmp_path / "d.toml", render_toml(Config()))) == Config()


def test_config_as_dict_lists_every_setting_in_order() -> None:
    data = config_as_dict(Config(port=1))
    assert list(data) == [s.name for s in registry()]
    assert data["port"] == 1 and data["bind"] == [] and data["certfile"] is None


# -- the generated reference ----------------------------------------------------------------------------


def test_docs_settings_md_is_current() -> None:
    spec = importlib.util.spec_from_file_location("gen_settings_docs", ROOT / "scripts" / "gen_settings_docs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    committed = (ROOT / "docs" / "settings.md").read_text(encoding="utf-8")
    assert committed == module.render(), "docs/settings.md is stale: run python scripts/gen_settings_docs.py"
    for setting in registry():
        assert f"### `{setting.name}`" in committed and setting.env in committed


def test_sys_path_not_polluted_by_python_config(tmp_path: Path) -> None:
    before = list(sys.path)
    load(tmp_path, config_file=write(tmp_path / "conf.py", "port = 1\n"))
    assert sys.path == before
