"""The four findings of issue 17, replayed by a real second user against a daemon started by root.

The attacker is a real uid created for the session; the daemon is started by
root and, where the finding needs it, drops to that same uid (a compromised
service account is the attacker). Each test fails on the code before the fix.
"""

from __future__ import annotations

import os
import signal
import socket
import stat
import time
from pathlib import Path

import pytest

from .security_support import (
    Snapshot,
    User,
    arena,
    as_user,
    fork_as,
    intruder,
    make_victim,
    own_dir,
    records,
    refused_reopen,
    running_daemon,
    start_daemon,
    stop_daemon,
    wait_child,
)
from .support import read_pid, wait_for

pytestmark = pytest.mark.root

__all__ = ["arena", "intruder"]  # fixtures, re-exported for pytest


def test_log_file_symlink_planted_by_the_service_account_is_refused_at_start(
    arena: Path, intruder: User
) -> None:
    """log_file a symlink to root's file: start refused, the file not written nor given away."""
    logs = own_dir(arena / "log", intruder)
    victim = make_victim(arena / "root-only")
    (arena / "root-only").chmod(0o700)
    before = Snapshot.of(victim)
    log_file = logs / "app.log"
    as_user(intruder, lambda: os.symlink(victim, log_file))
    mark = logs / "started"  # writable by the daemon once it runs as the service account
    result = start_daemon(
        {
            "detach": True,
            "pidfile": str(arena / "app.pid"),
            "log_file": str(log_file),
            "user": intruder.name,
        },
        mark,
    )
    if result.returncode == 0:  # the old code started, through the symlink
        stop_daemon(read_pid(arena / "app.pid"))
    assert Snapshot.of(victim) == before
    assert result.returncode != 0
    [line] = result.stderr.splitlines()
    assert line.endswith(f"log_file: {log_file} is a symlink; refusing to follow it")
    assert not mark.exists()
    assert not (arena / "app.pid").exists()


@pytest.mark.parametrize("sig", [signal.SIGUSR1, signal.SIGHUP], ids=["SIGUSR1", "SIGHUP"])
def test_log_file_swapped_for_a_symlink_is_refused_at_reopen(
    arena: Path, intruder: User, sig: signal.Signals
) -> None:
    """Log file swapped for a symlink to root's file: reopen refused and logged, writing goes on."""
    logs = own_dir(arena / "log", intruder)
    victim = make_victim(arena / "root-only")
    (arena / "root-only").chmod(0o700)
    before = Snapshot.of(victim)
    log_file, rotated = logs / "app.log", logs / "app.log.1"
    # No user=: a root daemon reopening is the worst case.
    with running_daemon({"pidfile": str(arena / "app.pid"), "log_file": str(log_file)}) as pid:
        wait_for(lambda: len(records(log_file)) > 2, what="ticks in the log file")

        def swap() -> None:
            os.rename(log_file, rotated)
            os.symlink(victim, log_file)

        as_user(intruder, swap)
        os.kill(pid, sig)

        record = refused_reopen(rotated)
        assert record["level"] == "error"
        assert "is a symlink; refusing to follow it" in str(record["error"])
        # Still writing to the old descriptor after the refusal.
        seen = len(records(rotated))
        wait_for(lambda: len(records(rotated)) > seen + 2, what="ticks after the refusal")
    assert Snapshot.of(victim) == before
    assert os.readlink(log_file) == str(victim)


@pytest.mark.parametrize("link", ["symlink", "hardlink"])
@pytest.mark.parametrize("kind", ["listen", "control"])
def test_unix_socket_swapped_during_start_never_hands_a_victim_to_the_service_account(
    arena: Path, intruder: User, link: str, kind: str
) -> None:
    """The service account swapping its fresh socket for a link to root's file gains nothing.

    (With fs.protected_hardlinks=1 the kernel already refuses the hard link; the
    case guards hosts without it.)
    """
    run = own_dir(arena / "run", intruder)
    # Hard links need a victim the attacker can reach (its directory searchable).
    victim = make_victim(arena / "victims")
    before = Snapshot.of(victim)
    options: dict[str, object] = {"detach": True, "user": intruder.name}
    if kind == "listen":
        target, mode = run / "s00.sock", 0o660
        options["pidfile"] = str(arena / "app.pid")
        # Many listeners: the old code chowned every file by path after binding them all.
        options["listen"] = {f"s{n:02d}": f"unix:{run}/s{n:02d}.sock?mode=0660" for n in range(40)}
    else:
        # The control socket, <pidfile>.ctl, in the service account's run directory.
        target, mode = run / "app.pid.ctl", 0o600
        options["pidfile"] = str(run / "app.pid")
    protected = Path("/proc/sys/fs/protected_hardlinks").read_text().strip() == "1"

    bait = run / "bait"

    def race() -> None:
        # The bait is ready before the race, so the swap is one atomic rename.
        if link == "symlink":
            os.symlink(victim, bait)
        elif protected:
            # The kernel already refuses links to files the attacker does not own.
            with pytest.raises(PermissionError):
                os.link(victim, bait)
            return
        else:
            os.link(victim, bait)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                st = os.lstat(target)
            except FileNotFoundError:
                continue
            if stat.S_ISSOCK(st.st_mode):
                try:
                    os.link(target, run / "moved.sock")
                except PermissionError:  # fs.protected_hardlinks: a root-owned socket
                    os.rename(target, run / "moved.sock")
                os.rename(bait, target)
                return
        raise AssertionError("the socket never appeared")

    attacker = fork_as(intruder, race)
    try:
        started = start_daemon(options)
    finally:
        wait_child(attacker)
    try:
        assert Snapshot.of(victim) == before
        # The socket the daemon made was born the service account's, with its mode.
        st = os.lstat(target if link == "hardlink" and protected else run / "moved.sock")
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (
            intruder.uid,
            intruder.gid,
            mode,
        )
        # Where the swap lands against the daemon's own check right after bind
        # decides only whether it starts or refuses to; the victim is safe either way.
        refused = started.returncode == 1 and "after bind" in started.stderr
        assert started.returncode == 0 or refused, started.stderr
    finally:
        if started.returncode == 0:
            stop_daemon(read_pid(Path(str(options["pidfile"]))))


def test_files_get_the_daemon_umask_not_the_launchers(arena: Path, intruder: User) -> None:
    """Launcher umask 000, umask=0o077: another user can neither read the logs nor connect."""
    options = {
        "pidfile": str(arena / "app.pid"),
        "log_file": str(arena / "app.log"),
        "stdout": str(arena / "out.log"),
        "stderr": str(arena / "err.log"),
        "listen": {"app": f"unix:{arena}/app.sock"},
        "umask": 0o077,
    }
    with running_daemon(options, umask=0o000):
        wait_for(lambda: len(records(arena / "app.log")) > 1, what="ticks in the log file")
        modes = {
            name: stat.S_IMODE(os.lstat(arena / name).st_mode)
            for name in ("app.pid", "app.log", "out.log", "err.log", "app.sock")
        }
        assert modes == {
            "app.pid": 0o600,
            "app.log": 0o600,
            "out.log": 0o600,
            "err.log": 0o600,
            "app.sock": 0o700,
        }

        def snoop() -> None:
            with pytest.raises(PermissionError):
                (arena / "app.log").read_bytes()
            with pytest.raises(PermissionError):
                (arena / "err.log").read_bytes()
            with socket.socket(socket.AF_UNIX) as client, pytest.raises(PermissionError):
                client.connect(str(arena / "app.sock"))

        as_user(intruder, snoop)
