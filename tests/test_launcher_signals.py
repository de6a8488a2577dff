"""The launcher of a detached start, signalled at the edges of its wait: it says what is true.

Before, a SIGTERM in the instant between the fork and the launcher's handlers
ended it silently (status 143, not a word, the daemon starting on), and one
arriving once the daemon was ready (the launcher printing its pid) said
"the daemon goes on starting".
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import pytest

from .support import (
    AIODAEMON,
    aiodaemon_cli,
    clean_env,
    full_pipe,
    install_program,
    kill_quietly,
    pids_with,
    proc_state,
    program,
    python,
    read_pid,
    signal_pending,
    wait_for,
    wait_gone,
)


def test_a_sigterm_right_after_the_fork_is_reported(tmp_path: Path) -> None:
    """SIGTERM before the launcher's handlers: 143, the daemon's pid and how to stop it."""
    pidfile, record = tmp_path / "d.pid", tmp_path / "record.txt"
    record.touch()
    options = {"detach": True, "pidfile": str(pidfile), "log_file": str(tmp_path / "log")}
    started = python([program("launcher_fork_signal"), json.dumps(options), record])
    pid = read_pid(pidfile)
    try:
        assert started.returncode == 128 + signal.SIGTERM, started.stderr
        assert started.stderr.splitlines() == [
            "aiodaemon: interrupted while waiting for the daemon to be ready; "
            f"the daemon (pid {pid}) goes on starting; "
            f"`aiodaemon stop --pidfile {pidfile}` stops it"
        ]
        # As said: it goes on starting.
        wait_for(lambda: "main" in record.read_text().splitlines(), what="main")
        # And the session leader that waited on it for the launcher went with the launcher.
        wait_gone(os.getsid(pid))
        stopped = aiodaemon_cli("stop", "--pidfile", pidfile)
        assert stopped.returncode == 0, stopped.stderr
        wait_gone(pid)
    finally:
        kill_quietly(pid)


def _drain(fd: int) -> None:
    """Read ``fd`` to its end."""
    while os.read(fd, 65536):
        pass


def _in_write(pid: int) -> bool:
    """Whether ``pid`` is blocked in write(2)."""
    try:
        return Path(f"/proc/{pid}/syscall").read_text().split()[0] == "1"
    except (OSError, IndexError):
        return False


def _start_stuck_printing(
    tmp_path: Path, stdout: int, stderr: int | IO[str]
) -> tuple[subprocess.Popen[str], int, Path]:
    """`aiodaemon start` with its stdout on a full pipe, once stuck printing the daemon's pid.

    Returns the launcher, the daemon's pid and its pidfile.
    """
    install_program("cli_app", tmp_path, "app.py")
    pidfile = tmp_path / "app.pid"
    start = subprocess.Popen(
        [str(AIODAEMON), "start", "app:main", "--pidfile", str(pidfile),
         "--log-file", str(tmp_path / "log")],
        stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL,
        text=True, cwd=tmp_path, env=clean_env(),
    )  # fmt: skip
    pid = 0
    try:
        pid = read_pid(pidfile)
        wait_for(lambda: _in_write(start.pid), what="the launcher to print the pid")
    except BaseException:
        kill_quietly(start.pid)
        start.communicate()
        if pid:
            kill_quietly(pid)
        raise
    return start, pid, pidfile


def test_a_signal_once_the_daemon_is_ready_does_not_say_it_goes_on_starting(
    tmp_path: Path,
) -> None:
    """`start` stuck printing the pid to a full pipe, then SIGTERM: 143, "it runs"."""
    read_end, write_end = full_pipe()
    try:
        start, pid, pidfile = _start_stuck_printing(tmp_path, write_end, subprocess.PIPE)
        os.close(write_end)
        write_end = -1
        try:
            start.send_signal(signal.SIGTERM)
            wait_for(lambda: not signal_pending(start.pid, signal.SIGTERM), what="its delivery")
            # Now the reader reads: what the launcher still writes goes through.
            drained = threading.Thread(target=_drain, args=(read_end,))
            drained.start()
            _, err = start.communicate(timeout=30)
            drained.join(30)
            assert start.returncode == 128 + signal.SIGTERM, err
            assert err.splitlines() == [
                f"aiodaemon: interrupted after the daemon (pid {pid}) was ready; it runs; "
                f"`aiodaemon stop --pidfile {pidfile}` stops it"
            ]
            stopped = aiodaemon_cli("stop", "--pidfile", pidfile, cwd=tmp_path)
            assert stopped.returncode == 0, stopped.stderr
            wait_gone(pid)
        finally:
            kill_quietly(start.pid)
            start.wait()
            kill_quietly(pid)
    finally:
        os.close(read_end)
        if write_end >= 0:
            os.close(write_end)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
@pytest.mark.parametrize("stderr_too", [False, True], ids=["stdout", "stdout-and-stderr"])
def test_a_signal_ends_a_start_stuck_on_an_output_nobody_reads(
    tmp_path: Path, signum: int, stderr_too: bool
) -> None:
    """`start` stuck printing the pid to a pipe never read: one signal ends it, 128+N."""
    err_file = tmp_path / "err"
    read_end, write_end = full_pipe()
    try:
        with err_file.open("w") as err:
            stderr = write_end if stderr_too else err
            start, pid, pidfile = _start_stuck_printing(tmp_path, write_end, stderr)
        try:
            start.send_signal(signum)
            assert start.wait(timeout=10) == 128 + signum
            if not stderr_too:
                assert err_file.read_text().splitlines() == [
                    f"aiodaemon: interrupted after the daemon (pid {pid}) was ready; it runs; "
                    f"`aiodaemon stop --pidfile {pidfile}` stops it"
                ]
            # The launcher left the daemon's files alone: the control socket answers.
            status = aiodaemon_cli("status", "--pidfile", pidfile, "--json", cwd=tmp_path)
            assert status.returncode == 0, status.stderr
            assert json.loads(status.stdout)["pid"] == pid
            stopped = aiodaemon_cli("stop", "--pidfile", pidfile, cwd=tmp_path)
            assert stopped.returncode == 0, stopped.stderr
            wait_gone(pid)
        finally:
            kill_quietly(start.pid)
            start.wait()
            kill_quietly(pid)
    finally:
        os.close(read_end)
        os.close(write_end)


def _running(pidfile: Path) -> bool:
    """Whether ``aiodaemon status`` says the daemon of ``pidfile`` is running (ready)."""
    status = aiodaemon_cli("status", "--pidfile", pidfile, "--json", cwd=pidfile.parent)
    return status.returncode == 0 and json.loads(status.stdout)["state"] == "running"


def test_a_start_stuck_saying_it_was_interrupted_ends_with_on_signal_sigalrm(
    tmp_path: Path,
) -> None:
    """SIGTERM to a waiting `start` whose stderr is full, the program taking SIGALRM: 143."""
    # The launcher bounds its last words with a SIGALRM timer: held with the
    # program's on_signal signals, it never went off, and the launcher hung.
    install_program("cli_on_signal_app", tmp_path, "app.py")
    (tmp_path / "hold").touch()
    pidfile = tmp_path / "app.pid"
    read_end, write_end = full_pipe()
    try:
        start = subprocess.Popen(
            [str(AIODAEMON), "start", "app:main", "--pidfile", str(pidfile),
             "--log-file", str(tmp_path / "log")],
            stdout=subprocess.DEVNULL, stderr=write_end, stdin=subprocess.DEVNULL,
            text=True, cwd=tmp_path, env=clean_env(),
        )  # fmt: skip
        pid = 0
        try:
            pid = read_pid(pidfile, 30)
            wait_for(lambda: (tmp_path / "started").exists(), 30, "the startup hook")
            start.send_signal(signal.SIGTERM)
            assert start.wait(timeout=10) == 128 + signal.SIGTERM
            # As the line nobody read said: the daemon goes on starting.
            (tmp_path / "hold").unlink()
            wait_for(lambda: _running(pidfile), 30, "the daemon to be ready")
            stopped = aiodaemon_cli("stop", "--pidfile", pidfile, cwd=tmp_path)
            assert stopped.returncode == 0, stopped.stderr
            wait_gone(pid)
        finally:
            kill_quietly(start.pid)
            start.wait()
            if pid:
                kill_quietly(pid)
    finally:
        os.close(read_end)
        os.close(write_end)


def test_a_second_ctrl_c_on_a_stuck_start_leaves_the_daemon_its_control_socket(
    tmp_path: Path,
) -> None:
    """Ctrl-C twice on `start` stuck printing: 130, and the running daemon keeps its socket."""
    read_end, write_end = full_pipe()
    try:
        start, pid, pidfile = _start_stuck_printing(tmp_path, write_end, subprocess.PIPE)
        try:
            start.send_signal(signal.SIGINT)
            assert start.stderr is not None
            assert "was ready; it runs" in start.stderr.readline()
            start.send_signal(signal.SIGINT)
            assert start.wait(timeout=10) == 128 + signal.SIGINT
            assert (tmp_path / "app.pid.ctl").exists()
            status = aiodaemon_cli("status", "--pidfile", pidfile, "--json", cwd=tmp_path)
            assert status.returncode == 0, status.stderr
            assert json.loads(status.stdout)["state"] == "running"
            stopped = aiodaemon_cli("stop", "--pidfile", pidfile, cwd=tmp_path)
            assert stopped.returncode == 0, stopped.stderr
            wait_gone(pid)
        finally:
            kill_quietly(start.pid)
            start.communicate()
            kill_quietly(pid)
    finally:
        os.close(read_end)
        os.close(write_end)


# --- a signal to the launcher's process group at the detach's first fork ----------------

#: Starts that must catch the first child before its setsid, per signal.
HITS = 2
#: Starts allowed for as many catches: one may find it past its setsid.
ATTEMPTS = 25


def _start_in_own_group(tmp_path: Path) -> subprocess.Popen[str]:
    """`aiodaemon start` as a shell's foreground job: a process group of its own (its pid).

    In this session, as a shell's jobs are: a group whose parent is in another
    session (orphaned) is never stopped by Ctrl-Z's SIGTSTP.
    """
    return subprocess.Popen(
        [str(AIODAEMON), "start", "app:main", "--pidfile", str(tmp_path / "app.pid"),
         "--log-file", str(tmp_path / "log.jsonl")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
        text=True, cwd=tmp_path, env=clean_env(), process_group=0,
    )  # fmt: skip


def _first_child_before_setsid(launcher: subprocess.Popen[str]) -> int | None:
    """Stop the launcher's first child at once: its pid, or None (resumed) if past its setsid.

    None as well when the start was over before the child was seen (this
    process descheduled meanwhile).
    """
    children = Path(f"/proc/{launcher.pid}/task/{launcher.pid}/children")
    deadline = time.monotonic() + 60
    # A busy poll: the first child is in the launcher's process group for well
    # under a millisecond.
    while not (found := children.read_text().split()):
        if launcher.poll() is not None:
            return None
        if time.monotonic() > deadline:
            raise AssertionError("no fork in 60 s")
    first = int(found[0])
    os.kill(first, signal.SIGSTOP)
    wait_for(lambda: proc_state(first) == "T", what="the first child to stop")
    if os.getpgid(first) == launcher.pid:
        return first
    os.kill(first, signal.SIGCONT)
    return None


def _caught_at_fork(
    tmp_path: Path, act: Callable[[int, int], None]
) -> tuple[subprocess.Popen[str], int | None, str, str]:
    """Start; with the first child stopped before its setsid, ``act(launcher, first)``.

    Returns:
        The launcher (ended), the first child's pid (None: not caught, the
        start went its way), and the launcher's stdout and stderr.
    """
    launcher = _start_in_own_group(tmp_path)
    try:
        first = _first_child_before_setsid(launcher)
        if first is not None:
            act(launcher.pid, first)
        out, err = launcher.communicate(timeout=60)
    finally:
        kill_quietly(launcher.pid)
        launcher.communicate()
    return launcher, first, out, err


def _group_signal(signum: int) -> Callable[[int, int], None]:
    """``signum`` to the terminal's foreground group: the launcher and its first child."""

    def act(launcher: int, first: int) -> None:
        os.killpg(launcher, signum)
        os.kill(first, signal.SIGCONT)

    return act


def _interrupt_and_kill_first(launcher: int, first: int) -> None:
    """Ctrl-C to the launcher alone; the first child killed before it forked the daemon."""
    os.kill(launcher, signal.SIGINT)
    os.kill(first, signal.SIGKILL)


def _stop_daemon(tmp_path: Path) -> None:
    """Stop what a start left running, and wait for its pidfile to go."""
    pidfile = tmp_path / "app.pid"
    if pidfile.exists():
        stopped = aiodaemon_cli("stop", "--pidfile", pidfile, cwd=tmp_path)
        assert stopped.returncode == 0, stopped.stderr
    wait_for(lambda: not pidfile.exists(), 30, "the pidfile's removal")


@pytest.mark.timeout(600)
@pytest.mark.parametrize(
    "signum",
    [signal.SIGINT, signal.SIGQUIT, signal.SIGHUP, signal.SIGTERM],
    ids=["INT", "QUIT", "HUP", "TERM"],
)
def test_a_signal_to_the_launchers_group_at_the_fork_leaves_the_daemon_starting(
    tmp_path: Path, signum: signal.Signals
) -> None:
    """Ctrl-C (Ctrl-\\, a hang-up, a group's SIGTERM) as `start` forks: 128+n, the daemon runs."""
    install_program("cli_app", tmp_path, "app.py")
    pidfile = tmp_path / "app.pid"
    hits = 0
    for _ in range(ATTEMPTS):
        launcher, first, out, err = _caught_at_fork(tmp_path, _group_signal(signum))
        if first is None:
            assert launcher.returncode == 0, err
        else:
            hits += 1
            assert launcher.returncode == 128 + signum, err
            assert out == ""
            said = re.fullmatch(
                r"aiodaemon: interrupted while waiting for the daemon to be ready; the daemon"
                r" \(pid (\d+)\) goes on starting; "
                rf"`aiodaemon stop --pidfile {re.escape(str(pidfile))}` stops it\n",
                err,
            )
            assert said is not None, err
            # As said: it goes on starting, and is running.
            pid = int(said.group(1))
            assert read_pid(pidfile, 30) == pid
            status = aiodaemon_cli("status", "--pidfile", pidfile, "--json", cwd=tmp_path)
            assert status.returncode == 0, status.stdout + status.stderr
            assert json.loads(status.stdout)["pid"] == pid
        _stop_daemon(tmp_path)
        assert not (tmp_path / "app.pid.ctl").exists()
        if hits == HITS:
            return
    raise AssertionError(f"the first child was caught before its setsid {hits} times only")


@pytest.mark.timeout(600)
def test_an_interrupted_start_whose_daemon_was_never_forked_says_so_and_leaves_nothing(
    tmp_path: Path,
) -> None:
    """First child killed before it forked, launcher interrupted: 130, "nothing runs", no files."""
    install_program("cli_app", tmp_path, "app.py")
    for _ in range(ATTEMPTS):
        launcher, first, out, err = _caught_at_fork(tmp_path, _interrupt_and_kill_first)
        if first is None:
            assert launcher.returncode == 0, err
            _stop_daemon(tmp_path)
            (tmp_path / "log.jsonl").unlink()
            (tmp_path / "started").unlink()
            continue
        assert launcher.returncode == 128 + signal.SIGINT, err
        assert (out, err) == (
            "",
            "aiodaemon: interrupted while waiting for the daemon to be ready; the detach"
            " ended before it forked the daemon: nothing runs\n",
        )
        assert not pids_with(str(tmp_path / "app.pid"))
        # No pidfile, control socket or log file of a start that started nothing.
        assert set(os.listdir(tmp_path)) - {"__pycache__"} == {"app.py"}
        return
    raise AssertionError("the first child was never caught before its setsid")


@pytest.mark.timeout(600)
def test_a_start_interrupted_before_its_daemon_is_forked_says_it_may_still_start(
    tmp_path: Path,
) -> None:
    """SIGTERM with the first child held before its fork: 143, a line, and the daemon starts."""
    install_program("cli_app", tmp_path, "app.py")
    pidfile = tmp_path / "app.pid"
    held: list[int] = []

    def interrupt(launcher: int, first: int) -> None:
        held.append(first)  # stays stopped: no pid is announced in the launcher's wait
        os.kill(launcher, signal.SIGTERM)

    for _ in range(ATTEMPTS):
        held.clear()
        try:
            launcher, first, out, err = _caught_at_fork(tmp_path, interrupt)
        finally:
            for pid in held:
                kill_quietly(pid, signal.SIGCONT)
        if first is not None:
            # Its line came, though it waited (in vain) for the pid longer than
            # its last words may take: they went to /dev/null, status 143 alone.
            assert launcher.returncode == 128 + signal.SIGTERM, err
            assert (out, err) == (
                "",
                "aiodaemon: interrupted while waiting for the daemon to be ready; the daemon"
                " may still start (its pid was not known yet): `aiodaemon status --pidfile"
                f" {pidfile}` tells whether it runs, `aiodaemon stop --pidfile {pidfile}`"
                " stops it\n",
            )
            # As said: once its first child goes on, it starts, and the pidfile finds it.
            pid = read_pid(pidfile, 30)
            status = aiodaemon_cli("status", "--pidfile", pidfile, "--json", cwd=tmp_path)
            assert status.returncode == 0, status.stdout + status.stderr
            assert json.loads(status.stdout)["pid"] == pid
        else:
            assert launcher.returncode == 0, err
        _stop_daemon(tmp_path)
        if first is not None:
            return
    raise AssertionError("the first child was never caught before its setsid")


# --- Ctrl-Z as the detach forks: only the launcher stops ------------------------------


def _own_cgroup() -> Path | None:
    """This process's cgroup (v2) as a directory, None without a cgroup v2 hierarchy."""
    with open("/proc/self/mounts") as f:
        mounts = [line.split()[1] for line in f if line.split()[2] == "cgroup2"]
    with open("/proc/self/cgroup") as f:
        paths = [line[3:].strip() for line in f if line.startswith("0::")]
    if not mounts or not paths:
        return None
    return Path(mounts[0]) / paths[0].lstrip("/")


@contextlib.contextmanager
def _frozen_cgroup() -> Iterator[tuple[Path, Path]]:
    """A new cgroup, frozen: a process moved into it runs no further, its signals wait.

    Unlike SIGSTOP's stop, ended by a SIGCONT that discards a pending SIGTSTP,
    the freeze keeps the SIGTSTP pending until the process runs again. Yields
    the frozen cgroup and this process's own (moving a process back thaws it).
    """
    own = _own_cgroup()
    # Under this process's own: a cgroup with processes in it enables no
    # controller below it, so root may move a process into a child of it.
    frozen = None if own is None else own / f"aiodaemon-test-{os.getpid()}"
    try:
        if own is None or frozen is None:
            raise OSError("no cgroup v2 hierarchy is mounted")
        frozen.mkdir()
        (frozen / "cgroup.freeze").write_text("1")
    except OSError as exc:
        if frozen is not None and frozen.exists():
            frozen.rmdir()
        reason = f"needs a cgroup v2 freezer that root may use: {exc}"
        if os.environ.get("CI"):
            pytest.fail(reason)
        raise pytest.skip.Exception(reason) from None
    try:
        yield frozen, own
    finally:
        for pid in (frozen / "cgroup.procs").read_text().split():
            with contextlib.suppress(ProcessLookupError):
                (own / "cgroup.procs").write_text(pid)
        frozen.rmdir()


def _ctrl_z(launcher: int, first: int, frozen: Path) -> None:
    """Ctrl-Z to the launcher's group, its first child (stopped) frozen in ``frozen`` first.

    Frozen, then out of its SIGSTOP: the SIGTSTP reaches it as it would at
    full speed, and waits until the child runs again (moved out of ``frozen``).
    """
    (frozen / "cgroup.procs").write_text(str(first))
    os.kill(first, signal.SIGCONT)
    wait_for(lambda: proc_state(first) == "S", what="the first child to freeze")
    os.killpg(launcher, signal.SIGTSTP)
    wait_for(lambda: proc_state(launcher) == "T", what="the job to stop")
    wait_for(lambda: signal_pending(first, signal.SIGTSTP), what="its SIGTSTP")


@pytest.mark.timeout(600)
def test_ctrl_z_as_start_forks_stops_the_launcher_alone(tmp_path: Path) -> None:
    """Ctrl-Z as `start` forks: the daemon starts while the job is stopped; `fg`: 0, its pid."""
    install_program("cli_app", tmp_path, "app.py")
    pidfile = tmp_path / "app.pid"
    with _frozen_cgroup() as (frozen, own):
        for _ in range(ATTEMPTS):
            launcher = _start_in_own_group(tmp_path)
            try:
                first = _first_child_before_setsid(launcher)
                if first is not None:
                    _ctrl_z(launcher.pid, first, frozen)
                    (own / "cgroup.procs").write_text(str(first))
                    # The job stays stopped; the daemon, detached, starts all the same.
                    pid = read_pid(pidfile, 30)
                    status = aiodaemon_cli("status", "--pidfile", pidfile, "--json", cwd=tmp_path)
                    assert status.returncode == 0, status.stdout + status.stderr
                    answer = json.loads(status.stdout)
                    assert (answer["state"], answer["pid"]) == ("running", pid)
                    assert proc_state(launcher.pid) == "T"
                    os.killpg(launcher.pid, signal.SIGCONT)  # fg
                out, err = launcher.communicate(timeout=60)
            finally:
                kill_quietly(launcher.pid)
                launcher.communicate()
            assert launcher.returncode == 0, err
            if first is not None:
                assert (out, err) == (f"{pid}\n", "")
            _stop_daemon(tmp_path)
            if first is not None:
                return
    raise AssertionError("the first child was never caught before its setsid")
