from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import datetime
import json
import logging
import os
import random
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from monoceros import access_format, access_log, logs
from monoceros.access_log import AccessLogger
from monoceros.config import Config
from monoceros.errors import ConfigError
from monoceros.logs import ACCESS_LOGGER, ERROR_LOGGER, configure_logging, reopen_log_files

NOON = 1795248000.0  # 2026-11-21 08:00:00 UTC


def config(**overrides: Any) -> Config:
    return dataclasses.replace(Config(), **overrides)


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """Give every test the logging state it found, and close the handlers it made."""
    names = [None, ERROR_LOGGER, ACCESS_LOGGER, "custom"]
    saved = {}
    for name in names:
        lg = logging.getLogger(name)
        saved[name] = (lg.handlers[:], lg.level, lg.propagate, lg.disabled)
    yield
    logs._remove_installed()
    for name in names:
        lg = logging.getLogger(name)
        handlers, level, propagate, disabled = saved[name]
        for h in lg.handlers[:]:
            if h not in handlers:
                lg.removeHandler(h)
                h.close()
        for h in handlers:
            if h not in lg.handlers:
                lg.addHandler(h)
        lg.setLevel(level)
        lg.propagate = propagate
        lg.disabled = disabled


@pytest.fixture
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    access_format._clf_cache = (-1, "")  # the per-second cache does not expect the zone to change
    yield
    monkeypatch.undo()
    time.tzset()


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def access_lines() -> list[str]:
    """Lines written to the access log, bypassing configure_logging."""
    capture = Capture()
    lg = logging.getLogger(ACCESS_LOGGER)
    lg.handlers = [capture]
    lg.setLevel(logging.INFO)
    lg.propagate = False
    return capture.lines


REQUEST_HEADERS = [
    (b"Host", b"example.com"),
    (b"User-Agent", b"curl/8.5"),
    (b"Referer", b"https://example.com/from"),
    (b"Authorization", b"Basic " + base64.b64encode(b"alice:secret")),
    (b"X-Multi", b"one"),
    (b"x-multi", b"two"),
]
RESPONSE_HEADERS = [(b"content-type", b"text/plain"), (b"X-Request-Id", b"abc123")]


SAMPLE: dict[str, Any] = {
    "client": ("198.51.100.7", 5555),
    "method": "GET",
    "target": "/path/x?a=1&b=2",
    "http_version": "1.1",
    "status": 200,
    "response_bytes": 1234,
    "duration_s": 2.5,
    "request_headers": REQUEST_HEADERS,
    "response_headers": RESPONSE_HEADERS,
    "request_time": NOON,
}


def log_one(logger: AccessLogger, **overrides: Any) -> None:
    request = {**SAMPLE, **overrides}
    logger.log(**request)


# -- configure_logging ------------------------------------------------------------------------------------


def test_default_error_log_format(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(Config())
    logging.getLogger(ERROR_LOGGER).info("hello %s", "world")
    logging.getLogger(ERROR_LOGGER).debug("hidden")
    err = capsys.readouterr().err
    pattern = rf"\[\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{{4}}\] \[{os.getpid()}\] \[INFO\] hello world\n"
    assert re.fullmatch(pattern, err)


def test_access_log_goes_to_stdout_message_only(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(Config())
    logging.getLogger(ACCESS_LOGGER).info("a line")
    out, err = capsys.readouterr()
    assert out == "a line\n"
    assert err == ""


@pytest.mark.parametrize(
    ("level", "expected"),
    [("debug", logging.DEBUG), ("warning", logging.WARNING), ("critical", logging.CRITICAL)],
)
def test_log_level(level: str, expected: int) -> None:
    configure_logging(config(log_level=level))
    assert logging.getLogger(ERROR_LOGGER).level == expected
    assert logging.getLogger(ACCESS_LOGGER).level == logging.INFO


def test_configure_twice_does_not_double_lines(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(Config())
    configure_logging(Config())
    logging.getLogger(ERROR_LOGGER).warning("once")
    assert capsys.readouterr().err.count("once") == 1


def test_log_files_and_reopen(tmp_path: Path) -> None:
    error_file, access_file = tmp_path / "error.log", tmp_path / "access.log"
    configure_logging(config(error_logfile=str(error_file), access_logfile=str(access_file)))
    logging.getLogger(ERROR_LOGGER).error("boom")
    logging.getLogger(ACCESS_LOGGER).info("GET /")
    assert "[ERROR] boom" in error_file.read_text()
    assert access_file.read_text() == "GET /\n"

    # logrotate moves the files away, then sends SIGUSR1.
    error_file.rename(tmp_path / "error.log.1")
    access_file.rename(tmp_path / "access.log.1")
    reopen_log_files()
    logging.getLogger(ERROR_LOGGER).error("after")
    logging.getLogger(ACCESS_LOGGER).info("GET /after")
    assert "after" in error_file.read_text()
    assert "after" not in (tmp_path / "error.log.1").read_text()
    assert access_file.read_text() == "GET /after\n"


def test_unopenable_log_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^error_logfile '.*nodir/e\.log': cannot open"):
        configure_logging(config(error_logfile=str(tmp_path / "nodir" / "e.log")))
    with pytest.raises(ConfigError, match=r"^access_logfile '.*nodir/a\.log': cannot open"):
        configure_logging(config(access_logfile=str(tmp_path / "nodir" / "a.log")))


# -- log_config -------------------------------------------------------------------------------------------


def dict_config(log_file: Path) -> dict[str, Any]:
    return {
        "version": 1,
        "formatters": {"plain": {"format": "%(name)s %(levelname)s %(message)s"}},
        "handlers": {
            "file": {"class": "logging.FileHandler", "filename": str(log_file), "formatter": "plain"},
        },
        "loggers": {"custom": {"handlers": ["file"], "level": "DEBUG", "propagate": False}},
        "root": {"handlers": ["file"], "level": "INFO"},
    }


def check_routed(log_file: Path) -> None:
    logging.getLogger(ERROR_LOGGER).warning("from error log")
    logging.getLogger(ACCESS_LOGGER).info("from access log")
    logging.getLogger("custom").debug("from custom")
    for handler in logging.getLogger().handlers:
        handler.flush()
    text = log_file.read_text()
    assert "monoceros.error WARNING from error log" in text
    assert "monoceros.access INFO from access log" in text
    assert "custom DEBUG from custom" in text


def test_log_config_json(tmp_path: Path) -> None:
    path = tmp_path / "logging.json"
    path.write_text(json.dumps(dict_config(tmp_path / "out.log")))
    configure_logging(config(log_config=str(path)))
    check_routed(tmp_path / "out.log")
    assert AccessLogger(config(log_config=str(path))).enabled


def test_log_config_toml(tmp_path: Path) -> None:
    out = tmp_path / "out.log"
    path = tmp_path / "logging.toml"
    path.write_text(
        f"""
version = 1

[formatters.plain]
format = "%(name)s %(levelname)s %(message)s"

[handlers.file]
class = "logging.FileHandler"
filename = {json.dumps(str(out))}
formatter = "plain"

[loggers.custom]
handlers = ["file"]
level = "DEBUG"
propagate = false

[root]
handlers = ["file"]
level = "INFO"
"""
    )
    configure_logging(config(log_config=str(path)))
    check_routed(out)


@pytest.mark.parametrize("suffix", [".ini", ".conf"])
def test_log_config_ini(tmp_path: Path, suffix: str) -> None:
    out = tmp_path / "out.log"
    path = tmp_path / f"logging{suffix}"
    path.write_text(
        f"""
[loggers]
keys = root,custom

[handlers]
keys = file

[formatters]
keys = plain

[logger_root]
level = INFO
handlers = file

[logger_custom]
level = DEBUG
handlers = file
qualname = custom
propagate = 0

[handler_file]
class = FileHandler
formatter = plain
args = ({str(out)!r},)

[formatter_plain]
format = %(name)s %(levelname)s %(message)s
"""
    )
    configure_logging(config(log_config=str(path)))
    check_routed(out)


def test_log_config_can_silence_the_access_log(tmp_path: Path) -> None:
    path = tmp_path / "logging.json"
    path.write_text(json.dumps({"version": 1, "loggers": {ACCESS_LOGGER: {"level": "WARNING"}}}))
    configure_logging(config(log_config=str(path)))
    assert not AccessLogger(config(log_config=str(path))).enabled


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("bad.json", "{not json", "not valid JSON"),
        ("bad.toml", "version = = 1", "not valid TOML"),
        ("list.json", "[1, 2]", "expected a dictConfig mapping"),
        ("v2.json", '{"version": 2}', "dictConfig rejected it"),
        ("nohandler.json", '{"version": 1, "root": {"handlers": ["nope"]}}', "dictConfig rejected it"),
        ("bad.ini", "[loggers]\nkeys = root\n", "not a usable logging fileConfig file"),
        ("logging.xml", "<version>1</version>", "expected a .json, .toml, .yaml, .ini or .conf file"),
        ("bad.yaml", "version: [1", "not valid YAML"),
    ],
)
def test_bad_log_config(tmp_path: Path, name: str, content: str, reason: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(ConfigError) as info:
        configure_logging(config(log_config=str(path)))
    assert str(info.value).startswith(f"log_config {str(path)!r}: ")
    assert reason in str(info.value)


@pytest.mark.parametrize("name", ["missing.json", "missing.toml", "missing.ini"])
def test_missing_log_config(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    with pytest.raises(ConfigError, match=rf"^log_config '.*{name}': (file not found|cannot read)"):
        configure_logging(config(log_config=str(path)))


# -- the access log: atoms --------------------------------------------------------------------------------


def format_line(fmt: str, **overrides: Any) -> str:
    capture = Capture()
    lg = logging.getLogger(ACCESS_LOGGER)
    lg.handlers = [capture]
    lg.setLevel(logging.INFO)
    lg.propagate = False
    log_one(AccessLogger(config(access_logformat=fmt)), **overrides)
    assert len(capture.lines) == 1
    return capture.lines[0]


@pytest.mark.parametrize(
    ("atom", "expected"),
    [
        ("h", "198.51.100.7"),
        ("l", "-"),
        ("u", "alice"),
        ("t", "[21/Nov/2026:08:00:00 +0000]"),
        ("r", "GET /path/x?a=1&b=2 HTTP/1.1"),
        ("m", "GET"),
        ("U", "/path/x"),
        ("q", "a=1&b=2"),
        ("H", "HTTP/1.1"),
        ("s", "200"),
        ("B", "1234"),
        ("b", "1234"),
        ("f", "https://example.com/from"),
        ("a", "curl/8.5"),
        ("T", "2"),
        ("M", "2500"),
        ("D", "2500000"),
        ("L", "2.500000"),
        ("p", "<PID>"),  # filled in below: an id with the pid would differ between xdist workers
        ("{user-agent}i", "curl/8.5"),
        ("{HOST}i", "example.com"),
        ("{x-multi}i", "one, two"),
        ("{missing}i", "-"),
        ("{x-request-id}o", "abc123"),
        ("{Content-Type}o", "text/plain"),
        ("{missing}o", "-"),
    ],
)
def test_atom(utc: None, atom: str, expected: str) -> None:
    assert format_line(f"%({atom})s") == expected.replace("PID", str(os.getpid()))


@pytest.mark.parametrize(
    ("atom", "overrides", "expected"),
    [
        ("h", {"client": None}, "-"),
        ("u", {"request_headers": []}, "-"),
        ("u", {"request_headers": [(b"authorization", b"Bearer xyz")]}, "-"),
        ("u", {"request_headers": [(b"authorization", b"Basic !!!")]}, "-"),
        ("u", {"request_headers": [(b"authorization", b"basic " + base64.b64encode(b"bob"))]}, "bob"),
        ("U", {"target": "/plain"}, "/plain"),
        ("q", {"target": "/plain"}, ""),
        ("b", {"response_bytes": 0}, "-"),
        ("B", {"response_bytes": 0}, "0"),
        ("f", {"request_headers": []}, "-"),
        ("a", {"request_headers": []}, "-"),
        ("H", {"http_version": "1.0"}, "HTTP/1.0"),
        ("H", {"http_version": "HTTP/1.0"}, "HTTP/1.0"),
        ("r", {"method": "POST", "http_version": "1.0"}, "POST /path/x?a=1&b=2 HTTP/1.0"),
        ("T", {"duration_s": 0.0004}, "0"),
        ("D", {"duration_s": 0.0004}, "400"),
        ("L", {"duration_s": 0.0004}, "0.000400"),
        ("s", {"status": 404}, "404"),
    ],
)
def test_atom_edge_cases(atom: str, overrides: dict[str, Any], expected: str) -> None:
    assert format_line(f"%({atom})s", **overrides) == expected


def test_time_in_local_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "IST-5:30")
    time.tzset()
    access_format._clf_cache = (-1, "")
    try:
        assert format_line("%(t)s", request_time=NOON + 7.9) == "[21/Nov/2026:13:30:07 +0530]"
    finally:
        monkeypatch.undo()
        time.tzset()


def test_default_format(utc: None) -> None:
    line = format_line(Config().access_logformat)
    assert line == (
        '198.51.100.7 - - [21/Nov/2026:08:00:00 +0000] "GET /path/x?a=1&b=2 HTTP/1.1" 200 1234 '
        '"https://example.com/from" "curl/8.5" 2500000us'
    )


def test_numeric_conversions_and_literal_percent() -> None:
    assert format_line("%(s)d %(D)d %(B)05d 100%%") == "200 2500000 01234 100%"


def test_values_that_could_forge_a_line_are_escaped() -> None:
    headers = [(b"user-agent", b'evil" 200 "x\x1b[31m'), (b"referer", b"a\\b")]
    line = format_line('"%(a)s" "%(f)s" "%(U)s"', request_headers=headers, target='/a"b')
    assert line == '"evil\\x22 200 \\x22x\\x1b[31m" "a\\x5cb" "/a\\x22b"'


@pytest.mark.parametrize("fmt", ["%(x)s", "%(h)s %(zz)s", "%({name}e)s", "%({}i)s", "%()s"])
def test_unknown_atom(fmt: str) -> None:
    with pytest.raises(ConfigError, match=r"^access_logformat .*unknown atom"):
        AccessLogger(config(access_logformat=fmt))


@pytest.mark.parametrize("fmt", ["100%", "%s", "%(h)", "%(h)d"])
def test_malformed_format(fmt: str) -> None:
    with pytest.raises(ConfigError, match=r"^access_logformat "):
        AccessLogger(config(access_logformat=fmt))


def test_only_used_atoms_are_computed(access_lines: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    called: list[str] = []

    def spy(name: str) -> Any:
        def atom(r: Any) -> str:
            called.append(name)
            return name

        return atom

    monkeypatch.setattr(access_format, "_ATOMS", {k: spy(k) for k in access_format._ATOMS})
    logger = AccessLogger(config(access_logformat="%(h)s %(s)s %(h)s"))
    called.clear()  # the constructor tried the format once
    log_one(logger)
    assert sorted(called) == ["h", "s"]
    assert access_lines == ["h s h"]


def test_disabled(access_lines: list[str]) -> None:
    logger = AccessLogger(config(access_log=False))
    assert not logger.enabled
    log_one(logger)
    assert access_lines == []


def test_disabled_when_access_logger_is_above_info(access_lines: list[str]) -> None:
    logging.getLogger(ACCESS_LOGGER).setLevel(logging.WARNING)
    assert not AccessLogger(Config()).enabled


# -- the access log: JSON ---------------------------------------------------------------------------------


def test_json(access_lines: list[str]) -> None:
    logger = AccessLogger(config(access_log_json=True))
    log_one(logger, duration_s=0.0123456)
    record = json.loads(access_lines[0])
    assert record == {
        "time": "2026-11-21T08:00:00.000+00:00",
        "client": "198.51.100.7",
        "method": "GET",
        "path": "/path/x",
        "query": "a=1&b=2",
        "http_version": "1.1",
        "status": 200,
        "bytes": 1234,
        "duration_ms": 12.346,
        "referer": "https://example.com/from",
        "user_agent": "curl/8.5",
    }


def test_json_missing_values_and_awkward_characters(access_lines: list[str]) -> None:
    logger = AccessLogger(config(access_log_json=True))
    log_one(
        logger,
        client=None,
        target="/only",
        request_headers=[(b"user-agent", b'say "hi"\n\xff')],
        http_version="HTTP/1.0",
    )
    assert "\n" not in access_lines[0]
    record = json.loads(access_lines[0])
    assert record["client"] is None
    assert record["query"] == ""
    assert record["referer"] is None
    assert record["user_agent"] == 'say "hi"\n\xff'
    assert record["http_version"] == "1.0"


# -- the access log: lines of one loop turn written together ------------------------------------------------


@pytest.fixture
def access_file(tmp_path: Path) -> Path:
    """The access log's file, as configure_logging sets it up in a worker."""
    path = tmp_path / "access.log"
    configure_logging(config(access_logfile=str(path)))
    return path


def in_loop(body: Any) -> None:
    """Run ``body()`` (a coroutine function) on a fresh event loop, as a worker runs its requests.

    pytest (9.2 and later) attaches its log capture to every logger that does not propagate, which would
    send each line through ``logging`` (as any added handler does, see below). A worker's access logger has
    only its own handler, so the capture is taken off the access logger for the body."""
    access = logging.getLogger(ACCESS_LOGGER)
    saved = access.handlers[:]
    access.handlers = [h for h in saved if not type(h).__module__.startswith("_pytest")]
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(body())
    finally:
        loop.close()
        access.handlers = saved


def test_lines_of_one_loop_turn_are_written_together(access_file: Path) -> None:

    async def body() -> None:
        logger = AccessLogger(config(access_logformat="%(U)s %(s)s"))
        for n in range(3):
            log_one(logger, target=f"/{n}")
        assert access_file.read_text() == ""  # held until the loop comes round
        await asyncio.sleep(0)
        assert access_file.read_text() == "/0 200\n/1 200\n/2 200\n"
        log_one(logger, target="/late", status=404)
        await asyncio.sleep(0)
        assert access_file.read_text().endswith("/2 200\n/late 404\n")

    in_loop(body)


def test_a_full_batch_is_written_at_once(access_file: Path) -> None:

    async def body() -> None:
        logger = AccessLogger(config(access_logformat="%(U)s"))
        for n in range(access_log._BATCH_MAX + 1):
            log_one(logger, target=f"/{n}")
        assert access_file.read_text().splitlines() == [f"/{n}" for n in range(access_log._BATCH_MAX)]
        await asyncio.sleep(0)
        assert len(access_file.read_text().splitlines()) == access_log._BATCH_MAX + 1

    in_loop(body)


def test_flush_writes_what_is_held(access_file: Path) -> None:
    """The worker flushes as it stops: a loop that ends before coming round loses no line."""

    async def body() -> None:
        logger = AccessLogger(config(access_logformat="%(U)s"))
        log_one(logger, target="/last")
        logger.flush()
        assert access_file.read_text() == "/last\n"

    in_loop(body)


def test_held_lines_follow_a_reopen(access_file: Path, tmp_path: Path) -> None:
    """logrotate moves the file and sends SIGUSR1 between a request's end and the loop coming round."""

    async def body() -> None:
        logger = AccessLogger(config(access_logformat="%(U)s"))
        log_one(logger, target="/before")
        logger.flush()
        log_one(logger, target="/held")
        access_file.rename(tmp_path / "access.log.1")
        reopen_log_files()
        await asyncio.sleep(0)
        assert (tmp_path / "access.log.1").read_text() == "/before\n"
        assert access_file.read_text() == "/held\n"

    in_loop(body)


def test_a_handler_added_at_run_time_gets_every_line(access_file: Path) -> None:
    """An app that attaches its own handler (to ship the access log somewhere) sees the lines already held
    and all that follow, and so does the file."""

    async def body() -> None:
        logger = AccessLogger(config(access_logformat="%(U)s"))
        log_one(logger, target="/held")
        capture = Capture()
        logging.getLogger(ACCESS_LOGGER).addHandler(capture)
        log_one(logger, target="/routed")
        assert capture.lines == ["/held", "/routed"]  # through logging, at once, the held line first
        await asyncio.sleep(0)
        assert capture.lines == ["/held", "/routed"]
        assert access_file.read_text() == "/held\n/routed\n"

    in_loop(body)


def test_a_level_raised_at_run_time_silences_the_lines(access_file: Path) -> None:

    async def body() -> None:
        logger = AccessLogger(config(access_logformat="%(U)s"))
        logging.getLogger(ACCESS_LOGGER).setLevel(logging.WARNING)
        log_one(logger, target="/quiet")
        await asyncio.sleep(0)
        logger.flush()
        assert access_file.read_text() == ""

    in_loop(body)


def test_off_the_loop_lines_are_written_at_once(access_file: Path) -> None:
    logger = AccessLogger(config(access_logformat="%(U)s"))  # made with no loop running
    log_one(logger, target="/now")
    assert access_file.read_text() == "/now\n"

    async def body() -> None:  # and another thread's loop (here: a loop it was not made in) does not batch
        log_one(logger, target="/other-loop")
        assert access_file.read_text() == "/now\n/other-loop\n"

    in_loop(body)


def test_a_line_from_another_thread_goes_through_logging(access_file: Path) -> None:
    async def body() -> None:
        logger = AccessLogger(config(access_logformat="%(U)s"))
        log_one(logger, target="/held")
        thread = threading.Thread(target=log_one, args=(logger,), kwargs={"target": "/thread"})
        thread.start()
        thread.join()
        assert access_file.read_text() == "/thread\n"  # at once, under the handler's lock
        await asyncio.sleep(0)
        assert access_file.read_text() == "/thread\n/held\n"

    in_loop(body)


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_a_failing_stream_is_reported_not_raised(access_file: Path, capsys: pytest.CaptureFixture[str]) -> None:

    async def body() -> None:
        logger = AccessLogger(config(access_logformat="%(U)s"))
        log_one(logger, target="/lost")
        handler = logs._access_handler
        assert handler is not None
        kept = handler.stream
        full = open("/dev/full", "w")  # noqa: SIM115 (closed below). Every write fails with ENOSPC, as on a full disk
        handler.stream = full
        await asyncio.sleep(0)  # flush runs as a loop callback: it must not raise into the loop
        handler.stream = kept
        with contextlib.suppress(OSError):  # what it still buffers fails once more
            full.close()
        log_one(logger, target="/after")
        await asyncio.sleep(0)
        assert access_file.read_text() == "/after\n"

    in_loop(body)
    err = capsys.readouterr().err
    assert "No space left on device" in err and "/lost" in err  # logging's handleError says what was lost


def reference_json_line(**fields: Any) -> str:
    """What the JSON access log wrote with json.dumps, which the template must match byte for byte."""
    target = fields["target"]
    path, _, query = target.partition("?")
    headers = dict((n.lower(), v.decode("latin-1")) for n, v in fields["request_headers"])
    record = {
        "time": datetime.datetime.fromtimestamp(fields["request_time"], datetime.timezone.utc).isoformat(
            timespec="milliseconds"
        ),
        "client": fields["client"][0] if fields["client"] is not None else None,
        "method": fields["method"],
        "path": path,
        "query": query,
        "http_version": fields["http_version"],
        "status": fields["status"],
        "bytes": fields["response_bytes"],
        "duration_ms": round(fields["duration_s"] * 1000, 3),
        "referer": headers.get(b"referer"),
        "user_agent": headers.get(b"user-agent"),
    }
    return json.dumps(record, separators=(",", ":"))


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"client": None, "target": "/", "request_headers": []},
        {"target": '/caf\xe9/"q"?x=\u2028&y=\x00', "method": "PURGE", "duration_s": 1e-9},
        {"request_headers": [(b"User-Agent", b'a"b\\c\x7f\xff'), (b"referer", b"\t")], "duration_s": 12345.6789},
        {"status": 599, "response_bytes": 0, "http_version": "1.0", "request_time": 0.0005},
        {"request_time": 1795248000.9999996, "duration_s": 0.0},
    ],
)
def test_json_line_is_what_json_dumps_writes(access_lines: list[str], fields: dict[str, Any]) -> None:
    request = {**SAMPLE, "request_time": NOON + 0.123456, **fields}
    logger = AccessLogger(config(access_log_json=True))
    logger.log(**request)
    assert access_lines == [reference_json_line(**request)]


def test_iso_time_rounds_as_datetime_does() -> None:
    rng = random.Random(1)
    moments = [NOON + rng.random() * 86400 for _ in range(2000)]
    moments += [NOON + k / 1000 + d for k in range(0, 1000, 7) for d in (-5e-7, 0.0, 4.9e-7, 5e-7)]
    moments += [NOON + 0.9999995, NOON + 0.9999994, 0.0, 1e-7, 86399.9999996]
    for when in moments:
        expected = datetime.datetime.fromtimestamp(when, datetime.timezone.utc).isoformat(timespec="milliseconds")
        assert access_format._iso_time(when) == expected, when
