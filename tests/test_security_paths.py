"""Every path option against every trap a local user can plant, at start and at reopen.

A table: each path the daemon creates or writes (``PATH_OPTIONS``) crossed
with each thing that may sit at that path instead of a fresh file (``TRAPS``).
At start the daemon must refuse with one clear line naming the option and the
path, exit non-zero and start nothing; at a reopen (SIGUSR1, SIGHUP) it must
refuse, log the refusal at error level and keep writing to the old file. In
every case the victim file keeps its content, owner and mode, and the trap is
left as it was (a dangling symlink's target is never created).
"""

from __future__ import annotations

import os
import re
import signal
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .security_support import (
    Snapshot,
    arena,
    make_victim,
    records,
    refused_reopen,
    running_daemon,
    start_daemon,
    stop_daemon,
)
from .support import dead_pid, program, python, read_pid, wait_for

pytestmark = pytest.mark.root

__all__ = ["arena"]  # a fixture, re-exported for pytest


@dataclass(frozen=True)
class PathOption:
    """A ``run()`` option that names a file the daemon creates or writes."""

    #: how the option is named in error messages.
    name: str
    #: the ``run()`` options that put this option's file at the given path.
    options: Callable[[Path], dict[str, Any]]
    #: whether SIGUSR1 and SIGHUP open the path again.
    reopened: bool = False


#: Extension point: every new option naming a file or socket path gets a row here.
PATH_OPTIONS = [
    PathOption("pidfile", lambda p: {"pidfile": str(p)}),
    PathOption("log_file", lambda p: {"log_file": str(p)}, reopened=True),
    PathOption("stdout", lambda p: {"stdout": str(p)}),
    # Reopened after a rotation; a detached daemon without log_file logs there.
    PathOption("stderr", lambda p: {"stderr": str(p)}, reopened=True),
    PathOption("listen[app]", lambda p: {"listen": {"app": f"unix:{p}"}}),
    PathOption("health", lambda p: {"health": f"unix:{p}"}),
    PathOption("control", lambda p: {"control": str(p)}),
]


@dataclass(frozen=True)
class Trap:
    """Something planted at the path, and the words that must name it in the refusal."""

    plant: Callable[[Path, Path], None]
    #: a regular expression the error must match.
    words: str


def _dangling(path: Path, victim: Path) -> None:
    os.symlink(victim.parent / "created-through-a-dangling-symlink", path)


TRAPS = {
    "symlink-to-victim": Trap(lambda path, victim: os.symlink(victim, path), "symlink"),
    "hardlink-to-victim": Trap(
        lambda path, victim: os.link(victim, path), "hard links|regular file, not a socket"
    ),
    "fifo": Trap(lambda path, victim: os.mkfifo(path), "FIFO"),
    "directory": Trap(lambda path, victim: path.mkdir(), "[Dd]irectory"),
    "dangling-symlink": Trap(_dangling, "symlink"),
}


def _what_is_at(path: Path) -> tuple[int, str | None]:
    st = os.lstat(path)
    return stat.S_IFMT(st.st_mode), os.readlink(path) if stat.S_ISLNK(st.st_mode) else None


@pytest.mark.parametrize("trap_name", list(TRAPS))
@pytest.mark.parametrize("option", PATH_OPTIONS, ids=[o.name for o in PATH_OPTIONS])
def test_start_refuses_a_trap_at_a_path_option(
    arena: Path, option: PathOption, trap_name: str
) -> None:
    """A trap at any path option: one line naming it, non-zero exit, nothing started or touched."""
    trap = TRAPS[trap_name]
    victim = make_victim(arena / "victims")
    before = Snapshot.of(victim)
    path = arena / "trapped"
    trap.plant(path, victim)
    planted = _what_is_at(path)
    mark = arena / "started"
    options: dict[str, Any] = {"detach": True, **option.options(path)}
    if option.name != "pidfile":
        options["pidfile"] = str(arena / "d.pid")
    result = start_daemon(options, mark)
    if result.returncode == 0:  # a broken rule: do not leave the daemon behind
        stop_daemon(read_pid(Path(options["pidfile"])))
    assert Snapshot.of(victim) == before
    assert result.returncode != 0
    [line] = result.stderr.splitlines()
    assert option.name in line
    assert str(path) in line
    assert re.search(trap.words, line), line
    assert "Traceback" not in result.stderr
    assert not mark.exists()
    assert not (arena / "d.pid").exists()
    assert _what_is_at(path) == planted
    assert not (victim.parent / "created-through-a-dangling-symlink").exists()


@pytest.mark.parametrize("sig", [signal.SIGUSR1, signal.SIGHUP], ids=["SIGUSR1", "SIGHUP"])
@pytest.mark.parametrize("trap_name", list(TRAPS))
@pytest.mark.parametrize(
    "option",
    [o for o in PATH_OPTIONS if o.reopened],
    ids=[o.name for o in PATH_OPTIONS if o.reopened],
)
def test_reopen_refuses_a_trap_and_keeps_the_old_file(
    arena: Path, option: PathOption, trap_name: str, sig: signal.Signals
) -> None:
    """A path swapped for a trap before a reopen: refused at error level, the old file goes on."""
    trap = TRAPS[trap_name]
    victim = make_victim(arena / "victims")
    before = Snapshot.of(victim)
    path, rotated = arena / "app.log", arena / "app.log.1"
    options = {"pidfile": str(arena / "d.pid"), **option.options(path)}
    with running_daemon(options) as pid:
        wait_for(lambda: len(records(path)) > 2, what="ticks in the file")
        path.rename(rotated)
        trap.plant(path, victim)
        planted = _what_is_at(path)
        os.kill(pid, sig)

        record = refused_reopen(rotated)
        assert record["level"] == "error"
        assert re.search(trap.words, str(record["error"])), record
        seen = len(records(rotated))
        wait_for(lambda: len(records(rotated)) > seen + 2, what="ticks after the refusal")
        assert _what_is_at(path) == planted
    assert Snapshot.of(victim) == before
    assert not (victim.parent / "created-through-a-dangling-symlink").exists()


#: What a failed start leaves for its launcher (root) to remove: pidfile, control
#: socket (the pidfile's path + .ctl), listening socket, the empty stdout file
#: (not the stderr file: the daemon's records went there).
LEFT_BY_A_FAILED_START = ["app.pid", "app.pid.ctl", "app.sock", "out.log"]


@pytest.mark.parametrize("name", LEFT_BY_A_FAILED_START)
def test_cleanup_of_a_failed_start_never_follows_a_swapped_directory(
    arena: Path, name: str
) -> None:
    """The files' directory swapped for a symlink as root removes one: nothing elsewhere goes."""
    run, elsewhere = arena / "run", arena / "elsewhere"
    run.mkdir()
    elsewhere.mkdir()
    # root's own files of the same names, where the symlink points.
    for victim in LEFT_BY_A_FAILED_START:
        (elsewhere / victim).touch()

    result = python([program("cleanup_swapped_directory"), run, elsewhere, name])

    assert result.returncode == 1, result.stderr
    assert "the startup hook fails" in result.stderr
    assert result.stdout.strip() == "swapped", result.stderr
    assert sorted(os.listdir(elsewhere)) == sorted(LEFT_BY_A_FAILED_START)


def test_stale_pidfile_removal_never_follows_a_swapped_directory(arena: Path) -> None:
    """stop removing a stale pidfile whose directory is swapped for a symlink: nothing else goes."""
    run, elsewhere = arena / "run", arena / "elsewhere"
    run.mkdir()
    elsewhere.mkdir()
    (run / "app.pid").write_text(f"{dead_pid()}\n")
    (elsewhere / "app.pid").write_text("root's own file\n")

    result = python([program("stale_swapped_directory"), run, elsewhere])

    assert result.stdout.splitlines()[0] == "swapped", result.stderr
    assert (elsewhere / "app.pid").read_text() == "root's own file\n"
    assert not (arena / "run.moved" / "app.pid").exists()
