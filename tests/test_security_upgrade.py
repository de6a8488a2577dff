"""An upgraded daemon stays out of its service account's reach, as the one it replaced.

The successor of a daemon dropped to ``user=`` is a fresh exec by that
account, which the kernel makes dumpable again: any process of the account
could then ptrace it or take its root-bound sockets with ``pidfd_getfd``.
"""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
import subprocess
import sysconfig
from pathlib import Path

import pytest

from .security_support import User, arena, as_user, intruder, own_dir, stop_daemon
from .support import REPO, clean_env, proc_status, read_pid, shared_python, wait_gone

pytestmark = pytest.mark.root

__all__ = ["arena", "intruder"]  # fixtures, re-exported for pytest

PROGRAM = REPO / "tests" / "programs" / "upgrade_app.py"
#: pidfd_getfd(2) on x86_64 and aarch64 alike.
_SYS_PIDFD_GETFD = 438
#: Loaded here: the attacker's forked child can no longer read our interpreter's files.
_LIBC = ctypes.CDLL(None, use_errno=True)


def _take_fds(pid: int) -> dict[int, int]:
    """As an attacker of the same user: ``pidfd_getfd`` on fds 3-63 of ``pid``; errno per fd."""
    pidfd = os.pidfd_open(pid)
    outcome = {}
    try:
        for fd in range(3, 64):
            got = _LIBC.syscall(_SYS_PIDFD_GETFD, pidfd, fd, 0)
            if got >= 0:
                os.close(got)
                outcome[fd] = 0
            else:
                outcome[fd] = ctypes.get_errno()
    finally:
        os.close(pidfd)
    return outcome


def _attacker_gets_nothing(pid: int) -> None:
    """Every ``pidfd_getfd`` on ``pid`` is refused with EPERM (raises in the attacker if not)."""
    taken = {fd: err for fd, err in _take_fds(pid).items() if err != errno.EPERM}
    assert not taken, f"pidfd_getfd on pid {pid} was not refused: {taken}"


def _start(arena: Path, env: dict[str, str], user: User | None = None) -> int:
    """Start upgrade_app.py detached with a Python ``user`` may run; its pid once ready."""
    system_python = shared_python()
    app = arena / "app"
    app.mkdir(mode=0o755)
    shutil.copy(PROGRAM, app / "upgrade_app.py")
    started = subprocess.run(
        [system_python, "upgrade_app.py"],
        cwd=app,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        check=False,
        user=None if user is None else user.uid,
        group=None if user is None else user.gid,
        extra_groups=None if user is None else [],
    )
    assert started.returncode == 0, started.stderr
    return read_pid(Path(env["APP_PIDFILE"]))


def _upgrade(env: dict[str, str], old: int) -> int:
    """``aiodaemon upgrade`` of the daemon that runs ``old``; the successor's pid."""
    upgraded = subprocess.run(
        [shared_python(), "-m", "aiodaemon", "upgrade", "--pidfile", env["APP_PIDFILE"]],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert upgraded.returncode == 0, upgraded.stderr
    wait_gone(old, 30)
    return int(upgraded.stdout)


def _app_env(run_dir: Path, **extra: str) -> dict[str, str]:
    site = Path(sysconfig.get_paths()["purelib"])
    return clean_env(
        {
            "APP_PIDFILE": str(run_dir / "app.pid"),
            "APP_LOG": str(run_dir / "app.log"),
            "PYTHONPATH": os.pathsep.join([str(REPO), str(site)]),
            **extra,
        }
    )


def test_an_upgraded_dropped_daemon_stays_non_dumpable(arena: Path, intruder: User) -> None:
    """After an upgrade of a user= daemon, its account can neither take its fds nor read /proc."""
    run_dir = own_dir(arena / "run", intruder)
    env = _app_env(run_dir, APP_USER=intruder.name)
    old = _start(arena, env)
    try:
        assert proc_status(old)["Uid"].split() == [str(intruder.uid)] * 4
        as_user(intruder, lambda: _attacker_gets_nothing(old))
        new = _upgrade(env, old)
        assert proc_status(new)["Uid"].split() == [str(intruder.uid)] * 4
        # Non-dumpable: the kernel shows its /proc entries as root's, not the account's.
        assert os.stat(f"/proc/{new}/fd").st_uid == 0
        as_user(intruder, lambda: _attacker_gets_nothing(new))
    finally:
        stop_daemon(read_pid(run_dir / "app.pid"))


def test_an_upgraded_daemon_without_user_stays_dumpable(arena: Path, intruder: User) -> None:
    """A daemon a user started without user=: its successor is as open to that user as before."""
    run_dir = own_dir(arena / "run", intruder)
    env = _app_env(run_dir)
    old = _start(arena, env, intruder)
    try:
        assert os.stat(f"/proc/{old}/fd").st_uid == intruder.uid
        new = _upgrade(env, old)
        assert proc_status(new)["Uid"].split() == [str(intruder.uid)] * 4
        assert os.stat(f"/proc/{new}/fd").st_uid == intruder.uid
    finally:
        stop_daemon(read_pid(run_dir / "app.pid"))
