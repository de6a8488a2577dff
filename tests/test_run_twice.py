"""A second ``run()`` in one process runs as the first: its own log file, its own pidfile.

Before, structlog's loggers (aiodaemon's and the program's module-level ones)
kept what they built in the first run: the second run's records went to the
first run's closed writer, which put them on stderr, not in its log file. And
the first run's fork hook, closing its pidfile in forked children, closed a
later detached run's pidfile in its daemon whenever the new file got the freed
inode: "cannot write pidfile ...: Invalid argument".
"""

from __future__ import annotations

import json
from pathlib import Path

from .support import program, python, read_json_lines, wait_for


def test_each_run_writes_its_own_log_file(tmp_path: Path) -> None:
    """Two runs, two log files: each holds its own run's records, stderr nothing."""
    record, first, second = tmp_path / "record.txt", tmp_path / "1.jsonl", tmp_path / "2.jsonl"
    record.touch()
    options = {"detach": False, "pidfile": str(tmp_path / "d.pid")}
    result = python(
        [
            str(program("run_twice")),
            json.dumps(options),
            str(record),
            str(first),
            str(second),
        ]
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert record.read_text().splitlines() == ["run ended 0", "run ended 0"]
    for path, run in ((first, "first"), (second, "second")):
        records = read_json_lines(path)
        events = [r["event"] for r in records]
        assert events.count("starting") == events.count("exit") == 1, events
        (main,) = [r for r in records if r["event"] == "main ran"]
        assert main["run"] == run
    assert not (tmp_path / "d.pid").exists()


def test_a_detached_run_after_foreground_ones_keeps_its_pidfile(tmp_path: Path) -> None:
    """Five foreground runs, then a detached one: each starts, and its daemon writes its pidfile."""
    record = tmp_path / "record.txt"
    record.touch()
    # Files created and removed in turn in one directory: a freed inode is soon reused.
    pidfiles = [tmp_path / f"{i}.pid" for i in range(6)]
    result = python([str(program("run_again")), "{}", str(record), *map(str, pidfiles)], timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert record.read_text().splitlines() == [f"run {i} ended 0" for i in range(5)]
    daemon_log = pidfiles[-1].with_name("5.pid.jsonl")
    wait_for(lambda: [r["event"] for r in read_json_lines(daemon_log)][-1:] == ["exit"])
    wait_for(lambda: not pidfiles[-1].exists(), what="the daemon's pidfile removed")
    for pidfile in pidfiles:
        log = read_json_lines(pidfile.with_name(f"{pidfile.name}.jsonl"))
        assert [r["event"] for r in log][-1] == "exit"
        assert log[-1]["status"] == 0
        assert not pidfile.exists()


def test_runs_in_a_row_keep_nothing_of_the_earlier_ones(tmp_path: Path) -> None:
    """Six foreground runs leave one log writer, pidfile and loop alive: the last run's.

    Each run registered fork and exit hooks holding its own writer, so every
    finished run's writer (and what it held) stayed for the process's life.
    """
    result = python([str(program("runs_left_behind")), str(tmp_path), "6"])
    assert result.returncode == 0, result.stderr
    writers, pidfiles, loops = result.stdout.split()
    assert (writers, pidfiles, loops) == ("1", "1", "1")
