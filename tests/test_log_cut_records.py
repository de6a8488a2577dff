"""A record left cut short at the end of a log file stays alone on its line, whoever writes next.

A run that ends on a full disk or at ``ulimit -f`` leaves its last record
without a newline. The next run, the file a rotation reopens, and an
upgrade's successor taking the file over all start on a fresh line instead of
gluing their first record onto that fragment: for ``log_file`` and for a
``stderr`` file that holds the records. Real daemons, real files.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aiodaemon._prefork._logsinks import open_file_sink

from .support import aiodaemon_cli, install_program, start_installed, wait_for, wait_gone
from .test_logging_faults import fill, tiny_disk

__all__ = ["tiny_disk"]  # the fixture, used by name below

#: What a run cut short leaves: the start of a record, no newline.
FRAGMENT = (
    b'{"timestamp":"2026-11-24T03:14:42.831685Z","level":"info","event":"long",'
    b'"logger":"app","pid":1,"n":7,"pad":"xxxx'
)
#: The two files the records may go to (``--stderr`` alone: the records go there).
OPTIONS = ["--log-file", "--stderr"]


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Path]:
    """``tests/programs/log_long_record.py`` as app.py; stopped at the end if still running."""
    install_program("log_long_record", tmp_path)
    yield tmp_path
    aiodaemon_cli("stop", "--pidfile", tmp_path / "app.pid", "--timeout", "10", cwd=tmp_path)


def reload(app: Path) -> None:
    """``aiodaemon reload``: the files reopened, then one ``long`` record logged."""
    result = aiodaemon_cli("reload", "--pidfile", app / "app.pid", cwd=app)
    assert result.returncode == 0, result.stderr


def stop(app: Path, pid: int) -> None:
    """``aiodaemon stop``, and wait until the daemon is gone."""
    result = aiodaemon_cli("stop", "--pidfile", app / "app.pid", "--timeout", "20", cwd=app)
    assert result.returncode == 0, result.stderr
    wait_gone(pid, 30)


def split(path: Path) -> tuple[list[dict[str, Any]], list[bytes]]:
    """The whole records of ``path``, and its lines that are not one (a last one unfinished too)."""
    lines = path.read_bytes().split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    parsed, broken = [], []
    for line in lines:
        try:
            parsed.append(json.loads(line))
        except ValueError:
            broken.append(line)
    return parsed, broken


def long_records(path: Path) -> int:
    """How many whole ``long`` records ``path`` holds."""
    return sum(r["event"] == "long" for r in split(path)[0]) if path.exists() else 0


@pytest.mark.parametrize("option", OPTIONS)
def test_the_next_run_starts_on_a_fresh_line(app: Path, option: str) -> None:
    """A file the last run left inside a record: this run's first record has a line of its own."""
    path = app / "app.jsonl"
    path.write_bytes(FRAGMENT)
    pid = start_installed(app, option, path)
    reload(app)
    wait_for(lambda: path.read_bytes().endswith(b"\n") and long_records(path), 30, "the record")
    stop(app, pid)
    assert path.read_bytes().startswith(FRAGMENT + b"\n")
    assert path.read_bytes().endswith(b"\n")
    records, broken = split(path)
    assert broken == [FRAGMENT]
    events = [r["event"] for r in records]
    assert events[0] == "starting"
    assert "long" in events
    assert events[-1] == "exit"


@pytest.mark.parametrize("option", OPTIONS)
def test_a_file_reopened_inside_a_record_gets_the_next_one_on_a_fresh_line(
    app: Path, option: str
) -> None:
    """The file a reload reopens after a rotation ends inside a record: the next starts a line."""
    path = app / "app.jsonl"
    pid = start_installed(app, option, path)
    os.rename(path, app / "app.jsonl.1")
    # Put back, say, by an operator: a file some earlier run left cut short.
    path.write_bytes(FRAGMENT)
    reload(app)
    wait_for(lambda: long_records(path), 30, "the reload's record in the new file")
    stop(app, pid)
    assert path.read_bytes().startswith(FRAGMENT + b"\n")
    assert path.read_bytes().endswith(b"\n")
    records, broken = split(path)
    assert broken == [FRAGMENT]
    assert [r["n"] for r in records if r["event"] == "long"] == [1]
    assert split(app / "app.jsonl.1")[1] == []


@pytest.mark.root
@pytest.mark.parametrize("option", OPTIONS)
def test_an_upgrade_taking_over_a_file_a_full_disk_cut_starts_on_a_fresh_line(
    app: Path, tiny_disk: Path, option: str
) -> None:
    """The successor takes over a file a full disk left inside a record: no record glued to it."""
    path = tiny_disk / "app.jsonl"
    pid = start_installed(app, option, path)
    wait_for(lambda: b'"event":"ready"' in path.read_bytes(), 30, "the ready record")
    if path.stat().st_size % 4096 == 0:
        # The file's last page must have room for part of a record.
        reload(app)
        wait_for(lambda: path.stat().st_size % 4096, 30, "a record")
    fill(tiny_disk / "filler")
    reload(app)
    wait_for(lambda: not path.read_bytes().endswith(b"\n"), 30, "a record cut short")
    upgraded = aiodaemon_cli("upgrade", "--pidfile", app / "app.pid", "--timeout", "60", cwd=app)
    assert upgraded.returncode == 0, upgraded.stderr
    successor = int(upgraded.stdout)
    wait_gone(pid, 30)
    (tiny_disk / "filler").unlink()
    reload(app)  # the successor's first record since the disk was full
    wait_for(
        lambda: any(r["pid"] == successor for r in split(path)[0] if r["event"] == "long"),
        30,
        "the successor's record",
    )
    stop(app, successor)
    assert path.read_bytes().endswith(b"\n")
    records, broken = split(path)
    # The record cut short, alone on its line: the start of one record, nothing glued after it.
    [cut] = broken
    assert cut.startswith(b'{"timestamp":')
    assert cut.count(b'{"timestamp":') == 1, cut[-300:]
    assert records[-1]["event"] == "exit"
    assert records[-1]["pid"] == successor


def test_two_writers_of_a_file_left_inside_a_record_end_its_line_once(tmp_path: Path) -> None:
    """Both writers of a file (an upgrade's two daemons) start on a fresh line: no empty line."""
    path = tmp_path / "app.jsonl"
    path.write_bytes(FRAGMENT)
    # Each opened the file while it ended inside the record.
    old, new = open_file_sink(str(path)), open_file_sink(str(path))
    try:
        new.write([(logging.INFO, b'{"event":"new"}\n')])
        old.write([(logging.INFO, b'{"event":"old"}\n')])
    finally:
        old.close()
        new.close()
    assert path.read_bytes() == FRAGMENT + b'\n{"event":"new"}\n{"event":"old"}\n'
