"""A reload the shutdown cancels: the waiting command, the log and the record say so."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
from pathlib import Path

from .support import (
    AIODAEMON,
    PYTHON,
    clean_env,
    full_pipe,
    kill_quietly,
    program,
    read_json_lines,
    spawn_program,
    wait_for,
)


def test_a_hung_reload_cancelled_by_a_stop_is_reported_as_cancelled(tmp_path: Path) -> None:
    """reload waits on a hanging hook, then SIGTERM: it exits 1 "cancelled", the log says so."""
    pidfile, log, record = tmp_path / "d.pid", tmp_path / "log.jsonl", tmp_path / "record.txt"
    record.touch()
    options = {"detach": False, "pidfile": str(pidfile), "log_file": str(log)}
    daemon = spawn_program("exit_request", json.dumps(options), str(record), "reload:hang")
    status, err, reload_status, reload_err = _sigterm_in_reload(
        daemon, pidfile, record, "reload hook"
    )
    assert status == 0, err
    assert reload_status == 1, reload_err
    assert "reload cancelled: the daemon is stopping (pid " in reload_err
    assert "still running" not in reload_err
    assert "did not run" not in reload_err
    records = read_json_lines(log)
    (cancelled,) = [r for r in records if r["event"] == "reload cancelled"]
    assert cancelled["hook"] == "__main__.reload"
    assert cancelled["error"] == "cancelled: the daemon is stopping"
    assert records[-1]["event"] == "exit"


def _ask(control: Path, request: bytes) -> socket.socket:
    """A connection to the control socket that sent ``request``."""
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.connect(str(control))
    conn.sendall(request)
    return conn


def _state(control: Path) -> str:
    """The daemon's state, asked on its control socket."""
    with _ask(control, b'{"v": 1, "cmd": "status"}\n') as conn:
        answer = json.loads(conn.makefile("rb").readline())
    return str(answer["state"])


def test_a_reload_whose_hooks_had_not_begun_at_the_stop_runs_none(tmp_path: Path) -> None:
    """A stop while the reload waits for the log files to reopen: no reload hook runs after it.

    The waiting ``reload`` is told the reload did not run, and so it must be: the
    hooks began once the reopen was over (a stalled stderr: a second), during the
    drain delay, beside a stopping daemon, after the stop had refused the reload.
    """
    pidfile, record = tmp_path / "d.pid", tmp_path / "record.txt"
    record.touch()
    control = tmp_path / "d.pid.ctl"
    options = {"detach": False, "pidfile": str(pidfile), "drain_delay": 3.0}
    # Logging to stderr, a pipe nobody reads: the log writer is stuck, and the
    # reload waits (up to a second) for it to reopen the files before its hooks.
    read_end, write_end = full_pipe()
    reader = threading.Thread(target=_read_all, args=(read_end,))
    daemon = subprocess.Popen(
        [PYTHON, str(program("exit_request")), json.dumps(options), str(record), "idle:none"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=write_end,
        env=clean_env(),
    )
    os.close(write_end)
    try:
        wait_for(lambda: "main" in record.read_text().splitlines(), what="main running")
        with _ask(control, b'{"v": 1, "cmd": "reload", "timeout": 60}\n') as reload:
            wait_for(lambda: _state(control) == "reloading", what="the reload requested")
            daemon.send_signal(signal.SIGTERM)
            answer = json.loads(reload.makefile("rb").readline())
        reader.start()
        assert daemon.wait(timeout=30) == 0
    finally:
        kill_quietly(daemon.pid)
        daemon.wait()
        if reader.is_alive():
            reader.join(30)
        os.close(read_end)
    assert answer["error"] == "the daemon is stopping; the reload did not run", answer
    assert record.read_text().splitlines() == ["startup hook", "main", "shutdown hook"]


def _read_all(fd: int) -> None:
    """Read ``fd`` until its writers are gone: the daemon's log drains at its exit."""
    while os.read(fd, 65536):
        pass


def _stop_during_reload(tmp_path: Path, case: str) -> tuple[int, str, int, str, list[str]]:
    """Start reload_swallows_cancel (CASE), ``aiodaemon reload``, then SIGTERM in the hook.

    Returns:
        The daemon's status and stderr, ``reload``'s status and stderr, the record.
    """
    pidfile, log, record = tmp_path / "d.pid", tmp_path / "log.jsonl", tmp_path / "record.txt"
    record.touch()
    options = {
        "detach": False,
        "pidfile": str(pidfile),
        "log_file": str(log),
        "shutdown_timeout": 6.0,
    }
    daemon = spawn_program("reload_swallows_cancel", json.dumps(options), str(record), case)
    status, err, reload_status, reload_err = _sigterm_in_reload(
        daemon, pidfile, record, "fetch_config"
    )
    events = [r["event"] for r in read_json_lines(log)]
    assert events.count("reload cancelled") == 1, events
    assert "reload finished" not in events
    return status, err, reload_status, reload_err, record.read_text().splitlines()


def _sigterm_in_reload(
    daemon: subprocess.Popen[str], pidfile: Path, record: Path, hook: str
) -> tuple[int, str, int, str]:
    """Once ``main`` runs: ``aiodaemon reload``, then SIGTERM once ``hook`` is recorded.

    Returns:
        The daemon's status and stderr, ``reload``'s status and stderr.
    """
    reload = None
    try:
        wait_for(lambda: "main" in record.read_text().splitlines(), what="main running")
        reload = subprocess.Popen(
            [str(AIODAEMON), "reload", "--pidfile", str(pidfile), "--timeout", "30"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=clean_env(),
        )
        wait_for(lambda: hook in record.read_text().splitlines(), what=f"{hook} recorded")
        daemon.send_signal(signal.SIGTERM)
        _, reload_err = reload.communicate(timeout=30)
        _, err = daemon.communicate(timeout=30)
    finally:
        kill_quietly(daemon.pid)
        daemon.wait()
        if reload is not None:
            kill_quietly(reload.pid)
            reload.wait()
    return daemon.returncode, err, reload.returncode, reload_err


def test_a_reload_hook_swallowing_the_stop_ends_the_reload(tmp_path: Path) -> None:
    """A reload hook swallows the stop's cancellation: no later reload hook runs, reload exits 1."""
    status, err, reload_status, reload_err, lines = _stop_during_reload(tmp_path, "next")
    assert status == 0, err
    assert reload_status == 1, reload_err
    assert "reload cancelled: the daemon is stopping (pid " in reload_err
    assert "fetch_config interrupted" in lines
    assert "apply_config" not in lines
    assert lines[-1] == "main cleanup"


def test_a_reload_hook_going_on_after_the_stop_does_not_hold_main(tmp_path: Path) -> None:
    """A reload hook that swallows the stop and goes on: main is still cancelled, exit 0."""
    status, err, reload_status, reload_err, lines = _stop_during_reload(tmp_path, "slow")
    assert status == 0, err
    assert "stuck" not in err
    assert reload_status == 1, reload_err
    assert "reload cancelled: the daemon is stopping (pid " in reload_err
    assert "apply_config" not in lines
    assert "main cleanup" in lines
