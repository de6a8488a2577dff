"""``upgrade`` without a control socket of a daemon that reloads, which refuses upgrades then.

The daemon logged ``upgrade refused`` at once, but the command, which learns
nothing over a signal, waited all of --timeout and 15 s more for a new process,
then blamed a start ("a daemon still starting refuses an upgrade"). The daemon
listens on its reloading mark while it reloads: the command asks once the
reload is over, as over a control socket, and names the reason meanwhile.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from aiodaemon._prefork._pidns import PID_NAMESPACE

from .support import (
    clean_env,
    kill_quietly,
    program,
    python,
    read_json_lines,
    read_pid,
    wait_for,
    wait_gone,
)
from .test_upgrade import SCRIPT, cli


class _Held:
    """A daemon without a control socket, held in its reload hook until ``release()``."""

    def __init__(self, directory: Path) -> None:
        self.pidfile = directory / "d.pid"
        self.log = directory / "d.jsonl"
        self.release_file = directory / "release"
        options = {
            "detach": True,
            "pidfile": str(self.pidfile),
            "control": False,
            "log_file": str(self.log),
        }
        started = python([program("held_reload"), json.dumps(options), self.release_file])
        assert started.returncode == 0, started.stderr
        self.pid = read_pid(self.pidfile)
        os.kill(self.pid, signal.SIGHUP)
        wait_for(lambda: self.events("reload started"), what="the reload to begin")

    def events(self, event: str) -> list[dict[str, object]]:
        return [r for r in read_json_lines(self.log) if r["event"] == event]

    def release(self) -> None:
        self.release_file.touch()


@pytest.fixture
def held(tmp_path: Path) -> Iterator[_Held]:
    daemon = _Held(tmp_path)
    yield daemon
    daemon.release()
    pids = {daemon.pid}
    with contextlib.suppress(OSError, ValueError):
        pids.add(int(daemon.pidfile.read_text()))  # an upgrade's new process
    for pid in pids:
        kill_quietly(pid, signal.SIGTERM)
        wait_gone(pid, 30)


def test_upgrade_of_a_reloading_daemon_names_the_reload_and_sends_nothing(held: _Held) -> None:
    """Exit 1 in the daemon's own words; no SIGUSR2 (nothing refused in its log)."""
    result = cli("upgrade", "--pidfile", str(held.pidfile), "--timeout", "1")
    refused = f"cannot upgrade while reloading (pid {held.pid})"
    assert (result.returncode, result.stdout, result.stderr) == (
        1,
        "",
        f"aiodaemon: {refused}; trying again for up to 1 s\n"
        f"aiodaemon: upgrade failed: {refused}; nothing started\n",
    )
    assert held.events("upgrade refused") == []
    assert read_pid(held.pidfile) == held.pid


def test_upgrade_of_a_reloading_daemon_goes_on_once_the_reload_is_over(held: _Held) -> None:
    """The upgrade waits for the reload, then replaces the daemon (exit 0, the new pid)."""
    upgrade = subprocess.Popen(
        [str(SCRIPT), "upgrade", "--pidfile", str(held.pidfile), "--timeout", "60"],
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert upgrade.stderr is not None
        said = upgrade.stderr.readline()
        held.release()
        out, err = upgrade.communicate(timeout=90)
    finally:
        if upgrade.poll() is None:
            upgrade.kill()
            upgrade.communicate()
    refused = f"cannot upgrade while reloading (pid {held.pid})"
    assert said == f"aiodaemon: {refused}; trying again for up to 60 s\n"
    assert (upgrade.returncode, err) == (0, "")
    new = int(out)
    assert new != held.pid
    assert read_pid(held.pidfile) == new
    wait_gone(held.pid, 30)
    assert held.events("upgrade refused") == []


def test_a_worker_forked_by_a_reload_hook_does_not_keep_the_reloading_mark(tmp_path: Path) -> None:
    """The mark goes with the reload, though a worker forked meanwhile lives on.

    The worker inherited the mark's socket and held it open: every later
    upgrade was refused "while reloading" of a reload long over.
    """
    pidfile, log, release, worker_file = (
        tmp_path / "d.pid", tmp_path / "d.jsonl", tmp_path / "release", tmp_path / "worker"
    )  # fmt: skip
    options = {"detach": True, "pidfile": str(pidfile), "control": False, "log_file": str(log)}
    started = python([program("held_reload"), json.dumps(options), release, worker_file])
    assert started.returncode == 0, started.stderr
    pid = read_pid(pidfile)
    worker = None
    try:
        release.touch()
        os.kill(pid, signal.SIGHUP)
        wait_for(
            lambda: any(r["event"] == "reload finished" for r in read_json_lines(log)),
            what="the reload to end",
        )
        worker = int(worker_file.read_text())
        assert os.path.exists(f"/proc/{worker}")
        with open("/proc/net/unix") as f:
            marks = [line for line in f if f"@aiodaemon-reloading-{PID_NAMESPACE}-{pid}" in line]
        assert marks == []
    finally:
        if worker is not None:
            kill_quietly(worker, signal.SIGKILL)
        kill_quietly(pid, signal.SIGTERM)
        wait_gone(pid, 30)
