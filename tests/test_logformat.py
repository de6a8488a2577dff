"""What a log line looks like: key order, timestamps, colours, the ``starting`` record."""

from __future__ import annotations

import grp
import json
import os
import re
import signal
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from aiodaemon._logs._logchain import utc_timestamp
from tests.support import (
    PYTHON,
    REPO,
    clean_env,
    python,
    read_json_lines,
    run_on_terminal,
    wait_for,
)

PROGRAMS = REPO / "tests" / "programs"
STAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")
ESCAPE = "\x1b["


def test_every_json_line_starts_with_timestamp_level_event_logger(tmp_path: Path) -> None:
    """structlog, stdlib and exception lines all begin timestamp, level, event, logger, pid."""
    log = tmp_path / "app.jsonl"
    result = python([PROGRAMS / "log_sample.py", json.dumps({"log_file": str(log)})])
    assert result.returncode == 0, result.stderr
    records = read_json_lines(log)
    assert [r["event"] for r in records] == ["from structlog", "from stdlib", "failure", "careful"]
    for record in records:
        assert list(record)[:5] == ["timestamp", "level", "event", "logger", "pid"], record
        assert STAMP.fullmatch(str(record["timestamp"])), record["timestamp"]
    assert records[0]["request_id"] == "r-1"
    assert records[1]["user"] == "ann"
    assert records[3]["level"] == "warning"
    assert records[3]["level_of_care"] == "high"
    first_line = log.read_text().splitlines()[0]
    assert first_line.startswith('{"timestamp":"')


def test_a_whole_second_keeps_six_fractional_digits() -> None:
    """A record stamped on an exact second reads ...:20.000000Z, never ...:20Z."""
    assert utc_timestamp(1_700_000_000 * 10**9) == "2023-11-14T22:13:20.000000Z"
    assert utc_timestamp(1_700_000_000 * 10**9 + 1_000) == "2023-11-14T22:13:20.000001Z"


def _terminal_output(env: dict[str, str], options: str = "{}") -> str:
    """What the sample program shows on a terminal (a pty as its stderr)."""
    output, status = run_on_terminal([PYTHON, PROGRAMS / "log_sample.py", options], env)
    assert status == 0
    return output


def test_console_lines_on_a_terminal_are_coloured() -> None:
    """Without NO_COLOR, console lines on a terminal carry colour codes."""
    text = _terminal_output({"TERM": "xterm", "NO_COLOR": "", "FORCE_COLOR": ""})
    assert "from structlog" in text
    assert ESCAPE in text


def test_no_color_turns_colours_off() -> None:
    """NO_COLOR=1 (no-color.org): the same terminal gets plain console lines."""
    text = _terminal_output({"TERM": "xterm", "NO_COLOR": "1", "FORCE_COLOR": ""})
    assert "from structlog" in text
    assert ESCAPE not in text


def test_force_color_colours_a_pipe() -> None:
    """FORCE_COLOR=1 colours console lines on stderr that is not a terminal."""
    options = json.dumps({"log_format": "console"})
    plain = python([PROGRAMS / "log_sample.py", options], env={"NO_COLOR": "", "FORCE_COLOR": ""})
    forced = python([PROGRAMS / "log_sample.py", options], env={"NO_COLOR": "", "FORCE_COLOR": "1"})
    assert plain.returncode == forced.returncode == 0, forced.stderr
    assert "from structlog" in plain.stderr
    assert ESCAPE not in plain.stderr
    assert ESCAPE in forced.stderr


def test_colours_never_go_into_a_log_file(tmp_path: Path) -> None:
    """Even with FORCE_COLOR, a console-format log file holds no colour codes."""
    log = tmp_path / "app.log"
    options = json.dumps({"log_format": "console", "log_file": str(log)})
    result = python([PROGRAMS / "log_sample.py", options], env={"FORCE_COLOR": "1"})
    assert result.returncode == 0, result.stderr
    assert "from structlog" in log.read_text()
    assert ESCAPE not in log.read_text()


@pytest.mark.parametrize(
    "group",
    [None, grp.getgrgid(os.getgid()).gr_name],
    ids=["user-only", "group-by-name"],
)
def test_the_starting_record_is_short_and_names_only_documented_options(
    tmp_path: Path, group: str | None
) -> None:
    """The first line lists the options given (public names, no internals), briefly.

    ``user=`` alone shows no ``group`` (the primary group it resolves to was not
    written); a ``group=`` shows as written.
    """
    log = tmp_path / "d.jsonl"
    pidfile = tmp_path / "d.pid"
    options: dict[str, object] = {
        "detach": False,
        "pidfile": str(pidfile),
        "log_file": str(log),
        "listen": {"http": "127.0.0.1:0"},
        "umask": 0o022,
        "shutdown_timeout": 5,
        "user": os.getuid(),
    }
    if group is not None:
        options["group"] = group
    proc = subprocess.Popen(
        [PYTHON, str(PROGRAMS / "idle.py"), json.dumps(options)],
        env=clean_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # Ready, not only started: a SIGTERM before ready ends the start with status 1.
        wait_for(lambda: log.exists() and '"event":"ready"' in log.read_text(), what="ready")
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    line = log.read_text().splitlines()[0]
    starting = json.loads(line)
    assert starting["event"] == "starting"
    assert starting["options"] == {
        "pidfile": str(pidfile),
        "detach": False,
        "log_file": str(log),
        "shutdown_timeout": 5.0,
        "user": starting["options"]["user"],
        **({} if group is None else {"group": group}),
    }
    assert starting["options"]["user"] in (os.getuid(), os.environ.get("USER"), "root")
    assert "identity" not in line
    assert set(starting["sockets"]) == {"http"}
    # What is left besides the two paths the test chose: well under 600 characters.
    assert len(line) - 2 * len(str(tmp_path)) < 350, line


def test_foreground_with_a_log_file_shows_warnings_and_errors_on_the_terminal(
    tmp_path: Path,
) -> None:
    """With log_file in the foreground, a terminal still sees warnings and errors (not info)."""
    log = tmp_path / "app.jsonl"
    text = _terminal_output({"TERM": "xterm", "NO_COLOR": "1"}, json.dumps({"log_file": str(log)}))
    assert [r["event"] for r in read_json_lines(log)] == [
        "from structlog",
        "from stdlib",
        "failure",
        "careful",
    ]
    lines = text.splitlines()
    assert "from structlog" not in text
    assert "from stdlib" in lines[0]
    assert "user=ann" in lines[0]
    assert "failure" in lines[1]
    assert "ZeroDivisionError: division by zero" in lines[2]
    assert "careful" in lines[3]
    assert len(lines) == 4, text
    assert not any(line.lstrip().startswith("{") for line in lines)
    assert ESCAPE not in text


#: Kathmandu is UTC+05:45 all year: no DST, and an offset no other zone shares.
KATHMANDU = timezone(timedelta(hours=5, minutes=45))
#: A console line's time: local, to the microsecond, with its UTC offset.
LOCAL_STAMP = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}\+05:45")
RECORD_LINE = re.compile(r"(.*?) \[(?:info|warning|error) *\] ")


def test_console_lines_and_the_echo_show_local_time_with_its_offset(tmp_path: Path) -> None:
    """On stderr, in a console-format file and echoed: one format, the JSON line's instant.

    stderr showed local time without an offset, the echo (with a log file) the
    JSON line's UTC: one operator saw times hours apart depending on --log-file.
    """
    env = {"TERM": "xterm", "NO_COLOR": "1", "TZ": "Asia/Kathmandu"}
    plain = _terminal_output(env).splitlines()
    log = tmp_path / "app.jsonl"
    echoed = _terminal_output(env, json.dumps({"log_file": str(log)})).splitlines()
    console_log = tmp_path / "app.log"
    options = json.dumps({"log_file": str(console_log), "log_format": "console"})
    result = python([PROGRAMS / "log_sample.py", options], env={"TZ": "Asia/Kathmandu"})
    assert result.returncode == 0, result.stderr
    in_file = console_log.read_text().splitlines()
    # Every record's line (a traceback's lines below it carry no time).
    for lines, records in ((plain, 4), (echoed, 3), (in_file, 4)):
        stamps = [m[1] for m in map(RECORD_LINE.match, lines) if m]
        assert len(stamps) == records, lines
        assert all(LOCAL_STAMP.fullmatch(stamp) for stamp in stamps), stamps
    # The echo says the instant the JSON line says, in the terminal's zone.
    record = next(r for r in read_json_lines(log) if r["event"] == "careful")
    instant = datetime.fromisoformat(str(record["timestamp"])).astimezone(KATHMANDU)
    careful = next(line for line in echoed if "careful" in line)
    assert careful.startswith(f"{instant.isoformat(' ', 'microseconds')} [warning  ]"), careful


def test_no_echo_when_stderr_is_not_a_terminal(tmp_path: Path) -> None:
    """Under a service manager or a pipe, log_file alone gets the records; stderr stays empty."""
    log = tmp_path / "app.jsonl"
    result = python([PROGRAMS / "log_sample.py", json.dumps({"log_file": str(log)})])
    assert result.returncode == 0
    assert result.stderr == ""
    assert len(read_json_lines(log)) == 4


def test_help_says_where_records_go() -> None:
    """``aiodaemon run --help`` explains each log destination and format combination."""
    result = python(["-m", "aiodaemon", "run", "--help"])
    assert result.returncode == 0
    help_text = " ".join(result.stdout.split())
    assert "where the log records go" in help_text
    assert "console lines with --log-format console" in help_text
    assert "warnings and errors also show on stderr when it is a terminal" in help_text


def test_the_terminal_echo_names_the_exception_logged_not_its_cause(tmp_path: Path) -> None:
    """``raise RuntimeError(...) from exc``: the echo names the RuntimeError, as Python does last.

    It showed the innermost cause (``ConnectionRefusedError: port 5432
    refused``), the first exception of the chain, not the one the program
    caught and logged.
    """
    log = tmp_path / "app.jsonl"
    program = PROGRAMS / "log_chained_error.py"
    text, status = run_on_terminal([PYTHON, program, log], {"TERM": "xterm", "NO_COLOR": "1"})
    assert status == 0
    lines = text.splitlines()
    assert "cannot serve" in lines[0]
    assert lines[1:] == ["RuntimeError: database unavailable"]
    record = next(r for r in read_json_lines(log) if r["event"] == "cannot serve")
    chain = record["exception"]
    assert isinstance(chain, list)
    assert [e["exc_type"] for e in chain] == ["RuntimeError", "ConnectionRefusedError"]
