"""``status`` of a daemon whose control socket drops connections unanswered (out of descriptors)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from .support import aiodaemon_cli, program, python, wait_for, wait_gone


@contextlib.contextmanager
def _out_of_descriptors(tmp_path: Path, *, uvloop: bool = True) -> Iterator[tuple[Path, int]]:
    """A detached daemon that used up its descriptors once ready: (its pidfile, its pid)."""
    pidfile, marker = tmp_path / "d.pid", tmp_path / "full"
    options = {
        "detach": True,
        "pidfile": str(pidfile),
        "log_file": str(tmp_path / "log"),
        "uvloop": uvloop,
    }
    started = python([program("fds_gone_after_ready"), json.dumps(options), marker])
    assert started.returncode == 0, started.stderr
    pid = int(pidfile.read_text())
    try:
        wait_for(marker.exists, what="the daemon to use up its descriptors")
        yield pidfile, pid
    finally:
        os.kill(pid, signal.SIGTERM)
        wait_gone(pid)


def test_a_daemon_out_of_descriptors_is_reported_running_from_its_pidfile(tmp_path: Path) -> None:
    """Its lock says it runs: exit 0 (LSB running) with a warning, not "unknown" (4)."""
    with _out_of_descriptors(tmp_path) as (pidfile, pid):
        result = aiodaemon_cli("status", "--pidfile", pidfile)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"running (pid {pid}, pidfile {pidfile})\n"
    assert result.stderr.startswith("aiodaemon: warning: ")
    assert result.stderr.endswith("; status from the pidfile\n")


def test_on_asyncio_s_loop_a_daemon_out_of_descriptors_is_unknown(tmp_path: Path) -> None:
    """asyncio leaves the request in the backlog: no answer, exit 4 (LSB unknown), as documented."""
    with _out_of_descriptors(tmp_path, uvloop=False) as (pidfile, pid):
        result = aiodaemon_cli("status", "--pidfile", pidfile, "--timeout", "1")
    assert result.returncode == 4, result.stderr
    assert result.stdout == f"unknown (no answer from pid {pid} within 1 s)\n"


@pytest.mark.parametrize("uvloop", [True, False], ids=["uvloop", "asyncio"])
def test_reload_of_a_daemon_out_of_descriptors_says_so(tmp_path: Path, uvloop: bool) -> None:
    """Not a bare "closed the control connection without an answer" (uvloop) nor "its event
    loop is held up" (asyncio's loop): the CLI says the daemon is out of descriptors."""
    with _out_of_descriptors(tmp_path, uvloop=uvloop) as (pidfile, pid):
        result = aiodaemon_cli("reload", "--pidfile", pidfile, "--timeout", "1")
    assert result.returncode == 1, result.stderr
    full = "it is out of file descriptors: 64 open, its RLIMIT_NOFILE is 64"
    if uvloop:
        said = f"pid {pid} closed the control connection without an answer ({full}); "
        said += "nothing reloaded"
    else:
        said = f"still reloading after 1 s (pid {pid} did not answer: {full}; "
        said += "the reload runs once it reads the request)"
    # Looked at between libuv's drop of the connection and the reopening of the
    # descriptor it keeps in reserve, the daemon has one open fewer.
    stderr = result.stderr.replace("descriptors: 63 open", "descriptors: 64 open")
    assert stderr == f"aiodaemon: {said}\n"


def test_upgrade_of_a_daemon_out_of_descriptors_says_nothing_started(tmp_path: Path) -> None:
    """Not "the daemon's log says what became of the upgrade": it never read the request."""
    with _out_of_descriptors(tmp_path) as (pidfile, pid):
        result = aiodaemon_cli("upgrade", "--pidfile", pidfile, "--timeout", "5")
        assert pidfile.read_text().strip() == str(pid)
    assert result.returncode == 1, result.stderr
    full = "it is out of file descriptors: 64 open, its RLIMIT_NOFILE is 64"
    said = f"pid {pid} closed the control connection without an answer ({full}); nothing started"
    stderr = result.stderr.replace("descriptors: 63 open", "descriptors: 64 open")
    assert stderr == f"aiodaemon: {said}\n"
