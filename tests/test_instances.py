"""Several daemons on one host: what they share (a log file) stays whole and theirs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections import defaultdict
from pathlib import Path

from .support import (
    PYTHON,
    aiodaemon_cli,
    clean_env,
    install_program,
    is_alive,
    program,
    read_pid,
    wait_for,
)


def ticks(path: Path) -> dict[int, list[int]]:
    """The ``n`` of each ``tick`` record in ``path``, by pid; every line must be a record."""
    found: dict[int, list[int]] = defaultdict(list)
    if not path.exists():
        return found
    data = path.read_bytes()
    # The last line may be one a daemon is writing right now: whole lines only.
    for line in data[: data.rfind(b"\n") + 1].splitlines():
        record = json.loads(line)  # a line torn by another daemon's write fails here
        if record["event"] == "tick":
            found[record["pid"]].append(record["n"])
    return found


def test_daemons_sharing_a_log_file_write_whole_lines_and_lose_none_across_a_rotation(
    tmp_path: Path,
) -> None:
    """Three daemons, one log file, rotated: every line whole, each daemon's records all there."""
    log = tmp_path / "shared.jsonl"
    pidfiles = [tmp_path / f"tick{index}.pid" for index in range(3)]
    pids = []
    try:
        for pidfile in pidfiles:
            subprocess.run(
                [PYTHON, str(program("log_ticking_daemon")), str(pidfile), str(log)],
                env=clean_env(),
                check=True,
                timeout=30,
            )
            pids.append(read_pid(pidfile))
        wait_for(lambda: all(len(ticks(log)[pid]) >= 50 for pid in pids), what="ticks")
        rotated = tmp_path / "shared.jsonl.1"
        os.rename(log, rotated)
        for pid in pids:
            os.kill(pid, signal.SIGUSR1)  # what logrotate's postrotate must do for each
        wait_for(lambda: all(ticks(log)[pid] for pid in pids), what="ticks in the new file")
    finally:
        for pidfile in pidfiles:
            aiodaemon_cli("stop", "--pidfile", pidfile)
    before, after = ticks(rotated), ticks(log)
    for pid in pids:
        numbers = before[pid] + after[pid]
        assert numbers == list(range(len(numbers))), f"pid {pid} lost or repeated records"
        assert before[pid], f"pid {pid} wrote nothing before the rotation"
        assert after[pid], f"pid {pid} wrote nothing after it"


def test_a_daemon_on_another_instances_control_path_is_not_that_instance(
    tmp_path: Path,
) -> None:
    """Instance b with --control a.pid.ctl: status, stop and start of a (not running) leave b be."""
    install_program("cli_app", tmp_path)
    a, b = tmp_path / "a.pid", tmp_path / "b.pid"
    started = aiodaemon_cli(
        "start", "app:main", "--pidfile", b, "--control", f"{a}.ctl", cwd=tmp_path
    )
    assert started.returncode == 0, started.stderr
    other = int(started.stdout)
    try:
        status = aiodaemon_cli("status", "--pidfile", a)
        assert status.returncode == 3, status.stdout + status.stderr
        assert status.stdout.startswith("not running")
        stopped = aiodaemon_cli("stop", "--pidfile", a)
        assert stopped.returncode == 0, stopped.stderr
        assert f"stopped (pid {other})" not in stopped.stderr
        assert is_alive(other)
        # a cannot start while b holds its socket path, and is not said to be running.
        refused = aiodaemon_cli("start", "app:main", "--pidfile", a, cwd=tmp_path)
        assert refused.returncode == 1, refused.stderr
        assert "Address already in use" in refused.stderr
        assert is_alive(other)
        # b itself, its pidfile removed, is still found through its socket.
        b.unlink()
        stopped = aiodaemon_cli("stop", "--pidfile", b, "--control", f"{a}.ctl")
        assert stopped.stderr.endswith(f"aiodaemon: stopped (pid {other})\n"), stopped.stderr
    finally:
        if is_alive(other):
            aiodaemon_cli("stop", "--pidfile", b, "--control", f"{a}.ctl")
