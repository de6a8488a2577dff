"""After dropping root: no_new_privs, an empty bounding set, no launcher fds, seen in /proc."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from .security_support import (
    PROGRAM,
    User,
    arena,
    intruder,
    make_victim,
    own_dir,
    records,
    running_daemon,
    stop_daemon,
)
from .support import PYTHON, REPO, clean_env, proc_status, read_pid, wait_for

pytestmark = pytest.mark.root

__all__ = ["arena", "intruder"]  # fixtures, re-exported for pytest


def _status_of_daemon(arena: Path, options: dict[str, Any]) -> dict[str, str]:
    logs = arena / "log"
    with running_daemon({"pidfile": str(arena / "run" / "d.pid"), **options}) as pid:
        if "log_file" in options:
            wait_for(lambda: records(logs / "app.log"), what="the daemon running")
        return proc_status(pid)


def test_a_dropped_daemon_cannot_regain_privileges(arena: Path, intruder: User) -> None:
    """Dropped from root to a user: NoNewPrivs is 1 and the bounding set is empty."""
    own_dir(arena / "run", intruder)
    own_dir(arena / "log", intruder)
    status = _status_of_daemon(
        arena, {"user": intruder.name, "log_file": str(arena / "log" / "app.log")}
    )
    assert status["Uid"].split() == [str(intruder.uid)] * 4
    assert status["NoNewPrivs"] == "1"
    assert status["CapBnd"] == "0000000000000000"
    assert status["CapPrm"] == status["CapEff"] == "0000000000000000"


def test_no_new_privileges_false_leaves_them(arena: Path, intruder: User) -> None:
    """no_new_privileges=False: the drop still happens, setuid programs keep working."""
    own_dir(arena / "run", intruder)
    status = _status_of_daemon(arena, {"user": intruder.name, "no_new_privileges": False})
    assert status["Uid"].split() == [str(intruder.uid)] * 4
    assert status["NoNewPrivs"] == "0"
    assert status["CapBnd"] == proc_status_self()["CapBnd"]


def test_a_daemon_that_stays_root_is_left_alone(arena: Path) -> None:
    """Without user= nothing is dropped, so nothing is locked either (root could undo it)."""
    (arena / "run").mkdir()
    status = _status_of_daemon(arena, {})
    assert status["Uid"].split() == ["0"] * 4
    assert status["NoNewPrivs"] == "0"
    assert status["CapBnd"] == proc_status_self()["CapBnd"]


def test_the_cli_flag_turns_it_off(arena: Path, intruder: User) -> None:
    """aiodaemon start --allow-new-privileges is no_new_privileges=False."""
    own_dir(arena / "run", intruder)
    pidfile = arena / "run" / "d.pid"
    result = subprocess.run(
        [
            PYTHON,
            "-m",
            "aiodaemon",
            "start",
            "tests.programs.security_daemon:main",
            "--pidfile",
            str(pidfile),
            "--user",
            intruder.name,
            "--allow-new-privileges",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(),
        cwd=REPO,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    pid = read_pid(pidfile)
    try:
        assert proc_status(pid)["NoNewPrivs"] == "0"
    finally:
        stop_daemon(pid)


def proc_status_self() -> dict[str, str]:
    """This test process's own /proc status (the bounding set the daemon started with)."""
    return proc_status(os.getpid())


def _open_fds(pid: int) -> dict[int, str]:
    """What ``pid`` has open, fd -> target, as root sees it in /proc."""
    fds = {}
    for name in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            fds[int(name)] = os.readlink(f"/proc/{pid}/fd/{name}")
    return fds


@pytest.mark.parametrize("detach", [False, None])
def test_a_foreground_drop_closes_what_roots_launcher_had_open(
    arena: Path, intruder: User, detach: bool | None
) -> None:
    """Foreground, user=: an inherited root-only fd is gone; files_preserve and listeners stay."""
    own_dir(arena / "run", intruder)
    own_dir(arena / "log", intruder)
    victim = make_victim(arena / "secrets")
    log = arena / "log" / "app.log"
    leaked = os.open(victim, os.O_RDONLY)
    kept_read, kept_write = os.pipe()
    options = {
        "detach": detach,
        "user": intruder.name,
        "files_preserve": [kept_write],
        "listen": {"web": "127.0.0.1:0"},
        "log_file": str(log),
        "pidfile": str(arena / "run" / "d.pid"),
    }
    # detach=None stays in the foreground under a service manager.
    extra = {} if detach is False else {"INVOCATION_ID": "0" * 32}
    try:
        daemon = subprocess.Popen(
            [PYTHON, str(PROGRAM), json.dumps(options)],
            env=clean_env(extra),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            pass_fds=(leaked, kept_write),
        )
    finally:
        os.close(leaked)
        os.close(kept_write)
    try:
        # main ticks once the daemon is ready: a stop then ends it with status 0.
        wait_for(lambda: log.exists() and _ticks(log), 30, "the daemon to run")
        assert proc_status(daemon.pid)["Uid"].split() == [str(intruder.uid)] * 4
        fds = _open_fds(daemon.pid)
        assert str(victim) not in fds.values()
        assert fds[kept_write].startswith("pipe:")
        assert fds[kept_write] == os.readlink(f"/proc/self/fd/{kept_read}")
        assert sum(target.startswith("socket:") for target in fds.values()) >= 1
        assert str(log) in fds.values()
    finally:
        daemon.terminate()
        assert daemon.wait(30) == 0
        os.close(kept_read)


def _ticks(log: Path) -> list[dict[str, Any]]:
    return [r for r in records(log) if r["event"] == "tick"]
