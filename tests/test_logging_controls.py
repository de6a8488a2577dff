"""Console lines escape the control characters a program logs, as Python's http.server does.

An event often carries what a client sent: written raw, an escape sequence
rewrites the reader's terminal (title, colours, a cleared screen), a carriage
return hides the line and a newline forges one.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from .support import PYTHON, program, python, run_on_terminal

#: What a person may see besides text: the line breaks of the records and the traceback.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def test_a_console_log_file_shows_each_control_character_escaped(tmp_path: Path) -> None:
    """Event, key, value, exception message: ``\\x1b``, ``\\r``, ``\\n`` written as text."""
    log = tmp_path / "d.log"
    options = {"detach": False, "log_file": str(log), "log_format": "console"}
    ran = python([program("log_controls"), json.dumps(options)])
    assert ran.returncode == 0, ran.stderr
    text = log.read_text()
    assert not _CONTROL.search(text), repr(text)
    (line,) = [line for line in text.splitlines() if "GET" in line]
    shown = r"/\x1b]0;owned\x07\x1b[2J\rfake\nline"
    assert f"GET {shown}" in line
    assert r"x\x1b[31m='red\x1b[0m'" in line
    assert f"path='{shown}'" in line
    (odd,) = [line for line in text.splitlines() if "odd key" in line]
    assert "404='not found'" in odd
    # A traceback keeps its line breaks, the message's too, as Python prints it.
    assert r"ValueError: no route /\x1b]0;owned\x07\x1b[2J\rfake" in text.splitlines()


def test_a_foreground_daemon_echoes_a_warning_on_its_terminal_escaped(tmp_path: Path) -> None:
    """``run --log-file F`` on a terminal: the echoed record writes no control character."""
    options = {"detach": False, "log_file": str(tmp_path / "d.jsonl")}
    output, status = run_on_terminal(
        [PYTHON, program("log_controls"), json.dumps(options)], env={"NO_COLOR": "1"}
    )
    assert status == 0, output
    shown = output.replace("\r\n", "\n")
    assert not _CONTROL.search(shown), repr(output)
    assert r"GET /\x1b]0;owned\x07\x1b[2J\rfake\nline" in shown


def test_a_console_log_shows_the_stuck_tasks_await_chains(tmp_path: Path) -> None:
    """A shutdown past its budget reports each stuck task's await chain, one frame a line."""
    log = tmp_path / "d.log"
    options = {
        "detach": False,
        "log_file": str(log),
        "log_format": "console",
        "shutdown_timeout": 0.5,
    }
    ran = python([program("console_stuck_shutdown"), json.dumps(options)])
    assert ran.returncode == 4, ran.stderr
    lines = log.read_text().splitlines()
    assert not [line for line in lines if "internal error" in line], lines
    stuck = [i for i, line in enumerate(lines) if "task stuck at shutdown" in line]
    assert stuck, lines
    # The hook's own frame, on a line of its own below one of the records.
    assert any(
        "console_stuck_shutdown.py" in line and "in close_pool" in line
        for line in lines[stuck[0] :]
    ), lines
