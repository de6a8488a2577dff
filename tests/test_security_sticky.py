"""Files another user planted in a shared sticky directory (audit M1, M2): never adopted.

The kernel's ``fs.protected_regular`` may be off (when on, as Debian's 2, it
refuses root's ``O_CREAT`` of the daemon's own files from the last run too,
which the daemon must then open without it), so the daemon applies the rule
itself: in a sticky directory writable by group or
others, an existing file is used only if root, the daemon's own user or the
directory's owner owns it. The planting user is real and keeps its
descriptor open, as an attacker would, to read or rewrite the file later.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from .security_support import (
    User,
    arena,
    as_user,
    assert_refused_in_open_directory,
    intruder,
    make_victim,
    planted,
    records,
    refused_reopen,
    running_daemon,
    service_account,
    shared_dir,
    start_daemon,
    stop_daemon,
)
from .support import REPO, aiodaemon_cli, kill_quietly, read_pid, wait_for, wait_gone

pytestmark = pytest.mark.root

__all__ = ["arena", "intruder", "service_account"]  # fixtures, re-exported for pytest


def _refusal(user: User) -> str:
    return (
        f"is owned by uid {user.uid} (another user) in a shared sticky directory; "
        "refusing to use it"
    )


def _sticky(arena: Path, intruder: User, mode: int) -> Path:
    """The shared directory: world-writable like /tmp, or writable by the intruder's group."""
    return shared_dir(arena / "pub", mode, intruder.gid if mode == 0o1770 else 0)


@pytest.mark.parametrize("mode", [0o1777, 0o1770], ids=["world", "group"])
def test_a_planted_pidfile_is_refused_at_start(arena: Path, intruder: User, mode: int) -> None:
    """Another user's pidfile, held open to rewrite the pid later: the start is refused."""
    pidfile = _sticky(arena, intruder, mode) / "app.pid"
    mark = arena / "started"
    with planted(intruder, pidfile):
        result = start_daemon({"detach": True, "pidfile": str(pidfile)}, mark)
        if result.returncode == 0:  # adopted: do not leave the daemon behind
            stop_daemon(read_pid(pidfile))
        assert result.returncode == 1, result.stderr
        [line] = result.stderr.splitlines()
        assert line.endswith(f"pidfile {pidfile} {_refusal(intruder)}"), line
        assert not mark.exists()
        assert pidfile.read_bytes() == b""
        assert os.stat(pidfile).st_uid == intruder.uid


def test_a_planted_locked_pidfile_does_not_make_start_say_already_running(
    arena: Path, intruder: User
) -> None:
    """A pre-locked planted pidfile: `start` fails naming it, not "already running" and 0."""
    pidfile = _sticky(arena, intruder, 0o1777) / "app.pid"
    with planted(intruder, pidfile, lock=True) as holder:
        result = aiodaemon_cli(
            "start", "tests.programs.security_daemon:main", "--pidfile", pidfile,
            cwd=REPO, timeout=60,
        )  # fmt: skip
        assert result.stdout == ""
        assert result.stderr == f"aiodaemon: --pidfile: {pidfile} {_refusal(intruder)}\n"
        assert result.returncode == 1
        assert pidfile.read_text() == f"{holder}\n"


@pytest.mark.parametrize("mode", [0o1777, 0o1770], ids=["world", "group"])
@pytest.mark.parametrize("option", ["log_file", "stdout", "stderr"])
def test_a_planted_output_file_is_refused_at_start(
    arena: Path, intruder: User, service_account: User, option: str, mode: int
) -> None:
    """Another user's log or stdio file (its fd held open): refused, nothing written to it."""
    path = _sticky(arena, intruder, mode) / "app.out"
    mark = arena / "started"
    (arena / "run").mkdir()
    options: dict[str, Any] = {
        "detach": True,
        "pidfile": str(arena / "run" / "app.pid"),
        option: str(path),
        "user": service_account.name,
        "umask": 0o077,
    }
    with planted(intruder, path):
        result = start_daemon(options, mark)
        if result.returncode == 0:
            stop_daemon(read_pid(arena / "run" / "app.pid"))
        assert result.returncode == 1, result.stderr
        [line] = result.stderr.splitlines()
        assert line.endswith(f"cannot open {option} {path}: {_refusal(intruder)}"), line
        assert not mark.exists()
        # What the intruder reads through the descriptor it kept: nothing of ours.
        assert path.read_bytes() == b""
        assert os.stat(path).st_uid == intruder.uid


@pytest.mark.parametrize("option", ["log_file", "stderr"])
@pytest.mark.parametrize("sig", [signal.SIGUSR1, signal.SIGHUP], ids=["SIGUSR1", "SIGHUP"])
def test_a_log_file_planted_after_rotation_is_refused_at_reopen(
    arena: Path, intruder: User, sig: signal.Signals, option: str
) -> None:
    """Rotated, then another user wins the race to create the log: reopen refused, old file kept.

    The same for a stderr file (reopened after a rotation too), where a
    detached daemon without ``log_file`` logs.
    """
    pub = _sticky(arena, intruder, 0o1777)
    log, rotated = pub / "app.log", pub / "app.log.1"
    options = {"pidfile": str(pub / "app.pid"), option: str(log), "umask": 0o077}
    with running_daemon(options) as pid:
        wait_for(lambda: len(records(log)) > 2, what="ticks in the log file")
        log.rename(rotated)
        with planted(intruder, log):
            os.kill(pid, sig)

            record = refused_reopen(rotated)
            assert record["level"] == "error"
            assert _refusal(intruder) in str(record["error"]), record
            seen = len(records(rotated))
            wait_for(lambda: len(records(rotated)) > seen + 2, what="ticks after the refusal")
            assert log.read_bytes() == b""


@pytest.mark.parametrize("option", ["log_file", "stdout", "stderr"])
def test_an_output_file_in_a_directory_open_to_all_is_refused(arena: Path, option: str) -> None:
    """A log or stdio file in a world-writable directory without the sticky bit: exit 2, one line.

    Anyone may replace any file there; the root daemon's next reopen adopted
    the planted one, whose owner then read and forged its logs. Refused as the
    pidfile is there.
    """
    assert_refused_in_open_directory(arena, option, lambda path: {option: str(path / "x")})


def test_a_log_directory_opened_to_all_later_is_refused_at_reopen(
    arena: Path, intruder: User
) -> None:
    """Opened to all (no sticky bit) after the start, then rotated and planted: not adopted."""
    logs = arena / "logs"
    logs.mkdir()
    log, rotated = logs / "app.log", logs / "app.log.1"
    options = {"pidfile": str(arena / "app.pid"), "log_file": str(log), "umask": 0o077}
    with running_daemon(options) as pid:
        wait_for(lambda: len(records(log)) > 2, what="ticks in the log file")
        logs.chmod(0o777)
        log.rename(rotated)
        with planted(intruder, log):
            os.kill(pid, signal.SIGUSR1)
            record = refused_reopen(rotated)
            assert "world-writable without the sticky bit" in str(record["error"]), record
            seen = len(records(rotated))
            wait_for(lambda: len(records(rotated)) > seen + 2, what="ticks after the refusal")
            assert log.read_bytes() == b""


def test_a_daemon_dropping_to_its_user_restarts_with_that_users_files(
    arena: Path, service_account: User
) -> None:
    """Root daemon with user=: its own pidfile, log and stdout from the last run are used again."""
    pub = shared_dir(arena / "pub", 0o1777)
    pidfile, log, out = pub / "app.pid", pub / "app.log", pub / "app.out"
    options = {"pidfile": str(pidfile), "log_file": str(log), "stdout": str(out)}
    options["user"] = service_account.name
    as_user(service_account, out.touch)
    started = start_daemon({"detach": True, **options})
    assert started.returncode == 0, started.stderr
    first = read_pid(pidfile)
    wait_for(lambda: records(log), what="the first run's log")
    # A crash leaves the pidfile behind, and the files stay the service account's.
    kill_quietly(first)
    wait_gone(first)
    assert {os.stat(p).st_uid for p in (pidfile, log, out)} == {service_account.uid}
    with running_daemon(options) as second:
        assert second != first
        wait_for(lambda: any(r.get("pid") == second for r in records(log)), what="the restart")
        os.kill(second, signal.SIGUSR1)
        seen = len(records(log))
        wait_for(lambda: len(records(log)) > seen + 2, what="ticks after the reopen")
    assert not any(r["level"] == "error" for r in records(log))


def test_a_file_of_the_directorys_owner_is_used(arena: Path, service_account: User) -> None:
    """A sticky directory owned by a user: that user's log file there is the daemon's to use."""
    spool = arena / "spool"
    spool.mkdir()
    os.chown(spool, service_account.uid, service_account.gid)
    spool.chmod(0o1777)
    log = spool / "app.log"
    as_user(service_account, log.touch)
    with running_daemon({"pidfile": str(spool / "app.pid"), "log_file": str(log)}) as pid:
        wait_for(lambda: any(r.get("pid") == pid for r in records(log)), what="the log")


def test_start_still_finds_its_own_running_daemon_in_a_sticky_directory(
    arena: Path, service_account: User
) -> None:
    """`start --user svc` twice in /tmp-like: the second says "already running", exits 0."""
    pidfile = shared_dir(arena / "pub", 0o1777) / "app.pid"

    def start() -> subprocess.CompletedProcess[str]:
        return aiodaemon_cli(
            "start", "tests.programs.security_daemon:main", "--pidfile", pidfile,
            "--user", service_account.name, cwd=REPO, timeout=60,
        )  # fmt: skip

    first = start()
    assert first.returncode == 0, first.stderr
    pid = read_pid(pidfile)
    try:
        assert os.stat(pidfile).st_uid == service_account.uid
        second = start()
        assert second.stderr == f"aiodaemon: already running (pid {pid}, pidfile {pidfile})\n"
        assert second.returncode == 0
    finally:
        stop_daemon(pid)


def test_a_symlink_planted_in_a_sticky_directory_is_named_at_start(
    arena: Path, intruder: User
) -> None:
    """Another user's symlink at log_file in a /tmp-like directory: refused as a symlink.

    A kernel may refuse the ``O_CREAT`` open with EACCES before ``O_NOFOLLOW``
    says ELOOP; "Permission denied" would hide the planted link.
    """
    pub = _sticky(arena, intruder, 0o1777)
    victim = make_victim(arena / "root-only")
    log = pub / "app.log"
    as_user(intruder, lambda: os.symlink(victim, log))
    mark = arena / "started"
    result = start_daemon(
        {"detach": True, "pidfile": str(arena / "app.pid"), "log_file": str(log)}, mark
    )
    if result.returncode == 0:  # started through the link: do not leave the daemon behind
        stop_daemon(read_pid(arena / "app.pid"))
    assert result.returncode == 2, result.stderr  # seen by the options' check, a bad option
    [line] = result.stderr.splitlines()
    assert line.endswith(f"log_file: {log} is a symlink; refusing to follow it"), line
    assert not mark.exists()
    assert victim.read_bytes() == b"root's secret\n"


def test_a_symlink_planted_after_rotation_in_a_sticky_directory_is_named_at_reopen(
    arena: Path, intruder: User
) -> None:
    """Rotated, then another user plants a symlink at the log's path: the reopen says so."""
    pub = _sticky(arena, intruder, 0o1777)
    victim = make_victim(arena / "root-only")
    log, rotated = pub / "app.log", pub / "app.log.1"
    options = {"pidfile": str(pub / "app.pid"), "log_file": str(log), "umask": 0o077}
    with running_daemon(options) as pid:
        wait_for(lambda: len(records(log)) > 2, what="ticks in the log file")
        log.rename(rotated)
        as_user(intruder, lambda: os.symlink(victim, log))
        os.kill(pid, signal.SIGUSR1)

        record = refused_reopen(rotated)
        assert "is a symlink; refusing to follow it" in str(record["error"]), record
    assert victim.read_bytes() == b"root's secret\n"
