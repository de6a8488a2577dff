"""Readiness: when the launching process is released, and with what."""

from __future__ import annotations

import json
import os
import signal
import threading
from pathlib import Path

import pytest

from .support import aiodaemon_cli, kill_quietly, program, python, read_pid, wait_gone


def test_manual_readiness_releases_launcher_only_when_reported(tmp_path: Path) -> None:
    """With ready="manual" the launcher exits 0 only after ctx.notify_ready()."""
    record = tmp_path / "record.txt"
    script = program("ready_manual")
    result = python([script, tmp_path / "d.pid", record])
    assert result.returncode == 0, result.stderr
    # The launcher returned, so the daemon had already done its own binding.
    assert record.read_text() == "bound\n"
    pid = read_pid(tmp_path / "d.pid")
    os.kill(pid, signal.SIGTERM)
    wait_gone(pid)


def test_manual_main_returning_before_ready_fails_the_start(tmp_path: Path) -> None:
    """A manual-ready main that returns without reporting is a failed start."""
    script = program("ready_manual_returns")
    result = python([script, tmp_path / "d.pid"])
    assert result.returncode == 1
    assert result.stderr.strip() == "aiodaemon: main returned before reporting ready"
    assert not (tmp_path / "d.pid").exists()


def test_main_raising_before_manual_ready_reports_its_error(tmp_path: Path) -> None:
    """The launcher prints main's own exception when it fails before readiness."""
    script = program("ready_manual_raises")
    result = python([script, tmp_path / "d.pid"])
    assert result.returncode == 1
    assert result.stderr.strip() == "aiodaemon: main failed: PermissionError: cannot bind port 80"


def test_sigterm_during_startup_fails_the_start(tmp_path: Path) -> None:
    """A daemon stopped before it was ready: the launcher exits non-zero saying why."""
    script = program("ready_sigterm_in_startup")
    result = python([script, tmp_path / "d.pid"])
    assert result.returncode == 1
    assert result.stderr.strip() == "aiodaemon: stopped by SIGTERM before it was ready"
    assert not (tmp_path / "d.pid").exists()


def test_ready_daemon_pid_is_written_before_launcher_exits(tmp_path: Path) -> None:
    """Type=forking needs the pidfile complete when the launching process exits."""
    script = program("detached_waits")
    pidfile = tmp_path / "d.pid"
    result = python([script, pidfile])
    assert result.returncode == 0
    text = pidfile.read_text()  # read at once: no waiting allowed here
    assert text.endswith("\n")
    assert text.strip().isdigit()
    pid = int(text)
    kill_quietly(pid, signal.SIGTERM)
    wait_gone(pid)


@pytest.mark.parametrize("mode", ["startup", "manual"])
def test_notify_ready_in_a_startup_hook_waits_for_the_other_hooks(
    mode: str, tmp_path: Path
) -> None:
    """ctx.notify_ready() in a startup hook: a later hook's failure still fails the start."""
    pidfile = tmp_path / "d.pid"
    script = program("ready_in_startup_hook")
    result = python([script, pidfile, "fail", mode])
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip() == (
        "aiodaemon: startup hook __main__.connect failed: RuntimeError: database unreachable"
    )
    assert not pidfile.exists()


@pytest.mark.parametrize("mode", ["startup", "manual"])
def test_notify_ready_in_a_startup_hook_reports_ready_once_they_all_returned(
    mode: str, tmp_path: Path
) -> None:
    """Released by a hook's ctx.notify_ready(), the launcher leaves a daemon already running."""
    pidfile = tmp_path / "d.pid"
    result = python([program("ready_in_startup_hook"), pidfile, "pass", mode])
    assert result.returncode == 0, result.stderr
    pid = read_pid(pidfile)
    try:
        status = aiodaemon_cli("status", "--pidfile", pidfile, "--json")
        assert json.loads(status.stdout)["state"] == "running"
    finally:
        os.kill(pid, signal.SIGTERM)
        wait_gone(pid)


def test_a_pid_announced_just_after_a_ctrl_c_is_still_read() -> None:
    """The launcher cut short before reading the pipe waits (bounded) for the daemon's pid."""
    from aiodaemon._prefork._readiness import announced_pid

    read_fd, write_fd = os.pipe()
    try:
        # Nothing yet, and no time to wait: no pid, and the pipe has not ended.
        assert announced_pid(read_fd, 0.0) == (None, False)
        # Written while it waits, as the first child does just after its fork.
        timer = threading.Timer(0.05, os.write, (write_fd, b"P4242\n"))
        timer.start()
        assert announced_pid(read_fd, 30.0) == (4242, False)
        timer.join()
        os.write(write_fd, b"P4243\n")
        os.close(write_fd)
        write_fd = -1
        assert announced_pid(read_fd, 30.0) == (4243, False)
        # The daemon's end closed with nothing more: no daemon was forked.
        assert announced_pid(read_fd, 30.0) == (None, True)
    finally:
        os.close(read_fd)
        if write_fd >= 0:
            os.close(write_fd)


def test_a_no_daemon_line_counts_only_before_the_daemon_is_named() -> None:
    """`N` (first child is PID 1 of a new pid namespace) is a refusal only before any `P`."""
    from aiodaemon._prefork._readiness import wait_ready

    read_fd, write_fd = os.pipe()
    try:
        os.write(write_fd, b"N\n")
        refused = wait_ready(read_fd, None, None)
        assert (refused.namespace_init, refused.pid, refused.ready) == (True, None, False)
        # Written by the daemon's account after the first child named it: not a refusal
        # (the launcher would remove the files of a daemon that runs).
        os.write(write_fd, b"P%d\nN\nR\n" % os.getpid())
        result = wait_ready(read_fd, None, None)
        assert (result.namespace_init, result.pid, result.ready) == (False, os.getpid(), True)
    finally:
        os.close(read_fd)
        os.close(write_fd)
