"""A directory swapped under a root daemon's bind cannot take its socket file elsewhere.

The attacker owns a directory on the socket's path and flips the directory
below it with a symlink to a root-only directory (``renameat2`` with
``RENAME_EXCHANGE``, atomically, as fast as it can) while root starts real
daemons there. Whatever the timing, root's socket file must never appear in
the root-only directory, and each start either listens in the directory it
was given or fails with one line, leaving no file of its own.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
from pathlib import Path

import pytest

from .security_support import User, arena, fork_as, intruder, own_dir, start_daemon, stop_daemon
from .support import kill_quietly, read_pid

pytestmark = pytest.mark.root

__all__ = ["arena", "intruder"]  # fixtures, re-exported for pytest

#: Starts raced; unfixed code lost its socket file to the swap within a few.
TRIES = 60

_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _swap_forever(first: Path, second: Path) -> None:
    """Exchange two names atomically, again and again, until killed."""
    renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    a, b = os.fsencode(first), os.fsencode(second)
    while True:
        if renameat2(_AT_FDCWD, a, _AT_FDCWD, b, _RENAME_EXCHANGE) != 0:
            raise OSError(ctypes.get_errno(), "renameat2")


def test_a_swapped_directory_never_gets_roots_socket(arena: Path, intruder: User) -> None:
    home = own_dir(arena / "home", intruder)
    protected = arena / "rootonly"
    protected.mkdir(mode=0o700)
    run = own_dir(home / "run", intruder)
    # The real directory, whichever of its two names it has at a given moment.
    real = os.open(run, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    (home / "link").symlink_to(protected)
    os.lchown(home / "link", intruder.uid, intruder.gid)
    pidfile = arena / "app.pid"
    options = {"detach": True, "pidfile": str(pidfile), "listen": {"s": f"unix:{run}/app.sock"}}

    def in_real() -> set[str]:
        return set(os.listdir(f"/proc/self/fd/{real}"))

    swapper = fork_as(intruder, lambda: _swap_forever(run, home / "link"))
    outcomes = []
    try:
        for _ in range(TRIES):
            before = in_real()
            started = start_daemon(options)
            assert os.listdir(protected) == [], "root's socket landed in the root-only directory"
            if started.returncode == 0:
                pid = read_pid(pidfile)
                try:
                    # Listening at the name in the directory it was given.
                    assert "app.sock" in in_real()
                    with socket.socket(socket.AF_UNIX) as client:
                        client.connect(f"/proc/self/fd/{real}/app.sock")
                finally:
                    stop_daemon(pid)
                outcomes.append("started")
            else:
                lines = started.stderr.strip().splitlines()
                assert len(lines) == 1, started.stderr
                assert "Traceback" not in started.stderr
                assert in_real() <= before, "a failed start left a file behind"
                assert not pidfile.exists()
                outcomes.append("refused")
            assert os.listdir(protected) == []
    finally:
        kill_quietly(swapper, signal.SIGKILL)
        os.waitpid(swapper, 0)
        os.close(real)
    assert len(outcomes) == TRIES
