"""A program or library that removes its loop handler for one of the daemon's signals."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from aiodaemon._run._forced import REPEAT_WINDOW

from .support import kill_quietly, read_json_lines, signal_pending, spawn_program, wait_for


def _start(tmp_path: Path, where: str, uvloop: bool) -> tuple[subprocess.Popen[str], Path, Path]:
    """Start removes_signal_handlers (WHERE); wait until its handlers were removed."""
    pidfile, log, record = tmp_path / "d.pid", tmp_path / "log.jsonl", tmp_path / "record.txt"
    record.touch()
    options = {"detach": False, "pidfile": str(pidfile), "log_file": str(log), "uvloop": uvloop}
    daemon = spawn_program("removes_signal_handlers", json.dumps(options), str(record), where)
    wait_for(lambda: "removed" in record.read_text().splitlines(), what="handlers removed")
    wait_for(lambda: any(r["event"] == "ready" for r in read_json_lines(log)), what="ready")
    return daemon, log, record


@pytest.mark.parametrize("uvloop", [False, True], ids=["asyncio", "uvloop"])
@pytest.mark.parametrize("where", ["startup", "main"])
def test_sigterm_after_a_removed_handler_stops_the_daemon_gracefully(
    tmp_path: Path, where: str, uvloop: bool
) -> None:
    """SIGTERM after the program removed its handler: shutdown hooks, exit 0, no pidfile."""
    daemon, log, record = _start(tmp_path, where, uvloop)
    _stopped_gracefully(daemon)
    assert record.read_text().splitlines()[-1] == "shutdown hook"
    assert not (tmp_path / "d.pid").exists()
    assert not (tmp_path / "d.pid.ctl").exists()
    records = read_json_lines(log)
    restored = {r["signal"] for r in records if r["event"] == "signal handler restored"}
    assert restored == {"SIGTERM", "SIGINT", "SIGHUP", "SIGUSR1", "SIGUSR2"}
    assert records[-1]["event"] == "exit"
    assert records[-1]["status"] == 0


@pytest.mark.parametrize("uvloop", [False, True], ids=["asyncio", "uvloop"])
def test_sighup_and_sigint_after_a_removed_handler_keep_their_meaning(
    tmp_path: Path, uvloop: bool
) -> None:
    """SIGHUP still reloads and SIGINT still stops once the program removed its handlers."""
    daemon, log, record = _start(tmp_path, "main", uvloop)
    try:
        daemon.send_signal(signal.SIGHUP)
        wait_for(lambda: "reload hook" in record.read_text().splitlines(), what="the reload")
        wait_for(
            lambda: any(r["event"] == "reload finished" for r in read_json_lines(log)),
            what="the reload's end",
        )
        assert daemon.poll() is None
        daemon.send_signal(signal.SIGINT)
        _, err = daemon.communicate(timeout=30)
    finally:
        kill_quietly(daemon.pid)
        daemon.wait()
    assert daemon.returncode == 0, err
    lines = record.read_text().splitlines()
    assert lines[-1] == "shutdown hook"
    assert not any(line.startswith("program's") for line in lines)


@pytest.mark.parametrize("uvloop", [False, True], ids=["asyncio", "uvloop"])
def test_a_second_ctrl_c_still_forces_the_exit_after_a_removed_handler(
    tmp_path: Path, uvloop: bool
) -> None:
    """Handlers removed, then sync code blocks the loop: Ctrl-C twice still exits 130 at once."""
    pidfile, log, record = tmp_path / "d.pid", tmp_path / "log.jsonl", tmp_path / "record.txt"
    record.touch()
    options = {"detach": False, "pidfile": str(pidfile), "log_file": str(log), "uvloop": uvloop}
    daemon = spawn_program("removes_signal_handlers", json.dumps(options), str(record), "block")
    try:
        wait_for(lambda: "removed" in record.read_text().splitlines(), what="handlers removed")
        daemon.send_signal(signal.SIGINT)
        wait_for(lambda: not signal_pending(daemon.pid, signal.SIGINT), what="the first delivered")
        delivered = time.monotonic()
        # Not a wait for an event: what makes it a second request is the time between.
        time.sleep(max(0.0, delivered + REPEAT_WINDOW + 0.1 - time.monotonic()))
        daemon.send_signal(signal.SIGINT)
        _, err = daemon.communicate(timeout=10)
    finally:
        Path(f"{record}.go").touch()
        kill_quietly(daemon.pid)
        daemon.wait()
    assert daemon.returncode == 128 + signal.SIGINT, err
    assert "second stop signal while the event loop was blocked: SIGINT" in err
    assert not pidfile.exists()


def test_handlers_removed_again_and_again_are_said_restored_once_each(tmp_path: Path) -> None:
    """A library adding and removing its handlers in a loop: one info line per signal.

    Each restoring was logged at info: 1,000 add/remove cycles wrote 2,000 lines.
    """
    daemon, log, _ = _start(tmp_path, "thrice", True)
    _stopped_gracefully(daemon)
    restored = [
        str(r["signal"]) for r in read_json_lines(log) if r["event"] == "signal handler restored"
    ]
    assert sorted(restored) == ["SIGHUP", "SIGINT", "SIGTERM", "SIGUSR1", "SIGUSR2"]


def _stopped_gracefully(daemon: subprocess.Popen[str]) -> None:
    """SIGTERM ``daemon`` and check it exits 0 (killed at the end whatever happens)."""
    try:
        daemon.send_signal(signal.SIGTERM)
        _, err = daemon.communicate(timeout=30)
    finally:
        kill_quietly(daemon.pid)
        daemon.wait()
    assert daemon.returncode == 0, err
