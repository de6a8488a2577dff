"""A stop signal delivered twice (GNU timeout signals a child, then its group) is one request."""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from aiodaemon._run._forced import DUPLICATE_WINDOW, REPEAT_WINDOW

from .support import (
    PYTHON,
    REPO,
    clean_env,
    has_line,
    kill_quietly,
    program,
    python,
    read_json_lines,
    require_tool,
    signal_pending,
    spawn_program,
    wait_for,
    wait_gone,
)

#: Pauses a daemon where $AIODAEMON_TEST_PAUSE_AT says (its sitecustomize).
PAUSED = REPO / "tests" / "programs" / "paused"


@pytest.mark.parametrize("uvloop", [True, False], ids=["uvloop", "asyncio"])
def test_a_stop_signal_delivered_twice_before_the_loop_reads_it_is_one_request(
    tmp_path: Path, uvloop: bool
) -> None:
    """Both SIGTERMs reach the daemon while its loop is busy: shutdown hooks run, exit 0."""
    pidfile, log = tmp_path / "d.pid", tmp_path / "d.jsonl"
    options = {"detach": True, "pidfile": str(pidfile), "log_file": str(log), "uvloop": uvloop}
    started = python([program("double_stop"), json.dumps(options), tmp_path])
    assert started.returncode == 0, started.stderr
    pid = int(pidfile.read_text())
    wait_for((tmp_path / "blocking").exists, what="main to block the loop")
    os.kill(pid, signal.SIGTERM)
    # Delivered (not merged with the next one), yet unread by the blocked loop.
    wait_for(lambda: not signal_pending(pid, signal.SIGTERM), what="the first SIGTERM delivered")
    os.kill(pid, signal.SIGTERM)
    wait_gone(pid)
    records = read_json_lines(log)
    assert (tmp_path / "hook").read_text() == "done"
    assert records[-1]["event"] == "exit"
    assert records[-1]["status"] == 0
    received = [r for r in records if r["event"] == "signal received"]
    assert [r.get("repeated") for r in received] == [None, True]


@pytest.mark.parametrize("uvloop", [True, False], ids=["uvloop", "asyncio"])
def test_a_stop_signal_delivered_again_while_the_loop_begins_the_shutdown_is_one_request(
    tmp_path: Path, uvloop: bool
) -> None:
    """The loop took the first SIGTERM, the second arrived before its shutdown began: exit 0.

    GNU ``timeout`` (killed itself, or its time up) signals its child, then the
    child's group, microseconds apart: the loop often read the first alone, and
    took the second for a second request (forced exit 143, no shutdown hook).
    """
    pidfile, log, release, pause = (tmp_path / n for n in ("d.pid", "d.jsonl", "release", "p"))
    pause.mkdir()
    options = {
        "detach": True,
        "pidfile": str(pidfile),
        "log_file": str(log),
        "uvloop": uvloop,
        "listen": {"http": "127.0.0.1:0"},
    }
    pythonpath = os.pathsep.join([str(PAUSED), str(REPO)])
    paused = {"AIODAEMON_TEST_PAUSE": str(pause), "AIODAEMON_TEST_PAUSE_AT": "stopping"}
    started = subprocess.run(
        [PYTHON, program("held_shutdown"), json.dumps(options), release],
        env=clean_env({"PYTHONPATH": pythonpath, **paused}),
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    pid = int(pidfile.read_text())
    try:
        os.kill(pid, signal.SIGTERM)
        wait_for((pause / "paused").exists, what="the loop to take the first SIGTERM")
        os.kill(pid, signal.SIGTERM)
        wait_for(lambda: not signal_pending(pid, signal.SIGTERM), what="the second delivered")
        (pause / "go").touch()
        release.touch()
        wait_gone(pid)
    finally:
        (pause / "go").touch()
        release.touch()
        kill_quietly(pid)
    records = read_json_lines(log)
    assert records[-1]["event"] == "exit"
    assert records[-1]["status"] == 0
    received = [r for r in records if r["event"] == "signal received"]
    assert [r.get("repeated") for r in received] == [None, True]


@pytest.mark.parametrize("uvloop", [True, False], ids=["uvloop", "asyncio"])
def test_a_second_stop_signal_while_a_startup_hook_blocks_the_loop_forces_the_exit(
    tmp_path: Path, uvloop: bool
) -> None:
    """Ctrl-C, then Ctrl-C again a second later, while sync code blocks the loop: exit 130 at once.

    Both waited for the loop, which read them as one (or never, for code that
    does not return): the second press did nothing.
    """
    record, pidfile, log = tmp_path / "record.txt", tmp_path / "d.pid", tmp_path / "d.jsonl"
    record.touch()
    options = {"detach": False, "pidfile": str(pidfile), "uvloop": uvloop, "log_file": str(log)}
    proc = spawn_program("startup_stop", json.dumps(options), str(record), "block")
    try:
        wait_for(lambda: has_line(record, "startup begun"), what="the hook to block the loop")
        err = _ctrl_c_twice(proc)
    finally:
        kill_quietly(proc.pid)
        proc.communicate()
    assert proc.returncode == 128 + signal.SIGINT, err
    assert (
        "aiodaemon: forced exit (second stop signal while the event loop was blocked: SIGINT),"
        " status 130"
    ) in err
    assert not has_line(record, "startup returned")
    assert not pidfile.exists()
    _assert_log_ends_forced(log, 130, "second stop signal while the event loop was blocked: SIGINT")


def test_a_forced_exit_by_a_second_stop_signal_ends_the_log_with_why(tmp_path: Path) -> None:
    """Detached, its stderr /dev/null: the log says the forced exit, its reason and status.

    It ended at the last record before the second SIGTERM: nothing told an
    operator why the daemon was gone.
    """
    pidfile, log, release = tmp_path / "d.pid", tmp_path / "d.jsonl", tmp_path / "release"
    options = {"detach": True, "pidfile": str(pidfile), "log_file": str(log)}
    started = python([program("held_shutdown"), json.dumps(options), release])
    assert started.returncode == 0, started.stderr
    pid = int(pidfile.read_text())
    try:
        os.kill(pid, signal.SIGTERM)
        wait_for(lambda: not signal_pending(pid, signal.SIGTERM), what="the first delivered")
        delivered = time.monotonic()
        received = functools.partial(_has_event, log, "signal received")
        wait_for(received, what="the shutdown to begin")
        # Not a wait for an event: what makes it a second request is the time between.
        time.sleep(max(0.0, delivered + DUPLICATE_WINDOW + 0.1 - time.monotonic()))
        os.kill(pid, signal.SIGTERM)
        wait_gone(pid)
    finally:
        release.touch()
        kill_quietly(pid)
    assert not pidfile.exists()
    _assert_log_ends_forced(log, 143, "second stop signal during shutdown: SIGTERM")


@pytest.mark.parametrize("uvloop", [True, False], ids=["uvloop", "asyncio"])
def test_a_forced_exit_while_sync_code_logs_flat_out_is_at_once(
    tmp_path: Path, uvloop: bool
) -> None:
    """Ctrl-C twice while ``main`` logs in a blocking loop: 130, the log whole, never a hang.

    The second lands in the logging code, the log writer's own included,
    where the forced exit's own records could wait for a lock the
    interrupted code holds: they are left out there, as before.
    """
    for run in range(5):
        marker, log = tmp_path / f"flooding{run}", tmp_path / f"d{run}.jsonl"
        options = {"detach": False, "uvloop": uvloop, "log_file": str(log)}
        proc = spawn_program("log_flood_blocking", json.dumps(options), str(marker))
        pid = proc.pid
        try:
            wait_for(marker.exists, what="main to flood the log")
            err = _ctrl_c_twice(proc)
        finally:
            kill_quietly(pid)
            proc.communicate()
        assert (run, proc.returncode) == (run, 128 + signal.SIGINT), err
        records = read_json_lines(log)  # every line whole JSON
        forced = [r for r in records if r["event"] == "forced exit"]
        assert forced in ([], [records[-2]]), records[-3:]


def test_a_forced_exit_while_threads_log_flat_out_ends_the_log_with_why(tmp_path: Path) -> None:
    """Three threads logging without pause: the forced exit's records are still the last.

    The threads' records went on being written after the ``exit`` record
    (thousands of them), and some onto stderr, while the log drained.
    """
    pidfile, log = tmp_path / "d.pid", tmp_path / "d.jsonl"
    options = {"detach": True, "pidfile": str(pidfile), "log_file": str(log)}
    started = python([program("threads_log_at_stop"), json.dumps(options), tmp_path])
    assert started.returncode == 0, started.stderr
    pid = int(pidfile.read_text())
    try:
        os.kill(pid, signal.SIGTERM)
        wait_for((tmp_path / "stopping").exists, what="the shutdown hook")
        wait_for(lambda: _has_event(log, "signal received"), what="the first logged")
        # The first's record is written: the second comes well past DUPLICATE_WINDOW.
        os.kill(pid, signal.SIGTERM)
        wait_gone(pid)
    finally:
        (tmp_path / "release").touch()
        kill_quietly(pid)
    _assert_log_ends_forced(log, 143, "second stop signal during shutdown: SIGTERM")


def _ctrl_c_twice(proc: subprocess.Popen[str]) -> str:
    """SIGINT, then SIGINT again a second later (a second request); its stderr once it ended."""
    proc.send_signal(signal.SIGINT)
    wait_for(lambda: not signal_pending(proc.pid, signal.SIGINT), what="the first delivered")
    # Timed from its delivery, not its sending: a daemon not scheduled for a
    # while after the kill notes it late, and the second would be too close.
    delivered = time.monotonic()
    # Not a wait for an event: what makes it a second request is the time between.
    time.sleep(max(0.0, delivered + REPEAT_WINDOW + 0.1 - time.monotonic()))
    proc.send_signal(signal.SIGINT)
    return proc.communicate(timeout=10)[1]


def _has_event(log: Path, event: str) -> bool:
    return log.exists() and any(r["event"] == event for r in read_json_lines(log))


def _assert_log_ends_forced(log: Path, status: int, reason: str) -> None:
    """The log's last records: the forced exit (critical) and the exit, with why."""
    last = [(r["level"], r["event"], r["status"], r["reason"]) for r in read_json_lines(log)[-2:]]
    assert last == [("critical", "forced exit", status, reason), ("info", "exit", status, reason)]


def test_a_daemon_under_gnu_timeout_stopped_by_killing_timeout_runs_its_shutdown(
    tmp_path: Path,
) -> None:
    """`timeout 60 daemon`, then `kill <timeout>`: its two SIGTERMs are one request, each time.

    The second came a moment after the loop took the first, often after the
    shutdown began: 3 to 9 runs in 20 ended in a forced exit (143), no hook run.
    """
    require_tool("timeout")
    for run in range(8):
        record = tmp_path / f"record{run}"
        record.touch()
        options = {"detach": False, "log_file": str(tmp_path / f"log{run}")}
        wrapper = subprocess.Popen(
            ["timeout", "60", PYTHON, program("timeout_wrapped"), json.dumps(options), record],
            env=clean_env(), stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            wait_for(functools.partial(has_line, record, "ready"), what="the daemon under timeout")
            wrapper.send_signal(signal.SIGTERM)
            _, err = wrapper.communicate(timeout=30)
        finally:
            kill_quietly(wrapper.pid)
            wrapper.communicate()
        assert (run, wrapper.returncode, err) == (run, 0, "")
        assert record.read_text().splitlines() == ["ready", "hook done"]
