"""Another user's lock on a pidfile it may only read proves no daemon.

``flock`` needs no write access: with the pidfile ``0644`` in a directory
others may enter (``/run`` itself), anyone can lock it. A daemon that dropped
to its account and could not remove its pidfile from a root-owned directory
leaves it empty; an intruder locking it made root's ``start`` say "already
running" (exit 0, nothing started), ``status`` say "running" and ``stop``
signal the intruder's process. The same with a pid in the file that the
intruder's process has come to bear (a recycled pid).
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

import aiodaemon._cli._main
import aiodaemon._cli._status_command
import aiodaemon._prefork._lockholder

from .security_support import (
    User,
    arena,
    fork_as,
    holding,
    intruder,
    running_daemon,
    service_account,
    wait_child,
)
from .support import REPO, aiodaemon_cli, is_alive

pytestmark = pytest.mark.root

__all__ = ["arena", "intruder", "service_account"]  # fixtures, re-exported for pytest

TARGET = "tests.programs.security_daemon:main"
# Loaded here: the CLI run as another user cannot read the interpreter's files
# under /root, so whatever it imports must be imported before the fork.
_PRELOADED = (aiodaemon._cli._status_command, aiodaemon._prefork._lockholder)


def cli(*args: str | os.PathLike[str]) -> subprocess.CompletedProcess[str]:
    """``aiodaemon ARGS`` as root, from the repository, as text."""
    return aiodaemon_cli(*args, cwd=REPO, timeout=60)


def cli_as(user: User, *args: str | os.PathLike[str]) -> tuple[int, str]:
    """The CLI's ``main(ARGS)`` run as ``user`` in a forked child: exit status and stdout."""
    with tempfile.TemporaryDirectory() as scratch:
        result = Path(scratch) / "result.json"
        os.chown(scratch, user.uid, user.gid)

        def run() -> None:
            out = io.StringIO()
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
                code = aiodaemon._cli._main.main([str(a) for a in args])
            result.write_text(json.dumps([code, out.getvalue()]))

        wait_child(fork_as(user, run), 60)
        code, out = json.loads(result.read_text())
    return int(code), str(out)


@contextmanager
def locked_by(user: User, path: Path, how: int = fcntl.LOCK_EX) -> Iterator[int]:
    """``user`` opens ``path`` read-only and holds its ``flock``; yields that process's pid."""

    def lock() -> None:
        fcntl.flock(os.open(path, os.O_RDONLY), how)

    with holding(user, lock, "the intruder's lock") as holder:
        yield holder


def _left_pidfile(arena: Path, owner: User, content: str) -> Path:
    """A pidfile as a daemon dropped to ``owner`` leaves it in root's run directory."""
    run = arena / "run"
    run.mkdir(mode=0o755)
    pidfile = run / "app.pid"
    pidfile.write_text(content)
    os.chown(pidfile, owner.uid, owner.gid)
    pidfile.chmod(0o644)
    return pidfile


def test_an_intruders_lock_on_an_emptied_pidfile_is_no_daemon(
    arena: Path, intruder: User, service_account: User
) -> None:
    """status unknown (4), stop signals nothing (1), start fails saying why (1), never 'running'."""
    pidfile = _left_pidfile(arena, service_account, "")
    with locked_by(intruder, pidfile) as holder:
        status = cli("status", "--pidfile", pidfile)
        stop = cli("stop", "--pidfile", pidfile, "--timeout", "1")
        start = cli("start", TARGET, "--pidfile", pidfile, "--user", service_account.name)
        assert is_alive(holder)
    why = (
        f"pidfile {pidfile}: pid {holder} of uid {intruder.uid} holds its lock through a"
        " descriptor that cannot write it (anyone who may read a file may lock it); not trusted"
    )
    assert status.returncode == 4, status.stdout
    assert status.stdout == f"unknown ({why})\n"
    assert stop.returncode == 1, stop.stderr
    assert "nothing signalled" in stop.stderr
    assert why in stop.stderr
    assert start.returncode == 1, start.stderr
    assert "already running" not in start.stderr
    assert f"pid {holder} of uid {intruder.uid} holds its lock" in start.stderr
    assert pidfile.read_text() == ""


def test_an_intruders_process_bearing_the_pid_in_a_pidfile_is_no_daemon(
    arena: Path, intruder: User, service_account: User
) -> None:
    """A recycled pid (the intruder's locking process): unknown (4), never signalled."""
    pidfile = _left_pidfile(arena, service_account, "")
    with locked_by(intruder, pidfile) as holder:
        # The dead daemon's pid, now the intruder's process's (written here: the
        # intruder cannot write the file, only wait for its pid to come round).
        pidfile.write_text(f"{holder}\n")
        status = cli("status", "--pidfile", pidfile)
        stop = cli("stop", "--pidfile", pidfile, "--timeout", "1")
        assert is_alive(holder)
    assert status.returncode == 4, status.stdout
    assert f"pid {holder} of uid {intruder.uid} holds its lock" in status.stdout
    assert stop.returncode == 1, stop.stderr
    assert "nothing signalled" in stop.stderr


def test_the_accounts_own_status_does_not_take_an_intruders_process_for_its_daemon(
    arena: Path, intruder: User, service_account: User
) -> None:
    """Not root, it cannot see the intruder's descriptors: the locker's uid tells (unknown, 4)."""
    pidfile = _left_pidfile(arena, service_account, "")
    with locked_by(intruder, pidfile) as holder:
        pidfile.write_text(f"{holder}\n")  # a recycled pid, as above
        code, out = cli_as(service_account, "status", "--pidfile", pidfile)
    assert code == 4, out
    assert out == (
        f"unknown (pidfile {pidfile}: pid {holder} of uid {intruder.uid} holds its lock, but"
        f" neither root nor the pidfile's owner (uid {service_account.uid}) runs it;"
        " not trusted)\n"
    )


def test_an_intruders_shared_lock_is_named_when_it_blocks_the_start(
    arena: Path, intruder: User, service_account: User
) -> None:
    """A shared lock held for good: start fails (1) naming it, not 'try again' alone."""
    pidfile = _left_pidfile(arena, service_account, "")
    with locked_by(intruder, pidfile, fcntl.LOCK_SH) as holder:
        start = cli("start", TARGET, "--pidfile", pidfile, "--user", service_account.name)
    assert start.returncode == 1, start.stderr
    assert f"pid {holder} of uid {intruder.uid} holds its lock through a descriptor" in (
        start.stderr
    )
    assert pidfile.read_text() == ""


def test_a_root_daemon_takes_back_the_pidfile_its_last_user_run_left(
    arena: Path, service_account: User
) -> None:
    """Restarted without user=: the file is root's, so the account's pid in it is not believed.

    The account kept a descriptor of its file from the last run and writes
    its own process's pid there once the root daemon runs: ``stop`` signalled
    that process, said "stopped", and left the daemon running.
    """
    pidfile = _left_pidfile(arena, service_account, "")
    go_r, go_w = os.pipe()
    done_r, done_w = os.pipe()

    def keep_and_rewrite() -> None:
        fd = os.open(pidfile, os.O_RDWR)
        os.close(go_w)
        os.close(done_r)
        os.read(go_r, 1)  # the root daemon runs now
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        os.write(done_w, b"!")
        os.read(go_r, 1)  # EOF when the test is done

    account = fork_as(service_account, keep_and_rewrite)
    os.close(go_r)
    os.close(done_w)
    try:
        with running_daemon({"pidfile": str(pidfile), "control": False}) as daemon:
            os.write(go_w, b"!")
            assert os.read(done_r, 1) == b"!", "the account could not rewrite the pid"
            status = cli("status", "--pidfile", pidfile)
            stop = cli("stop", "--pidfile", pidfile, "--timeout", "1")
            assert is_alive(account), stop.stderr
            assert is_alive(daemon)
            assert os.lstat(pidfile).st_uid == 0
    finally:
        os.close(go_w)
        os.close(done_r)
        wait_child(account)
    assert status.returncode == 4, status.stdout
    # The account's process only has the file open; the daemon holds the lock.
    assert f"pid {account} has it open, but pid {daemon} holds its lock" in status.stdout
    assert stop.returncode == 1, stop.stderr
    assert "nothing signalled" in stop.stderr


def test_the_service_account_cannot_name_a_root_process_that_reads_its_file(
    arena: Path, service_account: User
) -> None:
    """The pidfile made a hard link to the account's log, which a root process follows.

    The account writes that process's pid there and locks the file from a
    process of its own: the root process only has the file open. ``status``
    says unknown (4), ``stop`` signals nothing (1), the root process lives.
    """
    run = arena / "run"
    run.mkdir()
    os.chown(run, service_account.uid, service_account.gid)
    log, pidfile = run / "app.log", run / "app.pid"
    log.write_text("")
    os.chown(log, service_account.uid, service_account.gid)
    # Root's log follower: it has the file open, nothing more.
    follower = subprocess.Popen(
        [sys.executable, "-c", _FOLLOWER, log], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL
    )
    assert follower.stdout is not None
    assert follower.stdout.readline() == b"open\n"

    def plant() -> None:
        os.link(log, run / ".link")
        os.replace(run / ".link", pidfile)
        pidfile.write_text(f"{follower.pid}\n")
        fcntl.flock(os.open(pidfile, os.O_RDWR), fcntl.LOCK_EX)

    try:
        with holding(service_account, plant, "the account's lock") as holder:
            status = cli("status", "--pidfile", pidfile)
            stop = cli("stop", "--pidfile", pidfile, "--timeout", "1")
            assert follower.poll() is None, "root's process was signalled"
    finally:
        follower.kill()
        follower.wait()
        follower.stdout.close()
    why = f"pidfile {pidfile}: pid {follower.pid} has it open, but pid {holder} holds its lock"
    assert status.returncode == 4, status.stdout
    assert status.stdout == f"unknown ({why}; not trusted)\n"
    assert stop.returncode == 1, stop.stderr
    assert "nothing signalled" in stop.stderr
    assert why in stop.stderr


_FOLLOWER = "import sys, time; f = open(sys.argv[1]); print('open', flush=True); time.sleep(600)"
