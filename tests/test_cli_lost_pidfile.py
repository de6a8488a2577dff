"""A pidfile removed, emptied or overwritten by hand while its daemon runs (audit F4, F5).

The daemon runs on and serves its control socket; ``status`` finds it there
(or, for an emptied pidfile, as the holder of the lock), ``stop`` and
``reload`` act on it, and ``start`` says what is in the way.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .support import (
    PROGRAMS,
    PYTHON,
    REPO,
    aiodaemon_cli,
    is_alive,
    kill_quietly,
    read_pid,
    wait_gone,
)

TARGET = "tests.programs.security_daemon:main"


def cli(*args: str | os.PathLike[str]) -> subprocess.CompletedProcess[str]:
    """``aiodaemon ARGS`` run to completion from the repository, as text."""
    return aiodaemon_cli(*args, cwd=REPO, timeout=60)


Start = Callable[..., int]


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Start]:
    """``aiodaemon start`` on ``tmp_path/app.pid``; returns the pid; killed at the end."""
    pids: list[int] = []

    def started(*extra: str) -> int:
        result = cli("start", TARGET, "--pidfile", tmp_path / "app.pid", *extra)
        assert result.returncode == 0, result.stderr
        pids.append(int(result.stdout))
        return pids[-1]

    yield started
    for pid in pids:
        kill_quietly(pid)


def test_status_finds_a_daemon_whose_pidfile_was_removed(tmp_path: Path, start: Start) -> None:
    """`rm` of the pidfile: status still says running (0) with its pid, and why it had to look."""
    pid = start()
    pidfile = tmp_path / "app.pid"
    pidfile.unlink()
    result = cli("status", "--pidfile", pidfile, "--json")
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert (answer["state"], answer["pid"]) == ("running", pid)
    assert result.stderr == (
        f"aiodaemon: warning: pidfile {pidfile} was removed, but pid {pid} runs on "
        f"and serves {pidfile}.ctl\n"
    )


def test_start_names_the_daemon_still_serving_its_control_socket(
    tmp_path: Path, start: Start
) -> None:
    """`start` after the `rm`: "already running" naming pid and removed pidfile, not EADDRINUSE."""
    pid = start()
    pidfile = tmp_path / "app.pid"
    pidfile.unlink()
    result = cli("start", TARGET, "--pidfile", pidfile)
    assert result.stdout == ""
    assert result.stderr == (
        f"aiodaemon: already running (pid {pid} still serves control socket {pidfile}.ctl, "
        f"but its pidfile {pidfile} was removed; 'aiodaemon stop --pidfile {pidfile}' "
        "finds it there)\n"
    )
    assert result.returncode == 0
    assert not pidfile.exists()
    assert is_alive(pid)


def test_stop_and_reload_act_on_a_daemon_whose_pidfile_was_removed(
    tmp_path: Path, start: Start
) -> None:
    """reload reaches it (0); upgrade refuses (1, it runs on); stop stops it, then start works."""
    pid = start()
    pidfile = tmp_path / "app.pid"
    pidfile.unlink()
    reload = cli("reload", "--pidfile", pidfile)
    assert reload.returncode == 0, reload.stderr
    assert reload.stderr.endswith(
        f"aiodaemon: reloaded (pid {pid}; no reload hooks; log files reopened)\n"
    )
    upgrade = cli("upgrade", "--pidfile", pidfile)
    assert upgrade.returncode == 1, upgrade.stderr
    assert f"pid {pid} runs, but pidfile {pidfile} was removed; not upgraded" in upgrade.stderr
    assert is_alive(pid)
    stop = cli("stop", "--pidfile", pidfile)
    assert stop.returncode == 0, stop.stderr
    assert stop.stderr == (
        f"aiodaemon: pidfile {pidfile} was removed; pid {pid} found serving {pidfile}.ctl\n"
        f"aiodaemon: stopped (pid {pid})\n"
    )
    wait_gone(pid)
    assert not Path(f"{pidfile}.ctl").exists()
    assert start() != pid


def test_a_killed_daemons_socket_without_pidfile_is_not_running(
    tmp_path: Path, start: Start
) -> None:
    """A leftover socket nobody serves, pidfile gone: still "not running" (3), and start works."""
    pid = start()
    pidfile = tmp_path / "app.pid"
    os.kill(pid, signal.SIGKILL)
    wait_gone(pid)
    pidfile.unlink()
    assert Path(f"{pidfile}.ctl").exists()
    status = cli("status", "--pidfile", pidfile)
    assert status.returncode == 3, status.stderr
    assert status.stdout == f"not running (no pidfile {pidfile})\n"
    assert start() != pid


def test_stop_removes_the_socket_a_killed_daemon_left_without_pidfile(
    tmp_path: Path, start: Start
) -> None:
    """Pidfile removed by hand, then the daemon killed: ``stop`` cleans up its socket file (0)."""
    pid = start()
    pidfile, control = tmp_path / "app.pid", tmp_path / "app.pid.ctl"
    pidfile.unlink()
    os.kill(pid, signal.SIGKILL)
    wait_gone(pid)
    stop = cli("stop", "--pidfile", pidfile)
    assert stop.returncode == 0, stop.stderr
    assert stop.stderr == (
        f"aiodaemon: not running (no pidfile {pidfile}); removed its stale control socket"
        f" {control}\n"
    )
    assert not control.exists()
    again = cli("stop", "--pidfile", pidfile)
    assert again.stderr == f"aiodaemon: not running (no pidfile {pidfile})\n"


@pytest.mark.parametrize("control", [True, False], ids=["control", "no-control"])
def test_an_emptied_pidfile_names_its_daemon(tmp_path: Path, start: Start, control: bool) -> None:
    """`: > app.pid`: status says running with the pid (0), reload and stop reach the daemon."""
    pid = start(*(() if control else ("--no-control",)))
    pidfile = tmp_path / "app.pid"
    assert read_pid(pidfile) == pid
    pidfile.write_bytes(b"")
    status = cli("status", "--pidfile", pidfile, "--json")
    assert status.returncode == 0, status.stderr
    answer = json.loads(status.stdout)
    assert (answer["state"], answer["pid"]) == ("running", pid)
    how = f"serves {pidfile}.ctl" if control else "holds its lock"
    assert f"pidfile {pidfile} holds no pid (emptied?), but pid {pid} runs on and {how}" in (
        status.stderr
    )
    reload = cli("reload", "--pidfile", pidfile)
    assert reload.returncode == 0, reload.stderr
    stop = cli("stop", "--pidfile", pidfile)
    assert stop.returncode == 0, stop.stderr
    assert stop.stderr.endswith(f"aiodaemon: stopped (pid {pid})\n")
    wait_gone(pid)


def test_a_pidfile_overwritten_in_place_names_its_daemon_serving_its_socket(
    tmp_path: Path, start: Start
) -> None:
    """Garbage written over the locked pidfile: found on its control socket, by every command.

    status said unknown (4) of a daemon that answered on its socket, and start
    waited for the lock, then said "already running (pid not yet written)".
    """
    pid = start()
    pidfile = tmp_path / "app.pid"
    _overwrite(pidfile)
    why = f"pidfile {pidfile} holds no pid but unparsable data: 'hello\\n'"
    status = cli("status", "--pidfile", pidfile, "--json")
    assert status.returncode == 0, status.stderr
    answer = json.loads(status.stdout)
    assert (answer["state"], answer["pid"]) == ("running", pid)
    assert status.stderr == (
        f"aiodaemon: warning: {why}, but pid {pid} runs on and serves {pidfile}.ctl\n"
    )
    again = cli("start", TARGET, "--pidfile", pidfile)
    assert (again.returncode, again.stdout, again.stderr) == (
        0,
        "",
        f"aiodaemon: already running (pid {pid} still serves control socket {pidfile}.ctl,"
        f" but its {why}; 'aiodaemon stop --pidfile {pidfile}' finds it there)\n",
    )
    reload = cli("reload", "--pidfile", pidfile)
    assert reload.returncode == 0, reload.stderr
    stop = cli("stop", "--pidfile", pidfile)
    assert stop.returncode == 0, stop.stderr
    assert stop.stderr == (
        f"aiodaemon: {why}; pid {pid} found serving {pidfile}.ctl\naiodaemon: stopped (pid {pid})\n"
    )
    wait_gone(pid)


def test_a_pidfile_overwritten_in_place_without_control_socket_is_never_signalled(
    tmp_path: Path, start: Start
) -> None:
    """Without a socket, a lock holder of bytes that are not a pid is not believed: unknown."""
    pid = start("--no-control")
    pidfile = tmp_path / "app.pid"
    _overwrite(pidfile)
    status = cli("status", "--pidfile", pidfile)
    assert (status.returncode, status.stdout.split(" ")[0]) == (4, "unknown"), status.stdout
    stop = cli("stop", "--pidfile", pidfile)
    assert stop.returncode == 1, stop.stderr
    assert "nothing signalled" in stop.stderr
    assert is_alive(pid)


def _overwrite(pidfile: Path) -> None:
    """Write bytes that are not a pid over ``pidfile`` in place: same inode, its lock held."""
    with open(pidfile, "r+b") as f:
        f.write(b"hello\n")
        f.truncate()


def test_a_pidfile_replaced_by_a_copy_names_its_daemon(tmp_path: Path, start: Start) -> None:
    """A copy moved over the pidfile (an editor's save, `sed -i`): the daemon is still found.

    The copy is a new file nobody locks: status said "dead" (1) of the running
    daemon, reload "not running" (7), and start failed on the control socket.
    """
    pid = start()
    pidfile = tmp_path / "app.pid"
    copy = tmp_path / "app.pid.new"
    copy.write_bytes(pidfile.read_bytes())
    copy.replace(pidfile)
    why = f"pidfile {pidfile} was replaced (nobody holds its lock)"
    status = cli("status", "--pidfile", pidfile, "--json")
    assert status.returncode == 0, status.stderr
    answer = json.loads(status.stdout)
    assert (answer["state"], answer["pid"]) == ("running", pid)
    assert status.stderr == (
        f"aiodaemon: warning: {why}, but pid {pid} runs on and serves {pidfile}.ctl\n"
    )
    reload = cli("reload", "--pidfile", pidfile)
    assert reload.returncode == 0, reload.stderr
    assert reload.stderr.endswith(
        f"aiodaemon: reloaded (pid {pid}; no reload hooks; log files reopened)\n"
    )
    started = cli("start", TARGET, "--pidfile", pidfile)
    assert (started.returncode, started.stdout) == (0, "")
    assert started.stderr == (
        f"aiodaemon: already running (pid {pid} still serves control socket {pidfile}.ctl, "
        f"but its {why}; 'aiodaemon stop --pidfile {pidfile}' finds it there)\n"
    )
    stop = cli("stop", "--pidfile", pidfile)
    assert stop.returncode == 0, stop.stderr
    assert stop.stderr.splitlines() == [
        f"aiodaemon: {why}; pid {pid} found serving {pidfile}.ctl",
        # Not "which the daemon could not remove": it was never the daemon's file.
        f"aiodaemon: stopped (pid {pid}); removed pidfile {pidfile}, a copy moved over"
        " the daemon's own",
    ]
    wait_gone(pid)
    assert cli("status", "--pidfile", pidfile).returncode == 3
    assert start() != pid


def test_status_of_a_replaced_pidfile_whose_daemon_does_not_answer_is_unknown(
    tmp_path: Path, start: Start
) -> None:
    """A copy moved over the pidfile of a daemon that does not answer (suspended, its loop
    held up): unknown (4), as with a removed pidfile.

    The pid the copy names still had the replaced file open, yet status said
    "dead" (1) of the daemon running on.
    """
    pid = start()
    pidfile = tmp_path / "app.pid"
    copy = tmp_path / "app.pid.new"
    copy.write_bytes(pidfile.read_bytes())
    copy.replace(pidfile)
    os.kill(pid, signal.SIGSTOP)
    try:
        status = cli("status", "--pidfile", pidfile, "--timeout", "1", "--json")
    finally:
        os.kill(pid, signal.SIGCONT)
    assert status.returncode == 4, status.stderr
    assert json.loads(status.stdout)["state"] == "unknown"
    # Suspended: said at once, as with its pidfile (not "no answer ... within 1 s").
    assert status.stderr == (
        f"aiodaemon: pidfile {pidfile} was replaced (nobody holds its lock); pid {pid},"
        f" serving {pidfile}.ctl, is suspended (SIGSTOP)\n"
    )
    assert is_alive(pid)


def test_status_of_a_daemon_busy_then_silent_gives_up_within_its_timeout() -> None:
    """Its pidfile removed, its control socket busy, then silent: unknown (4) after --timeout.

    Each try had all of --timeout: one begun late in the busy retries ran
    that long again (`status --timeout 4` took 5 s or more). Timings are not
    asserted here: this checks what the user reads once it gives up.
    """
    directory = Path(tempfile.mkdtemp(prefix="aiodaemon-lost-"))
    pidfile, control = directory / "app.pid", directory / "app.pid.ctl"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(control))
    # A real process holds the pidfile and lends the listener its credentials.
    holder = subprocess.Popen(
        [PYTHON, str(PROGRAMS / "control_holder.py"), pidfile, str(listener.fileno())],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        pass_fds=[listener.fileno()],
    )
    busy = b'{"v":1,"ok":false,"transient":true,"error":"busy: 32 control connections open"}\n'
    first: list[float] = []
    held: list[socket.socket] = []

    def serve() -> None:
        # "busy" for 1 s from the first request (well within the 2 s of busy
        # retries), then no answer at all.
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            first.append(time.monotonic())
            if first[-1] - first[0] < 1.0:
                with conn:
                    conn.recv(4096)
                    conn.sendall(busy)
            else:
                held.append(conn)

    thread = threading.Thread(target=serve, daemon=True)
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "ready\n"
        thread.start()
        pidfile.unlink()
        result = aiodaemon_cli("status", "--pidfile", pidfile, "--timeout", "4", timeout=60)
    finally:
        with contextlib.suppress(OSError):
            listener.shutdown(socket.SHUT_RDWR)
        thread.join(10)
        listener.close()
        for conn in held:
            conn.close()
        holder.kill()
        holder.wait()
        for pipe in (holder.stdin, holder.stdout):
            if pipe is not None:
                pipe.close()
        shutil.rmtree(directory, ignore_errors=True)
    assert result.returncode == 4, result.stderr
    assert result.stdout == (
        f"unknown (pidfile {pidfile} was removed; no answer from control socket {control}"
        " within 4 s)\n"
    )


def suspended_without_pidfile(
    pid: int, pidfile: Path, *args: str | os.PathLike[str]
) -> subprocess.CompletedProcess[str]:
    """``aiodaemon ARGS`` with ``pidfile`` removed and ``pid`` stopped (SIGCONT after)."""
    pidfile.unlink()
    os.kill(pid, signal.SIGSTOP)
    try:
        return cli(*args)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)


def test_reload_of_a_suspended_daemon_whose_pidfile_was_removed_gives_up_in_time(
    tmp_path: Path, start: Start
) -> None:
    """reload --timeout 1 gives up within its --timeout and 2 s more, as documented.

    The daemon found over its control socket had 5 s to answer whatever --timeout said.
    """
    pid, pidfile = start(), tmp_path / "app.pid"
    reload = suspended_without_pidfile(
        pid, pidfile, "reload", "--pidfile", pidfile, "--timeout", "1"
    )
    assert reload.returncode == 1, reload.stderr
    assert reload.stderr == (
        f"aiodaemon: pidfile {pidfile} was removed; pid {pid} found serving {pidfile}.ctl\n"
        f"aiodaemon: pid {pid} is suspended (SIGSTOP): the reload asked runs to its end"
        " once it is continued\n"
    )
    assert is_alive(pid)


def test_status_of_a_suspended_daemon_whose_pidfile_was_removed_says_so_at_once(
    tmp_path: Path, start: Start
) -> None:
    """status --timeout 300: unknown (4) naming SIGSTOP at once, as with its pidfile.

    It asked the socket and waited all of --timeout for an answer that could
    not come, then said only "no answer ... within S s".
    """
    pid, pidfile = start(), tmp_path / "app.pid"
    status = suspended_without_pidfile(
        pid, pidfile, "status", "--pidfile", pidfile, "--timeout", "300"
    )
    said = (
        f"pidfile {pidfile} was removed; pid {pid}, serving {pidfile}.ctl, is suspended (SIGSTOP)"
    )
    assert (status.returncode, status.stdout, status.stderr) == (
        4,
        f"unknown ({said}; it answers once it is continued)\n",
        "",
    )
    assert is_alive(pid)
    assert cli("status", "--pidfile", pidfile).returncode == 0  # continued, it answers


def test_stop_continues_and_stops_a_suspended_daemon_whose_pidfile_was_removed(
    tmp_path: Path, start: Start
) -> None:
    """stop finds a SIGSTOPped daemon over its socket, continues it, and it stops cleanly.

    It cannot answer while stopped: the stop said "no answer ... within 5 s;
    nothing signalled" (exit 1) and left it running, where the same daemon
    with its pidfile is continued and stopped within --timeout.
    """
    pid, pidfile = start(), tmp_path / "app.pid"
    stop = suspended_without_pidfile(pid, pidfile, "stop", "--pidfile", pidfile, "--timeout", "3")
    assert stop.returncode == 0, stop.stderr
    lines = stop.stderr.splitlines()
    assert (
        lines[0]
        == f"aiodaemon: pidfile {pidfile} was removed; pid {pid} found serving {pidfile}.ctl"
    )
    assert lines[-1] == f"aiodaemon: stopped (pid {pid})"
    assert "SIGKILL" not in stop.stderr  # continued in time for its own shutdown
    wait_gone(pid)


def test_start_says_a_suspended_daemon_whose_pidfile_was_removed_runs(
    tmp_path: Path, start: Start
) -> None:
    """start beside a SIGSTOPped daemon found over its socket: "already running", 0."""
    pid, pidfile = start(), tmp_path / "app.pid"
    again = suspended_without_pidfile(pid, pidfile, "start", TARGET, "--pidfile", pidfile)
    assert again.returncode == 0, again.stderr
    assert f"already running (pid {pid} still serves control socket {pidfile}.ctl" in again.stderr
    assert not pidfile.exists()  # nothing else started
    assert is_alive(pid)
