"""The pidfile of ``aiodaemon.pep3143`` keeps the ``pidfile=`` option's rules (audit L1, L3).

A ``PidFile`` is refused in a world-writable directory without the sticky
bit and when another user planted it in a shared sticky one, and it is
created with the context's umask, not the caller's.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest

from .security_support import (
    User,
    arena,
    as_user,
    intruder,
    planted,
    service_account,
    shared_dir,
    stop_daemon,
)
from .support import PYTHON, clean_env, program, read_pid

pytestmark = pytest.mark.root

__all__ = ["arena", "intruder", "service_account"]  # fixtures, re-exported for pytest


def _open_context(settings: dict[str, Any], *, umask: int = -1) -> subprocess.CompletedProcess[str]:
    """Run tests/programs/pep3143_pidfile.py; its caller returns once the daemon is up."""
    return subprocess.run(
        [PYTHON, str(program("pep3143_pidfile")), json.dumps(settings)],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(),
        stdin=subprocess.DEVNULL,
        umask=umask,
        check=False,
    )


def _stop_if_started(result: subprocess.CompletedProcess[str], pidfile: Path) -> None:
    if result.returncode == 0:  # a broken rule: do not leave the daemon behind
        stop_daemon(read_pid(pidfile))


def test_a_world_writable_directory_without_sticky_bit_is_refused(arena: Path) -> None:
    """PidFile in a 0777 directory: open() fails in the caller as pidfile= does; no file."""
    open_dir = arena / "ww"
    open_dir.mkdir()
    open_dir.chmod(0o777)
    pidfile = open_dir / "app.pid"
    result = _open_context({"pidfile": str(pidfile)})
    _stop_if_started(result, pidfile)
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == (
        f"aiodaemon.exceptions.StartupError: pidfile {pidfile}: "
        f"directory is world-writable without the sticky bit: {open_dir}"
    )
    assert not pidfile.exists()


def test_the_pidfile_gets_the_contexts_umask(arena: Path) -> None:
    """DaemonContext(umask=0o077) from a caller with umask 000: the pidfile is 0600."""
    pidfile = arena / "app.pid"
    result = _open_context({"pidfile": str(pidfile), "umask": 0o077}, umask=0)
    assert result.returncode == 0, result.stderr
    try:
        assert stat.S_IMODE(os.stat(pidfile).st_mode) == 0o600
    finally:
        stop_daemon(read_pid(pidfile))


def test_a_planted_pidfile_in_a_sticky_directory_is_refused(arena: Path, intruder: User) -> None:
    """Another user's PidFile in a shared sticky directory: open() refuses it."""
    pidfile = shared_dir(arena / "pub") / "app.pid"
    with planted(intruder, pidfile):
        result = _open_context({"pidfile": str(pidfile)})
        _stop_if_started(result, pidfile)
        assert result.returncode == 1
        assert result.stderr.splitlines()[-1] == (
            f"aiodaemon.exceptions.StartupError: pidfile {pidfile} is owned by uid "
            f"{intruder.uid} (another user) in a shared sticky directory; refusing to use it"
        )
        assert pidfile.read_bytes() == b""


def test_the_daemon_users_own_pidfile_is_used_again(arena: Path, service_account: User) -> None:
    """DaemonContext(uid=svc) started by root finds svc's pidfile from a crashed run: used."""
    pidfile = shared_dir(arena / "pub") / "app.pid"
    as_user(service_account, lambda: pidfile.write_text("999999\n"))
    ids = {"uid": service_account.uid, "gid": service_account.gid}
    result = _open_context({"pidfile": str(pidfile), **ids})
    assert result.returncode == 0, result.stderr
    pid = read_pid(pidfile)
    try:
        assert pid != 999999
        assert os.stat(pidfile).st_uid == service_account.uid
    finally:
        stop_daemon(pid)
    assert not pidfile.exists()
