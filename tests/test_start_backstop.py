"""``start_timeout`` holds even while a startup hook blocks the event loop (sync code).

Detached, the launcher enforces it; in the foreground, and for an upgrade's
successor whose old daemon vanished, a backstop thread of the daemon's does:
exit 1, "not ready after S s", about ``start_timeout + shutdown_timeout``
after the start. Real daemons, real signals.
"""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

from .support import (
    AIODAEMON,
    PYTHON,
    aiodaemon_cli,
    clean_env,
    kill_quietly,
    program,
    read_json_lines,
    read_pid,
    wait_for,
    wait_gone,
)

#: The hook blocks for 60 s; an exit expected after about 2 s must come well
#: before that (generous for a loaded machine, still proving it did not wait).
EXIT_BOUND = 30.0


def test_a_foreground_startup_hook_blocking_the_loop_cannot_outlast_start_timeout(
    tmp_path: Path,
) -> None:
    """`aiodaemon run` whose startup hook sleeps 60 s: exit 1 "not ready after 1 s", files gone."""
    record, pidfile, sock = tmp_path / "record.txt", tmp_path / "d.pid", tmp_path / "app.sock"
    record.touch()
    (tmp_path / "record.txt.block").touch()
    argv = [AIODAEMON, "run", "tests.programs.startup_blocks:main", "--pidfile", pidfile]
    argv += ["--listen", f"app=unix:{sock}", "--start-timeout", "1", "--shutdown-timeout", "1"]
    proc = subprocess.Popen(
        list(map(str, argv)),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env({"AIODAEMON_TEST_RECORD": str(record)}),
    )
    try:
        wait_for(lambda: pidfile.exists() and sock.exists(), 30, "the pidfile and the socket")
        _, err = proc.communicate(timeout=EXIT_BOUND)
    finally:
        kill_quietly(proc.pid)
        proc.wait()
    assert proc.returncode == 1, err
    assert "aiodaemon: forced exit (not ready after 1 s, event loop blocked), status 1" in err
    assert '"event":"not ready after 1 s"' in err
    assert record.read_text().split()[0] == "blocking"
    assert "main running" not in record.read_text()
    leftover = [p.name for p in (pidfile, sock, tmp_path / "d.pid.ctl") if p.exists()]
    assert leftover == []


def test_a_successor_left_alone_with_a_blocked_loop_cannot_outlast_start_timeout(
    tmp_path: Path,
) -> None:
    """The old daemon SIGKILLed while its successor's startup hook blocks: the successor exits."""
    record, pidfile = tmp_path / "record.txt", tmp_path / "d.pid"
    record.touch()
    options = {
        "detach": True,
        "pidfile": str(pidfile),
        "log_file": str(tmp_path / "log.jsonl"),
        "start_timeout": 1,
        "shutdown_timeout": 1,
    }
    started = subprocess.run(
        [PYTHON, str(program("startup_blocks")), json.dumps(options), str(record)],
        capture_output=True,
        text=True,
        env=clean_env(),
        cwd=tmp_path,
        timeout=60,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert started.returncode == 0, started.stderr
    old = read_pid(pidfile)
    successor = 0
    (tmp_path / "record.txt.block").touch()
    upgrade = subprocess.Popen(
        [str(AIODAEMON), "upgrade", "--pidfile", str(pidfile), "--timeout", "60"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(),
    )
    try:

        def blocking() -> int:
            lines = [x for x in record.read_text().splitlines() if x.startswith("blocking ")]
            return int(lines[0].split()[1]) if lines else 0

        successor = wait_for(blocking, 30, "the successor's blocking startup hook")
        kill_quietly(old, signal.SIGKILL)
        # Without the backstop the successor waits for its hook (60 s), then starts.
        wait_gone(successor, EXIT_BOUND)
        upgrade.communicate(timeout=EXIT_BOUND)
    finally:
        for pid in (old, successor, upgrade.pid):
            if pid:
                kill_quietly(pid)
        upgrade.communicate()
    # Only the old daemon's main ran.
    assert record.read_text().splitlines().count("main running") == 1
    forced = [r for r in read_json_lines(tmp_path / "log.jsonl") if r["event"] == "forced exit"]
    assert [(r["pid"], r["reason"], r["status"]) for r in forced] == [
        (successor, "not ready after 1 s, event loop blocked", 1)
    ]
    status = aiodaemon_cli("status", "--pidfile", pidfile)
    assert status.returncode in (1, 3), status.stdout + status.stderr
