"""A thread's uncaught exception, and one Python ignores (in a ``__del__``), reach the log.

Before, Python's default hooks wrote them on stderr only: ``/dev/null`` for a
detached daemon, so the error was lost.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from .support import program, python, read_json_lines, wait_for


def start(tmp_path: Path, case: str) -> tuple[subprocess.CompletedProcess[str], Path, Path]:
    """Start ``thread_fail`` detached; the launcher's result, the log and the record file."""
    log, record, pidfile = tmp_path / "log.jsonl", tmp_path / "record.txt", tmp_path / "d.pid"
    record.touch()
    options = {"detach": True, "pidfile": str(pidfile), "log_file": str(log)}
    launcher = python([str(program("thread_fail")), json.dumps(options), str(record), case])
    assert launcher.returncode == 0, launcher.stderr
    wait_for(lambda: [r["event"] for r in read_json_lines(log)][-1:] == ["exit"], what="exit")
    # Removed after the exit record is written: waited for, on a loaded machine.
    wait_for(lambda: not pidfile.exists(), what="the pidfile removed at exit")
    return launcher, log, record


def test_a_detached_daemons_thread_exception_is_logged(tmp_path: Path) -> None:
    """ValueError in a thread: an error record with the thread's name and traceback; exit 0."""
    _, log, record = start(tmp_path, "plain")
    assert record.read_text() == "threads ended\n"
    records = read_json_lines(log)
    (failed,) = [r for r in records if r["event"] == "unhandled exception in thread"]
    assert failed["level"] == "error"
    assert failed["thread"] == "failing"
    assert "the thread's error" in json.dumps(failed["exception"])
    (ignored,) = [r for r in records if r["event"] == "exception ignored"]
    assert ignored["level"] == "error"
    assert str(ignored["object"]).startswith("<function Leaky.__del__ at ")
    assert "the finaliser's error" in json.dumps(ignored["exception"])
    assert records[-1]["status"] == 0


def test_the_programs_own_hooks_are_kept(tmp_path: Path) -> None:
    """A program that set threading.excepthook or sys.unraisablehook keeps them: no record."""
    _, log, record = start(tmp_path, "own-hook")
    assert record.read_text().splitlines() == [
        "own hook ValueError",
        "own hook SystemExit",
        "own unraisable hook RuntimeError",
        "threads ended",
    ]
    events = [r["event"] for r in read_json_lines(log)]
    assert "unhandled exception in thread" not in events
    assert "exception ignored" not in events
