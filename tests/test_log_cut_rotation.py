"""A record cut short by a failed write stays in the old file when the log is rotated."""

from __future__ import annotations

import json
import os
import resource
import signal
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from .support import aiodaemon_cli, program, python, wait_for, wait_gone

#: Bytes of a record a cut write leaves: fewer than any record has.
CUT = 40


def events(path: Path) -> list[object]:
    """The ``event`` of every complete record of ``path`` so far, past a cut one."""
    if not path.exists():
        return []
    found = []
    for line in path.read_bytes().split(b"\n")[:-1]:
        with suppress(ValueError):
            found.append(json.loads(line)["event"])
    return found


def reload(pidfile: Path) -> None:
    """``aiodaemon reload``: answered once the reload finished, its records queued."""
    result = aiodaemon_cli("reload", "--pidfile", pidfile, "--timeout", "30")
    assert result.returncode == 0, result.stderr


@contextmanager
def cut_daemon(tmp_path: Path) -> Iterator[tuple[int, Path, int]]:
    """An idle detached daemon whose log ends in a record cut after ``CUT`` bytes.

    RLIMIT_FSIZE (set from outside with prlimit) stops the reload's write inside
    its first record, and every write after it; yields the pid, the log file and
    the size it had before the cut, with the limit still in force.
    """
    log, pidfile = tmp_path / "d.jsonl", tmp_path / "d.pid"
    options = {"detach": True, "pidfile": str(pidfile), "log_file": str(log)}
    # Modules first imported under the limit would leave cut .pyc files behind.
    started = python([program("idle"), json.dumps(options)], env={"PYTHONDONTWRITEBYTECODE": "1"})
    assert started.returncode == 0, started.stderr
    pid = int(pidfile.read_text())
    try:
        reload(pidfile)  # once its records are in, nothing else is on its way to the log
        wait_for(lambda: "reload finished" in events(log), what="the first reload logged")
        size = log.stat().st_size
        _, hard = resource.prlimit(pid, resource.RLIMIT_FSIZE)
        resource.prlimit(pid, resource.RLIMIT_FSIZE, (size + CUT, hard))
        reload(pidfile)  # "reload started" cut, "reload finished" refused
        wait_for(lambda: log.stat().st_size == size + CUT, what="a record cut short")
        yield pid, log, size
    finally:
        os.kill(pid, signal.SIGTERM)
        wait_gone(pid)


def no_limit(pid: int) -> None:
    """Lift the daemon's RLIMIT_FSIZE again: writes work from now on."""
    _, hard = resource.prlimit(pid, resource.RLIMIT_FSIZE)
    resource.prlimit(pid, resource.RLIMIT_FSIZE, (hard, hard))


def test_the_file_reopened_after_a_cut_write_starts_with_a_record(tmp_path: Path) -> None:
    """After `mv` and SIGUSR1 the new file's first byte opens a record; the fragment stays behind.

    The newline that ends the fragment belongs to the old file: written to the
    new one, it made line 1 empty, which a reader parsing every line (``json.loads``
    per line, pandas ``lines=True``) fails on.
    """
    old = tmp_path / "d.old.jsonl"
    with cut_daemon(tmp_path) as (pid, log, size):
        log.rename(old)
        os.kill(pid, signal.SIGUSR1)
        wait_for(log.exists, what="the log file reopened")
        no_limit(pid)
        reload(tmp_path / "d.pid")
        wait_for(lambda: events(log)[-1:] == ["reload finished"], what="the new file's records")
    fragment = old.read_bytes()[size:]
    assert len(fragment) == CUT, fragment
    assert fragment.startswith(b'{"timestamp":"'), fragment
    data = log.read_bytes()
    assert data.startswith(b'{"'), data[:80]
    lines = data.split(b"\n")
    assert lines.pop() == b""
    parsed = [json.loads(line) for line in lines]  # every line a record, none empty
    assert parsed[0]["event"] == "log records lost"
    assert "reload finished" in [r["event"] for r in parsed]


def test_a_file_reopened_in_place_still_ends_the_fragment_first(tmp_path: Path) -> None:
    """A reopen of the same file (SIGHUP, nothing rotated): the fragment keeps its own line."""
    with cut_daemon(tmp_path) as (pid, log, size):
        no_limit(pid)
        reload(tmp_path / "d.pid")  # reopens the log file, then logs the reload
        wait_for(lambda: events(log).count("reload finished") == 2, what="records after the cut")
    lines = log.read_bytes()[size:].split(b"\n")
    assert len(lines[0]) == CUT, lines[0]
    assert lines[0].startswith(b'{"timestamp":"'), lines[0]
    assert lines.pop() == b""
    parsed = [json.loads(line) for line in lines[1:]]
    assert parsed[0]["event"] == "log records lost"
    assert "reload finished" in [r["event"] for r in parsed]
