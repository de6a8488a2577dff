"""Signals in the acquire phase: from the pidfile's creation on, they wait for the daemon's loop.

Before, one sent while the pidfile existed but held no pid yet took its
default action: `aiodaemon run` was killed by SIGHUP, SIGTERM or SIGUSR1
(or exited 130 without a word on SIGINT), and `aiodaemon start`'s launcher
likewise, leaving an empty pidfile and the log file behind.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from .support import (
    AIODAEMON,
    aiodaemon_cli,
    clean_env,
    install_program,
    kill_quietly,
    proc_state,
    read_pid,
    wait_for,
)
from .test_launcher_signals import _stop_daemon

#: Starts that must catch the acquire phase, per signal.
HITS = 2
#: Starts allowed for as many catches: one may find it over already.
ATTEMPTS = 25


def _launch(tmp_path: Path, command: str) -> subprocess.Popen[str]:
    """``aiodaemon COMMAND app:main`` with a pidfile and a log file."""
    return subprocess.Popen(
        [str(AIODAEMON), command, "app:main", "--pidfile", str(tmp_path / "app.pid"),
         "--log-file", str(tmp_path / "log.jsonl")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
        text=True, cwd=tmp_path, env=clean_env(),
    )  # fmt: skip


def _stopped_while_acquiring(proc: subprocess.Popen[str], pidfile: Path) -> bool:
    """Stop ``proc`` once its pidfile exists: True if still in the acquire phase.

    That is: its control socket, bound after the pidfile, not there yet, and
    nothing forked. Else it is resumed and False returned.
    """
    deadline = time.monotonic() + 60
    # A busy poll: the pidfile is empty for a millisecond or so.
    while not pidfile.exists():
        if proc.poll() is not None and pidfile.exists():
            # It ran through its acquire (and all of its start) between our looks.
            return False
        if proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"no pidfile: {proc.communicate()}")
    if proc.poll() is not None:
        return False  # ended already: nothing to stop
    os.kill(proc.pid, signal.SIGSTOP)
    wait_for(lambda: proc_state(proc.pid) == "T", what="the start to stop")
    forked = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().strip()
    control = pidfile.with_name(pidfile.name + ".ctl")
    if pidfile.read_bytes() == b"" and not control.exists() and not forked:
        return True
    os.kill(proc.pid, signal.SIGCONT)
    return False


def _wait_started(run: subprocess.Popen[str], tmp_path: Path) -> None:
    """Wait for the startup hook of ``run``'s daemon to have run; fail at once if it ended."""
    started = tmp_path / "started"
    wait_for(lambda: started.exists() or run.poll() is not None, 30, "the startup hook")
    assert run.poll() is None, (run.returncode, run.communicate())


@pytest.mark.timeout(600)
@pytest.mark.parametrize(
    "signum",
    [signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1],
    ids=["TERM", "INT", "HUP", "USR1"],
)
def test_a_signal_to_run_before_its_pid_is_written_is_acted_on_by_the_daemon(
    tmp_path: Path, signum: signal.Signals
) -> None:
    """`run` signalled with its pidfile still empty: a stop before ready, or a reload/reopen."""
    install_program("cli_app", tmp_path, "app.py")
    pidfile = tmp_path / "app.pid"
    stops = signum in (signal.SIGTERM, signal.SIGINT)
    hits = 0
    for _ in range(ATTEMPTS):
        run = _launch(tmp_path, "run")
        try:
            caught = _stopped_while_acquiring(run, pidfile)
            if caught:
                os.kill(run.pid, signum)
                os.kill(run.pid, signal.SIGCONT)
            if not caught or not stops:
                # Runs on: ready (its startup hook ran), then stopped.
                _wait_started(run, tmp_path)
                assert read_pid(pidfile, 30) == run.pid
                if caught and signum == signal.SIGHUP:
                    # Kept: one reload once ready.
                    wait_for(lambda: (tmp_path / "reloads").exists(), 30, "the reload")
                _stop_daemon(tmp_path)
            _, err = run.communicate(timeout=60)
        finally:
            kill_quietly(run.pid)
            run.communicate()
        (tmp_path / "started").unlink(missing_ok=True)
        if not caught:
            assert run.returncode == 0, err
            continue
        hits += 1
        if stops:
            assert run.returncode == 1, err
            assert err.splitlines()[-1] == (
                f"aiodaemon: stopped by {signum.name} before it was ready"
            )
        else:
            assert run.returncode == 0, err
        if signum == signal.SIGHUP:
            assert (tmp_path / "reloads").read_text() == "reload\n"
            (tmp_path / "reloads").unlink()
        # Nothing of the daemon's is left: no pidfile, no control socket.
        assert not pidfile.exists()
        assert not (tmp_path / "app.pid.ctl").exists()
        if hits == HITS:
            return
    raise AssertionError(f"the acquire phase was caught {hits} times only")


@pytest.mark.timeout(600)
@pytest.mark.parametrize(
    ("name", "signum"),
    [
        pytest.param("cli_app", signal.SIGTERM, id="TERM"),
        pytest.param("cli_app", signal.SIGINT, id="INT"),
        pytest.param("cli_app", signal.SIGHUP, id="HUP"),
        pytest.param("cli_app", signal.SIGQUIT, id="QUIT"),
        pytest.param("cli_app", signal.SIGUSR1, id="USR1"),
        pytest.param("cli_app", signal.SIGUSR2, id="USR2"),
        # The program's on_signal ones: the daemon's to handle, not the launcher's.
        pytest.param("cli_on_signal_app", signal.SIGALRM, id="on_signal-ALRM"),
        pytest.param("cli_on_signal_app", signal.SIGRTMIN + 2, id="on_signal-RT"),
        pytest.param("cli_on_signal_app", signal.SIGQUIT, id="on_signal-QUIT"),
    ],
)
def test_a_signal_to_start_before_its_fork_is_acted_on_by_the_launcher(
    tmp_path: Path, name: str, signum: int
) -> None:
    """`start` signalled before its fork: its wait cut short as after it, or the signal dropped."""
    install_program(name, tmp_path, "app.py")
    pidfile = tmp_path / "app.pid"
    interrupts = signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT)
    hits = 0
    for _ in range(ATTEMPTS):
        start = _launch(tmp_path, "start")
        try:
            caught = _stopped_while_acquiring(start, pidfile)
            if caught:
                os.kill(start.pid, signum)
                os.kill(start.pid, signal.SIGCONT)
            out, err = start.communicate(timeout=60)
        finally:
            kill_quietly(start.pid)
            start.communicate()
        if caught:
            hits += 1
            if interrupts:
                assert start.returncode == 128 + signum, err
                assert out == ""
                assert err.startswith("aiodaemon: interrupted while waiting"), err
                pid = read_pid(pidfile, 30)
                assert err == (
                    "aiodaemon: interrupted while waiting for the daemon to be ready;"
                    f" the daemon (pid {pid}) goes on starting;"
                    f" `aiodaemon stop --pidfile {pidfile}` stops it\n"
                )
            else:
                # The launcher has no logs to reopen, no handlers, nor a daemon to upgrade.
                assert start.returncode == 0, err
                assert re.fullmatch(r"\d+\n", out), out
                pid = int(out)
                assert read_pid(pidfile, 30) == pid
            # As said: the daemon runs.
            wait_for(lambda: (tmp_path / "started").exists(), 30, "the startup hook")
            status = aiodaemon_cli("status", "--pidfile", pidfile, cwd=tmp_path)
            assert status.returncode == 0, status.stdout + status.stderr
        else:
            assert start.returncode == 0, err
        _stop_daemon(tmp_path)
        (tmp_path / "started").unlink(missing_ok=True)
        assert not (tmp_path / "app.pid.ctl").exists()
        if hits == HITS:
            return
    raise AssertionError(f"the acquire phase was caught {hits} times only")
