"""A terminal that stops reading never holds the log file of a foreground daemon.

Before, the echo of warnings on the terminal wrote to fd 2 blocking: after
Ctrl-S (or a stalled ssh connection) the log writer thread waited on the
terminal, the log file got nothing more, and a stop lost every record queued
since (audit-jobctl).
"""

from __future__ import annotations

import contextlib
import json
import os
import pty
import re
import select
import signal
from pathlib import Path

from .support import (
    PYTHON,
    clean_env,
    kill_quietly,
    program,
    read_json_lines,
    run_on_terminal,
    wait_for,
)

#: tests/programs/terminal_flood.py's count of warnings.
FLOOD = 4000


def test_a_stopped_terminal_skips_echoed_lines_and_the_log_file_gets_every_record(
    tmp_path: Path,
) -> None:
    """Ctrl-S: the log file gets every record; after Ctrl-Q the terminal says what it missed."""
    log = tmp_path / "log.jsonl"
    options = {"detach": False, "log_file": str(log)}
    argv = [PYTHON, str(program("terminal_flood")), json.dumps(options), str(tmp_path / "r")]
    env = clean_env({"NO_COLOR": "1"})
    pid, controller = pty.fork()
    if pid == 0:  # the child execs at once
        os.execve(PYTHON, argv, env)
    status: list[int] = []
    shown = b""
    try:
        os.write(controller, b"\x13")  # Ctrl-S: the terminal stops showing output

        def events() -> list[object]:
            return [record["event"] for record in read_json_lines(log)] if log.exists() else []

        wait_for(lambda: "flood done" in events(), what="every record in the log file")
        assert events().count("flood") == FLOOD
        # Ctrl-Q: the terminal shows output again; once it echoes what is typed next,
        # it has taken the Ctrl-Q in (the line discipline reads input on its own time).
        os.write(controller, b"\x11ok")

        def read() -> bytes:
            with contextlib.suppress(OSError):
                if select.select([controller], [], [], 10)[0]:
                    return os.read(controller, 65536)
            return b""

        while b"ok" not in shown:
            shown += read()
        os.kill(pid, signal.SIGTERM)  # its shutdown hook logs a warning
        while not status:
            shown += read()  # up to the daemon's exit (EIO once it closed the terminal)
            done, code = os.waitpid(pid, os.WNOHANG)
            if done:
                status.append(os.waitstatus_to_exitcode(code))
    finally:
        os.close(controller)
        if not status:
            kill_quietly(pid)
            os.waitpid(pid, 0)
    assert status == [0]
    text = shown.decode()
    # Each notice counts the lines skipped since the terminal last took one.
    skipped = re.findall(r"aiodaemon: (\d+) warnings and errors not shown here", text)
    whole = len(re.findall(r"flood +n=\d+ pad=x{120}\r\n", text))
    assert skipped
    assert sum(map(int, skipped)) + whole == FLOOD
    assert "stopping" in text.rpartition("not shown here")[2]


def test_closing_the_terminal_is_no_log_sink_failure(tmp_path: Path) -> None:
    """The hang-up stops the daemon; its last warning is in the file, no "records lost" error."""
    log = tmp_path / "log.jsonl"
    options = {"detach": False, "log_file": str(log)}
    argv = [PYTHON, str(program("terminal_flood")), json.dumps(options), str(tmp_path / "r")]
    pid, controller = pty.fork()
    if pid == 0:  # the child execs at once
        os.execve(PYTHON, argv, clean_env())
    status: list[int] = []
    try:

        def events() -> list[object]:
            return [record["event"] for record in read_json_lines(log)] if log.exists() else []

        wait_for(lambda: "flood done" in events(), what="the flood in the log file")
        os.close(controller)  # the terminal goes away; the shutdown hook logs a warning
        controller = -1

        def reaped() -> bool:
            done, code = os.waitpid(pid, os.WNOHANG)
            if done:
                status.append(os.waitstatus_to_exitcode(code))
            return bool(done)

        wait_for(reaped, what="the exit after the hang-up")
    finally:
        if controller >= 0:
            os.close(controller)
        if not status:
            kill_quietly(pid)
            os.waitpid(pid, 0)
    assert status == [0]
    records = read_json_lines(log)
    assert [r["event"] for r in records][-4:] == [
        "main returned",
        "stopping",
        "shutdown finished",
        "exit",
    ]
    assert not [r for r in records if r["level"] == "error"]


def test_lines_skipped_just_before_the_exit_are_still_counted_on_the_terminal(
    tmp_path: Path,
) -> None:
    """A warning too big for the terminal, two more, the exit: each is shown or counted."""
    options = {"detach": False, "log_file": str(tmp_path / "log.jsonl")}
    argv: list[str | Path] = [PYTHON, program("terminal_big_warning"), json.dumps(options)]
    text, status = run_on_terminal(argv, env={"NO_COLOR": "1"})
    assert status == 0
    skipped = re.findall(r"aiodaemon: (\d+) warnings and errors not shown here", text)
    whole = len(re.findall(r"big +\[__main__\] blob=x{300000}\r\n", text))
    whole += len(re.findall(r"(after the big one|the last error) +\[__main__\]\r\n", text))
    assert sum(map(int, skipped)) + whole == 3, text[-500:]
    assert text.endswith("\n")
