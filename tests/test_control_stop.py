"""stop, status and reload against real daemons: graceful stops, stale files, odd pidfiles."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

import aiodaemon

from .support import (
    PROGRAMS,
    aiodaemon_cli,
    clean_env,
    kill_quietly,
    read_json_lines,
    read_pid,
    wait_for,
)

SCRIPT = Path(sys.executable).parent / "aiodaemon"


class Daemon:
    """``aiodaemon run slow_shutdown:main`` as our child, so its exit status is ours."""

    def __init__(self, directory: Path, *extra: str, seconds: float = 2.0) -> None:
        self.dir = directory
        self.pidfile = directory / "app.pid"
        self.control = directory / "app.pid.ctl"
        self.log = directory / "log.jsonl"
        self.proc = subprocess.Popen(
            [str(SCRIPT), "run", "slow_shutdown:main", "--pidfile", str(self.pidfile),
             "--log-file", str(self.log), *extra],
            cwd=PROGRAMS,
            env=clean_env({"SLOW_SHUTDOWN_SECONDS": str(seconds)}),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        self.pid = self.proc.pid
        self.wait_event("ready", timeout=30)

    def events(self) -> list[str]:
        """The ``event`` of every log record so far."""
        if not self.log.exists():
            return []
        return [str(record["event"]) for record in read_json_lines(self.log)]

    def wait_event(self, event: str, timeout: float = 10.0) -> None:
        """Wait until the log holds a record with this event."""
        wait_for(lambda: event in self.events(), timeout, f"{event!r} in the log")

    def wait(self, timeout: float = 30.0) -> int:
        """The daemon's exit status."""
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        """SIGKILL it if it still runs, and reap it."""
        kill_quietly(self.pid)
        self.proc.wait()
        assert self.proc.stderr is not None
        self.proc.stderr.close()


@pytest.fixture
def make_daemon(tmp_path: Path) -> Iterator[list[Daemon]]:
    """Daemons started by a test (append to the list); killed at the end if still there."""
    started: list[Daemon] = []
    yield started
    for daemon in started:
        daemon.kill()


def cli(*args: str | os.PathLike[str], timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """``aiodaemon ARGS`` run to completion, output as text."""
    return aiodaemon_cli(*args, cwd=PROGRAMS, timeout=timeout)


def popen_cli(*args: str | os.PathLike[str]) -> subprocess.Popen[str]:
    """``aiodaemon ARGS`` started, not waited for."""
    return subprocess.Popen(
        [str(SCRIPT), *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=PROGRAMS,
        env=clean_env(),
        stdin=subprocess.DEVNULL,
    )


# --- a stop never forces the exit of a daemon that is already stopping --------------


def test_concurrent_stops_let_the_shutdown_hooks_finish(
    tmp_path: Path, make_daemon: list[Daemon]
) -> None:
    """Three `stop` at once: the daemon exits 0 after its whole shutdown, every stop exits 0."""
    daemon = Daemon(tmp_path)
    make_daemon.append(daemon)
    stops = [popen_cli("stop", "--pidfile", daemon.pidfile) for _ in range(3)]
    results = [(stop.wait(timeout=60), *stop.communicate()) for stop in stops]
    assert daemon.wait() == 0
    for code, _out, err in results:
        assert code == 0, err
        assert f"stopped (pid {daemon.pid})" in err
    assert any("already stopping" in err for _, _, err in results), results
    events = daemon.events()
    assert events.count("stop requested") == 1
    assert "shutdown hook finished" in events
    assert not daemon.pidfile.exists()
    assert not daemon.control.exists()


def test_stop_after_sigterm_waits_for_the_graceful_shutdown(
    tmp_path: Path, make_daemon: list[Daemon]
) -> None:
    """SIGTERM, then `stop`: stop says the daemon is already stopping and waits; exit 0."""
    daemon = Daemon(tmp_path)
    make_daemon.append(daemon)
    os.kill(daemon.pid, signal.SIGTERM)
    daemon.wait_event("shutdown hook started")
    result = cli("stop", "--pidfile", daemon.pidfile)
    assert result.returncode == 0, result.stderr
    assert f"already stopping (pid {daemon.pid}); waiting" in result.stderr
    assert daemon.wait() == 0
    assert "shutdown hook finished" in daemon.events()
    assert not daemon.control.exists()


def test_stop_without_control_socket_still_sends_sigterm(
    tmp_path: Path, make_daemon: list[Daemon]
) -> None:
    """A daemon run with --no-control is stopped by SIGTERM, gracefully (exit 0)."""
    daemon = Daemon(tmp_path, "--no-control", seconds=0.1)
    make_daemon.append(daemon)
    result = cli("stop", "--pidfile", daemon.pidfile)
    assert result.returncode == 0, result.stderr
    assert daemon.wait() == 0
    assert "shutdown hook finished" in daemon.events()


# --- what a killed daemon leaves ----------------------------------------------------


def test_stop_after_sigkill_removes_the_stale_control_socket(
    tmp_path: Path, make_daemon: list[Daemon]
) -> None:
    """After kill -9, stop removes both the stale pidfile and the stale .ctl, and says so."""
    daemon = Daemon(tmp_path)
    make_daemon.append(daemon)
    daemon.kill()
    assert daemon.control.exists()
    result = cli("stop", "--pidfile", daemon.pidfile)
    assert result.returncode == 0, result.stderr
    line = result.stderr.strip()
    assert "removed stale pidfile" in line, line
    assert f"control socket {daemon.control}" in line, line
    assert not daemon.pidfile.exists()
    assert not daemon.control.exists()


def test_stop_escalating_to_sigkill_removes_the_control_socket(
    tmp_path: Path, make_daemon: list[Daemon]
) -> None:
    """stop --timeout 1 on a daemon stuck in its shutdown: SIGKILL, then no pidfile, no .ctl."""
    daemon = Daemon(tmp_path, seconds=600)
    make_daemon.append(daemon)
    result = cli("stop", "--pidfile", daemon.pidfile, "--timeout", "1")
    assert result.returncode == 0, result.stderr
    assert "sending SIGKILL" in result.stderr
    assert "control socket" in result.stderr
    assert daemon.wait() == -signal.SIGKILL
    assert not daemon.pidfile.exists()
    assert not daemon.control.exists()


def test_stop_leaves_a_control_path_someone_accepts_on(tmp_path: Path) -> None:
    """A stale pidfile is removed, but a live listener at its .ctl path is not touched."""
    pidfile = tmp_path / "app.pid"
    pidfile.write_text("999999\n")
    control = tmp_path / "app.pid.ctl"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(str(control))
        listener.listen(1)
        result = cli("stop", "--pidfile", pidfile)
        assert result.returncode == 0, result.stderr
        assert "removed stale pidfile" in result.stderr
        assert "control socket" not in result.stderr
        assert not pidfile.exists()
        assert control.exists()


def test_stop_never_follows_a_symlink_at_the_control_path(tmp_path: Path) -> None:
    """A symlink at .ctl pointing to a dead socket is left alone, and so is its target."""
    pidfile = tmp_path / "app.pid"
    pidfile.write_text("999999\n")
    target = tmp_path / "elsewhere.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as dead:
        dead.bind(str(target))
    control = tmp_path / "app.pid.ctl"
    control.symlink_to(target)
    result = cli("stop", "--pidfile", pidfile)
    assert result.returncode == 0, result.stderr
    assert "control socket" not in result.stderr
    assert control.is_symlink()
    assert target.exists()


# --- odd pidfiles -------------------------------------------------------------------


@pytest.mark.parametrize("command", ["stop", "status", "reload", "upgrade"])
def test_an_empty_pidfile_option_is_a_usage_error(command: str) -> None:
    """--pidfile "" is refused by every control command: one line, exit 2."""
    result = cli(command, "--pidfile", "")
    assert result.returncode == 2
    assert result.stderr.strip() == "aiodaemon: --pidfile: must not be empty"


def test_status_of_a_garbage_pidfile_is_unknown(tmp_path: Path) -> None:
    """A pidfile holding no pid: status exits 4 (LSB unknown) with one clear line."""
    pidfile = tmp_path / "app.pid"
    pidfile.write_text("hello world\n")
    result = cli("status", "--pidfile", pidfile)
    assert result.returncode == 4
    assert result.stdout.strip().startswith("unknown (")
    assert "unparsable" in result.stdout
    answer = json.loads(cli("status", "--pidfile", pidfile, "--json").stdout)
    assert answer["state"] == "unknown"


def test_stop_leaves_an_unlocked_file_holding_no_pid_alone(tmp_path: Path) -> None:
    """stop on a file that is not a pidfile (a mistyped --pidfile): left alone, never removed."""
    pidfile = tmp_path / "hostname"
    pidfile.write_text("hello world\n")
    result = cli("stop", "--pidfile", pidfile)
    assert result.returncode == 0, result.stderr
    assert result.stderr == (
        f"aiodaemon: nothing to stop: pidfile {pidfile} holds no pid but unparsable data:"
        " 'hello world\\n' (not a pidfile?); left alone\n"
    )
    assert pidfile.read_text() == "hello world\n"


def test_a_locked_garbage_pidfile_is_unknown_to_stop_and_status(tmp_path: Path) -> None:
    """A locked pidfile holding no pid: status says unknown (4), stop and reload fail (1)."""
    pidfile = tmp_path / "app.pid"
    pidfile.write_text("hello world\n")
    with open(pidfile) as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        status = cli("status", "--pidfile", pidfile)
        stop = cli("stop", "--pidfile", pidfile)
        reload = cli("reload", "--pidfile", pidfile)
    assert status.returncode == 4, status.stdout
    assert stop.returncode == 1, stop.stderr
    assert "nothing signalled" in stop.stderr
    assert reload.returncode == 1, reload.stderr
    assert pidfile.read_text() == "hello world\n"


def test_status_json_of_a_dead_daemon_names_its_stale_pid(
    tmp_path: Path, make_daemon: list[Daemon]
) -> None:
    """After kill -9, status (plain and --json) exits 1 and both name the dead pid."""
    daemon = Daemon(tmp_path)
    make_daemon.append(daemon)
    daemon.kill()
    plain = cli("status", "--pidfile", daemon.pidfile)
    assert plain.returncode == 1
    assert f"pid {daemon.pid}" in plain.stdout
    result = cli("status", "--pidfile", daemon.pidfile, "--json")
    assert result.returncode == 1
    answer = json.loads(result.stdout)
    assert answer["state"] == "dead"
    assert answer["pid"] == daemon.pid


# --- output to a closed pipe ----------------------------------------------------------


def run_into_closed_pipe(
    *args: str | os.PathLike[str], stream: str
) -> subprocess.CompletedProcess[str]:
    """``aiodaemon ARGS`` with ``stream`` (stdout or stderr) a pipe nobody reads any more."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # as `| head -1` does once it has its line
    other = subprocess.PIPE
    try:
        return subprocess.run(
            [str(SCRIPT), *map(str, args)],
            stdout=write_end if stream == "stdout" else other,
            stderr=write_end if stream == "stderr" else other,
            text=True,
            cwd=PROGRAMS,
            env=clean_env(),
            stdin=subprocess.DEVNULL,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write_end)


def test_status_into_a_closed_pipe_prints_no_traceback(
    tmp_path: Path, make_daemon: list[Daemon]
) -> None:
    """`status | head -1`: no BrokenPipeError traceback, and the LSB code is kept."""
    daemon = Daemon(tmp_path)
    make_daemon.append(daemon)
    for extra in ((), ("--json",)):
        result = run_into_closed_pipe(
            "status", "--pidfile", daemon.pidfile, *extra, stream="stdout"
        )
        assert result.returncode == 0
        assert result.stderr == ""
    absent = run_into_closed_pipe("status", "--pidfile", tmp_path / "none.pid", stream="stdout")
    assert absent.returncode == 3
    assert absent.stderr == ""


def test_stop_with_a_closed_stderr_still_stops_and_exits_0(
    tmp_path: Path, make_daemon: list[Daemon]
) -> None:
    """`stop 2>&1 | head -0`: the daemon is still stopped gracefully and stop exits 0."""
    daemon = Daemon(tmp_path, seconds=0.1)
    make_daemon.append(daemon)
    result = run_into_closed_pipe("stop", "--pidfile", daemon.pidfile, stream="stderr")
    assert result.returncode == 0
    assert result.stdout == ""
    assert daemon.wait() == 0
    assert not daemon.pidfile.exists()


def test_version_into_a_closed_pipe_prints_no_traceback() -> None:
    """`aiodaemon --version | head -0`: exit 0, nothing on stderr."""
    result = run_into_closed_pipe("--version", stream="stdout")
    assert result.returncode == 0
    assert result.stderr == ""


def test_upgrade_into_a_closed_pipe_still_reports_success(tmp_path: Path) -> None:
    """An upgrade whose stdout (the new pid) nobody reads: exit 0, no traceback, new daemon."""
    pidfile = tmp_path / "app.pid"
    env = {"SLOW_SHUTDOWN_SECONDS": "0"}
    started = aiodaemon_cli(
        "start", "slow_shutdown:main", "--pidfile", pidfile, cwd=PROGRAMS, timeout=60, env=env
    )
    assert started.returncode == 0, started.stderr
    old = int(started.stdout)
    try:
        result = run_into_closed_pipe("upgrade", "--pidfile", pidfile, stream="stdout")
        assert result.returncode == 0, result.stderr
        assert result.stderr == ""
        new = read_pid(pidfile)
        assert new != old
        assert cli("stop", "--pidfile", pidfile).returncode == 0
    finally:
        # Only a verified lock holder: the old pid may be anyone's by now.
        holder = aiodaemon.read_pidfile(pidfile).running_pid
        if holder is not None:
            kill_quietly(holder)


# --- status shows the health socket ---------------------------------------------------


def test_status_lists_the_health_socket_with_its_real_port(
    tmp_path: Path, make_daemon: list[Daemon]
) -> None:
    """--health 127.0.0.1:0: status names "health" with the bound port, which answers /livez."""
    daemon = Daemon(tmp_path, "--health", "127.0.0.1:0", seconds=0.1)
    make_daemon.append(daemon)
    result = cli("status", "--pidfile", daemon.pidfile, "--json")
    assert result.returncode == 0, result.stderr
    address = json.loads(result.stdout)["sockets"]["health"]
    host, _, port = address.rpartition(":")
    assert host == "127.0.0.1"
    assert int(port) != 0
    with urllib.request.urlopen(f"http://{address}/livez", timeout=10) as response:
        assert response.status == 200
    plain = cli("status", "--pidfile", daemon.pidfile)
    assert f"listening health: {address}" in plain.stdout
    assert cli("stop", "--pidfile", daemon.pidfile).returncode == 0
    assert daemon.wait() == 0


# --- reload while starting ------------------------------------------------------------


def test_reload_while_starting_says_it_is_starting(tmp_path: Path) -> None:
    """A reload timing out during the startup hooks says "still starting"; it runs later."""
    (tmp_path / "startup").write_text("wait")
    pidfile = tmp_path / "app.pid"
    proc = subprocess.Popen(
        [str(SCRIPT), "run", "control_app:main", "--pidfile", str(pidfile)],
        cwd=PROGRAMS,
        env=clean_env({"CONTROL_APP_DIR": str(tmp_path)}),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(
            lambda: json.loads(cli("status", "--pidfile", pidfile, "--json").stdout)["pid"],
            timeout=30,
            what="the daemon to answer status",
        )
        result = cli("reload", "--pidfile", pidfile, "--timeout", "1")
        assert result.returncode == 1
        assert "still starting after 1 s; the reload runs once it is ready" in result.stderr
        assert "still reloading" not in result.stderr
        (tmp_path / "release").write_text("")
        wait_for(lambda: (tmp_path / "reloads").exists(), timeout=30, what="the queued reload")
        assert cli("stop", "--pidfile", pidfile).returncode == 0
        assert proc.wait(timeout=30) == 0
    finally:
        kill_quietly(proc.pid)
        proc.wait()
