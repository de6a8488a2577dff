"""`aiodaemon stop` that has to SIGKILL a daemon kills the process group the daemon leads."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from .support import (
    AIODAEMON,
    PROGRAMS,
    aiodaemon_cli,
    children,
    clean_env,
    free_port,
    is_alive,
    kill_quietly,
    port_binds,
    proc_stat_fields,
    read_pid,
    wait_for,
)


def _group(pgid: int) -> list[int]:
    """The live processes of process group ``pgid``."""
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                if int(proc_stat_fields(int(name))[2]) == pgid and is_alive(int(name)):
                    found.append(int(name))
    return found


def _listed(path: Path) -> list[int]:
    """The worker and subprocess pids the program wrote, once it has."""
    text = wait_for(lambda: path.exists() and path.read_text(), 30, f"pids in {path}")
    return [int(line) for line in text.splitlines()]


@contextlib.contextmanager
def _cleanup(pids: list[int]) -> Iterator[None]:
    """Kill what a failed test left (the daemon's workers would hold its port)."""
    try:
        yield
    finally:
        for pid in pids:
            if pid > 1 and is_alive(pid):
                kill_quietly(pid)


def test_a_killed_daemon_takes_its_workers_and_subprocesses_along(tmp_path: Path) -> None:
    """stop --timeout 1: the daemon, its pool workers and its subprocess gone, the port free."""
    port, listed = free_port(), tmp_path / "pids"
    pidfile = tmp_path / "app.pid"
    started = aiodaemon_cli(
        "start", "pool_hangs_at_stop:main", "--pidfile", pidfile,
        "--listen", f"tcp=127.0.0.1:{port}", "--log-file", tmp_path / "log.jsonl",
        "--shutdown-timeout", "60",
        cwd=PROGRAMS, env={"GROUP_PIDS": str(listed)},
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    pid = int(started.stdout)
    members = _listed(listed)
    left: list[int] = [pid, *members]
    with _cleanup(left):
        group = _group(os.getpgid(pid))
        left += group
        stop = aiodaemon_cli("stop", "--pidfile", pidfile, "--timeout", "1", timeout=60)
        assert stop.returncode == 0, stop.stderr
        assert [p for p in left if is_alive(p)] == []
        assert port_binds(port)
        # Its own group (`kill -- -PID` reaches all of it too), told in the stop's line.
        assert {pid, *members} <= set(group)
        assert stop.stderr.splitlines()[-1].startswith(
            f"aiodaemon: killed (pid {pid}) and its process group ({len(group) - 1} more"
            " processes) 1s after the stop request; removed pidfile"
        )
        again = aiodaemon_cli(
            "start", "pool_hangs_at_stop:main", "--pidfile", pidfile,
            "--listen", f"tcp=127.0.0.1:{port}", "--log-file", tmp_path / "log.jsonl",
            cwd=PROGRAMS, env={"GROUP_PIDS": str(tmp_path / "pids2")},
        )  # fmt: skip
        assert again.returncode == 0, again.stderr
        left += [int(again.stdout), *_listed(tmp_path / "pids2")]
        # Its hook hangs for good: this stop has to kill it too.
        stop = aiodaemon_cli("stop", "--pidfile", pidfile, "--timeout", "0", timeout=60)
        assert stop.returncode == 0, stop.stderr


def test_a_daemon_in_someone_else_s_group_is_killed_alone(tmp_path: Path) -> None:
    """In its starter's process group: the daemon alone is killed, its children said left."""
    port, listed = free_port(), tmp_path / "pids"
    pidfile = tmp_path / "app.pid"
    # Our child, in our process group (a script's, a supervisor's): not the daemon's to end.
    daemon = subprocess.Popen(
        [str(AIODAEMON), "run", "pool_hangs_at_stop:main", "--pidfile", str(pidfile),
         "--listen", f"tcp=127.0.0.1:{port}", "--log-file", str(tmp_path / "log.jsonl"),
         "--shutdown-timeout", "60"],
        cwd=PROGRAMS, env=clean_env({"GROUP_PIDS": str(listed)}),
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    members: list[int] = []
    try:
        _listed(listed)
        # Every child, also a worker that answered no call (cleaned up below).
        members = children(daemon.pid)
        assert read_pid(pidfile) == daemon.pid
        assert os.getpgid(daemon.pid) == os.getpgid(0)
        stop = aiodaemon_cli("stop", "--pidfile", pidfile, "--timeout", "1", timeout=60)
        assert stop.returncode == 0, stop.stderr
        assert daemon.wait(10) == -signal.SIGKILL
        # The pool's workers and the subprocess: its children, whatever it forked besides.
        assert stop.stderr.splitlines()[-1].startswith(
            f"aiodaemon: killed (pid {daemon.pid}) 1s after the stop request;"
            f" {len(members)} child processes of it left running: not in a process group of"
            " its own, they were not killed with it; removed pidfile"
        )
        assert all(is_alive(member) for member in members)
    finally:
        kill_quietly(daemon.pid)
        daemon.wait(10)
        for member in members:
            if is_alive(member):
                kill_quietly(member)


@pytest.mark.parametrize("session_leader", ["alive", "gone"])
def test_a_daemon_leading_a_shell_job_is_killed_without_the_rest_of_the_pipeline(
    tmp_path: Path, session_leader: str
) -> None:
    """``aiodaemon run app | cat > out`` under job control: the group is the job's, not its own.

    The shell makes the pipeline a group led by its first command, the daemon;
    ``cat`` is the user's (a ``gzip`` of the log, killed, lost it all). Also in
    a session whose leader is gone (a CI runner's), as a detached daemon's is:
    the shell that is older than the daemon tells them apart.
    """
    port, listed = free_port(), tmp_path / "pids"
    pidfile, status, ended = tmp_path / "app.pid", tmp_path / "cat-status", tmp_path / "ended"
    run = (
        f"{AIODAEMON} run pool_hangs_at_stop:main --pidfile {pidfile}"
        f" --listen tcp=127.0.0.1:{port} --shutdown-timeout 60 2>&1"
    )
    script = (
        f"set -m; {run} | (cat > {tmp_path / 'out'}; echo $? > {status}); wait; echo $? > {ended}"
    )
    # "gone": a session leader that starts the shell and exits at once.
    command = ["bash", "-c", script]
    if session_leader == "gone":
        command = ["bash", "-c", 'bash -c "$1" &', "leader", script]
    shell = subprocess.Popen(
        command, cwd=PROGRAMS, env=clean_env({"GROUP_PIDS": str(listed)}),
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    members: list[int] = []
    try:
        _listed(listed)
        pid = read_pid(pidfile)
        if session_leader == "gone":
            assert shell.wait(30) == 0
            assert not is_alive(os.getsid(pid))
        members = children(pid)
        job = _group(pid)  # led by the daemon: it, its children, the pipeline's reader
        assert set(job) - {pid, *members}, job
        stop = aiodaemon_cli("stop", "--pidfile", pidfile, "--timeout", "1", timeout=60)
        assert stop.returncode == 0, stop.stderr
        assert stop.stderr.splitlines()[-1].startswith(
            f"aiodaemon: killed (pid {pid}) 1s after the stop request;"
            f" {len(members)} child processes of it left running: not in a process group of"
            " its own, they were not killed with it;"
        )
        for member in members:  # the daemon's own, left as said; ended here
            kill_quietly(member)
        # The reader was not killed: it saw the end of its input and exited 0.
        assert wait_for(lambda: status.exists() and status.read_text(), 30, "cat's status") == "0\n"
        assert wait_for(lambda: ended.exists() and ended.read_text(), 30, "the shell") == "0\n"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(shell.pid, signal.SIGKILL)  # the session's shells, if a test failed
        shell.wait(10)
        for member in members:
            if is_alive(member):
                kill_quietly(member)


def test_in_a_pid_namespace_made_from_a_terminal_the_pipeline_is_not_killed(
    tmp_path: Path,
) -> None:
    """``unshare --pid --fork --mount-proc`` from a terminal: the session began outside.

    ``getsid()`` is 0 for every process there; that was taken for the daemon's
    own session, and the pipeline's reader was SIGKILLed with it. The whole
    scene runs inside the namespace, ``stop`` too (the pidfile holds its pids).
    """
    listed, pidfile = tmp_path / "pids", tmp_path / "app.pid"
    status, said = tmp_path / "cat-status", tmp_path / "stop-said"
    run = (
        f"{AIODAEMON} run pool_hangs_at_stop:main --pidfile {pidfile}"
        f" --listen tcp=127.0.0.1:{free_port()} --shutdown-timeout 60 2>&1"
    )
    # The daemon's children are taken from /proc, not from the list: a pool
    # worker that answered no task is not on it, and it would hold the pipe.
    # The scene ends without ``wait``: bash is the namespace's init, and its
    # exit kills whatever is left, so no leftover can hang it.
    script = (
        f"set -m; {run} | (cat > {tmp_path / 'out'}; echo $? > {status}) &"
        f" for i in $(seq 300); do [ -s {listed} ] && break; sleep 0.1; done;"
        f" kids=$(pgrep -P $(cat {pidfile}));"
        f" {AIODAEMON} stop --pidfile {pidfile} --timeout 1 2> {said};"
        f" kill -9 $kids $(cat {pidfile}) 2>/dev/null;"
        f" for i in $(seq 300); do [ -s {status} ] && break; sleep 0.1; done"
    )
    scene = subprocess.run(
        ["unshare", "--pid", "--fork", "--mount-proc", "bash", "-c", script],
        cwd=PROGRAMS, env=clean_env({"GROUP_PIDS": str(listed)}),
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=90,
    )  # fmt: skip
    assert scene.returncode == 0, scene.stderr
    last = (said.read_text().splitlines() or ["stop said nothing"])[-1]
    assert " child processes of it left running: not in a process group of its own" in last
    assert "its process group" not in last.split(";")[0], last
    # The reader was not killed: it saw the end of its input and exited 0.
    assert status.exists(), scene.stderr
    assert status.read_text() == "0\n"


def test_a_stop_continues_the_whole_stopped_group_of_its_own(tmp_path: Path) -> None:
    """``kill -STOP -- -PGID``: stop continues the group, not the daemon alone.

    The shutdown hook that waits for its helper then ends it, and the daemon
    stops gracefully instead of at the SIGKILL.
    """
    pidfile = tmp_path / "app.pid"
    started = aiodaemon_cli(
        "start", "child_at_stop:main", "--pidfile", pidfile, "--log-file", tmp_path / "log.jsonl",
        cwd=PROGRAMS,
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    pid = int(started.stdout)
    helpers = wait_for(lambda: children(pid), 30, "the helper")
    with _cleanup([pid, *helpers]):
        os.killpg(pid, signal.SIGSTOP)
        wait_for(lambda: all(proc_stat_fields(p)[0] == "T" for p in (pid, *helpers)), 30, "stopped")
        stop = aiodaemon_cli("stop", "--pidfile", pidfile, "--timeout", "20", timeout=60)
        assert stop.returncode == 0, stop.stderr
        assert stop.stderr.splitlines()[-1] == f"aiodaemon: stopped (pid {pid})"
        assert [p for p in helpers if is_alive(p)] == []
