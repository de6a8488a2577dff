"""A stranger cannot pass for a daemon in its last steps and so stall root's `stop`.

The exit mark (an abstract unix name made of the pidfile's path, see
``_prefork._exit_mark``) is believed of a process holding that very pidfile
open for writing, removed since. Any local user may listen on the name and
hold a removed file of her own that reads as the path: in a shared sticky
directory she can make it there, and anywhere else she can mount a tmpfs of
her own over the directory in a mount namespace. Root's `stop` then waited
for her process, gave up after `--timeout` ("still runs ... not signalled",
exit 1), and `restart` started nothing.
"""

from __future__ import annotations

import os
import select
import subprocess
import sysconfig
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .security_support import User, arena, intruder, shared_dir
from .support import REPO, aiodaemon_cli, clean_env, program, require_tool, shared_python

__all__ = ["arena", "intruder"]  # fixtures, re-exported for pytest


@contextmanager
def forged(user: User, pidfile: Path, *, mount_over: Path | None = None) -> Iterator[None]:
    """``user`` forges the exit mark of ``pidfile`` (on a tmpfs mounted over ``mount_over``)."""
    site = sysconfig.get_paths()["purelib"]
    command = [
        require_tool("setpriv"),
        f"--reuid={user.uid}",
        f"--regid={user.gid}",
        "--clear-groups",
        shared_python(),
        str(program("forged_exit_mark")),
        str(pidfile),
    ]
    if mount_over is not None:
        # Root makes the namespace here; a user namespace would let her do it alone.
        command = [
            require_tool("unshare"),
            "--mount",
            "--propagation=private",
            "sh",
            "-ec",
            'mount -t tmpfs -o mode=0777 tmpfs "$0"; exec "$@"',
            str(mount_over),
            *command,
        ]
    with subprocess.Popen(
        command,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=clean_env({"PYTHONPATH": os.pathsep.join([str(REPO), site])}),
    ) as forger:
        assert forger.stdin is not None
        assert forger.stdout is not None
        try:
            readable, _, _ = select.select([forger.stdout], [], [], 30)
            assert readable, "the forger never got ready"
            assert forger.stdout.readline() == b"ready\n"
            yield
        finally:
            forger.stdin.close()
            assert forger.wait(30) == 0


def _not_running(pidfile: Path) -> None:
    """Every command reads the daemon as not running, at once."""
    for command, code in (("stop", 0), ("status", 3), ("reload", 7), ("upgrade", 7)):
        result = aiodaemon_cli(command, "--pidfile", pidfile, "--timeout", "20")
        assert result.returncode == code, (command, result.stderr)
        assert "not running" in result.stdout + result.stderr, (command, result)


def test_a_removed_file_of_a_strangers_in_a_sticky_directory_is_no_exit_mark(
    arena: Path, intruder: User
) -> None:
    """Her own file, made at the path in a shared sticky directory: not the daemon's."""
    pidfile = shared_dir(arena / "tmp") / "app.pid"
    with forged(intruder, pidfile):
        _not_running(pidfile)


def test_a_removed_file_seen_through_another_mount_namespace_is_no_exit_mark(
    arena: Path, intruder: User
) -> None:
    """Her own tmpfs over root's directory, in a mount namespace of hers: not the daemon's."""
    run = arena / "run"
    run.mkdir(mode=0o755)
    pidfile = run / "app.pid"
    with forged(intruder, pidfile, mount_over=run):
        _not_running(pidfile)
