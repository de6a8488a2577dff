"""Detach phase end to end: real daemons started from a subprocess, observed from /proc."""

from __future__ import annotations

import fcntl
import json
import os
import resource
import signal
import subprocess
import termios
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from .support import (
    PYTHON,
    aiodaemon_cli,
    clean_env,
    cmdline,
    install_program,
    is_alive,
    kill_quietly,
    open_fds,
    pids_with,
    proc_stat_fields,
    proc_status,
    program,
    python,
    read_pid,
    require_tool,
    wait_for,
    wait_gone,
)


@pytest.fixture
def launcher(tmp_path: Path) -> Path:
    """The launcher script: opens things before run() it must NOT keep, and one it must."""
    return program("detach_launcher")


@pytest.fixture
def reap(tmp_path: Path) -> Iterator[list[int]]:
    """Pids to SIGKILL at the end of the test, should an assertion leave them running."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        kill_quietly(pid)


def start(
    launcher: Path, tmp_path: Path, *, wrapper: Sequence[str | Path] = (), **extra: str
) -> subprocess.CompletedProcess[str]:
    """Run the launcher to completion (it exits once the daemon is ready), under ``wrapper``."""
    args = {
        "pidfile": str(tmp_path / "d.pid"),
        "leak": str(tmp_path / "leak"),
        "keep": str(tmp_path / "keep"),
        **extra,
    }
    return python([*wrapper, launcher, *(f"{k}={v}" for k, v in args.items())])


def test_daemon_is_detached_from_session_and_launcher(
    launcher: Path, tmp_path: Path, reap: list[int]
) -> None:
    """Its own session, not its leader; its own process group; it outlives the launcher."""
    result = start(launcher, tmp_path)
    assert result.returncode == 0, result.stderr
    pid = read_pid(tmp_path / "d.pid")
    reap.append(pid)
    fields = proc_stat_fields(pid)
    ppid, pgrp, session, tty_nr = (int(f) for f in fields[1:5])
    assert session != os.getsid(0), "daemon must be in a new session"
    assert session != pid, "daemon must not be a session leader (could regain a tty)"
    # Its own process group, which a stop that has to SIGKILL it kills too.
    assert pgrp == pid
    assert ppid != os.getpid()
    assert tty_nr == 0
    os.kill(pid, signal.SIGTERM)
    wait_gone(pid)


def test_cwd_umask_and_stdio(launcher: Path, tmp_path: Path, reap: list[int]) -> None:
    """cwd and umask are the options', fds 0-2 are /dev/null unless files are given."""
    work = tmp_path / "work"
    work.mkdir()
    result = start(launcher, tmp_path, workdir=str(work), umask="027")
    assert result.returncode == 0, result.stderr
    pid = read_pid(tmp_path / "d.pid")
    reap.append(pid)
    assert os.readlink(f"/proc/{pid}/cwd") == str(work)
    assert proc_status(pid)["Umask"] == "0027"
    fds = open_fds(pid)
    assert fds[0] == fds[1] == fds[2] == "/dev/null"
    os.kill(pid, signal.SIGTERM)
    wait_gone(pid)


def test_default_workdir_and_umask(launcher: Path, tmp_path: Path, reap: list[int]) -> None:
    """Without options the daemon sits in / with umask 022."""
    result = start(launcher, tmp_path)
    assert result.returncode == 0, result.stderr
    pid = read_pid(tmp_path / "d.pid")
    reap.append(pid)
    assert os.readlink(f"/proc/{pid}/cwd") == "/"
    assert proc_status(pid)["Umask"] == "0022"
    os.kill(pid, signal.SIGTERM)
    wait_gone(pid)


def test_stdout_and_stderr_files(launcher: Path, tmp_path: Path, reap: list[int]) -> None:
    """Given files receive the daemon's print() output, appended, and fd 0 is /dev/null."""
    out, err = tmp_path / "out.txt", tmp_path / "err.txt"
    out.write_text("earlier line\n")
    result = start(launcher, tmp_path, stdout=str(out), stderr=str(err))
    assert result.returncode == 0, result.stderr
    pid = read_pid(tmp_path / "d.pid")
    reap.append(pid)
    fds = open_fds(pid)
    assert (fds[0], fds[1], fds[2]) == ("/dev/null", str(out), str(err))
    wait_for(lambda: "hello from the daemon" in out.read_text(), what="print() in stdout file")
    assert out.read_text().startswith("earlier line\n")
    os.kill(pid, signal.SIGTERM)
    wait_gone(pid)


@pytest.mark.parametrize("close_range", ["works", "refused"])
def test_inherited_fds_are_closed_except_kept_ones(
    launcher: Path, tmp_path: Path, reap: list[int], close_range: str
) -> None:
    """Only stdio, the pidfile, files_preserve and the loop's own fds remain open.

    ``refused``: where close_range fails (Linux before 5.9, a strict seccomp
    profile) os.closerange closes each number in turn: it went on to 2**31,
    for minutes, and the start failed "not ready after 10 s".
    """
    wrapper: list[str | Path] = []
    if close_range == "refused":
        wrapper = [program("without_syscall"), "436", PYTHON]
    result = start(launcher, tmp_path, wrapper=wrapper, start_timeout="10")
    assert result.returncode == 0, result.stderr
    pid = read_pid(tmp_path / "d.pid")
    reap.append(pid)
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    fds = open_fds(pid)
    targets = set(fds.values())
    assert str(tmp_path / "leak") not in targets, "a descriptor from the launcher leaked"
    assert hard - 1 not in fds
    assert str(tmp_path / "keep") in targets, "files_preserve was closed"
    assert str(tmp_path / "d.pid") in targets
    for fd, target in fds.items():
        if fd <= 2 or target in (str(tmp_path / "keep"), str(tmp_path / "d.pid")):
            continue
        # Everything else is the event loop's own machinery, made after the fork.
        assert target.startswith(("anon_inode:", "pipe:", "socket:")), (fd, target)
    sockets = [t for t in targets if t.startswith("socket:")]
    # uvloop's or asyncio's self-pipe and signal wake-up, and the pidfile's
    # stopping mark (opened at the start, bound once stopping): at most three.
    assert len(sockets) <= 3, fds
    os.kill(pid, signal.SIGTERM)
    wait_gone(pid)


def test_pidfile_holds_pid_and_is_removed_at_exit(
    launcher: Path, tmp_path: Path, reap: list[int]
) -> None:
    """The pidfile holds the daemon's pid and a newline, mode 0644, gone after exit."""
    pidfile = tmp_path / "d.pid"
    result = start(launcher, tmp_path)
    assert result.returncode == 0, result.stderr
    pid = read_pid(pidfile)
    reap.append(pid)
    assert pidfile.read_text() == f"{pid}\n"
    assert pidfile.stat().st_mode & 0o777 == 0o644
    os.kill(pid, signal.SIGTERM)
    wait_gone(pid)
    assert not pidfile.exists()


def test_concurrent_starts_leave_exactly_one_daemon(
    launcher: Path, tmp_path: Path, reap: list[int]
) -> None:
    """Eight launchers racing on one pidfile: one daemon, seven 'already running' errors."""
    args = [
        f"pidfile={tmp_path / 'd.pid'}",
        f"leak={tmp_path / 'leak'}",
        f"keep={tmp_path / 'keep'}",
    ]
    procs = [
        subprocess.Popen(
            [PYTHON, str(launcher), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=clean_env(),
        )
        for _ in range(8)
    ]
    results = [(p.wait(timeout=30), p.communicate()[1]) for p in procs]
    pid = read_pid(tmp_path / "d.pid")
    reap.append(pid)
    codes = sorted(code for code, _ in results)
    assert codes == [0, 3, 3, 3, 3, 3, 3, 3], results
    for code, err in results:
        if code:
            assert (
                err.strip().splitlines()
                == [f"aiodaemon: already running (pid {pid}, pidfile {tmp_path / 'd.pid'})"]
                or "already running" in err
            ), err
    # This test's processes only: other tests start the same launcher (at the
    # same time, under pytest-xdist), each with its own pidfile argument.
    ours = f"{PYTHON}\0{launcher}\0{args[0]}\0"
    daemons = [
        int(p) for p in os.listdir("/proc") if p.isdigit() and cmdline(int(p)).startswith(ours)
    ]
    assert [d for d in daemons if is_alive(d)] == [pid]
    os.kill(pid, signal.SIGTERM)
    wait_gone(pid)


def test_start_after_sigkill_of_previous_daemon(
    launcher: Path, tmp_path: Path, reap: list[int]
) -> None:
    """A pidfile left by a killed daemon does not block the next start."""
    assert start(launcher, tmp_path).returncode == 0
    old = read_pid(tmp_path / "d.pid")
    reap.append(old)
    os.kill(old, signal.SIGKILL)
    wait_gone(old)
    assert (tmp_path / "d.pid").read_text() == f"{old}\n"  # stale, unlocked
    result = start(launcher, tmp_path)
    assert result.returncode == 0, result.stderr
    new = read_pid(tmp_path / "d.pid")
    reap.append(new)
    assert new != old
    os.kill(new, signal.SIGTERM)
    wait_gone(new)


def test_startup_failure_reaches_the_launcher(tmp_path: Path) -> None:
    """A failing startup hook: the launcher prints its error and exits 1, nothing remains."""
    script = program("detach_startup_fails")
    pidfile = tmp_path / "d.pid"
    result = python([script, pidfile])
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "aiodaemon: startup hook __main__.connect failed: ConnectionRefusedError: "
        "database at db:5432 refused the connection"
    )
    assert not pidfile.exists()
    # By its pidfile argument: another run may start the same script meanwhile.
    assert not pids_with(str(pidfile))


@pytest.mark.parametrize(
    ("how", "code", "said"),
    [
        ("kill", 1, "was killed by SIGKILL before it was ready (out of memory? or a kill -9)"),
        ("segv", 1, "was killed by SIGSEGV before it was ready"),
        ("exit3", 3, "exited with status 3 before it was ready"),
    ],
)
def test_daemon_dying_before_ready_is_reported_with_how(
    tmp_path: Path, how: str, code: int, said: str
) -> None:
    """A daemon that ends unready with no verdict: the launcher says how, and removes its files.

    SIGKILL (the OOM killer), a crash in native code, os._exit(): the daemon
    writes nothing, and the launcher, not its parent, said only "exited". The
    launcher closed its copies at the fork: it removes them by path.
    """
    pidfile = tmp_path / "d.pid"
    result = python([program("detach_dies_before_ready"), pidfile, how])
    assert result.returncode == code, result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith("aiodaemon: daemon (pid "), line
    assert line.endswith(f") {said}"), line
    assert not pidfile.exists()
    assert not Path(f"{pidfile}.ctl").exists()


def test_start_returns_with_the_daemon_alone_in_its_session(tmp_path: Path) -> None:
    """The session leader that waited on the daemon is gone (reaped) when start returns."""
    pidfile = tmp_path / "d.pid"
    options = {"detach": True, "pidfile": str(pidfile)}
    started = python([program("idle"), json.dumps(options)])
    assert started.returncode == 0, started.stderr
    pid = int(pidfile.read_text())
    try:
        sid = os.getsid(pid)
        assert sid != pid  # not a session leader: it can never get a terminal
        assert not os.path.exists(f"/proc/{sid}")
        session = [p for p in _all_pids() if _sid_of(p) == sid]
        assert session == [pid]
    finally:
        kill_quietly(pid)


def _all_pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def _sid_of(pid: int) -> int | None:
    try:
        return os.getsid(pid)
    except ProcessLookupError:
        return None


def test_start_timeout_counts_from_the_fork(tmp_path: Path) -> None:
    """A launcher held up past start_timeout: exit 1 "not ready", though the daemon got ready.

    Its deadline used to start once it had reaped the first child, and it read
    whatever was on the pipe: a ready written past the start_timeout passed
    for one in time (exit 0, now and then on a loaded machine).
    """
    pidfile = tmp_path / "d.pid"
    result = python([program("descheduled_launcher"), pidfile, "0.6"])
    assert (result.returncode, result.stderr) == (1, "aiodaemon: not ready after 0.3 s\n")
    assert not pidfile.exists()
    assert not pids_with(str(pidfile))


def test_the_first_child_never_undoes_the_daemons_start(tmp_path: Path) -> None:
    """The first child interrupted once it forked: the daemon keeps its pidfile and sockets.

    The first child unwound the launcher's stack on a KeyboardInterrupt (a
    Ctrl-C, or a MemoryError, as it announced the daemon), and the cleanups
    there removed the pidfile, the control socket and the unix listener of the
    daemon it had just forked: `start` said 0, `status` "not running".
    """
    install_program("interrupted_first_child", tmp_path)
    pidfile, sock = tmp_path / "app.pid", tmp_path / "u.sock"
    argv: list[str | Path] = ["--pidfile", pidfile]
    result = aiodaemon_cli("start", "app:main", *argv, "--listen", f"u=unix:{sock}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    pid = int(result.stdout)
    try:
        assert read_pid(pidfile) == pid
        assert sock.is_socket()
        status = aiodaemon_cli("status", *argv)
        assert status.returncode == 0, status.stdout + status.stderr
        assert status.stdout.startswith(f"running (pid {pid},")
        assert aiodaemon_cli("stop", *argv).returncode == 0
    finally:
        kill_quietly(pid)
    assert not pidfile.exists()


@pytest.mark.root
@pytest.mark.parametrize(
    ("null", "error"),
    [
        ("missing", "cannot open /dev/null: No such file or directory"),
        ("regular", "cannot use /dev/null: not a character device"),
    ],
)
def test_a_start_without_a_usable_dev_null_fails_in_one_line(
    tmp_path: Path, null: str, error: str
) -> None:
    """A bare /dev (a container's): one line from the launcher, no traceback, nothing left.

    /dev/null was opened by the daemon after the fork: a FileNotFoundError
    traceback, then "daemon exited before it was ready"; a regular file there
    kept every byte the daemon was to discard.
    """
    pidfile, log = tmp_path / "d.pid", tmp_path / "d.jsonl"
    options = {"detach": True, "pidfile": str(pidfile), "log_file": str(log)}
    make = "" if null == "missing" else " && touch /dev/null"
    bare_dev = f'mount -t tmpfs -o size=64k none /dev{make} && exec "$@"'
    unshare = [require_tool("unshare"), "--mount", "--propagation", "private", "--"]
    result = subprocess.run(
        [*unshare, "sh", "-c", bare_dev, "sh", PYTHON, str(program("idle")), json.dumps(options)],
        capture_output=True,
        text=True,
        env=clean_env(),
        stdin=subprocess.DEVNULL,
        timeout=30,
        check=False,
    )
    assert (result.returncode, result.stderr) == (1, f"aiodaemon: {error}\n")
    assert list(tmp_path.iterdir()) == []
    assert not pids_with(str(pidfile))


def test_symlinked_pidfile_is_refused(tmp_path: Path, launcher: Path) -> None:
    """A symlink at the pidfile path is refused and its target left untouched."""
    target = tmp_path / "precious"
    target.write_text("do not touch\n")
    (tmp_path / "d.pid").symlink_to(target)
    result = start(launcher, tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"aiodaemon: pidfile: {tmp_path / 'd.pid'} is a symlink; refusing to follow it"
    )
    assert target.read_text() == "do not touch\n"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"umask": "1777"}, "aiodaemon: umask: must be between 0o000 and 0o777, not 0o1777"),
        ({"workdir": "/does/not/exist"}, "aiodaemon: workdir: not a directory: /does/not/exist"),
        # Closed, the number could take a descriptor of aiodaemon's, kept there
        # as the program's (aiodaemon.pep3143 keeps it closed instead, as python-daemon).
        ({"preserve": "1000"}, "aiodaemon: files_preserve: fd 1000 is not open"),
    ],
)
def test_bad_options_fail_before_fork(
    launcher: Path, tmp_path: Path, extra: dict[str, str], message: str
) -> None:
    """Invalid options: one line naming the option, exit 2, no pidfile, no daemon."""
    result = start(launcher, tmp_path, **extra)
    assert result.returncode == 2
    assert result.stderr.strip() == message
    assert not (tmp_path / "d.pid").exists()


def test_pidfile_directory_missing(tmp_path: Path, launcher: Path) -> None:
    """A pidfile in a missing directory is a usage error naming the option."""
    result = start(launcher, tmp_path, pidfile=str(tmp_path / "nope" / "d.pid"))
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        == f"aiodaemon: pidfile: directory does not exist: {tmp_path / 'nope'}"
    )


def test_no_controlling_terminal_when_launched_from_one(
    launcher: Path, tmp_path: Path, reap: list[int]
) -> None:
    """Launched from a terminal, the daemon has none (tty_nr 0) and never holds the pty."""
    primary, secondary = os.openpty()

    def take_terminal() -> None:
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    args = [
        f"pidfile={tmp_path / 'd.pid'}",
        f"leak={tmp_path / 'leak'}",
        f"keep={tmp_path / 'keep'}",
    ]
    proc = subprocess.Popen(
        [PYTHON, str(launcher), *args],
        stdin=secondary,
        stdout=secondary,
        stderr=secondary,
        env=clean_env(),
        preexec_fn=take_terminal,
    )
    try:
        assert proc.wait(timeout=30) == 0
        launcher_tty = os.ttyname(secondary)
        pid = read_pid(tmp_path / "d.pid")
        reap.append(pid)
        assert int(proc_stat_fields(pid)[4]) == 0
        assert launcher_tty not in open_fds(pid).values()
        os.kill(pid, signal.SIGTERM)
        wait_gone(pid)
    finally:
        os.close(primary)
        os.close(secondary)
