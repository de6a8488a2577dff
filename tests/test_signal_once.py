"""A signal is run at most once per delivery, whatever arrives beside it."""

from __future__ import annotations

import json
import os
import random
import signal
import time
from pathlib import Path

import pytest

from .support import aiodaemon_cli, program, python, wait_for

#: Pairs sent: uvloop ran about one in a hundred of the second signal twice.
PAIRS = 1000


@pytest.mark.parametrize("uvloop", [True, False], ids=["uvloop", "asyncio"])
def test_signals_close_together_run_their_handlers_no_more_often_than_sent(
    tmp_path: Path, uvloop: bool
) -> None:
    """SIGWINCH then SIGHUP microseconds apart (logrotate's SIGUSR1 and a reload): never more.

    uvloop noted a signal arriving between its pipe's read and its handlers'
    run, and ran its callback from the note and again from its byte: 1,000
    pairs gave about ten reloads and on_signal runs more than were sent.
    """
    pidfile, record = tmp_path / "d.pid", tmp_path / "runs"
    record.touch()
    options = {"detach": True, "pidfile": str(pidfile), "uvloop": uvloop}
    started = python([program("signal_counter"), json.dumps(options), record])
    assert started.returncode == 0, started.stderr
    pid = int(pidfile.read_text())
    pace = random.Random(1)
    try:
        for _ in range(PAIRS):
            os.kill(pid, signal.SIGWINCH)
            # Not a synchronisation: the gap between two signals of a pair.
            end = time.perf_counter() + pace.uniform(0, 300e-6)
            while time.perf_counter() < end:
                pass
            os.kill(pid, signal.SIGHUP)
            time.sleep(0.002)  # the pace of the pairs, not a wait for anything
        # Runs were seen before the stop (which ends what is still queued).
        wait_for(lambda: record.read_text().count("reload") > 0, what="a reload")
    finally:
        stopped = aiodaemon_cli("stop", "--pidfile", pidfile)
    assert stopped.returncode == 0, stopped.stderr
    runs = record.read_text().splitlines()
    assert 0 < runs.count("reload") <= PAIRS
    assert 0 < runs.count("winch") <= PAIRS


#: Real-time signals sent while the loop is blocked.
QUEUED = 100


@pytest.mark.parametrize("uvloop", [True, False], ids=["uvloop", "asyncio"])
def test_queued_real_time_signals_each_run_the_programs_own_handler(
    tmp_path: Path, uvloop: bool
) -> None:
    """100 SIGRTMIN+3 sent while the loop is blocked: the handler runs 100 times.

    The kernel queues each real-time signal; the interpreter runs its
    Python-level handler once for all of them: counted by that, they ran once.
    """
    pidfile, runs = tmp_path / "d.pid", tmp_path / "runs"
    runs.touch()
    options = {"detach": True, "pidfile": str(pidfile), "uvloop": uvloop}
    started = python([program("rt_signal_counter"), json.dumps(options), tmp_path])
    assert started.returncode == 0, started.stderr
    pid = int(pidfile.read_text())
    try:
        wait_for((tmp_path / "blocking").exists, what="main to block the loop")
        for _ in range(QUEUED):
            os.kill(pid, signal.SIGRTMIN + 3)
        wait_for(lambda: len(runs.read_text().splitlines()) >= QUEUED, what="every run")
    finally:
        stopped = aiodaemon_cli("stop", "--pidfile", pidfile)
    assert stopped.returncode == 0, stopped.stderr
    assert len(runs.read_text().splitlines()) == QUEUED
