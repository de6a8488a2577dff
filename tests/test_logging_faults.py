"""Log sinks failing under a running daemon: a full disk, a removed log directory."""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .support import (
    PYTHON,
    Rsyslog,
    aiodaemon_cli,
    clean_env,
    install_program,
    kill_quietly,
    log_child_env,
    program,
    python,
    require_tool,
    wait_for,
    wait_gone,
)


class Ticker:
    """The ``log_ticker`` program logging into ``log``, its stderr a regular file."""

    def __init__(self, tmp_path: Path, log: Path, **options: str) -> None:
        self.log = log
        self.stderr_path = tmp_path / "stderr.txt"
        script = install_program("log_ticker", tmp_path, "child.py")
        options = {"log_file": str(log), **options}
        with open(self.stderr_path, "w") as stderr:
            self.proc = subprocess.Popen(
                [PYTHON, str(script), json.dumps(options)],
                env=clean_env(log_child_env()),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
            )

    def stderr(self) -> str:
        """What the child wrote on its stderr so far."""
        return self.stderr_path.read_text()

    def finish(self) -> Any:
        """SIGTERM, wait, and return the JSON the child printed last."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=30)
        assert self.proc.returncode == 0, self.stderr()
        return json.loads(out.splitlines()[-1])


def records(path: Path) -> tuple[list[dict[str, Any]], list[bytes]]:
    """The records of a JSON-lines file, and the lines that are not JSON."""
    parsed, broken = [], []
    for line in path.read_bytes().split(b"\n"):
        if not line:
            continue
        try:
            parsed.append(json.loads(line))
        except ValueError:
            broken.append(line)
    return parsed, broken


def count(path: Path, event: str) -> int:
    """How many lines of ``path`` carry ``event``."""
    try:
        return path.read_bytes().count(f'"event":"{event}"'.encode())
    except FileNotFoundError:
        return 0


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 256 kB tmpfs of its own, mounted for the test."""
    mount = require_tool("mount")
    if os.geteuid() != 0:
        pytest.fail("a full disk is simulated with a tmpfs mount, which needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(
        [mount, "-t", "tmpfs", "-o", "size=256k,mode=0755", "tmpfs", str(disk)], check=True
    )
    try:
        yield disk
    finally:
        subprocess.run([require_tool("umount"), "-l", str(disk)], check=False)


def fill(path: Path) -> None:
    """Write ``path`` until its file system has no space left."""
    chunk = b"\0" * 4096
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    error: OSError | None = None
    try:
        while error is None:
            try:
                os.write(fd, chunk)
            except OSError as exc:
                error = exc
    finally:
        os.close(fd)
    assert error.errno == errno.ENOSPC, error


@pytest.mark.root
def test_a_full_disk_cuts_no_record_into_the_next_and_counts_the_loss(
    tmp_path: Path, tiny_disk: Path
) -> None:
    """After ENOSPC: the next record starts a fresh line, and the loss is told before it."""
    log = tiny_disk / "app.log"
    ticker = Ticker(tmp_path, log)
    try:
        wait_for(lambda: count(log, "tick") >= 20, what="first ticks")
        fill(tiny_disk / "filler")
        wait_for(lambda: "No space left on device" in ticker.stderr(), what="a failed write")
        before = count(log, "tick")
        (tiny_disk / "filler").unlink()
        wait_for(lambda: count(log, "log records lost") >= 1, what="the loss reported")
        wait_for(lambda: count(log, "tick") >= before + 20, what="ticks after the disk freed up")
    finally:
        result = ticker.finish()
    assert result == {"closed": True, "dropped": 0}
    parsed, broken = records(log)
    # At most one record cut short by the full disk, alone on its line.
    assert len(broken) <= 1, broken
    assert all(line.startswith(b'{"') and b"}{" not in line for line in broken)
    ticks = {int(r["n"]) for r in parsed if r["event"] == "tick"}
    last = next(int(r["last"]) for r in parsed if r["event"] == "done")
    missing = set(range(last + 1)) - ticks
    (lost,) = [r for r in parsed if r["event"] == "log records lost"]
    assert lost["level"] == "warning"
    assert lost["lost"] == len(missing) > 0
    assert "No space left on device" in lost["error"]
    # The notice comes first in the file: before it only ticks from before the
    # loss, after it only ticks from after it (ops#14).
    at = parsed.index(lost)
    assert max(int(r["n"]) for r in parsed[:at] if r["event"] == "tick") < min(missing)
    assert min(int(r["n"]) for r in parsed[at:] if r["event"] == "tick") > max(missing)
    line = next(x for x in ticker.stderr().splitlines() if "cannot write to" in x)
    assert line.startswith(f"aiodaemon: cannot write to log_file {log}: [Errno 28] No space left")


def test_a_failed_reopen_reaches_stderr_and_the_next_reopened_file(tmp_path: Path) -> None:
    """With the log directory removed, the error shows on stderr and in the next file reopened."""
    logs = tmp_path / "logs"
    logs.mkdir()
    log = logs / "app.log"
    ticker = Ticker(tmp_path, log)
    try:
        wait_for(lambda: count(log, "tick") >= 10, what="first ticks")
        shutil.rmtree(logs)
        os.kill(ticker.proc.pid, signal.SIGUSR1)
        wait_for(lambda: "cannot reopen" in ticker.stderr(), what="the error on stderr")
        logs.mkdir()
        os.kill(ticker.proc.pid, signal.SIGUSR1)
        wait_for(lambda: count(log, "tick") >= 10, what="ticks in the reopened file")
    finally:
        result = ticker.finish()
    assert result == {"closed": True, "dropped": 0}
    assert ticker.stderr().splitlines() == [
        f"aiodaemon: cannot reopen log_file {log}, keeping the old one: "
        f"[Errno 2] No such file or directory: '{log}'"
    ]
    parsed, broken = records(log)
    assert broken == []
    (reopened,) = [r for r in parsed if r["event"] == "log file reopened after failed reopens"]
    assert reopened["level"] == "error"
    assert reopened["failed"] == 1
    assert "No such file or directory" in reopened["error"]
    assert parsed.index(reopened) == 0


@pytest.mark.root
def test_a_full_disk_is_told_to_syslog_at_once(
    tmp_path: Path, tiny_disk: Path, rsyslog: Rsyslog
) -> None:
    """With syslog configured beside the file, syslog hears of the failing writes right away."""
    log = tiny_disk / "app.log"
    ticker = Ticker(tmp_path, log, syslog=str(rsyslog.socket))

    def failures() -> list[dict[str, Any]]:
        received = [json.loads(msg) for *_, msg in rsyslog.messages()]
        return [r for r in received if r["event"] == "cannot write to log sink"]

    try:
        wait_for(lambda: count(log, "tick") >= 20, what="first ticks")
        fill(tiny_disk / "filler")
        (failure, *_) = wait_for(failures, what="the failure on syslog")
    finally:
        (tiny_disk / "filler").unlink()
        result = ticker.finish()
    assert result == {"closed": True, "dropped": 0}
    assert failure["level"] == "error"
    assert failure["sink"] == f"log_file {log}"
    assert "No space left on device" in failure["error"]
    # syslog already carries it: stderr (a file here) gets the line as well.
    assert "No space left on device" in ticker.stderr()


@pytest.mark.root
@pytest.mark.parametrize("short", [0, 1, 2], ids=["whole", "newline-cut", "last-byte-cut"])
def test_a_record_cut_before_its_newline_only_is_not_counted_lost(
    tiny_disk: Path, short: int
) -> None:
    """A full disk that takes a record but its newline keeps the record whole, and says so.

    tmpfs allocates whole pages: with the rest of the disk filled, a write fills
    the log's last page and fails there. The record is sized to end ``short``
    bytes past that page; its line is whole once the next write brings the newline.
    """
    from aiodaemon._prefork._logsinks import open_file_sink

    log = tiny_disk / "app.log"
    sink = open_file_sink(str(log))
    try:
        first = b'{"event":"first"}\n'
        sink.write([(logging.INFO, first)])
        fill(tiny_disk / "filler")
        room = 4096 - len(first)
        padding = room - len(b'{"event":"cut","pad":""}\n') + short
        cut = b'{"event":"cut","pad":"' + b"x" * padding + b'"}\n'
        if short:
            with pytest.raises(OSError, match="No space left") as failed:
                sink.write([(logging.INFO, cut)])
            assert failed.value.errno == errno.ENOSPC
        else:
            sink.write([(logging.INFO, cut)])  # it just fits
        # Only a record missing more than its newline is lost.
        assert sink.lost == (1 if short > 1 else 0)
        (tiny_disk / "filler").unlink()
        sink.write([(logging.INFO, b'{"event":"after"}\n')])
    finally:
        sink.close()
    lines = log.read_bytes().split(b"\n")
    assert lines[-1] == b""
    parsed = []
    for line in lines[:-1]:
        try:
            parsed.append(json.loads(line)["event"])
        except ValueError:
            parsed.append("broken")
    expected = {0: ["first", "cut", "after"], 1: ["first", "cut", "after"]}
    assert parsed == expected.get(short, ["first", "broken", "after"])


@pytest.mark.root
def test_the_loss_is_told_before_the_records_after_it_when_space_comes_back(
    tmp_path: Path, tiny_disk: Path
) -> None:
    """Space freed between the notice's failed write and the next: the notice still comes first.

    Written apart, the notice failed on the full disk, the batch after it got
    through, and the notice followed that batch (failed once in a loaded run).
    """
    log = tiny_disk / "app.log"
    script = install_program("log_disk_freed", tmp_path, "child.py")
    result = subprocess.run(
        [PYTHON, str(script), json.dumps({"log_file": str(log)}), str(tiny_disk / "filler")],
        env=clean_env(log_child_env()),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    parsed, broken = records(log)
    assert broken == []
    # Ticks 0 and 1 went with the full disk (the notice too, in the write with 1).
    assert [(r["event"], r.get("n"), r.get("lost")) for r in parsed] == [
        ("log records lost", None, 2),
        ("tick", 2, None),
    ]
    assert json.loads(result.stdout) == {"closed": True, "lost": 3}


@pytest.mark.root
def test_records_a_full_disk_takes_just_before_the_exit_are_counted_on_stderr(
    tmp_path: Path, tiny_disk: Path
) -> None:
    """Each loss is told on stderr, those of the stop a moment after the first warning too.

    The warnings come at most once a second, and each counted only its own
    write: losses in between, and those of the final writes, went untold.
    """
    log, stderr, pidfile = tiny_disk / "app.log", tmp_path / "stderr", tmp_path / "d.pid"
    options = {"detach": True, "pidfile": str(pidfile), "log_file": str(log), "stderr": str(stderr)}
    started = python([program("idle"), json.dumps(options)])
    assert started.returncode == 0, started.stderr
    pid = int(pidfile.read_text())
    try:
        fill(tiny_disk / "filler")
        # The log's last page still takes a few records: reload until one is lost.
        # Through the CLI, which returns once the reload has finished: a SIGHUP
        # followed at once by the SIGTERM would have its reload never start (the
        # shutdown goes first), and its records counted lost but never written.
        reloads = 0

        def written_or_lost() -> bool:
            return count(log, "reload finished") == reloads or "records lost" in stderr.read_text()

        while "records lost" not in stderr.read_text():
            reloads += 1
            reloaded = aiodaemon_cli("reload", "--pidfile", pidfile)
            assert reloaded.returncode == 0, reloaded.stderr
            wait_for(written_or_lost, what="a reload's records, or their loss")
        os.kill(pid, signal.SIGTERM)
        wait_gone(pid)
    finally:
        kill_quietly(pid)
    parsed, _ = records(log)
    events = [r["event"] for r in parsed]
    # After "ready": per reload "reload started" and "reload finished"; then
    # "signal received", "shutdown started", "shutdown finished", "exit". A
    # record cut short by the full disk is lost too.
    lost = 2 * reloads + 4 - len(events[events.index("ready") + 1 :])
    told = [int(n) for n in re.findall(r"; (\d+) records lost$", stderr.read_text(), re.M)]
    assert "exit" not in events
    assert sum(told) == lost, stderr.read_text()


def test_a_log_writer_out_of_memory_goes_on_and_says_so(tmp_path: Path) -> None:
    """A MemoryError in the writer thread (a SIGUSR1 reopen) is logged; later records still are."""
    pidfile, log, marker = tmp_path / "d.pid", tmp_path / "d.jsonl", tmp_path / "starved"
    options = {"detach": True, "pidfile": str(pidfile), "log_file": str(log)}
    started = python([program("log_writer_starved"), json.dumps(options), marker])
    assert started.returncode == 0, started.stderr
    pid = int(pidfile.read_text())
    try:
        os.kill(pid, signal.SIGUSR1)
        wait_for(marker.exists, what="the writer to have run out of memory")
        wait_for(lambda: count(log, "after") == 3, what="the records logged after it")
        os.kill(pid, signal.SIGTERM)
        wait_gone(pid)
    finally:
        kill_quietly(pid)
    parsed, broken = records(log)
    assert broken == []
    (failed,) = [r for r in parsed if r["event"] == "log writer failed"]
    assert failed["level"] == "error"
    assert failed["error"] == "MemoryError"
    assert failed["dropped"] == 0
    assert parsed.index(failed) < [r["event"] for r in parsed].index("after")
    assert parsed[-1]["event"] == "exit"


def test_a_reopen_after_one_given_up_out_of_memory_is_retried_too(tmp_path: Path) -> None:
    """A reopen (SIGUSR1) that failed twice is given up; the next one that fails once is retried.

    The writer remembered the reopen it had retried: the next SIGUSR1, the
    same request, was taken for it and given up at its first failure, so
    that rotation was missed and the records went on into the rotated file.
    """
    pidfile, log, rotated = tmp_path / "d.pid", tmp_path / "d.jsonl", tmp_path / "d.jsonl.1"
    options = {"detach": True, "pidfile": str(pidfile), "log_file": str(log)}
    started = python([program("log_writer_starved_reopens"), json.dumps(options)])
    assert started.returncode == 0, started.stderr
    pid = int(pidfile.read_text())

    def failures() -> int:
        return sum(count(path, "log writer failed") for path in (log, rotated) if path.exists())

    try:
        os.kill(pid, signal.SIGUSR1)
        wait_for(lambda: failures() == 2, what="the first reopen given up")
        log.rename(rotated)
        os.kill(pid, signal.SIGUSR1)
        wait_for(lambda: failures() == 3, what="the second reopen's failure")
        os.kill(pid, signal.SIGTERM)
        wait_gone(pid)
    finally:
        kill_quietly(pid)
    parsed, broken = records(log)
    assert broken == []
    assert parsed[-1]["event"] == "exit"


def test_a_stderr_made_non_blocking_by_a_child_loses_no_record(tmp_path: Path) -> None:
    """A child leaves the shared stderr pipe O_NONBLOCK: a burst larger than the pipe arrives whole.

    A full pipe then answered the writer with EAGAIN, taken for a failed
    write: of 3,000 records about 200 arrived, the last one cut short, and
    no ``exit`` record, with nothing said anywhere.
    """
    marker = tmp_path / "logged"
    daemon = subprocess.Popen(
        [PYTHON, program("log_nonblocking_stderr"), marker],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=clean_env(),
    )
    try:
        # Nobody reads the pipe until the burst is logged: it fills.
        wait_for(marker.exists, what="the burst to be logged")
        _, err = daemon.communicate(timeout=30)
    finally:
        kill_quietly(daemon.pid)
        daemon.wait()
    assert daemon.returncode == 0
    records = [json.loads(line) for line in err.decode().splitlines()]
    assert [r["n"] for r in records if r["event"] == "tick"] == list(range(3000))
    assert records[-1]["event"] == "exit"
